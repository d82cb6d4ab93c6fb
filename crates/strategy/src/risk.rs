//! Risk rules: position size, one position per symbol, trading hours, and the kill switch.

use domain::{
    ConversionRate, KillSwitchState, Money, Price, SymbolSpec, Timestamp, Volume, volume_for_loss,
};

use crate::ConfigError;
use crate::decision::Entry;

/// How big a new position is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizingRule {
    /// The same volume every time (scaled by the entry's size percentage).
    Fixed(Volume),
    /// Lose at most this fraction of equity (basis points: 100 = 1%) if the stop-loss is hit;
    /// needs a stop-loss distance.
    RiskFraction {
        /// Basis points of equity at risk.
        bps: u32,
    },
    /// The whole units that equity affords at the fill price (no leverage; never scaled up).
    AllCash,
}

/// Settings of [`RiskGate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskConfig {
    /// Position sizing.
    pub sizing: SizingRule,
    /// Engage the kill switch when equity falls this far (basis points) below the day's start.
    pub daily_loss_limit_bps: Option<u32>,
    /// Engage the kill switch when equity falls this far (basis points) below its peak.
    pub max_drawdown_bps: Option<u32>,
}

impl Default for RiskConfig {
    /// One unit per trade, a 5% daily-loss limit and a 20% drawdown limit.
    fn default() -> RiskConfig {
        RiskConfig {
            sizing: SizingRule::Fixed(Volume(100)),
            daily_loss_limit_bps: Some(500),
            max_drawdown_bps: Some(2_000),
        }
    }
}

/// Why a new position may not be opened (not an error: a rule said no).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryRefusal {
    /// The kill switch is engaged.
    #[error("kill switch engaged: {reason}")]
    KillSwitch {
        /// Why it was engaged.
        reason: String,
    },
    /// A position on the symbol is already open.
    #[error("a position on this symbol is already open")]
    PositionOpen,
    /// Outside the symbol's sessions, or on a holiday.
    #[error("market closed at {at} (outside the symbol's schedule or on a holiday)")]
    MarketClosed {
        /// When the entry was asked for.
        at: Timestamp,
    },
    /// Risk-fraction sizing without a stop-loss distance.
    #[error("risk-fraction sizing needs a stop-loss distance")]
    NoStopLoss,
    /// Equity or price is zero or negative.
    #[error("cannot size a position with equity {equity} at price {price}")]
    NothingToSize {
        /// The equity.
        equity: Money,
        /// The price.
        price: Price,
    },
    /// The size after rounding down to the volume step is under the symbol's minimum: even the
    /// minimum would risk more than allowed.
    #[error("size {volume} is below the symbol's minimum volume {min}")]
    BelowMinimum {
        /// The computed size.
        volume: Volume,
        /// The minimum.
        min: Volume,
    },
}

impl EntryRefusal {
    /// A short, stable name for metrics labels (e.g. `below_minimum`).
    pub const fn label(&self) -> &'static str {
        match self {
            EntryRefusal::KillSwitch { .. } => "kill_switch",
            EntryRefusal::PositionOpen => "position_open",
            EntryRefusal::MarketClosed { .. } => "market_closed",
            EntryRefusal::NoStopLoss => "no_stop_loss",
            EntryRefusal::NothingToSize { .. } => "nothing_to_size",
            EntryRefusal::BelowMinimum { .. } => "below_minimum",
        }
    }
}

/// Applies the risk rules for one symbol; the kill switch state is the caller's, so it survives restarts.
#[derive(Debug, Clone)]
pub struct RiskGate {
    config: RiskConfig,
    spec: SymbolSpec,
}

impl RiskGate {
    /// A gate for `spec`, refusing settings that cannot work.
    pub fn new(config: RiskConfig, spec: SymbolSpec) -> Result<RiskGate, ConfigError> {
        if spec.step_volume.raw() <= 0 {
            return Err(ConfigError::invalid(
                "symbol volume step",
                spec.step_volume,
                "must be positive",
            ));
        }
        if spec.min_volume.raw() <= 0 || spec.max_volume < spec.min_volume {
            return Err(ConfigError::invalid(
                "symbol volume limits",
                format!("{}..{}", spec.min_volume, spec.max_volume),
                "need 0 < min <= max",
            ));
        }
        match config.sizing {
            SizingRule::Fixed(v) if !v.is_positive() => {
                return Err(ConfigError::invalid("fixed volume", v, "must be positive"));
            }
            SizingRule::RiskFraction { bps } if bps == 0 || bps > 10_000 => {
                return Err(ConfigError::invalid(
                    "risk fraction (bps)",
                    bps,
                    "must be 1 to 10000",
                ));
            }
            _ => {}
        }
        for (name, limit) in [
            ("daily loss limit (bps)", config.daily_loss_limit_bps),
            ("max drawdown (bps)", config.max_drawdown_bps),
        ] {
            if let Some(bps) = limit
                && (bps == 0 || bps > 10_000)
            {
                return Err(ConfigError::invalid(name, bps, "must be 1 to 10000"));
            }
        }
        Ok(RiskGate { config, spec })
    }

    /// The settings.
    pub const fn config(&self) -> &RiskConfig {
        &self.config
    }

    /// The symbol.
    pub const fn spec(&self) -> &SymbolSpec {
        &self.spec
    }

    /// May a new position be opened at `at`? Checks the kill switch, the one-position rule and the
    /// schedule. Exits are never gated here: our own rule must not trap a position.
    pub fn check_entry(
        &self,
        kill: &KillSwitchState,
        at: Timestamp,
        has_open_position: bool,
    ) -> Result<(), EntryRefusal> {
        if kill.engaged {
            return Err(EntryRefusal::KillSwitch {
                reason: kill
                    .reason
                    .clone()
                    .unwrap_or_else(|| "no reason recorded".to_owned()),
            });
        }
        if has_open_position {
            return Err(EntryRefusal::PositionOpen);
        }
        if !self.spec.schedule.is_open(at) {
            return Err(EntryRefusal::MarketClosed { at });
        }
        Ok(())
    }

    /// The volume for `entry` given equity (deposit currency), the expected fill price and the
    /// quote→deposit conversion rate: computed by the sizing rule, scaled by the entry's size
    /// percentage, clamped to the symbol's maximum, rounded down to its step, and refused under its
    /// minimum (never silently oversized).
    pub fn size(
        &self,
        entry: &Entry,
        equity: Money,
        price: Price,
        rate: ConversionRate,
    ) -> Result<Volume, EntryRefusal> {
        if equity.minor <= 0 || price.raw() <= 0 {
            return Err(EntryRefusal::NothingToSize { equity, price });
        }
        let pct = i128::from(entry.size_pct);
        let overflow = || EntryRefusal::NothingToSize { equity, price };
        let raw: i128 = match self.config.sizing {
            SizingRule::Fixed(v) => i128::from(v.raw()) * pct / 100,
            SizingRule::RiskFraction { bps } => {
                let distance = entry
                    .stop_loss
                    .filter(|d| d.raw() > 0)
                    .ok_or(EntryRefusal::NoStopLoss)?;
                let budget = i128::from(equity.minor) * i128::from(bps) * pct / (10_000 * 100);
                let budget = Money::new(
                    i64::try_from(budget).map_err(|_| overflow())?,
                    equity.digits,
                );
                // Whole steps whose loss at the stop, plus the round trip's commission, stays
                // within the budget in the deposit currency.
                let costs = match self.spec.commission {
                    Some(c) => c.round_trip_distance(price).ok_or_else(overflow)?,
                    None => Price::ZERO,
                };
                let at_risk = distance.checked_add(costs).ok_or_else(overflow)?;
                let step = self.spec.step_volume;
                let fits = volume_for_loss(budget, at_risk, rate, step).ok_or_else(overflow)?;
                let max = self.spec.max_volume.round_down_to_step(step);
                i128::from(fits.min(max).raw())
            }
            SizingRule::AllCash => {
                // Equity in quote currency (1e-7 units); one whole unit (Volume 100) costs price x 100.
                let equity_e7 = rate.to_quote_e7(equity).ok_or_else(overflow)?;
                let units = equity_e7 / (i128::from(price.raw()) * 100);
                units * 100
            }
        };
        let clamped = raw.min(i128::from(self.spec.max_volume.raw())).max(0);
        // clamped is in 0..=max_volume, an i64.
        let volume =
            Volume(i64::try_from(clamped).unwrap_or(0)).round_down_to_step(self.spec.step_volume);
        if volume < self.spec.min_volume {
            return Err(EntryRefusal::BelowMinimum {
                volume,
                min: self.spec.min_volume,
            });
        }
        Ok(volume)
    }

    /// Records equity at `at` and engages the kill switch when a limit is reached; returns true
    /// when this call engaged it. The UTC day rolls on the first observation of a new day, whose
    /// equity becomes the day's start: call this at least once at each day's beginning.
    pub fn observe_equity(&self, kill: &mut KillSwitchState, equity: Money, at: Timestamp) -> bool {
        let day = at.epoch_day();
        if kill.day != Some(day) || kill.day_start_equity.is_none() {
            kill.day = Some(day);
            kill.day_start_equity = Some(equity);
        }
        let peak = match kill.equity_peak {
            Some(peak) if compare(peak, equity).is_ge() => peak,
            _ => equity,
        };
        kill.equity_peak = Some(peak);
        if kill.engaged {
            return false;
        }
        // The limits are compared without dividing (this runs at every mark of a backtest); the
        // figure is computed for the message only.
        if let (Some(limit), Some(start)) =
            (self.config.daily_loss_limit_bps, kill.day_start_equity)
            && falls_at_least(start, equity, limit)
            && let Some(loss_bps) = fall_bps(start, equity)
        {
            kill.engage(
                format!(
                    "daily loss {:.2}% from {start} at the start of the UTC day reached the limit {:.2}%",
                    bps_pct(loss_bps),
                    bps_pct(i128::from(limit))
                ),
                at,
            );
            return true;
        }
        if let Some(limit) = self.config.max_drawdown_bps
            && falls_at_least(peak, equity, limit)
            && let Some(dd_bps) = fall_bps(peak, equity)
        {
            kill.engage(
                format!(
                    "drawdown {:.2}% from the equity peak {peak} reached the limit {:.2}%",
                    bps_pct(dd_bps),
                    bps_pct(i128::from(limit))
                ),
                at,
            );
            return true;
        }
        false
    }
}

/// How far `equity` is below the kill switch's equity peak, in basis points (0 without a peak or
/// at or above it): the very number the drawdown limit is compared with, for display.
pub fn drawdown_bps(kill: &KillSwitchState, equity: Money) -> u32 {
    kill.equity_peak
        .and_then(|peak| fall_bps(peak, equity))
        .map_or(0, |bps| u32::try_from(bps.clamp(0, 10_000)).unwrap_or(0))
}

/// How far `equity` is below the day's starting equity, in basis points (0 when not below): the
/// number the daily-loss limit is compared with.
pub fn daily_loss_bps(kill: &KillSwitchState, equity: Money) -> u32 {
    kill.day_start_equity
        .and_then(|start| fall_bps(start, equity))
        .map_or(0, |bps| u32::try_from(bps.clamp(0, 10_000)).unwrap_or(0))
}

impl RiskGate {
    /// The drawdown limit in basis points, when one is set.
    pub fn max_drawdown_bps(&self) -> Option<u32> {
        self.config.max_drawdown_bps
    }

    /// The daily-loss limit in basis points, when one is set.
    pub fn daily_loss_limit_bps(&self) -> Option<u32> {
        self.config.daily_loss_limit_bps
    }
}

/// Both amounts in minor units of the finer precision.
fn common(a: Money, b: Money) -> (i128, i128) {
    if a.digits == b.digits {
        return (i128::from(a.minor), i128::from(b.minor));
    }
    let digits = u32::from(a.digits.max(b.digits).min(30));
    let scale = |m: Money| i128::from(m.minor) * 10_i128.pow(digits - u32::from(m.digits.min(30)));
    (scale(a), scale(b))
}

fn compare(a: Money, b: Money) -> std::cmp::Ordering {
    let (a, b) = common(a, b);
    a.cmp(&b)
}

/// How far `now` is below `reference`, in basis points of `reference` (None when the reference is not positive).
fn fall_bps(reference: Money, now: Money) -> Option<i128> {
    let (r, n) = common(reference, now);
    (r > 0).then(|| (r - n) * 10_000 / r)
}

/// Whether `fall_bps(reference, now) >= limit`, decided with multiplications only: for a
/// positive reference r and x = (r − n) × 10,000, the truncated quotient x / r is at least
/// L ≥ 1 exactly when x ≥ L × r, and at least 0 exactly when x > −r.
fn falls_at_least(reference: Money, now: Money, limit: u32) -> bool {
    // The usual case in 64 bits: same precision and no overflow.
    if reference.digits == now.digits {
        let (r, n) = (reference.minor, now.minor);
        if r <= 0 {
            return false;
        }
        if let (Some(x), Some(bound)) = (
            r.checked_sub(n).and_then(|d| d.checked_mul(10_000)),
            i64::from(limit).checked_mul(r),
        ) {
            return if limit == 0 { x > -r } else { x >= bound };
        }
    }
    let (r, n) = common(reference, now);
    if r <= 0 {
        return false;
    }
    let x = (r - n) * 10_000;
    if limit == 0 {
        x > -r
    } else {
        x >= i128::from(limit) * r
    }
}

#[allow(clippy::cast_precision_loss)] // display only
fn bps_pct(bps: i128) -> f64 {
    bps as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Side, SymbolId, TradingSchedule, WeeklySession};

    /// Monday 2025-11-24 00:00 UTC.
    const MONDAY: i64 = 1_763_942_400_000;

    fn spec(schedule: TradingSchedule) -> SymbolSpec {
        SymbolSpec {
            id: SymbolId(1),
            name: "PALMOIL".into(),
            digits: 0,
            pip_position: 0,
            lot_size: Volume(2_500),
            min_volume: Volume(100),
            max_volume: Volume(10_000),
            step_volume: Volume(100),
            schedule,
            commission: None,
        }
    }

    fn gate(sizing: SizingRule) -> RiskGate {
        RiskGate::new(
            RiskConfig {
                sizing,
                ..RiskConfig::default()
            },
            spec(TradingSchedule::always_open()),
        )
        .unwrap()
    }

    fn entry(stop_loss: Option<i64>, size_pct: u32) -> Entry {
        Entry {
            side: Side::Buy,
            size_pct,
            stop_loss: stop_loss.map(Price),
            take_profit: None,
        }
    }

    const MYR_10K: Money = Money::new(1_000_000, 2);
    const P4000: Price = Price(400_000_000);

    #[test]
    fn fixed_size_is_scaled_and_rounded_down_to_the_step() {
        let g = gate(SizingRule::Fixed(Volume(300)));
        assert_eq!(
            g.size(&entry(None, 100), MYR_10K, P4000, ConversionRate::IDENTITY),
            Ok(Volume(300))
        );
        // 300 x 150% = 450 -> step 100 -> 400.
        assert_eq!(
            g.size(&entry(None, 150), MYR_10K, P4000, ConversionRate::IDENTITY),
            Ok(Volume(400))
        );
        // Clamped to the maximum 10_000.
        assert_eq!(
            g.size(
                &entry(None, 10_000),
                MYR_10K,
                P4000,
                ConversionRate::IDENTITY
            ),
            Ok(Volume(10_000))
        );
    }

    #[test]
    fn risk_fraction_sizes_from_the_stop_distance() {
        let g = gate(SizingRule::RiskFraction { bps: 100 });
        // Risk 1% of 10,000 = 100 MYR; stop 40 MYR away -> 2.5 units -> rounded down to 2 units.
        assert_eq!(
            g.size(
                &entry(Some(4_000_000), 100),
                MYR_10K,
                P4000,
                ConversionRate::IDENTITY
            ),
            Ok(Volume(200))
        );
        // Stop 150 MYR away -> 0.66 units -> 0 after rounding: below the 1-unit minimum.
        assert_eq!(
            g.size(
                &entry(Some(15_000_000), 100),
                MYR_10K,
                P4000,
                ConversionRate::IDENTITY
            ),
            Err(EntryRefusal::BelowMinimum {
                volume: Volume(0),
                min: Volume(100)
            })
        );
        assert_eq!(
            g.size(&entry(None, 100), MYR_10K, P4000, ConversionRate::IDENTITY),
            Err(EntryRefusal::NoStopLoss)
        );
    }

    #[test]
    fn risk_fraction_counts_the_loss_in_the_account_currency() {
        let g = gate(SizingRule::RiskFraction { bps: 100 });
        // A USD account of 10,000 on a MYR symbol at USDMYR 4.5: 1% = 100 USD = 450 MYR; a 40 MYR
        // stop affords 11.25 units -> 11 units, losing 440 MYR = 97.78 USD at the stop.
        let myr_to_usd = domain::ConversionChain {
            quote_currency: "MYR".into(),
            steps: vec![domain::ConversionStep {
                symbol: domain::SymbolId(9),
                name: "USDMYR".into(),
                multiply: false,
            }],
        }
        .rate(|s| {
            Some(domain::Quote {
                symbol: s,
                bid: Price(450_000),
                ask: Price(450_000),
                time: Timestamp(0),
            })
        })
        .unwrap();
        let usd_10k = Money::new(1_000_000, 2);
        let volume = g
            .size(&entry(Some(4_000_000), 100), usd_10k, P4000, myr_to_usd)
            .unwrap();
        assert_eq!(volume, Volume(1_100));
        let loss = domain::loss_at_distance(Price(4_000_000), volume, myr_to_usd, 2).unwrap();
        assert_eq!(loss, Money::new(9_778, 2));
        // The same stop in a same-currency account risks 4.5 times more per unit: 2 units.
        assert_eq!(
            g.size(
                &entry(Some(4_000_000), 100),
                usd_10k,
                P4000,
                ConversionRate::IDENTITY
            ),
            Ok(Volume(200))
        );
    }

    #[test]
    fn risk_fraction_budgets_the_round_trip_commission_too() {
        // 30 per million per side at 4,000: 0.24 MYR a unit for the round trip, so 100 MYR at a
        // 40 MYR stop affords 100 / 40.24 = 2.48 units -> 2; at a 10 MYR stop 9.94 -> 9, not 10.
        let mut with_fees = spec(TradingSchedule::always_open());
        with_fees.commission = Some(domain::NotionalCommission(30 * 100_000_000));
        let g = RiskGate::new(
            RiskConfig {
                sizing: SizingRule::RiskFraction { bps: 100 },
                ..RiskConfig::default()
            },
            with_fees,
        )
        .unwrap();
        let size = |stop| {
            g.size(
                &entry(Some(stop), 100),
                MYR_10K,
                P4000,
                ConversionRate::IDENTITY,
            )
        };
        assert_eq!(size(4_000_000), Ok(Volume(200)));
        assert_eq!(size(1_000_000), Ok(Volume(900)));
        assert_eq!(
            gate(SizingRule::RiskFraction { bps: 100 }).size(
                &entry(Some(1_000_000), 100),
                MYR_10K,
                P4000,
                ConversionRate::IDENTITY
            ),
            Ok(Volume(1_000))
        );
    }

    #[test]
    fn all_cash_buys_whole_units() {
        let g = gate(SizingRule::AllCash);
        // 10,000 / 4,000 = 2.5 -> 2 units; sentiment scaling never adds leverage.
        assert_eq!(
            g.size(&entry(None, 100), MYR_10K, P4000, ConversionRate::IDENTITY),
            Ok(Volume(200))
        );
        assert_eq!(
            g.size(&entry(None, 300), MYR_10K, P4000, ConversionRate::IDENTITY),
            Ok(Volume(200))
        );
        assert!(matches!(
            g.size(
                &entry(None, 100),
                Money::new(0, 2),
                P4000,
                ConversionRate::IDENTITY
            ),
            Err(EntryRefusal::NothingToSize { .. })
        ));
    }

    #[test]
    fn one_position_per_symbol_and_kill_switch_block_entries() {
        let g = gate(SizingRule::AllCash);
        let mut kill = KillSwitchState::default();
        let at = Timestamp(MONDAY);
        assert_eq!(g.check_entry(&kill, at, false), Ok(()));
        assert_eq!(
            g.check_entry(&kill, at, true),
            Err(EntryRefusal::PositionOpen)
        );
        kill.engage("test", at);
        assert_eq!(
            g.check_entry(&kill, at, false),
            Err(EntryRefusal::KillSwitch {
                reason: "test".into()
            })
        );
    }

    #[test]
    fn trades_only_inside_the_session_and_outside_holidays() {
        // Monday 02:30-04:30 UTC, as Bursa's first session.
        let monday = 86_400;
        let mut schedule = TradingSchedule {
            sessions: vec![WeeklySession {
                start_second: monday + 9_000,
                end_second: monday + 16_200,
            }],
            holidays: vec![],
            changes: vec![],
        };
        let g = RiskGate::new(RiskConfig::default(), spec(schedule.clone())).unwrap();
        let kill = KillSwitchState::default();
        let at = |h: i64, m: i64| Timestamp(MONDAY + h * 3_600_000 + m * 60_000);
        assert!(matches!(
            g.check_entry(&kill, at(2, 29), false),
            Err(EntryRefusal::MarketClosed { .. })
        ));
        assert_eq!(g.check_entry(&kill, at(2, 30), false), Ok(()));
        assert_eq!(
            g.check_entry(&kill, Timestamp(at(4, 30).0 - 1), false),
            Ok(())
        );
        // The session end is exclusive.
        assert!(matches!(
            g.check_entry(&kill, at(4, 30), false),
            Err(EntryRefusal::MarketClosed { .. })
        ));
        schedule.holidays.push(domain::Holiday {
            name: "Deepavali".into(),
            epoch_day: at(0, 0).epoch_day(),
            recurring: false,
            seconds: None,
        });
        let g = RiskGate::new(RiskConfig::default(), spec(schedule)).unwrap();
        assert!(matches!(
            g.check_entry(&kill, at(3, 0), false),
            Err(EntryRefusal::MarketClosed { .. })
        ));
    }

    #[test]
    fn daily_loss_limit_engages_and_a_new_day_does_not_reset_it() {
        let g = gate(SizingRule::AllCash); // 5% daily, 20% drawdown
        let mut kill = KillSwitchState::default();
        let t = |h: i64| Timestamp(MONDAY + h * 3_600_000);
        assert!(!g.observe_equity(&mut kill, MYR_10K, t(0)));
        assert_eq!(kill.day_start_equity, Some(MYR_10K));
        // -4.99%: not yet.
        assert!(!g.observe_equity(&mut kill, Money::new(950_100, 2), t(5)));
        // -5.00%: engaged, with a reason a person can act on.
        assert!(g.observe_equity(&mut kill, Money::new(950_000, 2), t(6)));
        assert!(kill.engaged);
        assert_eq!(kill.engaged_at, Some(t(6)));
        assert!(
            kill.reason
                .as_deref()
                .unwrap()
                .starts_with("daily loss 5.00%"),
            "{:?}",
            kill.reason
        );
        // The state is data: a "restart" (a fresh gate over the persisted state) keeps it engaged,
        // and so does a new day with recovered equity.
        let persisted = kill.clone();
        let mut restored = persisted;
        let g2 = gate(SizingRule::AllCash);
        assert!(!g2.observe_equity(&mut restored, MYR_10K, t(30)));
        assert!(restored.engaged);
        assert_eq!(restored.day_start_equity, Some(MYR_10K));
        assert!(g2.check_entry(&restored, t(30), false).is_err());
    }

    #[test]
    fn a_new_day_resets_the_daily_reference_not_the_peak() {
        let g = gate(SizingRule::AllCash);
        let mut kill = KillSwitchState::default();
        let t = |h: i64| Timestamp(MONDAY + h * 3_600_000);
        g.observe_equity(&mut kill, MYR_10K, t(0));
        // -4% on Monday, another -4% on Tuesday: no daily limit hit (each day under 5%).
        assert!(!g.observe_equity(&mut kill, Money::new(960_000, 2), t(23)));
        assert!(!g.observe_equity(&mut kill, Money::new(960_000, 2), t(24)));
        assert!(!g.observe_equity(&mut kill, Money::new(921_700, 2), t(30)));
        assert!(!kill.engaged);
        assert_eq!(kill.equity_peak, Some(MYR_10K));
    }

    #[test]
    fn max_drawdown_engages_from_the_running_peak() {
        let g = RiskGate::new(
            RiskConfig {
                sizing: SizingRule::AllCash,
                daily_loss_limit_bps: None,
                max_drawdown_bps: Some(1_000),
            },
            spec(TradingSchedule::always_open()),
        )
        .unwrap();
        let mut kill = KillSwitchState::default();
        let t = |d: i64| Timestamp(MONDAY + d * 86_400_000);
        g.observe_equity(&mut kill, MYR_10K, t(0));
        g.observe_equity(&mut kill, Money::new(1_200_000, 2), t(1));
        // 12,000 -> 10,900 is -9.17%: below the 10% limit.
        assert!(!g.observe_equity(&mut kill, Money::new(1_090_000, 2), t(2)));
        // 12,000 -> 10,800 is -10%.
        assert!(g.observe_equity(&mut kill, Money::new(1_080_000, 2), t(3)));
        assert!(
            kill.reason
                .as_deref()
                .unwrap()
                .contains("drawdown 10.00% from the equity peak 12000")
        );
    }

    #[test]
    fn refuses_unworkable_settings() {
        let open = || spec(TradingSchedule::always_open());
        assert!(
            RiskGate::new(
                RiskConfig {
                    sizing: SizingRule::Fixed(Volume(0)),
                    ..RiskConfig::default()
                },
                open()
            )
            .is_err()
        );
        assert!(
            RiskGate::new(
                RiskConfig {
                    sizing: SizingRule::RiskFraction { bps: 0 },
                    ..RiskConfig::default()
                },
                open()
            )
            .is_err()
        );
        assert!(
            RiskGate::new(
                RiskConfig {
                    max_drawdown_bps: Some(0),
                    ..RiskConfig::default()
                },
                open()
            )
            .is_err()
        );
        let mut bad = open();
        bad.step_volume = Volume(0);
        assert!(RiskGate::new(RiskConfig::default(), bad).is_err());
    }

    #[test]
    fn the_limit_check_without_division_agrees_with_the_figure() {
        let amounts = [
            -1_000_001,
            -7,
            0,
            1,
            3,
            99,
            100,
            9_999,
            10_000,
            10_001,
            12_345,
            999_999,
            1_000_000,
            i64::MAX / 3,
            i64::MIN / 3,
        ];
        let mut checked = 0;
        for &r in &amounts {
            for &n in &amounts {
                for digits in [(2, 2), (2, 4), (5, 2)] {
                    let (reference, now) = (Money::new(r, digits.0), Money::new(n, digits.1));
                    for limit in [0_u32, 1, 2, 50, 500, 9_999, 10_000] {
                        let want = fall_bps(reference, now).is_some_and(|b| b >= i128::from(limit));
                        assert_eq!(
                            falls_at_least(reference, now, limit),
                            want,
                            "{reference} {now} {limit}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 15 * 15 * 3 * 7);
    }
}

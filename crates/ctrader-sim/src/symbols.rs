//! The simulated broker's instruments: a palm oil CFD among a few others, with their contract
//! terms, trading hours and the parameters of their synthetic price paths.

use domain::{Holiday, Timestamp, TradingSchedule, WeeklySession};

use crate::prices::PathModel;

/// Seconds in a day and a week, for schedules counted from Sunday 00:00 UTC.
const DAY: u32 = 86_400;
const WEEK: u32 = 7 * DAY;
/// Seconds from Sunday 00:00 to the start of each weekday.
const MONDAY: u32 = DAY;
const FRIDAY: u32 = 5 * DAY;

/// The id the palm oil CFD has on this simulated broker (ids differ per broker: clients look it up by name).
pub const PALM_OIL_SYMBOL_ID: i64 = 310;
/// The id of USDMYR, the symbol that converts between ringgit and dollars on this simulated broker.
pub const USD_MYR_SYMBOL_ID: i64 = 32;
/// USDMYR's name.
pub(crate) const USD_MYR_NAME: &str = "USDMYR";
/// Names of the symbols other than palm oil, which the palm oil CFD may not take.
pub(crate) const OTHER_SYMBOL_NAMES: [&str; 4] = ["EURUSD", "XAUUSD", "BRENT", USD_MYR_NAME];

/// Asset ids, as `ProtoOAAssetListRes` lists them and the symbols name their base and quote.
pub(crate) const EUR_ASSET_ID: i64 = 1;
/// US dollar.
pub(crate) const USD_ASSET_ID: i64 = 2;
/// Gold (troy ounces).
pub(crate) const XAU_ASSET_ID: i64 = 3;
/// Brent crude (barrels).
pub(crate) const BRENT_ASSET_ID: i64 = 4;
/// Crude palm oil (tonnes).
pub(crate) const PALM_OIL_ASSET_ID: i64 = 77;
/// Malaysian ringgit.
pub(crate) const MYR_ASSET_ID: i64 = 78;

/// One asset of the broker: a currency or the underlying of a CFD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimAsset {
    /// Asset id.
    pub(crate) id: i64,
    /// Short name (`USD`, `MYR`).
    pub(crate) name: &'static str,
    /// Name a person reads.
    pub(crate) display_name: &'static str,
    /// Decimal digits the asset is shown with.
    pub(crate) digits: i32,
}

/// Every asset the simulated broker knows, by id.
pub(crate) fn assets() -> Vec<SimAsset> {
    let asset = |id, name, display_name, digits| SimAsset {
        id,
        name,
        display_name,
        digits,
    };
    vec![
        asset(EUR_ASSET_ID, "EUR", "Euro", 2),
        asset(USD_ASSET_ID, "USD", "US Dollar", 2),
        asset(XAU_ASSET_ID, "XAU", "Gold", 2),
        asset(BRENT_ASSET_ID, "BRENT", "Brent Crude Oil", 2),
        asset(PALM_OIL_ASSET_ID, "CPO", "Crude Palm Oil", 0),
        asset(MYR_ASSET_ID, "MYR", "Malaysian Ringgit", 2),
    ]
}

/// How a symbol's swap rates are expressed (`ProtoOASwapCalculationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SwapCalculation {
    /// Pips per unit per night: `rate × 10^-pipPosition × units`, in the quote currency.
    Pips,
    /// Annual percent of the value: `rate / 100 / 360 × mid × units`, in the quote currency.
    Percentage,
    /// Points per unit per night: `rate × 10^-digits × units`, in the quote currency.
    Points,
}

impl SwapCalculation {
    /// The protocol's enum value.
    pub(crate) fn code(self) -> i32 {
        match self {
            SwapCalculation::Pips => 0,
            SwapCalculation::Percentage => 1,
            SwapCalculation::Points => 2,
        }
    }
}

/// A symbol's overnight financing, as its `ProtoOASymbol` declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SwapTerms {
    /// `swapLong` in thousandths (-730 is -0.73); negative: the trader pays.
    pub(crate) long_milli: i64,
    /// `swapShort` in thousandths.
    pub(crate) short_milli: i64,
    /// What the rates mean.
    pub(crate) calculation: SwapCalculation,
    /// `swapRollover3Days`: the weekday (1 Monday … 7 Sunday) whose rollover counts three nights.
    pub(crate) triple_day: i32,
}

/// When the simulated symbols trade.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MarketHours {
    /// Each symbol keeps realistic hours: palm oil on Bursa Malaysia's FCPO sessions
    /// (02:30–04:30 and 06:30–10:00 UTC Monday to Friday, 13:00–15:30 UTC Monday to Thursday, closed on
    /// a few Malaysian holidays), the others around the clock from Sunday evening to Friday evening.
    #[default]
    Realistic,
    /// Every symbol open every second of every day (demos and tests).
    AlwaysOpen,
    /// Palm oil on these weekly sessions (UTC seconds from Sunday 00:00, end exclusive); the others realistic.
    PalmSessions(Vec<WeeklySession>),
}

impl std::str::FromStr for MarketHours {
    type Err = crate::SimError;

    /// `realistic`, or `always` (also `24/7`, `always-open`); custom sessions are set in code.
    fn from_str(s: &str) -> Result<MarketHours, crate::SimError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "realistic" => Ok(MarketHours::Realistic),
            "always" | "always-open" | "24/7" => Ok(MarketHours::AlwaysOpen),
            other => Err(crate::SimError::Config(format!(
                "market hours {other:?} must be `realistic` or `always`"
            ))),
        }
    }
}

/// One instrument's contract terms, hours and price model.
#[derive(Debug, Clone)]
pub(crate) struct SimSymbol {
    /// Broker id.
    pub(crate) id: i64,
    /// The zone whose local hours the sessions are, when they follow one; `None`: UTC hours.
    pub(crate) session_zone: Option<jiff::tz::TimeZone>,
    /// Name clients look it up by.
    pub(crate) name: String,
    /// Human description.
    pub(crate) description: String,
    /// Asset ids and category, as the light symbol list reports them.
    pub(crate) base_asset_id: i64,
    pub(crate) quote_asset_id: i64,
    pub(crate) category_id: i64,
    /// Decimal digits of the price and the pip position.
    pub(crate) digits: u32,
    pub(crate) pip_position: i32,
    /// Volumes in 0.01 of a unit.
    pub(crate) lot_size: i64,
    pub(crate) min_volume: i64,
    pub(crate) max_volume: i64,
    pub(crate) step_volume: i64,
    /// What one unit is (tonnes, ounces...).
    pub(crate) measurement_units: String,
    /// Weekly sessions and holidays (UTC).
    pub(crate) schedule: TradingSchedule,
    /// Notional divided by this is the margin a position uses.
    pub(crate) leverage: i64,
    /// Overnight financing charged at each rollover.
    pub(crate) swap: SwapTerms,
    /// Commission per side, in deposit currency per million of deposit-currency notional.
    pub(crate) commission_per_million: i64,
    /// The least distance of a guaranteed stop loss from the price (1/100000), when the symbol
    /// offers one (to limited-risk accounts); `None`: no guaranteed stop loss.
    pub(crate) gsl_distance: Option<i64>,
    /// How its synthetic prices move.
    pub(crate) model: PathModel,
}

impl SimSymbol {
    /// The smallest price step, in 1/100000.
    pub(crate) fn tick(&self) -> i64 {
        10_i64.pow(5_u32.saturating_sub(self.digits))
    }

    /// True when the symbol trades at `at`.
    pub(crate) fn is_open(&self, at: Timestamp) -> bool {
        self.schedule.is_open(self.session_time(at))
    }

    /// `at` as the sessions read it: shifted to the zone's local time when they follow one.
    pub(crate) fn session_time(&self, at: Timestamp) -> Timestamp {
        let Some(zone) = &self.session_zone else {
            return at;
        };
        jiff::Timestamp::from_millisecond(at.millis())
            .map(|t| at.plus_millis(i64::from(zone.to_offset(t).seconds()) * 1000))
            .unwrap_or(at)
    }

    /// Rounds a 1/100000 price to this symbol's grid.
    pub(crate) fn to_grid(&self, price: i64) -> i64 {
        domain::Price(price).round_to_digits(self.digits).0
    }
}

/// Builds the broker's symbol list; `palm_name` renames the palm oil CFD (e.g. `FCPO`).
pub(crate) fn catalog(palm_name: &str, hours: &MarketHours) -> Vec<SimSymbol> {
    let always = TradingSchedule::always_open();
    let pick = |realistic: TradingSchedule| match hours {
        MarketHours::AlwaysOpen => always.clone(),
        MarketHours::Realistic | MarketHours::PalmSessions(_) => realistic,
    };
    let palm_schedule = match hours {
        MarketHours::AlwaysOpen => always.clone(),
        MarketHours::Realistic => bursa_palm_oil_schedule(),
        MarketHours::PalmSessions(sessions) => TradingSchedule {
            sessions: sessions.clone(),
            holidays: Vec::new(),
            changes: Vec::new(),
        },
    };
    vec![
        SimSymbol {
            session_zone: None,
            id: 1,
            name: "EURUSD".into(),
            description: "Euro vs US Dollar".into(),
            base_asset_id: EUR_ASSET_ID,
            quote_asset_id: USD_ASSET_ID,
            category_id: 1,
            digits: 5,
            pip_position: 4,
            lot_size: 10_000_000,
            min_volume: 100_000,
            max_volume: 1_000_000_000,
            step_volume: 100_000,
            measurement_units: "EUR".into(),
            schedule: pick(weekday_schedule(22 * 3600, 21 * 3600 + 3540, None)),
            leverage: 30,
            swap: SwapTerms {
                long_milli: -730,
                short_milli: 210,
                calculation: SwapCalculation::Pips,
                triple_day: 3,
            },
            commission_per_million: 30,
            gsl_distance: None,
            model: PathModel {
                mean: 1.0850,
                annual_volatility: 0.07,
                trading_seconds_per_day: 86_400.0,
                reversion_half_life_days: 60.0,
                busy_multiplier: 2.0,
                mean_quiet_seconds: 3_600.0,
                mean_busy_seconds: 900.0,
                jumps_per_day: 0.2,
                jump_size: 0.004,
                tick: 1,
                spread_quiet_ticks: 8,
                spread_busy_ticks: 15,
            },
        },
        SimSymbol {
            session_zone: None,
            id: 41,
            name: "XAUUSD".into(),
            description: "Gold vs US Dollar".into(),
            base_asset_id: XAU_ASSET_ID,
            quote_asset_id: USD_ASSET_ID,
            category_id: 2,
            digits: 2,
            pip_position: 1,
            lot_size: 10_000,
            min_volume: 100,
            max_volume: 10_000_000,
            step_volume: 100,
            measurement_units: "Oz".into(),
            schedule: pick(weekday_schedule(
                23 * 3600,
                21 * 3600,
                Some((21 * 3600, 22 * 3600)),
            )),
            leverage: 20,
            // Points of 0.01 USD per ounce.
            swap: SwapTerms {
                long_milli: -45_000,
                short_milli: 12_000,
                calculation: SwapCalculation::Points,
                triple_day: 3,
            },
            commission_per_million: 30,
            gsl_distance: None,
            model: PathModel {
                mean: 2650.0,
                annual_volatility: 0.15,
                trading_seconds_per_day: 82_800.0,
                reversion_half_life_days: 60.0,
                busy_multiplier: 2.5,
                mean_quiet_seconds: 3_600.0,
                mean_busy_seconds: 900.0,
                jumps_per_day: 0.3,
                jump_size: 0.006,
                tick: 1_000,
                spread_quiet_ticks: 20,
                spread_busy_ticks: 45,
            },
        },
        SimSymbol {
            session_zone: None,
            id: 105,
            name: "BRENT".into(),
            description: "Brent Crude Oil CFD".into(),
            base_asset_id: BRENT_ASSET_ID,
            quote_asset_id: USD_ASSET_ID,
            category_id: 3,
            digits: 2,
            pip_position: 2,
            lot_size: 100_000,
            min_volume: 1_000,
            max_volume: 10_000_000,
            step_volume: 1_000,
            measurement_units: "Barrels".into(),
            schedule: pick(weekday_schedule(
                23 * 3600,
                21 * 3600,
                Some((21 * 3600, 23 * 3600)),
            )),
            leverage: 10,
            swap: SwapTerms {
                long_milli: -5_000,
                short_milli: -2_000,
                calculation: SwapCalculation::Percentage,
                triple_day: 5,
            },
            commission_per_million: 30,
            gsl_distance: None,
            model: PathModel {
                mean: 74.50,
                annual_volatility: 0.30,
                trading_seconds_per_day: 79_200.0,
                reversion_half_life_days: 30.0,
                busy_multiplier: 2.5,
                mean_quiet_seconds: 2_700.0,
                mean_busy_seconds: 900.0,
                jumps_per_day: 0.4,
                jump_size: 0.01,
                tick: 1_000,
                spread_quiet_ticks: 3,
                spread_busy_ticks: 6,
            },
        },
        SimSymbol {
            session_zone: None,
            id: USD_MYR_SYMBOL_ID,
            name: USD_MYR_NAME.into(),
            description: "US Dollar vs Malaysian Ringgit".into(),
            base_asset_id: USD_ASSET_ID,
            quote_asset_id: MYR_ASSET_ID,
            category_id: 1,
            digits: 5,
            pip_position: 4,
            lot_size: 10_000_000,
            min_volume: 100_000,
            max_volume: 1_000_000_000,
            step_volume: 100_000,
            measurement_units: "USD".into(),
            schedule: pick(weekday_schedule(22 * 3600, 21 * 3600 + 3540, None)),
            leverage: 20,
            commission_per_million: 30,
            gsl_distance: None,
            // Dollar rates above ringgit rates: a long earns a little, a short pays more.
            swap: SwapTerms {
                long_milli: 2_500,
                short_milli: -8_000,
                calculation: SwapCalculation::Pips,
                triple_day: 3,
            },
            model: PathModel {
                // Around 4.47 ringgit per dollar; about 6 % annualised volatility, so the quote moves
                // a few points every second of a run; a thin market's wide spread.
                mean: 4.47,
                annual_volatility: 0.06,
                trading_seconds_per_day: 86_400.0,
                reversion_half_life_days: 60.0,
                busy_multiplier: 2.0,
                mean_quiet_seconds: 3_600.0,
                mean_busy_seconds: 900.0,
                jumps_per_day: 0.2,
                jump_size: 0.003,
                tick: 1,
                spread_quiet_ticks: 150,
                spread_busy_ticks: 300,
            },
        },
        SimSymbol {
            session_zone: None,
            id: PALM_OIL_SYMBOL_ID,
            name: palm_name.to_owned(),
            description: "Crude Palm Oil CFD".into(),
            base_asset_id: PALM_OIL_ASSET_ID,
            quote_asset_id: MYR_ASSET_ID,
            category_id: 9,
            digits: 0,
            pip_position: 0,
            lot_size: 2_500,
            min_volume: 100,
            max_volume: 250_000,
            step_volume: 100,
            measurement_units: "Tonnes".into(),
            schedule: palm_schedule,
            leverage: 10,
            // Financing of a commodity CFD: a yearly rate on the value, both sides paying.
            swap: SwapTerms {
                long_milli: -6_000,
                short_milli: -3_000,
                calculation: SwapCalculation::Percentage,
                triple_day: 3,
            },
            commission_per_million: 30,
            // 10 MYR: guaranteed stops must be at least that far from the price.
            gsl_distance: Some(1_000_000),
            model: PathModel {
                // Around 4,000 MYR/t, as in recent years; about 28 % annualised volatility
                // over an 8.5-hour trading day; a mean reversion half-life of three weeks.
                mean: 4000.0,
                annual_volatility: 0.28,
                trading_seconds_per_day: 30_600.0,
                reversion_half_life_days: 15.0,
                busy_multiplier: 2.5,
                mean_quiet_seconds: 2_400.0,
                mean_busy_seconds: 600.0,
                jumps_per_day: 0.5,
                jump_size: 0.015,
                tick: 100_000,
                spread_quiet_ticks: 2,
                spread_busy_ticks: 3,
            },
        },
    ]
}

/// Bursa Malaysia's FCPO hours in UTC, with the holidays a CFD on it would observe.
fn bursa_palm_oil_schedule() -> TradingSchedule {
    let mut sessions = Vec::new();
    for day in 0..5_u32 {
        let base = MONDAY + day * DAY;
        sessions.push(WeeklySession {
            start_second: base + 2 * 3600 + 1800,
            end_second: base + 4 * 3600 + 1800,
        });
        sessions.push(WeeklySession {
            start_second: base + 6 * 3600 + 1800,
            end_second: base + 10 * 3600,
        });
        if day < 4 {
            sessions.push(WeeklySession {
                start_second: base + 13 * 3600,
                end_second: base + 15 * 3600 + 1800,
            });
        }
    }
    // Epoch days of 2026 dates; recurring, so only month and day matter.
    let holiday = |name: &str, epoch_day: i64| Holiday {
        name: name.to_owned(),
        epoch_day,
        recurring: true,
        seconds: None,
    };
    TradingSchedule {
        sessions,
        holidays: vec![
            holiday("New Year's Day", 20_454),
            holiday("Labour Day", 20_574),
            holiday("National Day", 20_696),
            holiday("Christmas Day", 20_812),
        ],
        changes: Vec::new(),
    }
}

/// A Sunday-evening-to-Friday-evening schedule: opens Sunday at `open_second` of the day, closes
/// Friday at `close_second`, with an optional daily break (seconds of the day) Monday to Thursday.
fn weekday_schedule(
    open_second: u32,
    close_second: u32,
    daily_break: Option<(u32, u32)>,
) -> TradingSchedule {
    let start = open_second;
    let end = FRIDAY + close_second;
    let sessions = match daily_break {
        None => vec![WeeklySession {
            start_second: start,
            end_second: end,
        }],
        Some((break_start, break_end)) => {
            let mut sessions = Vec::new();
            let mut cursor = start;
            for day in 1..5_u32 {
                let pause = day * DAY + break_start;
                sessions.push(WeeklySession {
                    start_second: cursor,
                    end_second: pause,
                });
                cursor = day * DAY + break_end;
            }
            sessions.push(WeeklySession {
                start_second: cursor,
                end_second: end,
            });
            sessions
        }
    };
    debug_assert!(sessions.iter().all(|s| s.end_second <= WEEK));
    TradingSchedule {
        sessions,
        holidays: Vec::new(),
        changes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-11-24 00:00 UTC, a Monday.
    const MONDAY_MIDNIGHT: i64 = 1_763_942_400_000;

    fn at(day_offset: i64, hour: i64, minute: i64) -> Timestamp {
        Timestamp(MONDAY_MIDNIGHT + day_offset * 86_400_000 + hour * 3_600_000 + minute * 60_000)
    }

    /// Sessions kept in London's local hours open an hour earlier in UTC in summer.
    #[test]
    fn sessions_following_a_zone_move_with_its_daylight_saving() {
        let mut palm = palm(&MarketHours::Realistic);
        palm.session_zone = crate::wire::time_zone("Europe/London");
        // Winter (GMT): the 02:30–04:30 session is 02:30–04:30 UTC.
        assert!(
            palm.is_open(Timestamp(1_736_131_500_000)),
            "Mon 6 Jan 02:45 UTC"
        );
        assert!(
            !palm.is_open(Timestamp(1_736_127_900_000)),
            "Mon 6 Jan 01:45 UTC"
        );
        // Summer (BST, UTC+1): the same local session is 01:30–03:30 UTC.
        assert!(
            palm.is_open(Timestamp(1_751_852_700_000)),
            "Mon 7 Jul 01:45 UTC"
        );
        assert!(
            !palm.is_open(Timestamp(1_751_860_800_000)),
            "Mon 7 Jul 04:00 UTC"
        );
    }

    fn palm(hours: &MarketHours) -> SimSymbol {
        catalog("PALMOIL", hours)
            .into_iter()
            .find(|s| s.id == PALM_OIL_SYMBOL_ID)
            .unwrap()
    }

    #[test]
    fn palm_oil_follows_bursa_sessions() {
        let palm = palm(&MarketHours::Realistic);
        assert!(
            palm.is_open(at(0, 3, 0)),
            "Monday 03:00 UTC is in the morning session"
        );
        assert!(
            !palm.is_open(at(0, 5, 0)),
            "Monday 05:00 UTC is the lunch break"
        );
        assert!(
            palm.is_open(at(0, 14, 0)),
            "Monday 14:00 UTC is the night session"
        );
        assert!(!palm.is_open(at(4, 14, 0)), "no night session on Friday");
        assert!(!palm.is_open(at(5, 3, 0)), "closed on Saturday");
        assert!(!palm.is_open(at(-1, 3, 0)), "closed on Sunday");
    }

    #[test]
    fn palm_oil_is_closed_on_christmas() {
        let palm = palm(&MarketHours::Realistic);
        // 2025-12-25 is a Thursday: 31 days after Monday 2025-11-24.
        assert!(!palm.is_open(at(31, 3, 0)));
        assert!(palm.is_open(at(30, 3, 0)));
    }

    #[test]
    fn always_open_and_custom_hours() {
        assert!(palm(&MarketHours::AlwaysOpen).is_open(at(5, 3, 0)));
        let custom = MarketHours::PalmSessions(vec![WeeklySession {
            start_second: 6 * DAY,
            end_second: 7 * DAY,
        }]);
        assert!(palm(&custom).is_open(at(5, 3, 0)));
        assert!(!palm(&custom).is_open(at(0, 3, 0)));
        let fx = catalog("PALMOIL", &custom)
            .into_iter()
            .find(|s| s.name == "EURUSD")
            .unwrap();
        assert!(fx.is_open(at(2, 12, 0)));
        assert!(!fx.is_open(at(5, 12, 0)), "FX closed on Saturday");
    }

    #[test]
    fn market_hours_parse_like_a_flag() {
        assert_eq!(
            "realistic".parse::<MarketHours>().unwrap(),
            MarketHours::Realistic
        );
        assert_eq!(
            "24/7".parse::<MarketHours>().unwrap(),
            MarketHours::AlwaysOpen
        );
        assert_eq!(
            "Always".parse::<MarketHours>().unwrap(),
            MarketHours::AlwaysOpen
        );
        assert!("sometimes".parse::<MarketHours>().is_err());
    }

    #[test]
    fn symbol_grid() {
        let palm = palm(&MarketHours::Realistic);
        assert_eq!(palm.tick(), 100_000);
        assert_eq!(palm.to_grid(412_345_678), 412_300_000);
        let gold = catalog("X", &MarketHours::Realistic)
            .into_iter()
            .find(|s| s.name == "XAUUSD")
            .unwrap();
        assert_eq!(gold.tick(), 1_000);
        assert!(gold.is_open(at(1, 12, 0)));
        assert!(!gold.is_open(at(1, 21, 30)), "daily break");
    }
}

//! The RSI mean-reversion strategy, tempered by news sentiment.

use domain::{Bar, Price, SentimentReading, Side};

use crate::decision::{
    Action, BarContext, Block, Crossing, Decision, Entry, Reason, SentimentProblem, SentimentUse,
    Strategy,
};
use crate::rsi::RsiSeries;
use crate::{ConfigError, Rsi};

/// What to do when sentiment is stale, unusable or missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SentimentPolicy {
    /// Trade on the RSI alone.
    #[default]
    Ignore,
    /// Open no new position (exits still happen).
    StandAside,
}

impl std::str::FromStr for SentimentPolicy {
    type Err = ConfigError;
    /// `ignore` or `stand-aside` (also `stand_aside`, `standaside`), any case.
    fn from_str(s: &str) -> Result<SentimentPolicy, ConfigError> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_'], "")
            .as_str()
        {
            "ignore" => Ok(SentimentPolicy::Ignore),
            "standaside" => Ok(SentimentPolicy::StandAside),
            _ => Err(ConfigError::invalid(
                "sentiment policy",
                s,
                "expected ignore or stand-aside",
            )),
        }
    }
}

/// How sentiment tempers entries.
#[derive(Debug, Clone, PartialEq)]
pub struct SentimentRules {
    /// An entry is vetoed when score × confidence opposes it by more than this (0 to 1).
    pub veto_threshold: f64,
    /// Size percentage at full agreement (score × confidence = 1); 100 disables scaling.
    /// The size grows linearly from 100% at no agreement to this.
    pub max_size_pct: u32,
    /// Readings older than this (milliseconds) are stale.
    pub max_age_ms: i64,
    /// Readings with less confidence are treated as unusable.
    pub min_confidence: f64,
    /// What stale or unusable sentiment means.
    pub policy: SentimentPolicy,
}

impl Default for SentimentRules {
    /// Veto beyond 0.3, no scaling, 6 hours of freshness, any confidence, ignore when missing.
    fn default() -> SentimentRules {
        SentimentRules {
            veto_threshold: 0.3,
            max_size_pct: 100,
            max_age_ms: 6 * 3_600_000,
            min_confidence: 0.0,
            policy: SentimentPolicy::Ignore,
        }
    }
}

/// Settings of [`RsiSentimentStrategy`].
#[derive(Debug, Clone, PartialEq)]
pub struct RsiSentimentConfig {
    /// RSI period (Wilder's 14).
    pub rsi_period: u32,
    /// Enter long when the RSI falls below this; exit shorts below it.
    pub oversold: f64,
    /// Enter short when the RSI rises above this; exit longs above it.
    pub overbought: f64,
    /// Never open shorts.
    pub long_only: bool,
    /// Stop-loss distance from the fill (None: no stop).
    pub stop_loss: Option<Price>,
    /// Take-profit distance from the fill (None: no target).
    pub take_profit: Option<Price>,
    /// How sentiment tempers entries.
    pub sentiment: SentimentRules,
}

impl Default for RsiSentimentConfig {
    /// RSI(14) with 30/70, long and short, no stops, default sentiment rules.
    fn default() -> RsiSentimentConfig {
        RsiSentimentConfig {
            rsi_period: 14,
            oversold: 30.0,
            overbought: 70.0,
            long_only: false,
            stop_loss: None,
            take_profit: None,
            sentiment: SentimentRules::default(),
        }
    }
}

impl RsiSentimentConfig {
    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rsi_period < 2 {
            return Err(ConfigError::invalid(
                "rsi period",
                self.rsi_period,
                "must be at least 2",
            ));
        }
        if !(self.oversold > 0.0 && self.oversold < self.overbought && self.overbought < 100.0) {
            return Err(ConfigError::invalid(
                "rsi levels",
                format!("{}/{}", self.oversold, self.overbought),
                "need 0 < oversold < overbought < 100",
            ));
        }
        for (name, distance) in [
            ("stop loss", self.stop_loss),
            ("take profit", self.take_profit),
        ] {
            if let Some(d) = distance
                && d.raw() <= 0
            {
                return Err(ConfigError::invalid(name, d, "a distance must be positive"));
            }
        }
        let s = &self.sentiment;
        if !(0.0..=1.0).contains(&s.veto_threshold) {
            return Err(ConfigError::invalid(
                "sentiment veto threshold",
                s.veto_threshold,
                "must be between 0 and 1",
            ));
        }
        if !(100..=1_000).contains(&s.max_size_pct) {
            return Err(ConfigError::invalid(
                "sentiment max size percentage",
                s.max_size_pct,
                "must be between 100 and 1000",
            ));
        }
        if s.max_age_ms <= 0 {
            return Err(ConfigError::invalid(
                "sentiment max age",
                s.max_age_ms,
                "must be positive",
            ));
        }
        if !(0.0..=1.0).contains(&s.min_confidence) {
            return Err(ConfigError::invalid(
                "sentiment min confidence",
                s.min_confidence,
                "must be between 0 and 1",
            ));
        }
        Ok(())
    }
}

/// Mean reversion on Wilder's RSI: long when it falls below oversold, short when it rises above
/// overbought (unless long-only), exit at the opposite level; a reversal closes and re-opens on
/// the same bar. Entries need a crossing (the previous RSI on the other side of the level), so a
/// position stopped out while the RSI stays extreme is not re-entered until the next crossing.
#[derive(Debug, Clone)]
pub struct RsiSentimentStrategy {
    config: RsiSentimentConfig,
    rsi: RsiFeed,
}

/// Where the RSI comes from.
#[derive(Debug, Clone)]
enum RsiFeed {
    /// Computed close by close.
    Live(Rsi),
    /// Read from a series computed once for the closes this strategy is fed; `next` is the index
    /// of the next close. A close that differs from the series' (or one past its end) turns the
    /// feed live, rebuilt from the closes seen so far, so the values are always the live ones.
    Shared { series: RsiSeries, next: usize },
}

impl RsiFeed {
    /// The RSI before and after `close`, and while warming up how many closes are seen/needed.
    fn update(&mut self, close: domain::Price) -> (Option<f64>, Option<f64>, (u32, u32)) {
        if let RsiFeed::Shared { series, next } = self {
            match series.at(*next) {
                Some((expected, value)) if expected == close => {
                    let previous = next
                        .checked_sub(1)
                        .and_then(|i| series.at(i))
                        .and_then(|(_, v)| v);
                    *next += 1;
                    let needed = series.period() + 1;
                    let seen = u32::try_from(*next).unwrap_or(u32::MAX).min(needed);
                    return (previous, value, (seen, needed));
                }
                _ => {
                    let Ok(live) = series.live_after(*next) else {
                        // The series' period was validated when it was built.
                        return (None, None, (0, series.period() + 1));
                    };
                    *self = RsiFeed::Live(live);
                }
            }
        }
        match self {
            RsiFeed::Live(rsi) => {
                let previous = rsi.value();
                let value = rsi.update(close);
                (previous, value, (rsi.closes_seen(), rsi.closes_needed()))
            }
            RsiFeed::Shared { .. } => (None, None, (0, 0)),
        }
    }

    fn value(&self) -> Option<f64> {
        match self {
            RsiFeed::Live(rsi) => rsi.value(),
            RsiFeed::Shared { series, next } => next
                .checked_sub(1)
                .and_then(|i| series.at(i))
                .and_then(|(_, v)| v),
        }
    }
}

impl RsiSentimentStrategy {
    /// A strategy with validated settings and a cold RSI.
    pub fn new(config: RsiSentimentConfig) -> Result<RsiSentimentStrategy, ConfigError> {
        config.validate()?;
        let rsi = RsiFeed::Live(Rsi::new(config.rsi_period)?);
        Ok(RsiSentimentStrategy { config, rsi })
    }

    /// The same strategy reading its RSI from `series`, computed once for the closes of the bars
    /// it will be fed (an optimisation shares one series between every combination with that
    /// period). Decisions are identical to [`RsiSentimentStrategy::new`]'s: a bar whose close is
    /// not the series' next one makes the strategy compute its RSI itself from then on.
    pub fn with_shared_rsi(
        config: RsiSentimentConfig,
        series: RsiSeries,
    ) -> Result<RsiSentimentStrategy, ConfigError> {
        config.validate()?;
        if series.period() != config.rsi_period {
            return Err(ConfigError::invalid(
                "rsi series",
                series.period(),
                "was computed for another RSI period",
            ));
        }
        Ok(RsiSentimentStrategy {
            config,
            rsi: RsiFeed::Shared { series, next: 0 },
        })
    }

    /// The settings.
    pub const fn config(&self) -> &RsiSentimentConfig {
        &self.config
    }

    /// The latest RSI, once warmed up.
    pub fn rsi(&self) -> Option<f64> {
        self.rsi.value()
    }

    /// Checks the reading in `ctx` against the freshness and confidence rules.
    fn usable_sentiment<'a>(
        &self,
        ctx: &BarContext<'a>,
    ) -> Result<&'a SentimentReading, SentimentProblem> {
        let rules = &self.config.sentiment;
        let reading = ctx.sentiment.ok_or(SentimentProblem::Unavailable)?;
        if !reading.is_valid() {
            return Err(SentimentProblem::Invalid);
        }
        let age_ms = reading.age_millis(ctx.now);
        if age_ms < 0 {
            return Err(SentimentProblem::NotYetKnown);
        }
        if age_ms > rules.max_age_ms {
            return Err(SentimentProblem::Stale {
                age_ms,
                max_age_ms: rules.max_age_ms,
            });
        }
        if reading.confidence < rules.min_confidence {
            return Err(SentimentProblem::LowConfidence {
                confidence: reading.confidence,
                min: rules.min_confidence,
            });
        }
        Ok(reading)
    }

    /// Applies long-only and the sentiment rules to an entry signal.
    fn try_entry(
        &self,
        signal: &Crossing,
        ctx: &BarContext<'_>,
    ) -> Result<(Entry, SentimentUse), Block> {
        if signal.side == Side::Sell && self.config.long_only {
            return Err(Block::LongOnly);
        }
        let rules = &self.config.sentiment;
        let sentiment = match self.usable_sentiment(ctx) {
            Ok(reading) => {
                let direction = if signal.side == Side::Buy { 1.0 } else { -1.0 };
                let agreement = direction * reading.score * reading.confidence;
                if agreement < -rules.veto_threshold {
                    return Err(Block::SentimentVeto {
                        agreement,
                        threshold: rules.veto_threshold,
                    });
                }
                let extra = f64::from(rules.max_size_pct - 100) * agreement.max(0.0);
                // 0 <= extra <= 900 (agreement <= 1, max_size_pct <= 1000): the cast is exact enough.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let size_pct = 100 + extra.floor() as u32;
                SentimentUse::Used {
                    score: reading.score,
                    confidence: reading.confidence,
                    agreement,
                    size_pct,
                }
            }
            Err(problem) => match rules.policy {
                SentimentPolicy::Ignore => SentimentUse::Ignored(problem),
                SentimentPolicy::StandAside => return Err(Block::SentimentUnusable(problem)),
            },
        };
        let size_pct = match sentiment {
            SentimentUse::Used { size_pct, .. } => size_pct,
            SentimentUse::Ignored(_) => 100,
        };
        Ok((
            Entry {
                side: signal.side,
                size_pct,
                stop_loss: self.config.stop_loss,
                take_profit: self.config.take_profit,
            },
            sentiment,
        ))
    }

    /// Decides on an entry signal, closing `closing` first when it is the open position's side.
    fn enter(&self, signal: Crossing, ctx: &BarContext<'_>, closing: Option<Side>) -> Decision {
        match self.try_entry(&signal, ctx) {
            Ok((entry, sentiment)) => Decision {
                action: if closing.is_some() {
                    Action::Reverse(entry)
                } else {
                    Action::Open(entry)
                },
                reason: Reason::Entry {
                    signal,
                    sentiment,
                    closing,
                },
            },
            Err(why) => Decision {
                action: if closing.is_some() {
                    Action::Close
                } else {
                    Action::Hold
                },
                reason: Reason::Blocked {
                    signal,
                    why,
                    closing,
                },
            },
        }
    }
}

impl Strategy for RsiSentimentStrategy {
    fn warm_up(&mut self, history: &[Bar]) {
        for bar in history {
            self.rsi.update(bar.close);
        }
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &BarContext<'_>) -> Decision {
        let (oversold, overbought) = (self.config.oversold, self.config.overbought);
        let (previous, rsi, (seen, needed)) = self.rsi.update(bar.close);
        let Some(rsi) = rsi else {
            return Decision::hold(Reason::WarmingUp { seen, needed });
        };
        let signal = match previous {
            Some(p) if p >= oversold && rsi < oversold => Some(Crossing {
                side: Side::Buy,
                previous: p,
                rsi,
                level: oversold,
            }),
            Some(p) if p <= overbought && rsi > overbought => Some(Crossing {
                side: Side::Sell,
                previous: p,
                rsi,
                level: overbought,
            }),
            _ => None,
        };
        match ctx.position {
            None => match signal {
                Some(signal) => self.enter(signal, ctx, None),
                None => Decision::hold(Reason::NoSignal {
                    rsi,
                    oversold,
                    overbought,
                }),
            },
            Some(position) => {
                let (exit_level, beyond) = match position.side {
                    Side::Buy => (overbought, rsi > overbought),
                    Side::Sell => (oversold, rsi < oversold),
                };
                if !beyond {
                    return Decision::hold(Reason::Holding {
                        side: position.side,
                        rsi,
                        exit_level,
                    });
                }
                match signal {
                    // Crossing the exit level is also the opposite entry signal.
                    Some(signal) if signal.side != position.side => {
                        self.enter(signal, ctx, Some(position.side))
                    }
                    _ => Decision {
                        action: Action::Close,
                        reason: Reason::Exit {
                            side: position.side,
                            rsi,
                            level: exit_level,
                        },
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::PositionView;
    use domain::{SymbolId, Timeframe, Timestamp, Volume};

    const T0: i64 = 1_763_942_400_000;

    fn bar(i: i64, close: i64) -> Bar {
        Bar {
            symbol: SymbolId(1),
            timeframe: Timeframe::H1,
            start: Timestamp(T0 + i * 3_600_000),
            open: Price(close),
            high: Price(close),
            low: Price(close),
            close: Price(close),
            volume: 0,
        }
    }

    fn reading(score: f64, confidence: f64, known_at: i64) -> SentimentReading {
        SentimentReading {
            score,
            confidence,
            source: "test".into(),
            known_at: Timestamp(known_at),
            item_count: 3,
            summary: String::new(),
        }
    }

    /// RSI(2) strategy warmed on 10, 12, 14 (RSI 100), ready for crossings.
    fn strategy(config: RsiSentimentConfig) -> RsiSentimentStrategy {
        let mut s = RsiSentimentStrategy::new(RsiSentimentConfig {
            rsi_period: 2,
            ..config
        })
        .unwrap();
        s.warm_up(&[bar(0, 1_000), bar(1, 1_200), bar(2, 1_400)]);
        assert_eq!(s.rsi(), Some(100.0));
        s
    }

    fn ctx(sentiment: Option<&SentimentReading>, position: Option<Side>) -> BarContext<'_> {
        BarContext {
            now: Timestamp(T0 + 10 * 3_600_000),
            position: position.map(|side| PositionView {
                side,
                entry_price: Price(1_000),
                volume: Volume(100),
            }),
            sentiment,
        }
    }

    /// Drives the RSI(2) from 100 to below 30: a fall of 1400 -> 600 gives
    /// avg gain (200*1+0)/2 = 100, avg loss (0*1+800)/2 = 400 -> RSI 20.
    fn oversold_bar() -> Bar {
        bar(3, 600)
    }

    #[test]
    fn warm_up_makes_no_decision_and_on_bar_says_so_while_cold() {
        let mut s = RsiSentimentStrategy::new(RsiSentimentConfig::default()).unwrap();
        let d = s.on_bar(&bar(0, 100), &ctx(None, None));
        assert_eq!(d.action, Action::Hold);
        assert_eq!(
            d.reason,
            Reason::WarmingUp {
                seen: 1,
                needed: 15
            }
        );
    }

    #[test]
    fn enters_long_when_rsi_falls_below_oversold() {
        let mut s = strategy(RsiSentimentConfig {
            stop_loss: Some(Price(50)),
            ..RsiSentimentConfig::default()
        });
        let d = s.on_bar(&oversold_bar(), &ctx(None, None));
        let Action::Open(entry) = d.action else {
            panic!("{d:?}")
        };
        assert_eq!(entry.side, Side::Buy);
        assert_eq!(entry.size_pct, 100);
        assert_eq!(entry.stop_loss, Some(Price(50)));
        let rsi = s.rsi().unwrap();
        assert!((rsi - 20.0).abs() < 1e-9, "{rsi}");
        assert!(
            d.reason
                .to_string()
                .starts_with("open long: RSI fell below oversold 30 (100.00 -> 20.00)"),
            "{}",
            d.reason
        );
        // Staying below oversold is not a new crossing.
        let d = s.on_bar(&bar(4, 500), &ctx(None, None));
        assert_eq!(d.action, Action::Hold);
        assert!(matches!(d.reason, Reason::NoSignal { .. }));
    }

    #[test]
    fn shorts_above_overbought_unless_long_only() {
        // Warm to RSI ~11 first, then jump.
        let up = |long_only| {
            let mut s = strategy(RsiSentimentConfig {
                long_only,
                ..RsiSentimentConfig::default()
            });
            s.on_bar(&oversold_bar(), &ctx(None, Some(Side::Sell)));
            s.on_bar(&bar(4, 2_000), &ctx(None, None))
        };
        let d = up(false);
        assert!(
            matches!(
                d.action,
                Action::Open(Entry {
                    side: Side::Sell,
                    ..
                })
            ),
            "{d:?}"
        );
        let d = up(true);
        assert_eq!(d.action, Action::Hold);
        assert!(matches!(
            d.reason,
            Reason::Blocked {
                why: Block::LongOnly,
                ..
            }
        ));
        assert!(d.reason.to_string().contains("long-only"));
    }

    #[test]
    fn exits_a_long_at_overbought_and_reverses_on_the_crossing() {
        let mut s = strategy(RsiSentimentConfig::default());
        s.on_bar(&oversold_bar(), &ctx(None, None));
        // Long, RSI rises above 70 with a crossing: close and open short.
        let d = s.on_bar(&bar(4, 2_000), &ctx(None, Some(Side::Buy)));
        assert!(
            matches!(
                d.action,
                Action::Reverse(Entry {
                    side: Side::Sell,
                    ..
                })
            ),
            "{d:?}"
        );
        assert!(
            d.reason
                .to_string()
                .starts_with("close long and open short")
        );
        // Long-only: the same bar only closes.
        let mut s = strategy(RsiSentimentConfig {
            long_only: true,
            ..RsiSentimentConfig::default()
        });
        s.on_bar(&oversold_bar(), &ctx(None, None));
        let d = s.on_bar(&bar(4, 2_000), &ctx(None, Some(Side::Buy)));
        assert_eq!(d.action, Action::Close);
        assert!(
            d.reason.to_string().starts_with("close long; no short"),
            "{}",
            d.reason
        );
        // Still above overbought without a new crossing: a plain exit.
        let d = s.on_bar(&bar(5, 2_100), &ctx(None, Some(Side::Buy)));
        assert_eq!(d.action, Action::Close);
        assert!(matches!(
            d.reason,
            Reason::Exit {
                side: Side::Buy,
                ..
            }
        ));
        // A short exits below oversold; crossing it is also the long signal: reverse.
        let d = s.on_bar(&bar(6, 100), &ctx(None, Some(Side::Sell)));
        assert!(
            matches!(
                d.action,
                Action::Reverse(Entry {
                    side: Side::Buy,
                    ..
                })
            ),
            "{d:?}"
        );
    }

    #[test]
    fn holds_a_position_between_the_levels() {
        let mut s = strategy(RsiSentimentConfig::default());
        // 1400 -> 1200: avg gain (200+0)/2 = 100, avg loss (0+200)/2 = 100 -> RSI 50.
        let d = s.on_bar(&bar(3, 1_200), &ctx(None, Some(Side::Buy)));
        assert_eq!(d.action, Action::Hold);
        assert_eq!(
            d.reason,
            Reason::Holding {
                side: Side::Buy,
                rsi: 50.0,
                exit_level: 70.0
            }
        );
    }

    #[test]
    fn opposing_sentiment_beyond_the_threshold_vetoes() {
        let now = T0 + 10 * 3_600_000;
        // -0.5 x 0.8 = -0.4 opposes a long by more than 0.3: vetoed.
        let bearish = reading(-0.5, 0.8, now - 60_000);
        let mut s = strategy(RsiSentimentConfig::default());
        let d = s.on_bar(&oversold_bar(), &ctx(Some(&bearish), None));
        assert_eq!(d.action, Action::Hold);
        assert!(matches!(
            d.reason,
            Reason::Blocked {
                why: Block::SentimentVeto { .. },
                ..
            }
        ));
        assert!(
            d.reason
                .to_string()
                .contains("vetoed by sentiment: agreement -0.40")
        );
        // -0.5 x 0.5 = -0.25: within the threshold, the entry goes ahead unscaled.
        let mild = reading(-0.5, 0.5, now - 60_000);
        let mut s = strategy(RsiSentimentConfig::default());
        let d = s.on_bar(&oversold_bar(), &ctx(Some(&mild), None));
        assert!(matches!(
            d.action,
            Action::Open(Entry { size_pct: 100, .. })
        ));
    }

    #[test]
    fn agreeing_sentiment_scales_the_size() {
        let now = T0 + 10 * 3_600_000;
        let config = RsiSentimentConfig {
            sentiment: SentimentRules {
                max_size_pct: 200,
                ..SentimentRules::default()
            },
            ..RsiSentimentConfig::default()
        };
        // 0.75 x 0.8 = 0.6 agreement -> 100 + 100 * 0.6 = 160%.
        let bullish = reading(0.75, 0.8, now - 60_000);
        let mut s = strategy(config);
        let d = s.on_bar(&oversold_bar(), &ctx(Some(&bullish), None));
        assert!(
            matches!(d.action, Action::Open(Entry { size_pct: 160, .. })),
            "{d:?}"
        );
    }

    #[test]
    fn stale_or_missing_sentiment_follows_the_policy() {
        let now = T0 + 10 * 3_600_000;
        let stale = reading(0.9, 1.0, now - 6 * 3_600_000 - 1);
        let future = reading(0.9, 1.0, now + 1);
        let stand_aside = RsiSentimentConfig {
            sentiment: SentimentRules {
                policy: SentimentPolicy::StandAside,
                ..SentimentRules::default()
            },
            ..RsiSentimentConfig::default()
        };
        for (input, problem) in [
            (None, SentimentProblem::Unavailable),
            (
                Some(&stale),
                SentimentProblem::Stale {
                    age_ms: 6 * 3_600_000 + 1,
                    max_age_ms: 6 * 3_600_000,
                },
            ),
            (Some(&future), SentimentProblem::NotYetKnown),
        ] {
            let mut s = strategy(stand_aside.clone());
            let d = s.on_bar(&oversold_bar(), &ctx(input, None));
            assert_eq!(d.action, Action::Hold, "{problem}");
            assert!(
                matches!(d.reason, Reason::Blocked { why: Block::SentimentUnusable(p), .. } if p == problem),
                "{d:?}"
            );
            let mut s = strategy(RsiSentimentConfig::default());
            let d = s.on_bar(&oversold_bar(), &ctx(input, None));
            assert!(matches!(d.action, Action::Open(_)));
            assert!(
                matches!(d.reason, Reason::Entry { sentiment: SentimentUse::Ignored(p), .. } if p == problem)
            );
        }
        // Standing aside never blocks an exit.
        let mut s = strategy(stand_aside);
        s.on_bar(&oversold_bar(), &ctx(None, None));
        let d = s.on_bar(&bar(4, 2_000), &ctx(None, Some(Side::Buy)));
        assert_eq!(d.action, Action::Close);
    }

    #[test]
    fn low_confidence_is_unusable() {
        let now = T0 + 10 * 3_600_000;
        let unsure = reading(-1.0, 0.1, now);
        let config = RsiSentimentConfig {
            sentiment: SentimentRules {
                min_confidence: 0.5,
                ..SentimentRules::default()
            },
            ..RsiSentimentConfig::default()
        };
        let mut s = strategy(config);
        let d = s.on_bar(&oversold_bar(), &ctx(Some(&unsure), None));
        assert!(matches!(
            d.reason,
            Reason::Entry {
                sentiment: SentimentUse::Ignored(SentimentProblem::LowConfidence { .. }),
                ..
            }
        ));
    }

    #[test]
    fn warm_up_from_history_equals_living_through_it() {
        let history: Vec<Bar> = [1_000, 1_100, 1_050, 1_200, 1_150, 1_300]
            .iter()
            .enumerate()
            .map(|(i, &c)| bar(i64::try_from(i).unwrap(), c))
            .collect();
        let config = RsiSentimentConfig {
            rsi_period: 3,
            ..RsiSentimentConfig::default()
        };
        let mut warmed = RsiSentimentStrategy::new(config.clone()).unwrap();
        warmed.warm_up(&history);
        let mut lived = RsiSentimentStrategy::new(config).unwrap();
        for b in &history {
            lived.on_bar(b, &ctx(None, None));
        }
        assert!(warmed.rsi().is_some());
        assert_eq!(warmed.rsi(), lived.rsi());
        // And the next decision is the same, crossing detection included.
        let next = bar(6, 700);
        assert_eq!(
            warmed.on_bar(&next, &ctx(None, None)),
            lived.on_bar(&next, &ctx(None, None))
        );
        assert!(matches!(
            warmed.on_bar(&bar(7, 600), &ctx(None, None)).reason,
            Reason::NoSignal { .. }
        ));
    }

    #[test]
    fn parses_the_policy_names() {
        assert_eq!("ignore".parse(), Ok(SentimentPolicy::Ignore));
        assert_eq!("Stand-Aside".parse(), Ok(SentimentPolicy::StandAside));
        assert!("maybe".parse::<SentimentPolicy>().is_err());
    }

    #[test]
    fn refuses_bad_settings() {
        let bad = [
            RsiSentimentConfig {
                oversold: 70.0,
                overbought: 30.0,
                ..RsiSentimentConfig::default()
            },
            RsiSentimentConfig {
                overbought: 100.0,
                ..RsiSentimentConfig::default()
            },
            RsiSentimentConfig {
                rsi_period: 1,
                ..RsiSentimentConfig::default()
            },
            RsiSentimentConfig {
                stop_loss: Some(Price(0)),
                ..RsiSentimentConfig::default()
            },
            RsiSentimentConfig {
                sentiment: SentimentRules {
                    max_size_pct: 99,
                    ..SentimentRules::default()
                },
                ..RsiSentimentConfig::default()
            },
            RsiSentimentConfig {
                sentiment: SentimentRules {
                    veto_threshold: f64::NAN,
                    ..SentimentRules::default()
                },
                ..RsiSentimentConfig::default()
            },
        ];
        for config in bad {
            assert!(
                RsiSentimentStrategy::new(config.clone()).is_err(),
                "{config:?}"
            );
        }
    }
}

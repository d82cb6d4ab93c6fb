//! The `Strategy` trait and what it answers: a decision and the reason a person can read.

use std::fmt;

use domain::{Bar, Price, SentimentReading, Side, Timestamp, Volume};

/// What the strategy knows about the position it manages, as the caller tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionView {
    /// Long or short.
    pub side: Side,
    /// Average entry price.
    pub entry_price: Price,
    /// Open volume.
    pub volume: Volume,
}

/// Everything besides the bar that a decision may depend on; the caller builds it at the bar's close.
#[derive(Debug, Clone, Copy)]
pub struct BarContext<'a> {
    /// When the decision is made: the bar's close (its start plus its timeframe).
    pub now: Timestamp,
    /// The open position on the symbol, if any.
    pub position: Option<PositionView>,
    /// The newest sentiment reading known at `now`, if any.
    pub sentiment: Option<&'a SentimentReading>,
}

/// A position to open. Stops are distances from the fill price, as cTrader takes them on market orders.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// Long or short.
    pub side: Side,
    /// Size as a percentage of what the risk rules would give (100 = unscaled; sentiment may raise it).
    pub size_pct: u32,
    /// Stop-loss distance from the fill price.
    pub stop_loss: Option<Price>,
    /// Take-profit distance from the fill price.
    pub take_profit: Option<Price>,
}

/// What to do after a bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Nothing.
    Hold,
    /// Open a position (the caller is flat).
    Open(Entry),
    /// Close the open position.
    Close,
    /// Close the open position, then open the opposite one.
    Reverse(Entry),
}

/// A decision and why it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Why, for the logs (`Display` gives the sentence).
    pub reason: Reason,
}

impl Decision {
    /// A decision to do nothing.
    pub const fn hold(reason: Reason) -> Decision {
        Decision {
            action: Action::Hold,
            reason,
        }
    }
}

/// An RSI crossing of one of the levels, which signals an entry on `side`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    /// The side the crossing asks to enter: long below oversold, short above overbought.
    pub side: Side,
    /// RSI at the previous close.
    pub previous: f64,
    /// RSI at this close.
    pub rsi: f64,
    /// The level crossed.
    pub level: f64,
}

impl fmt::Display for Crossing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (verb, name) = match self.side {
            Side::Buy => ("fell below", "oversold"),
            Side::Sell => ("rose above", "overbought"),
        };
        write!(
            f,
            "RSI {verb} {name} {} ({:.2} -> {:.2})",
            self.level, self.previous, self.rsi
        )
    }
}

/// Why a sentiment reading could not be used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SentimentProblem {
    /// No reading at all.
    Unavailable,
    /// The newest reading is older than allowed.
    Stale {
        /// Its age at the decision.
        age_ms: i64,
        /// The allowed age.
        max_age_ms: i64,
    },
    /// The reading's confidence is below the configured minimum.
    LowConfidence {
        /// Its confidence.
        confidence: f64,
        /// The minimum.
        min: f64,
    },
    /// Score or confidence out of range, or not a number.
    Invalid,
    /// Known only after the decision time (the caller passed a future reading).
    NotYetKnown,
}

impl fmt::Display for SentimentProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SentimentProblem::Unavailable => f.write_str("sentiment unavailable"),
            SentimentProblem::Stale { age_ms, max_age_ms } => write!(
                f,
                "sentiment stale ({} min old, at most {} min allowed)",
                age_ms / 60_000,
                max_age_ms / 60_000
            ),
            SentimentProblem::LowConfidence { confidence, min } => write!(
                f,
                "sentiment confidence {confidence:.2} below the minimum {min:.2}"
            ),
            SentimentProblem::Invalid => f.write_str("sentiment reading out of range"),
            SentimentProblem::NotYetKnown => {
                f.write_str("sentiment reading not yet known at decision time")
            }
        }
    }
}

/// How sentiment shaped an entry that went ahead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SentimentUse {
    /// A usable reading; `agreement` is score × confidence, signed for the trade's side.
    Used {
        /// The reading's score.
        score: f64,
        /// Its confidence.
        confidence: f64,
        /// Score × confidence, positive when it agrees with the trade.
        agreement: f64,
        /// Resulting size percentage.
        size_pct: u32,
    },
    /// No usable reading, and the policy says trade on the RSI alone.
    Ignored(SentimentProblem),
}

impl fmt::Display for SentimentUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SentimentUse::Used {
                score,
                confidence,
                agreement,
                size_pct,
            } => write!(
                f,
                "sentiment {score:+.2} at confidence {confidence:.2} (agreement {agreement:+.2}): size {size_pct}%"
            ),
            SentimentUse::Ignored(problem) => write!(f, "{problem}: trading on the RSI alone"),
        }
    }
}

/// Why an entry signal was not taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Block {
    /// A short signal while configured long-only.
    LongOnly,
    /// Sentiment opposes the trade by more than the threshold.
    SentimentVeto {
        /// Score × confidence, signed for the trade's side (negative: opposes).
        agreement: f64,
        /// The configured threshold.
        threshold: f64,
    },
    /// No usable sentiment, and the policy says stand aside.
    SentimentUnusable(SentimentProblem),
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Block::LongOnly => f.write_str("the strategy is long-only"),
            Block::SentimentVeto {
                agreement,
                threshold,
            } => write!(
                f,
                "vetoed by sentiment: agreement {agreement:+.2} opposes it by more than {threshold:.2}"
            ),
            Block::SentimentUnusable(problem) => write!(f, "standing aside: {problem}"),
        }
    }
}

/// The reason behind a decision; `Display` renders the sentence for the logs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// Not enough closes for the indicator yet.
    WarmingUp {
        /// Closes seen.
        seen: u32,
        /// Closes needed for the first value.
        needed: u32,
    },
    /// Flat and no level crossed.
    NoSignal {
        /// RSI at this close.
        rsi: f64,
        /// Oversold level.
        oversold: f64,
        /// Overbought level.
        overbought: f64,
    },
    /// In a position whose exit level was not reached.
    Holding {
        /// The position's side.
        side: Side,
        /// RSI at this close.
        rsi: f64,
        /// The level that would exit it.
        exit_level: f64,
    },
    /// The RSI reached the exit level of the position.
    Exit {
        /// The position's side.
        side: Side,
        /// RSI at this close.
        rsi: f64,
        /// The exit level.
        level: f64,
    },
    /// An entry signal taken (`closing` is the side closed first on a reversal).
    Entry {
        /// The crossing.
        signal: Crossing,
        /// How sentiment shaped it.
        sentiment: SentimentUse,
        /// The side of the position closed first, on a reversal.
        closing: Option<Side>,
    },
    /// An entry signal not taken (`closing`: the open position is still closed, at its exit level).
    Blocked {
        /// The crossing.
        signal: Crossing,
        /// Why not.
        why: Block,
        /// The side of the position closed anyway.
        closing: Option<Side>,
    },
}

fn side_word(side: Side) -> &'static str {
    match side {
        Side::Buy => "long",
        Side::Sell => "short",
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::WarmingUp { seen, needed } => {
                write!(f, "warming up: {seen} of {needed} closes for the RSI")
            }
            Reason::NoSignal {
                rsi,
                oversold,
                overbought,
            } => write!(
                f,
                "RSI {rsi:.2}: no crossing of oversold {oversold} or overbought {overbought}"
            ),
            Reason::Holding {
                side,
                rsi,
                exit_level,
            } => write!(
                f,
                "holding {}: RSI {rsi:.2} has not reached the exit level {exit_level}",
                side_word(*side)
            ),
            Reason::Exit { side, rsi, level } => write!(
                f,
                "close {}: RSI {rsi:.2} is beyond the exit level {level}",
                side_word(*side)
            ),
            Reason::Entry {
                signal,
                sentiment,
                closing,
            } => {
                if let Some(closing) = closing {
                    write!(f, "close {} and ", side_word(*closing))?;
                }
                write!(f, "open {}: {signal}; {sentiment}", side_word(signal.side))
            }
            Reason::Blocked {
                signal,
                why,
                closing,
            } => {
                if let Some(closing) = closing {
                    write!(f, "close {}; ", side_word(*closing))?;
                }
                write!(f, "no {}: {signal}, but {why}", side_word(signal.side))
            }
        }
    }
}

/// A trading strategy: bars in, decisions out. Implementations never await, never do I/O and
/// take time only from their inputs, so the same code runs live, in the demo and in backtests.
pub trait Strategy {
    /// Feeds historical bars (oldest first) to warm indicators up; makes no decisions.
    fn warm_up(&mut self, history: &[Bar]);

    /// Takes one closed bar and decides what to do at its close.
    fn on_bar(&mut self, bar: &Bar, ctx: &BarContext<'_>) -> Decision;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_sentences() {
        let signal = Crossing {
            side: Side::Buy,
            previous: 31.5,
            rsi: 28.25,
            level: 30.0,
        };
        let entry = Reason::Entry {
            signal,
            sentiment: SentimentUse::Used {
                score: 0.5,
                confidence: 0.8,
                agreement: 0.4,
                size_pct: 120,
            },
            closing: Some(Side::Sell),
        };
        assert_eq!(
            entry.to_string(),
            "close short and open long: RSI fell below oversold 30 (31.50 -> 28.25); \
             sentiment +0.50 at confidence 0.80 (agreement +0.40): size 120%"
        );
        let blocked = Reason::Blocked {
            signal,
            why: Block::SentimentUnusable(SentimentProblem::Stale {
                age_ms: 7 * 3_600_000,
                max_age_ms: 6 * 3_600_000,
            }),
            closing: None,
        };
        assert_eq!(
            blocked.to_string(),
            "no long: RSI fell below oversold 30 (31.50 -> 28.25), but standing aside: \
             sentiment stale (420 min old, at most 360 min allowed)"
        );
        assert_eq!(
            Reason::WarmingUp {
                seen: 3,
                needed: 15
            }
            .to_string(),
            "warming up: 3 of 15 closes for the RSI"
        );
    }
}

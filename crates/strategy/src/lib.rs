//! Trading decisions, pure: `strategy` owns bar aggregation from quotes, Wilder's RSI, the
//! [`Strategy`] trait with the RSI-sentiment strategy, the risk rules (sizing, one position per
//! symbol, trading hours, the kill switch) and the backtest engine with its statistics. It never
//! awaits, never does I/O (file formats and rendering are crate `research`'s), never reads a clock
//! or the environment, and takes time only from its inputs, so the
//! same code decides live, in the demo and in backtests.

pub mod backtest;
mod bars;
mod decision;
mod error;
mod risk;
mod rsi;
mod rsi_sentiment;

pub use bars::BarAggregator;
pub use decision::{
    Action, BarContext, Block, Crossing, Decision, Entry, PositionView, Reason, SentimentProblem,
    SentimentUse, Strategy,
};
pub use error::{AggregationError, ConfigError};
pub use risk::{EntryRefusal, RiskConfig, RiskGate, SizingRule, daily_loss_bps, drawdown_bps};
pub use rsi::{FLAT_RSI, Rsi, RsiSeries};
pub use rsi_sentiment::{
    RsiSentimentConfig, RsiSentimentStrategy, SentimentPolicy, SentimentRules,
};

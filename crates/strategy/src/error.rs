//! Errors of the strategy crate: bad configuration and bad market data.

use std::fmt;

use domain::{SymbolId, Timestamp};

/// A configuration value that cannot work; the message names the setting and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting} ({value}): {reason}")]
pub struct ConfigError {
    /// Which setting.
    pub setting: &'static str,
    /// Its value as text.
    pub value: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl ConfigError {
    /// A refused setting.
    pub(crate) fn invalid(
        setting: &'static str,
        value: impl fmt::Display,
        reason: &'static str,
    ) -> ConfigError {
        ConfigError {
            setting,
            value: value.to_string(),
            reason,
        }
    }

    /// Configuration errors never go away by retrying.
    pub const fn is_transient(&self) -> bool {
        false
    }
}

/// A quote the bar aggregator cannot place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregationError {
    /// A quote for another symbol than the aggregator's.
    #[error("quote for symbol {got} given to the bar aggregator of symbol {expected}")]
    WrongSymbol {
        /// The aggregator's symbol.
        expected: SymbolId,
        /// The quote's symbol.
        got: SymbolId,
    },
    /// A quote older than the open bar or a bar already closed: it cannot change history.
    #[error(
        "quote at {quote_time} is older than {closed_until}, where the bar history already stands"
    )]
    LateQuote {
        /// The quote's time.
        quote_time: Timestamp,
        /// End of the last closed bar.
        closed_until: Timestamp,
    },
}

impl AggregationError {
    /// A bad quote stays bad; the caller skips it.
    pub const fn is_transient(&self) -> bool {
        false
    }
}

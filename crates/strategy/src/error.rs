//! Errors of the strategy crate: bad configuration, bad market data and bad input files.

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

/// A CSV input (bars or sentiment) that cannot be read; says where and why.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The underlying reader failed.
    #[error("reading {what}: {source}")]
    Io {
        /// Which file kind (e.g. "price data").
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The header lacks a required column or is unreadable.
    #[error("{what} header: {reason}")]
    Header {
        /// Which file kind.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A data row is malformed.
    #[error("{what} line {line}: {reason}")]
    Row {
        /// Which file kind.
        what: &'static str,
        /// 1-based line number in the file.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The bar period cannot be known or does not fit the timestamps.
    #[error("price data timeframe: {0}")]
    Timeframe(String),
    /// The file holds no data rows.
    #[error("{what}: no data rows")]
    Empty {
        /// Which file kind.
        what: &'static str,
    },
}

impl DataError {
    /// Reading a file again can help only when the reader itself failed.
    pub fn is_transient(&self) -> bool {
        matches!(self, DataError::Io { source, .. } if source.kind() == std::io::ErrorKind::Interrupted)
    }
}

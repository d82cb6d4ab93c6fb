//! Why an input file cannot be read: says which file kind, where and why.

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

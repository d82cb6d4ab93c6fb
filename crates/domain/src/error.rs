//! Errors from building domain values out of untrusted input.

/// A value that cannot be a valid domain value; the message names the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A decimal text that is not a number in the expected precision.
    #[error("invalid decimal {text:?}: {reason}")]
    InvalidDecimal {
        /// The text as given.
        text: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A client order id that is empty, too long or has characters cTrader refuses.
    #[error("invalid client order id {0:?}: 1 to 50 ASCII letters, digits, '-' or '_'")]
    InvalidClientOrderId(String),
    /// A label prefix that is empty, too long or has characters an order id cannot carry.
    #[error("invalid label prefix {0:?}: must be 1 to 20 ASCII letters, digits, '-' or '_'")]
    InvalidLabelPrefix(String),
    /// A timeframe name that is not one of M1, M5, M15, M30, H1, H4, D1.
    #[error("unknown timeframe {0:?}: expected one of M1, M5, M15, M30, H1, H4, D1")]
    UnknownTimeframe(String),
    /// A side name that is not buy or sell.
    #[error("unknown side {0:?}: expected buy or sell")]
    UnknownSide(String),
}

//! The crate's one error type.

use std::net::SocketAddr;

/// What can go wrong while setting up logs, metrics or the HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum ObservabilityError {
    /// The log level filter (e.g. from `RUST_LOG`) does not parse.
    #[error("invalid log filter {filter:?}: {reason}")]
    InvalidLogFilter {
        /// The filter as given.
        filter: String,
        /// Why it was refused.
        reason: String,
    },
    /// A global tracing subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    SubscriberAlreadySet,
    /// The Prometheus exporter could not be built or registered.
    #[error("metrics exporter setup failed: {0}")]
    MetricsSetup(String),
    /// The metrics registry could not be encoded in the text format.
    #[error("metrics encoding failed: {0}")]
    MetricsEncode(String),
    /// The HTTP server could not bind its address.
    #[error("cannot bind the HTTP server to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The configured HTTP address does not parse.
    #[error("invalid HTTP listen address {given:?}: expected host:port, e.g. 127.0.0.1:9184")]
    InvalidAddress {
        /// The address as given.
        given: String,
    },
}

impl ObservabilityError {
    /// True when trying again later may succeed (a port still held by a previous process).
    pub fn is_transient(&self) -> bool {
        match self {
            ObservabilityError::Bind { source, .. } => {
                source.kind() == std::io::ErrorKind::AddrInUse
            }
            ObservabilityError::MetricsEncode(_) => true,
            ObservabilityError::InvalidLogFilter { .. }
            | ObservabilityError::SubscriberAlreadySet
            | ObservabilityError::MetricsSetup(_)
            | ObservabilityError::InvalidAddress { .. } => false,
        }
    }
}

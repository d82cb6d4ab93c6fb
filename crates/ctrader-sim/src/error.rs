//! What can go wrong starting or controlling the simulator.

use std::path::PathBuf;

/// A simulator error: bad configuration, unreadable files, or a failed network or TLS setup.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// The price file could not be read.
    #[error("cannot read price file {path}: {source}")]
    PriceFileIo {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The price file is not a usable OHLC CSV.
    #[error("price file {path} is not a usable OHLC CSV: {reason}")]
    PriceFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        reason: String,
    },
    /// Writing or reading certificates failed.
    #[error("certificate file {path}: {source}")]
    CertificateIo {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate or key could not be generated, parsed or used.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The listening socket could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A control action named a position that is not open.
    #[error("position {0} is not open")]
    PositionNotOpen(i64),
    /// A control action was refused by the broker (e.g. the market is closed).
    #[error("the simulated broker refused: {code}: {description}")]
    Refused {
        /// cTrader's error code.
        code: String,
        /// Explanation.
        description: String,
    },
    /// The simulator has been shut down.
    #[error("the simulator is not running")]
    Stopped,
}

impl SimError {
    /// True when trying again later may succeed (a port in use, a closed market); false for
    /// configuration and file errors that need a person.
    pub fn is_transient(&self) -> bool {
        match self {
            SimError::Bind { .. } => true,
            SimError::Refused { code, .. } => code == "MARKET_CLOSED" || code == "NO_QUOTES",
            SimError::Config(_)
            | SimError::PriceFileIo { .. }
            | SimError::PriceFile { .. }
            | SimError::CertificateIo { .. }
            | SimError::Tls(_)
            | SimError::PositionNotOpen(_)
            | SimError::Stopped => false,
        }
    }
}

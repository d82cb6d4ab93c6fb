//! Everything that can go wrong talking to the broker, each classified transient or permanent.

use std::time::Duration;

use domain::{ClientOrderId, Timestamp};

/// Broker error codes (cTrader `errorCode` names) that say "try again later", not "this is wrong".
const TRANSIENT_CODES: &[&str] = &[
    "SERVER_IS_UNDER_MAINTENANCE",
    "CH_SERVER_NOT_REACHABLE",
    "REQUEST_FREQUENCY_EXCEEDED",
    "BLOCKED_PAYLOAD_TYPE",
    "CONNECTIONS_LIMIT_EXCEEDED",
    "CHANNEL_IS_BLOCKED",
    "NO_QUOTES",
    "INTERNAL_ERROR",
    "UNKNOWN_ERROR",
    "TIMEOUT_ERROR",
];

/// An error from the broker boundary. [`BrokerError::is_transient`] tells the caller whether the same
/// request may succeed later; an order is never retried by this crate whatever the class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The configuration handed in cannot work (e.g. an unreadable CA file); fix it and restart.
    #[error("invalid cTrader client configuration: {0}")]
    Config(String),
    /// The server's certificate did not verify against the trusted roots (or its name did not match).
    #[error("the certificate of {host} is not trusted: {reason}")]
    UntrustedCertificate {
        /// The host we connected to.
        host: String,
        /// What the verifier said.
        reason: String,
    },
    /// The TLS handshake failed for a reason other than the certificate.
    #[error("TLS handshake with {host} failed: {reason}")]
    Tls {
        /// The host we connected to.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// A socket error.
    #[error("I/O error ({context}): {message}")]
    Io {
        /// What we were doing.
        context: String,
        /// The operating system's message.
        message: String,
    },
    /// The link dropped (or was found dead) while a request was in flight.
    #[error("connection to the broker lost: {0}")]
    Disconnected(String),
    /// No live link right now (the client is reconnecting); nothing was sent.
    #[error("not connected to the broker (reconnecting); nothing was sent")]
    NotConnected,
    /// No reply within the request timeout (the link may still be up).
    #[error("no reply to {request} within {after:?}")]
    Timeout {
        /// The request that went unanswered.
        request: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// The broker refused the request because of its rate limit; nothing was executed.
    #[error("rate limited by the broker on {request}; retry after {retry_after:?}")]
    RateLimited {
        /// The refused request.
        request: &'static str,
        /// How long the broker asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The application's client id or secret was refused (`CH_CLIENT_AUTH_FAILURE` and friends).
    #[error("application credentials refused ({code}): check the client id and secret")]
    BadCredentials {
        /// The broker's error code.
        code: String,
    },
    /// The trading account does not exist or this access token may not trade it.
    #[error("account {account_id} not found or not authorised for this access token ({code})")]
    AccountNotAuthorised {
        /// The ctidTraderAccountId.
        account_id: i64,
        /// The broker's error code.
        code: String,
    },
    /// The access token expired or was revoked and no refresh token is configured: trading must stop.
    #[error("access token invalid ({code}) and no refresh token configured: a new token is needed")]
    TokenRevoked {
        /// The broker's error code or event that told us.
        code: String,
    },
    /// The broker refused the refresh token (used already, revoked or wrong): only a person can
    /// get a new pair.
    #[error(
        "the broker refused the refresh token ({code}): obtain new tokens with `palm-oil-bot auth` \
         and set CTRADER_ACCESS_TOKEN and CTRADER_REFRESH_TOKEN"
    )]
    TokenRefreshFailed {
        /// The broker's error code.
        code: String,
    },
    /// A refreshed token pair could not be kept durably; it is not used (the old refresh token is
    /// already spent, so trading stops rather than run on tokens a restart would not find).
    #[error("the refreshed tokens could not be stored: {0}")]
    TokenStore(String),
    /// The broker is under maintenance until the time it announced; reconnect after it.
    #[error("the broker is under maintenance until {until}")]
    Maintenance {
        /// When the broker said the maintenance ends.
        until: Timestamp,
    },
    /// The account is live where demo was expected, or the other way round.
    #[error(
        "account {account_id} is a {} account (the broker's isLive), but {expected}",
        if *account_is_live { "live" } else { "demo" }
    )]
    WrongEnvironment {
        /// The ctidTraderAccountId.
        account_id: i64,
        /// What the broker's account list says.
        account_is_live: bool,
        /// What expected otherwise, e.g. "CTRADER_ENV is demo".
        expected: String,
    },
    /// None of the candidate names is a symbol at this broker; never replaced by a default.
    #[error(
        "no tradable symbol named any of {tried:?} (case-insensitive) among the broker's {listed} symbols"
    )]
    SymbolNotFound {
        /// The names tried, in order.
        tried: Vec<String>,
        /// How many symbols the broker listed.
        listed: usize,
    },
    /// A symbol's trading schedule uses a time zone neither a fixed offset nor the time-zone
    /// database explains: converting it would be a guess.
    #[error(
        "symbol {symbol}: schedule time zone {zone:?} is unknown (expected an IANA name such as \
         Europe/London, UTC, or a fixed offset such as UTC+08:00)"
    )]
    UnsupportedTimeZone {
        /// The symbol's name.
        symbol: String,
        /// The zone as the broker sent it.
        zone: String,
    },
    /// The broker answered a request with an error.
    #[error("the broker refused {request}: {code}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// The request.
        request: &'static str,
        /// The broker's error code name.
        code: String,
        /// The broker's explanation, if any.
        description: Option<String>,
    },
    /// An order (or close) left, but its answer never came: it may or may not have executed.
    /// Never retry: reconcile with the broker to find out.
    #[error(
        "outcome of {what} unknown ({reason}): it may have executed; reconcile before trading again"
    )]
    OrderOutcomeUnknown {
        /// Which order or close.
        what: String,
        /// Our client order id, when the order had one.
        client_order_id: Option<ClientOrderId>,
        /// Why we do not know.
        reason: String,
    },
    /// The broker sent something that breaks the protocol (undecodable, or a reply of the wrong type).
    #[error("cTrader protocol violation: {0}")]
    Protocol(String),
    /// A value from the broker cannot be represented in the domain (e.g. a non-finite price).
    #[error("invalid value from the broker: {0}")]
    BadValue(String),
    /// The caller asked for something that cannot be sent (e.g. an empty candidate list).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The broker kept sending frames over the size cap: each one drops the link, and asking again
    /// got another, so the client gave up instead of reconnecting forever.
    #[error(
        "the broker sent frames over the size cap {losses} times in a row (waiting for: {requests}); giving up instead of reconnecting forever"
    )]
    OversizedFrames {
        /// How many links were lost to one.
        losses: u32,
        /// The requests that were waiting when the last one arrived.
        requests: String,
    },
    /// The client stopped for good (a permanent failure or a shutdown); it will not reconnect.
    #[error("the cTrader client has stopped: {0}")]
    Stopped(String),
}

impl BrokerError {
    /// True when the same request may succeed later (network, timeouts, rate limits, maintenance).
    /// Bad credentials, unknown accounts, revoked tokens, untrusted certificates, missing symbols,
    /// refused requests and unknown order outcomes are permanent: retrying cannot help, or is unsafe.
    pub fn is_transient(&self) -> bool {
        match self {
            BrokerError::Tls { .. }
            | BrokerError::Io { .. }
            | BrokerError::Disconnected(_)
            | BrokerError::NotConnected
            | BrokerError::Timeout { .. }
            | BrokerError::RateLimited { .. }
            | BrokerError::Maintenance { .. }
            | BrokerError::Protocol(_) => true,
            BrokerError::Refused { code, .. } => is_transient_code(code),
            BrokerError::Config(_)
            | BrokerError::UntrustedCertificate { .. }
            | BrokerError::BadCredentials { .. }
            | BrokerError::AccountNotAuthorised { .. }
            | BrokerError::TokenRevoked { .. }
            | BrokerError::TokenRefreshFailed { .. }
            | BrokerError::TokenStore(_)
            | BrokerError::WrongEnvironment { .. }
            | BrokerError::SymbolNotFound { .. }
            | BrokerError::UnsupportedTimeZone { .. }
            | BrokerError::OrderOutcomeUnknown { .. }
            | BrokerError::BadValue(_)
            | BrokerError::InvalidRequest(_)
            | BrokerError::OversizedFrames { .. }
            | BrokerError::Stopped(_) => false,
        }
    }

    /// True when the broker refused our credentials or tokens: a person must act.
    pub fn is_credentials_problem(&self) -> bool {
        matches!(
            self,
            BrokerError::BadCredentials { .. }
                | BrokerError::TokenRevoked { .. }
                | BrokerError::TokenRefreshFailed { .. }
                | BrokerError::AccountNotAuthorised { .. }
        )
    }

    /// True when an order may have executed without us knowing: the owner must reconcile.
    pub fn needs_reconcile(&self) -> bool {
        matches!(self, BrokerError::OrderOutcomeUnknown { .. })
    }

    /// An I/O error with what we were doing.
    pub(crate) fn io(context: impl Into<String>, err: &std::io::Error) -> BrokerError {
        BrokerError::Io {
            context: context.into(),
            message: err.to_string(),
        }
    }
}

/// True for broker error codes that mean "later", not "wrong".
pub(crate) fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_transient_and_permanent() {
        let transient = [
            BrokerError::io("reading", &std::io::Error::other("reset")),
            BrokerError::Disconnected("eof".into()),
            BrokerError::NotConnected,
            BrokerError::Timeout {
                request: "reconcile",
                after: Duration::from_secs(5),
            },
            BrokerError::RateLimited {
                request: "trendbars",
                retry_after: Some(Duration::from_secs(1)),
            },
            BrokerError::Refused {
                request: "reconcile",
                code: "SERVER_IS_UNDER_MAINTENANCE".into(),
                description: None,
            },
            BrokerError::Maintenance {
                until: Timestamp(1_800_000_000_000),
            },
        ];
        for e in &transient {
            assert!(e.is_transient(), "{e}");
        }
        let permanent = [
            BrokerError::BadCredentials {
                code: "CH_CLIENT_AUTH_FAILURE".into(),
            },
            BrokerError::AccountNotAuthorised {
                account_id: 7,
                code: "CH_CTID_TRADER_ACCOUNT_NOT_FOUND".into(),
            },
            BrokerError::TokenRevoked {
                code: "CH_ACCESS_TOKEN_INVALID".into(),
            },
            BrokerError::TokenStore("disk full".into()),
            BrokerError::WrongEnvironment {
                account_id: 7,
                account_is_live: true,
                expected: "CTRADER_ENV is demo".into(),
            },
            BrokerError::UntrustedCertificate {
                host: "localhost".into(),
                reason: "UnknownIssuer".into(),
            },
            BrokerError::SymbolNotFound {
                tried: vec!["PALMOIL".into()],
                listed: 3,
            },
            BrokerError::OrderOutcomeUnknown {
                what: "order".into(),
                client_order_id: None,
                reason: "link dropped".into(),
            },
            BrokerError::Refused {
                request: "new order",
                code: "TRADING_BAD_VOLUME".into(),
                description: Some("bad".into()),
            },
        ];
        for e in &permanent {
            assert!(!e.is_transient(), "{e}");
        }
    }

    #[test]
    fn messages_name_the_problem() {
        let e = BrokerError::SymbolNotFound {
            tried: vec!["PALMOIL".into(), "FCPO".into()],
            listed: 2,
        };
        assert!(e.to_string().contains("\"PALMOIL\", \"FCPO\""), "{e}");
        let e = BrokerError::Refused {
            request: "new order",
            code: "MARKET_CLOSED".into(),
            description: Some("Market is closed".into()),
        };
        assert_eq!(
            e.to_string(),
            "the broker refused new order: MARKET_CLOSED (Market is closed)"
        );
        assert!(
            BrokerError::OrderOutcomeUnknown {
                what: "order x".into(),
                client_order_id: None,
                reason: "timeout".into()
            }
            .needs_reconcile()
        );
    }
}

//! What the bot hands the client: where to connect, which credentials, and how patient to be.
//! Nothing here reads the environment; the bot fills it in.

use std::path::PathBuf;
use std::time::Duration;

use domain::{Secret, Timestamp};

use crate::BrokerError;

/// cTrader's demo host (demo accounts only).
pub const DEMO_HOST: &str = "demo.ctraderapi.com";
/// cTrader's live host (live accounts only).
pub const LIVE_HOST: &str = "live.ctraderapi.com";
/// The Protobuf port of both hosts (5036 is the JSON variant, not spoken here).
pub const DEFAULT_PORT: u16 = 5035;

/// A certificate authority trusted in addition to the webpki roots, for a private server such as
/// the simulator. Never accepted for the official cTrader hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraCa {
    /// A PEM file holding one or more CA certificates.
    PemFile(PathBuf),
    /// PEM text holding one or more CA certificates.
    Pem(Vec<u8>),
}

/// Application and account credentials. `Debug` shows no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The Open API application's client id (not secret, but not logged needlessly either).
    pub client_id: String,
    /// The application's client secret.
    pub client_secret: Secret,
    /// The OAuth access token that may trade the account.
    pub access_token: Secret,
    /// The refresh token; without it an expired or revoked access token stops trading.
    pub refresh_token: Option<Secret>,
}

/// Timeouts and keep-alive intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Waiting for the reply to an ordinary request.
    pub request_timeout: Duration,
    /// Waiting for an order's fill or rejection; past it the outcome is unknown.
    pub order_timeout: Duration,
    /// Send a heartbeat when nothing was sent for this long (cTrader: 10 s).
    pub heartbeat_interval: Duration,
    /// A server silent for this long is a dead link (cTrader: about 30 s).
    pub silence_limit: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            order_timeout: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(10),
            silence_limit: Duration::from_secs(30),
        }
    }
}

/// Reconnection: exponential backoff with full jitter, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Upper bound of the first delay.
    pub initial_delay: Duration,
    /// Cap on any delay.
    pub max_delay: Duration,
    /// Give up after this many failed attempts in a row; `None` keeps trying while failures are
    /// transient (permanent failures always stop at once).
    pub max_attempts: Option<usize>,
}

impl Default for ReconnectPolicy {
    fn default() -> ReconnectPolicy {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

/// Client-side request rate limits (cTrader: 50/s per connection, 5/s for historical data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// All requests, per second.
    pub requests_per_second: u32,
    /// Historical requests (trendbars, deal list), per second.
    pub historical_per_second: u32,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            requests_per_second: 50,
            historical_per_second: 5,
        }
    }
}

/// The life of the access token in [`Credentials`], when known (a pair from a refresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenExpiry {
    /// When the pair was issued (wall-clock time).
    pub issued_at: Timestamp,
    /// When the access token stops working.
    pub expires_at: Timestamp,
}

impl TokenExpiry {
    /// The share of a token's life after which it is refreshed (80 %), so it never lapses.
    pub const REFRESH_AT_PERCENT: i64 = 80;

    /// When to refresh: 80 % of the way from issue to expiry.
    pub fn refresh_due(&self) -> Timestamp {
        let life = self.expires_at.0.saturating_sub(self.issued_at.0).max(0);
        self.issued_at
            .plus_millis(life / 100 * TokenExpiry::REFRESH_AT_PERCENT)
    }
}

/// What the account must be, live or demo, and who says so (named in the error when it is not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveExpectation {
    /// True: a live account is expected; false: a demo account.
    pub live: bool,
    /// Who expects it, e.g. "CTRADER_ENV is demo".
    pub said_by: String,
}

/// Everything the client needs to connect and trade one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CTraderConfig {
    /// Server host name, verified against its certificate (SNI is always sent).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// An extra trusted CA (simulator); `None` trusts only the webpki roots.
    pub extra_ca: Option<ExtraCa>,
    /// Credentials.
    pub credentials: Credentials,
    /// The `ctidTraderAccountId` to trade.
    pub account_id: i64,
    /// Timeouts and keep-alive.
    pub timing: Timing,
    /// Reconnection.
    pub reconnect: ReconnectPolicy,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// The access token's life, when known; the client refreshes it at 80 % of it. `None`: the
    /// token is refreshed only when the broker refuses it.
    pub token_expiry: Option<TokenExpiry>,
    /// Live or demo, as someone expects the account to be; `None` accepts what the broker says
    /// (the official hosts still serve only their own kind).
    pub expect_live: Option<LiveExpectation>,
    /// Upper bound of the random delay added to the end of a maintenance window before
    /// reconnecting, so clients do not all come back in the same second.
    pub maintenance_jitter: Duration,
}

impl CTraderConfig {
    /// A configuration with default timing, reconnection and rate limits.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        credentials: Credentials,
        account_id: i64,
    ) -> CTraderConfig {
        CTraderConfig {
            host: host.into(),
            port,
            extra_ca: None,
            credentials,
            account_id,
            timing: Timing::default(),
            reconnect: ReconnectPolicy::default(),
            rate_limits: RateLimits::default(),
            token_expiry: None,
            expect_live: None,
            maintenance_jitter: Duration::from_secs(5),
        }
    }

    /// Refuses a configuration that cannot work, naming the problem.
    pub fn validate(&self) -> Result<(), BrokerError> {
        let bad = |what: &str| Err(BrokerError::Config(what.to_owned()));
        if self.host.trim().is_empty() {
            return bad("host is empty");
        }
        if self.port == 0 {
            return bad("port is 0");
        }
        if self.credentials.client_id.trim().is_empty() {
            return bad("client id is empty");
        }
        if self.credentials.client_secret.is_empty() {
            return bad("client secret is empty");
        }
        if self.credentials.access_token.is_empty() {
            return bad("access token is empty");
        }
        if self
            .credentials
            .refresh_token
            .as_ref()
            .is_some_and(Secret::is_empty)
        {
            return bad("refresh token is set but empty");
        }
        if self.account_id <= 0 {
            return bad("account id must be positive");
        }
        let official = [DEMO_HOST, LIVE_HOST]
            .iter()
            .any(|h| self.host.trim().eq_ignore_ascii_case(h));
        if official && self.extra_ca.is_some() {
            return bad("an extra CA is never trusted for the official cTrader hosts");
        }
        let t = &self.timing;
        if [
            t.connect_timeout,
            t.request_timeout,
            t.order_timeout,
            t.heartbeat_interval,
            t.silence_limit,
        ]
        .contains(&Duration::ZERO)
        {
            return bad("timeouts and intervals must be positive");
        }
        if t.silence_limit <= t.heartbeat_interval {
            return bad("the silence limit must be longer than the heartbeat interval");
        }
        if self.reconnect.initial_delay.is_zero()
            || self.reconnect.max_delay < self.reconnect.initial_delay
        {
            return bad("reconnect delays must be positive with max >= initial");
        }
        if self.rate_limits.requests_per_second == 0 || self.rate_limits.historical_per_second == 0
        {
            return bad("rate limits must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CTraderConfig {
        CTraderConfig::new(
            DEMO_HOST,
            DEFAULT_PORT,
            Credentials {
                client_id: "1234_abc".into(),
                client_secret: Secret::new("s3cr3t-value"),
                access_token: Secret::new("tok-XYZ-value"),
                refresh_token: Some(Secret::new("refresh-value")),
            },
            44_556_677,
        )
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let text = format!("{:?}", config());
        for secret in ["s3cr3t-value", "tok-XYZ-value", "refresh-value"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(config().validate(), Ok(()));
        let mut c = config();
        c.extra_ca = Some(ExtraCa::Pem(Vec::new()));
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("official cTrader hosts"), "{err}");
        let mut c = config();
        c.credentials.access_token = Secret::new(" ");
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("access token")
        );
        let mut c = config();
        c.timing.silence_limit = c.timing.heartbeat_interval;
        assert!(c.validate().is_err());
    }
}

//! The simulator's configuration, mirroring `palm-oil-bot simulate`'s flags.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use domain::{Secret, Timestamp};

use crate::faults::FaultPlan;
use crate::{CertificateSource, MarketHours, PriceSource, RateLimits, SimError};

/// The credentials the simulated broker accepts (`--client-id --client-secret --access-token
/// --account-id`); secrets never print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCredentials {
    /// The Open API application's client id.
    pub client_id: String,
    /// The application's client secret.
    pub client_secret: Secret,
    /// The access token that authorises the account.
    pub access_token: Secret,
    /// The refresh token that trades for a new access token.
    pub refresh_token: Secret,
    /// The trading account (`ctidTraderAccountId`).
    pub account_id: i64,
}

impl Default for SimCredentials {
    fn default() -> SimCredentials {
        SimCredentials {
            client_id: "palm-oil-sim".to_owned(),
            client_secret: Secret::new("palm-oil-sim-secret"),
            access_token: Secret::new("palm-oil-sim-access-token"),
            refresh_token: Secret::new("palm-oil-sim-refresh-token"),
            account_id: 44_556_677,
        }
    }
}

/// The account's deposit currency (`--account-currency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccountCurrency {
    /// US dollars: palm oil (quoted in ringgit) converts through USDMYR.
    #[default]
    Usd,
    /// Malaysian ringgit: palm oil needs no conversion; the dollar-quoted symbols convert through
    /// USDMYR the other way.
    Myr,
}

impl AccountCurrency {
    /// The ISO code (`USD`, `MYR`).
    pub fn code(self) -> &'static str {
        match self {
            AccountCurrency::Usd => "USD",
            AccountCurrency::Myr => "MYR",
        }
    }

    /// The broker's asset id of the currency (`ProtoOATrader.depositAssetId`).
    pub(crate) fn asset_id(self) -> i64 {
        match self {
            AccountCurrency::Usd => crate::symbols::USD_ASSET_ID,
            AccountCurrency::Myr => crate::symbols::MYR_ASSET_ID,
        }
    }
}

impl std::str::FromStr for AccountCurrency {
    type Err = SimError;

    /// `USD` or `MYR`, in any case.
    fn from_str(s: &str) -> Result<AccountCurrency, SimError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "USD" => Ok(AccountCurrency::Usd),
            "MYR" => Ok(AccountCurrency::Myr),
            other => Err(SimError::Config(format!(
                "account currency {other:?} must be USD or MYR"
            ))),
        }
    }
}

impl std::fmt::Display for AccountCurrency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A maintenance window the simulator announces on its own (`--maintenance-after --maintenance-for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// How long after the start the window opens.
    pub after: Duration,
    /// How long it lasts.
    pub lasts: Duration,
}

/// Everything the simulator needs to start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// `--listen`: where to accept TLS connections (port 0 picks a free port).
    pub listen: SocketAddr,
    /// `--cert-dir`: where the server certificate comes from.
    pub certificates: CertificateSource,
    /// `--prices`: the palm oil price source.
    pub prices: PriceSource,
    /// `--speed`: simulated seconds per real second (600 = one simulated minute per 100 ms).
    pub speed: f64,
    /// `--seed`: the seed of every synthetic price path.
    pub seed: u64,
    /// `--symbol`: the palm oil CFD's name on this broker.
    pub palm_oil_symbol: String,
    /// The accepted credentials.
    pub credentials: SimCredentials,
    /// When the symbols trade.
    pub market_hours: MarketHours,
    /// The zone the symbols' schedules are reported in (`scheduleTimeZone`, an IANA name or
    /// `UTC`): the hours are kept in UTC and sent in this zone's local time at the offset in
    /// force when asked, as a broker in that zone would send them. Holidays stay in UTC.
    pub schedule_time_zone: String,
    /// The weekly sessions are the zone's local hours (`--sessions-follow-zone`): their UTC hours
    /// move an hour at each daylight-saving change, as a broker keeping local hours does. Off, the
    /// sessions stay fixed in UTC whatever the zone.
    pub sessions_follow_zone: bool,
    /// Simulated time at start; `None` means the wall clock at start (synthetic prices) or the
    /// CSV file's first bar plus [`SimConfig::history`] (replay).
    pub start_time: Option<Timestamp>,
    /// Simulated price history generated before the start, so trendbar requests have data.
    pub history: Duration,
    /// Real time between two market updates (spot events are sent at most this often per symbol,
    /// unless [`SimConfig::every_quote`]).
    pub tick_interval: Duration,
    /// `--quote-step`: simulated time between two steps of every price path, the resolution of
    /// quotes, SL/TP checks and bars (a whole number of milliseconds, 1 ms to 60 s).
    pub quote_step: Duration,
    /// `--every-quote`: every quote change is its own spot event, in order, as a real server streams
    /// them; off, each market update sends a symbol's latest quote only (lighter at high speeds).
    pub every_quote: bool,
    /// The server sends a heartbeat when it has sent nothing for this long.
    pub heartbeat_interval: Duration,
    /// A client silent for this long is disconnected; `None` never.
    pub client_idle_timeout: Option<Duration>,
    /// Largest frame body accepted from a client; a larger one closes the connection.
    pub max_frame_len: usize,
    /// Requests per second per connection.
    pub rate_limits: RateLimits,
    /// `--account-currency`: the account's deposit currency.
    pub account_currency: AccountCurrency,
    /// Opening balance of the account, in minor units of its deposit currency.
    pub initial_balance: i64,
    /// Decimal digits of the account's money amounts.
    pub money_digits: u32,
    /// Injected faults.
    pub faults: FaultPlan,
    /// `--live-account`: the account list reports the account as live (`isLive`); the default is
    /// a demo account.
    pub live_account: bool,
    /// `--limited-risk-account`: the account is limited-risk (`isLimitedRisk`): every new order
    /// needs a guaranteed stop loss, which closes at its own price however far the market jumps.
    pub limited_risk_account: bool,
    /// `--token-lifetime`: how long an access token works (real time) and the `expires_in` of a
    /// refresh; cTrader's is about 30 days.
    pub token_lifetime: Duration,
    /// `--maintenance-after --maintenance-for`: a maintenance window announced on its own.
    pub maintenance: Option<MaintenanceWindow>,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            certificates: CertificateSource::Directory(PathBuf::from("ctrader-sim-certs")),
            prices: PriceSource::Synthetic,
            speed: 1.0,
            seed: 1,
            palm_oil_symbol: "PALMOIL".to_owned(),
            credentials: SimCredentials::default(),
            market_hours: MarketHours::Realistic,
            schedule_time_zone: "UTC".to_owned(),
            sessions_follow_zone: false,
            start_time: None,
            history: Duration::from_secs(3 * 86_400),
            tick_interval: Duration::from_millis(100),
            quote_step: Duration::from_secs(1),
            every_quote: false,
            heartbeat_interval: Duration::from_secs(10),
            client_idle_timeout: Some(Duration::from_secs(60)),
            max_frame_len: 1024 * 1024,
            rate_limits: RateLimits::default(),
            account_currency: AccountCurrency::Usd,
            initial_balance: 1_000_000,
            money_digits: 2,
            faults: FaultPlan::default(),
            live_account: false,
            limited_risk_account: false,
            token_lifetime: Duration::from_secs(2_628_000),
            maintenance: None,
        }
    }
}

impl SimConfig {
    /// Checks every value, naming the first bad one.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |what: String| Err(SimError::Config(what));
        if !self.listen.ip().is_loopback() {
            return bad(format!(
                "listen address {} is not a loopback address: the simulator only serves this machine",
                self.listen
            ));
        }
        if !self.speed.is_finite() || self.speed <= 0.0 || self.speed > 1_000_000.0 {
            return bad(format!(
                "speed {} must be above 0 and at most 1000000",
                self.speed
            ));
        }
        if crate::wire::zone_offset(&self.schedule_time_zone, Timestamp(0)).is_none() {
            return bad(format!(
                "schedule time zone {:?} is not UTC or a zone of the time-zone database",
                self.schedule_time_zone
            ));
        }
        let name = self.palm_oil_symbol.trim();
        if name.is_empty() || name.len() > 32 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return bad(format!(
                "symbol name {:?} must be 1 to 32 printable ASCII characters without spaces",
                self.palm_oil_symbol
            ));
        }
        if crate::symbols::OTHER_SYMBOL_NAMES
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
        {
            return bad(format!(
                "symbol name {name} is taken by another simulated symbol"
            ));
        }
        let c = &self.credentials;
        if c.client_id.trim().is_empty() {
            return bad("client id is empty".to_owned());
        }
        for (what, secret) in [
            ("client secret", &c.client_secret),
            ("access token", &c.access_token),
            ("refresh token", &c.refresh_token),
        ] {
            if secret.is_empty() {
                return bad(format!("{what} is empty"));
            }
        }
        if c.access_token == c.refresh_token {
            return bad("access token and refresh token must differ".to_owned());
        }
        if c.account_id <= 0 {
            return bad(format!("account id {} must be positive", c.account_id));
        }
        if let MarketHours::PalmSessions(sessions) = &self.market_hours
            && (sessions.is_empty()
                || sessions
                    .iter()
                    .any(|s| s.start_second >= s.end_second || s.end_second > 7 * 86_400))
        {
            return bad(
                "palm oil sessions must be non-empty start < end ranges within one week (seconds from Sunday 00:00 UTC)"
                    .to_owned(),
            );
        }
        if self.history > Duration::from_secs(400 * 86_400) {
            return bad("history longer than 400 days".to_owned());
        }
        if self.tick_interval < Duration::from_millis(1)
            || self.tick_interval > Duration::from_secs(60)
        {
            return bad("tick interval must be between 1 ms and 60 s".to_owned());
        }
        if self.quote_step < Duration::from_millis(1)
            || self.quote_step > Duration::from_secs(60)
            || !self.quote_step.subsec_nanos().is_multiple_of(1_000_000)
        {
            return bad(
                "quote step must be a whole number of milliseconds from 1 ms to 60 s".to_owned(),
            );
        }
        if self.heartbeat_interval < Duration::from_millis(10) {
            return bad("heartbeat interval must be at least 10 ms".to_owned());
        }
        if self
            .client_idle_timeout
            .is_some_and(|t| t < Duration::from_millis(10))
        {
            return bad("client idle timeout must be at least 10 ms".to_owned());
        }
        if self.max_frame_len < 1024 {
            return bad("max frame length must be at least 1024 bytes".to_owned());
        }
        if self.rate_limits.requests_per_second == 0 || self.rate_limits.historical_per_second == 0
        {
            return bad("rate limits must be positive".to_owned());
        }
        if self.initial_balance < 0 {
            return bad("initial balance must not be negative".to_owned());
        }
        if self.token_lifetime < Duration::from_secs(1)
            || self.token_lifetime > Duration::from_secs(400 * 86_400)
        {
            return bad("token lifetime must be between 1 s and 400 days".to_owned());
        }
        if let Some(window) = self.maintenance
            && (window.lasts < Duration::from_secs(1) || window.lasts > Duration::from_secs(86_400))
        {
            return bad("a maintenance window must last between 1 s and one day".to_owned());
        }
        if self.money_digits > 8 {
            return bad("money digits must be at most 8".to_owned());
        }
        self.faults.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_secrets_do_not_print() {
        let config = SimConfig::default();
        config.validate().unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("palm-oil-sim-secret"));
        assert!(!debug.contains("palm-oil-sim-access-token"));
        assert!(
            debug.contains("palm-oil-sim"),
            "the client id is not a secret"
        );
    }

    #[test]
    fn account_currency_parses_like_the_flag() {
        assert_eq!(
            "usd".parse::<AccountCurrency>().unwrap(),
            AccountCurrency::Usd
        );
        assert_eq!(
            " MYR ".parse::<AccountCurrency>().unwrap(),
            AccountCurrency::Myr
        );
        let err = "EUR".parse::<AccountCurrency>().unwrap_err().to_string();
        assert!(err.contains("USD or MYR"), "{err}");
        assert_eq!(AccountCurrency::Myr.to_string(), "MYR");
        assert_eq!(SimConfig::default().account_currency, AccountCurrency::Usd);
    }

    #[test]
    fn bad_values_are_named() {
        let check = |change: fn(&mut SimConfig), expected: &str| {
            let mut config = SimConfig::default();
            change(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        };
        check(|c| c.speed = 0.0, "speed");
        check(|c| c.speed = f64::NAN, "speed");
        check(|c| c.listen = "0.0.0.0:5035".parse().unwrap(), "loopback");
        check(|c| c.palm_oil_symbol = "PALM OIL".into(), "symbol name");
        check(
            |c| c.schedule_time_zone = "Mars/Olympus_Mons".into(),
            "schedule time zone",
        );
        check(|c| c.palm_oil_symbol = "eurusd".into(), "taken");
        check(|c| c.palm_oil_symbol = "USDMYR".into(), "taken");
        check(|c| c.credentials.account_id = 0, "account id");
        check(
            |c| c.credentials.client_secret = Secret::new(" "),
            "client secret",
        );
        check(
            |c| c.credentials.refresh_token = c.credentials.access_token.clone(),
            "differ",
        );
        check(
            |c| c.market_hours = MarketHours::PalmSessions(vec![]),
            "sessions",
        );
        check(|c| c.max_frame_len = 10, "frame");
        check(|c| c.rate_limits.historical_per_second = 0, "rate limits");
        check(|c| c.token_lifetime = Duration::ZERO, "token lifetime");
        check(
            |c| {
                c.maintenance = Some(MaintenanceWindow {
                    after: Duration::ZERO,
                    lasts: Duration::ZERO,
                });
            },
            "maintenance window",
        );
    }
}

//! The bot's typed configuration and credentials, validated all at once.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use domain::{AcceleratedClock, LabelPrefix, Price, Secret, Timeframe, Volume};

use crate::setting_kind::{Kind, Value};
use crate::settings::{Blank, RawSettings, SETTINGS, SettingProblem};

/// Official cTrader hosts: a private CA is never accepted for these.
pub const OFFICIAL_HOSTS: [&str; 2] = ["demo.ctraderapi.com", "live.ctraderapi.com"];

/// Which cTrader world the account lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradingEnv {
    /// Demo accounts: play money.
    Demo,
    /// Live accounts: real money; `run` needs an explicit confirmation.
    Live,
}

impl TradingEnv {
    /// The official host of this world.
    pub const fn official_host(self) -> &'static str {
        match self {
            TradingEnv::Demo => OFFICIAL_HOSTS[0],
            TradingEnv::Live => OFFICIAL_HOSTS[1],
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable on a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Readable text.
    Pretty,
}

/// What the strategy does when sentiment is stale or unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentimentPolicySetting {
    /// Trade on RSI alone.
    Ignore,
    /// Open nothing new.
    StandAside,
}

/// A sentiment source, in the order the fallback chain tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentimentSourceKind {
    /// Perplexity's Responses API (needs `PERPLEXITY_API_KEY`).
    Perplexity,
    /// Nitter RSS instances.
    Nitter,
    /// X API recent search (needs `X_BEARER_TOKEN`).
    X,
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerEndpoint {
    /// Demo or live as CTRADER_ENV says; `None` when unset: the account's kind decides.
    pub env: Option<TradingEnv>,
    /// Host name (TLS server name): CTRADER_HOST, or the official host CTRADER_ENV names, or
    /// the demo host, where the account's kind is asked first.
    pub host: String,
    /// True when CTRADER_HOST was set (a simulator, or an official host named explicitly).
    pub host_set: bool,
    /// Port.
    pub port: u16,
    /// Extra trusted CA (simulators only).
    pub ca_file: Option<PathBuf>,
    /// An accelerated simulator's clock to follow instead of this machine's (simulators only).
    pub simulator_clock: Option<AcceleratedClock>,
}

/// Strategy parameters, in the bot's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategySettings {
    /// Bar timeframe.
    pub timeframe: Timeframe,
    /// RSI period in bars.
    pub rsi_period: usize,
    /// Oversold level.
    pub oversold: f64,
    /// Overbought level.
    pub overbought: f64,
    /// Never short.
    pub long_only: bool,
    /// Stop-loss distance.
    pub stop_loss: Price,
    /// Take-profit distance.
    pub take_profit: Price,
    /// Opposing sentiment beyond this vetoes an entry.
    pub sentiment_veto: f64,
    /// Policy for stale or missing sentiment.
    pub sentiment_policy: SentimentPolicySetting,
    /// Age in seconds after which a reading is stale.
    pub sentiment_max_age_secs: u64,
}

/// Risk limits.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskSettings {
    /// Fixed order size when no risk fraction is set.
    pub order_volume: Volume,
    /// Fraction of equity to risk per trade, if set.
    pub risk_per_trade: Option<f64>,
    /// Daily loss fraction that engages the kill switch.
    pub daily_loss_limit: f64,
    /// Drawdown fraction that engages the kill switch.
    pub max_drawdown: f64,
}

/// Sentiment sources and their schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentimentSettings {
    /// Fallback order.
    pub sources: Vec<SentimentSourceKind>,
    /// Seconds between refreshes.
    pub refresh_secs: u64,
    /// Nitter base URLs.
    pub nitter_instances: Vec<String>,
    /// Nitter queries.
    pub nitter_queries: Vec<String>,
    /// Root of Perplexity's API (https).
    pub perplexity_base_url: String,
    /// Root of the X API (https).
    pub x_base_url: String,
    /// Extra trusted CA for the sentiment sources (an API gateway or a test mock).
    pub ca_file: Option<PathBuf>,
}

/// Operator notifications: what is sent, when, and where the services are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    /// Kinds never sent.
    pub events_off: std::collections::BTreeSet<notify::NotificationKind>,
    /// Seconds the broker link must stay down before it is notified.
    pub disconnect_after_secs: u64,
    /// Least seconds between two messages to one destination.
    pub min_interval_secs: u64,
    /// Root of Telegram's Bot API.
    pub telegram_base_url: String,
    /// Where a Discord webhook's path is posted.
    pub discord_base_url: String,
    /// Where a Slack webhook's path is posted.
    pub slack_base_url: String,
}

/// The whole validated, non-secret configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The broker endpoint.
    pub broker: BrokerEndpoint,
    /// Symbol names to try, in order.
    pub symbol_candidates: Vec<String>,
    /// Strategy parameters.
    pub strategy: StrategySettings,
    /// Risk limits.
    pub risk: RiskSettings,
    /// Sentiment sources.
    pub sentiment: SentimentSettings,
    /// SQLite URL or path.
    pub database_url: String,
    /// Metrics, health and dashboard address.
    pub http_bind: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_filter: String,
    /// Label prefix marking our positions.
    pub label_prefix: LabelPrefix,
    /// Seconds a sent order may show no trace at the broker before it is concluded lost.
    pub order_arrival_grace_secs: u64,
    /// Operator notifications.
    pub notify: NotifySettings,
}

/// Credentials for the cTrader Open API, from the environment only.
#[derive(Debug, Clone)]
pub struct BrokerCredentials {
    /// Application client id.
    pub client_id: Secret,
    /// Application client secret.
    pub client_secret: Secret,
    /// Account access token.
    pub access_token: Secret,
    /// Refresh token, when token refresh is possible.
    pub refresh_token: Option<Secret>,
    /// The cTrader trading account id (`ctidTraderAccountId`).
    pub account_id: i64,
}

/// Every problem found while validating; shown all at once, exit status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<SettingProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {}: {}", p.setting, p.problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Every trading setting parsed as the settings table's kind says, in one pass, and every
/// problem found; the configuration is then assembled from typed values by name.
struct Parsed<'a> {
    raw: &'a RawSettings,
    values: BTreeMap<&'static str, Value>,
    problems: Vec<SettingProblem>,
    /// Every name the assembly asked for, so a test can hold it to the settings table.
    used: RefCell<BTreeSet<String>>,
}

impl<'a> Parsed<'a> {
    /// The one pass over the table: each setting's text parsed by its kind; a blank one is
    /// unset, its default, read by its kind, or named as empty, as the table says.
    fn read(raw: &'a RawSettings) -> Parsed<'a> {
        let mut parsed = Parsed {
            raw,
            values: BTreeMap::new(),
            problems: Vec::new(),
            used: RefCell::default(),
        };
        for spec in SETTINGS.iter().filter(|s| s.kind != Kind::AuthUrl) {
            let outcome = match (raw.get(spec.name), spec.blank) {
                (Some(text), _) => spec.kind.parse(text),
                (None, Blank::Read) => spec.kind.parse(""),
                (None, _) => match spec.default.filter(|d| !d.is_empty()) {
                    Some(default) => Err(format!("is empty: it needs a value (default {default})")),
                    None => continue,
                },
            };
            match outcome {
                Ok(value) => {
                    parsed.values.insert(spec.name, value);
                }
                Err(problem) => parsed.problem(spec.name, problem),
            }
        }
        parsed
    }

    fn problem(&mut self, name: &str, text: impl Into<String>) {
        self.problems.push(SettingProblem::new(name, text));
    }

    /// True when the setting has text (valid or not).
    fn given(&self, name: &str) -> bool {
        self.used.borrow_mut().insert(name.to_owned());
        self.raw.get(name).is_some()
    }

    /// True when the setting's own check named a problem.
    fn failed(&self, name: &str) -> bool {
        self.problems.iter().any(|p| p.setting == name)
    }

    fn value(&self, name: &str) -> Option<&Value> {
        self.used.borrow_mut().insert(name.to_owned());
        self.values.get(name)
    }

    fn word(&self, name: &str) -> Option<&'static str> {
        match self.value(name)? {
            Value::Word(w) => Some(w),
            _ => None,
        }
    }

    fn whole(&self, name: &str) -> Option<u64> {
        match self.value(name)? {
            Value::Whole(v) => Some(*v),
            _ => None,
        }
    }

    /// A whole number that fits `T` (the table's range makes it fit).
    fn whole_as<T: TryFrom<u64>>(&self, name: &str) -> Option<T> {
        self.whole(name).and_then(|v| T::try_from(v).ok())
    }

    fn number(&self, name: &str) -> Option<f64> {
        match self.value(name)? {
            Value::Number(v) => Some(*v),
            _ => None,
        }
    }

    fn flag(&self, name: &str) -> Option<bool> {
        match self.value(name)? {
            Value::Flag(v) => Some(*v),
            _ => None,
        }
    }

    fn price(&self, name: &str) -> Option<Price> {
        match self.value(name)? {
            Value::Price(v) => Some(*v),
            _ => None,
        }
    }

    fn volume(&self, name: &str) -> Option<Volume> {
        match self.value(name)? {
            Value::Volume(v) => Some(*v),
            _ => None,
        }
    }

    /// A list; empty when unset.
    fn list(&self, name: &str) -> Vec<String> {
        match self.value(name) {
            Some(Value::List(items)) => items.clone(),
            _ => Vec::new(),
        }
    }

    fn text(&self, name: &str) -> Option<String> {
        match self.value(name)? {
            Value::Text(v) => Some(v.clone()),
            _ => None,
        }
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        match self.value(name)? {
            Value::Path(v) => Some(v.clone()),
            _ => None,
        }
    }

    fn ip(&self, name: &str) -> Option<IpAddr> {
        match self.value(name)? {
            Value::Ip(v) => Some(*v),
            _ => None,
        }
    }

    fn timeframe(&self, name: &str) -> Option<Timeframe> {
        match self.value(name)? {
            Value::Timeframe(v) => Some(*v),
            _ => None,
        }
    }

    fn clock(&self, name: &str) -> Option<AcceleratedClock> {
        match self.value(name)? {
            Value::Clock(v) => Some(*v),
            _ => None,
        }
    }

    fn label(&self, name: &str) -> Option<LabelPrefix> {
        match self.value(name)? {
            Value::Label(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl Config {
    /// Validates every setting at once; the error lists every problem by name.
    pub fn from_raw(raw: &RawSettings) -> Result<Config, ConfigErrors> {
        let mut parsed = Parsed::read(raw);
        let config = Config::assemble(&mut parsed);
        match config {
            Some(config) if parsed.problems.is_empty() => Ok(config),
            // A value missing without a problem would be a table and assembly that disagree.
            _ if parsed.problems.is_empty() => Err(ConfigErrors(vec![SettingProblem::new(
                "settings",
                "a setting's declared kind does not match how it is read (a bug: please report it)",
            )])),
            _ => Err(ConfigErrors(parsed.problems)),
        }
    }

    /// Builds the configuration from the parsed values and checks the rules that join several
    /// settings; `None` only when a problem is recorded.
    fn assemble(p: &mut Parsed<'_>) -> Option<Config> {
        let broker = broker_endpoint(p);
        let oversold = p.number("RSI_OVERSOLD");
        let overbought = p.number("RSI_OVERBOUGHT");
        if let (Some(lo), Some(hi)) = (oversold, overbought)
            && lo >= hi
        {
            p.problem(
                "RSI_OVERSOLD",
                format!("{lo} must be below RSI_OVERBOUGHT ({hi})"),
            );
        }
        let sources = p
            .list("SENTIMENT_SOURCES")
            .iter()
            .filter_map(|name| match name.as_str() {
                "perplexity" => Some(SentimentSourceKind::Perplexity),
                "nitter" => Some(SentimentSourceKind::Nitter),
                "x" => Some(SentimentSourceKind::X),
                _ => None,
            })
            .collect();
        let log_format = match p.word("LOG_FORMAT") {
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            _ => LogFormat::Auto,
        };
        // Every value below parsed, or its problem is recorded: `?` meets a `None` only then.
        Some(Config {
            broker: broker?,
            symbol_candidates: p.list("SYMBOL_CANDIDATES"),
            strategy: StrategySettings {
                timeframe: p.timeframe("TIMEFRAME")?,
                rsi_period: p.whole_as("RSI_PERIOD")?,
                oversold: oversold?,
                overbought: overbought?,
                long_only: p.flag("LONG_ONLY")?,
                stop_loss: p.price("STOP_LOSS")?,
                take_profit: p.price("TAKE_PROFIT")?,
                sentiment_veto: p.number("SENTIMENT_VETO")?,
                sentiment_policy: SentimentPolicySetting::parse(p.word("SENTIMENT_POLICY")?)?,
                sentiment_max_age_secs: p.whole("SENTIMENT_MAX_AGE")?,
            },
            risk: RiskSettings {
                order_volume: p.volume("ORDER_VOLUME")?,
                risk_per_trade: p.number("RISK_PER_TRADE"),
                daily_loss_limit: p.number("DAILY_LOSS_LIMIT")?,
                max_drawdown: p.number("MAX_DRAWDOWN")?,
            },
            sentiment: SentimentSettings {
                sources,
                refresh_secs: p.whole("SENTIMENT_REFRESH")?,
                nitter_instances: p.list("NITTER_INSTANCES"),
                nitter_queries: p.list("NITTER_QUERIES"),
                perplexity_base_url: p.text("PERPLEXITY_BASE_URL")?,
                x_base_url: p.text("X_API_BASE_URL")?,
                ca_file: p.path("SENTIMENT_CA_FILE"),
            },
            database_url: p.text("DATABASE_URL")?,
            http_bind: SocketAddr::new(p.ip("BIND_ADDRESS")?, p.whole_as("PORT")?),
            log_format,
            log_filter: p.text("RUST_LOG")?,
            label_prefix: p.label("LABEL_PREFIX")?,
            order_arrival_grace_secs: p.whole("ORDER_ARRIVAL_GRACE")?,
            notify: notify_settings(p)?,
        })
    }
}

/// Where the broker is; credentials go only to cTrader's own hosts, or to a simulator on this
/// machine or a private network that the operator vouches for with its CA.
fn broker_endpoint(p: &mut Parsed<'_>) -> Option<BrokerEndpoint> {
    let env = p.word("CTRADER_ENV").map(|w| match w {
        "live" => TradingEnv::Live,
        _ => TradingEnv::Demo,
    });
    let host_set = p.given("CTRADER_HOST");
    let host = p
        .text("CTRADER_HOST")
        .unwrap_or_else(|| env.unwrap_or(TradingEnv::Demo).official_host().to_owned());
    let ca_given = p.given("CTRADER_CA_FILE");
    let ca_file = p.path("CTRADER_CA_FILE");
    if !p.failed("CTRADER_HOST") {
        if ca_given && is_official_host(&host) {
            p.problem(
                "CTRADER_CA_FILE",
                format!("a private CA is refused for the official cTrader host {host}"),
            );
        }
        if !is_official_host(&host) {
            if !is_local_or_private_host(&host) {
                p.problem(
                    "CTRADER_HOST",
                    format!(
                        "{host:?} is refused: credentials go only to {} or {}, or to a simulator on \
                         localhost or a loopback or private IP address (with CTRADER_CA_FILE)",
                        OFFICIAL_HOSTS[0], OFFICIAL_HOSTS[1]
                    ),
                );
            } else if !ca_given {
                p.problem(
                    "CTRADER_HOST",
                    format!(
                        "{host:?} is not an official cTrader host: a simulator host needs CTRADER_CA_FILE \
                         (the simulator's CA)"
                    ),
                );
            }
        }
    }
    // An accelerated simulator's time runs away from ours: the bot must read time as the
    // simulator keeps it, or reconciliation asks for the wrong days. Never for a real broker.
    let simulator_clock = p.clock("SIMULATOR_CLOCK");
    if simulator_clock.is_some() && is_official_host(&host) {
        p.problem(
            "SIMULATOR_CLOCK",
            format!("a simulated clock is refused for the official cTrader host {host}"),
        );
    }
    Some(BrokerEndpoint {
        env,
        host,
        host_set,
        port: p.whole_as("CTRADER_PORT")?,
        ca_file,
        simulator_clock,
    })
}

/// The notification settings; `None` when one of them is invalid (the problem is recorded).
fn notify_settings(p: &Parsed<'_>) -> Option<NotifySettings> {
    Some(NotifySettings {
        events_off: p
            .list("NOTIFY_EVENTS_OFF")
            .iter()
            .filter_map(|name| notify::NotificationKind::parse(name))
            .collect(),
        disconnect_after_secs: p.whole("NOTIFY_DISCONNECT_AFTER")?,
        min_interval_secs: p.whole("NOTIFY_MIN_INTERVAL")?,
        telegram_base_url: p.text("TELEGRAM_API_BASE_URL")?,
        discord_base_url: p.text("DISCORD_BASE_URL")?,
        slack_base_url: p.text("SLACK_BASE_URL")?,
    })
}

/// `https://` with a host, or plain `http://` only to this machine (a local mock); no spaces.
pub fn check_service_url(url: &str) -> Result<(), String> {
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .and_then(crate::allowlist::host_of_url);
    match host {
        _ if url.contains(char::is_whitespace) => Err(format!("{url:?} contains a space")),
        None => Err(format!("{url:?} must be an https:// URL with a host")),
        Some(h) if url.starts_with("http://") && !is_loopback_host(h) => Err(format!(
            "{url:?}: plain http only to this machine (127.0.0.1, localhost, ::1), for a local mock; use https://"
        )),
        Some(_) => Ok(()),
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `DATABASE_URL` names a SQLite file: `sqlite://PATH`, `sqlite:PATH` or a bare path; any other
/// scheme (a server database) is refused rather than read as a file name.
pub fn check_database_url(url: &str) -> Result<(), String> {
    if let Some((scheme, _)) = url.split_once("://")
        && !scheme.eq_ignore_ascii_case("sqlite")
    {
        return Err(format!(
            "{scheme}:// is not supported: the store is SQLite (sqlite://PATH or a file path)"
        ));
    }
    persistence::SqliteStoreConfig::from_url(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// True for a host on this machine or a private network: `localhost`, a loopback address, or a
/// private (RFC 1918, IPv6 unique local) address. Names other than `localhost` are not resolved.
pub fn is_local_or_private_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => false,
    }
}

impl SentimentPolicySetting {
    /// `ignore` or `stand_aside`; `stand-aside` and any letter case are accepted too, so the
    /// setting, the file and `--sentiment-policy` take the same spellings.
    pub fn parse(text: &str) -> Option<SentimentPolicySetting> {
        match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "ignore" => Some(SentimentPolicySetting::Ignore),
            "stand_aside" => Some(SentimentPolicySetting::StandAside),
            _ => None,
        }
    }
}

/// True for the official cTrader hosts (case-insensitive, trailing dot ignored).
pub fn is_official_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    OFFICIAL_HOSTS.contains(&host.as_str())
}

impl BrokerCredentials {
    /// Reads the cTrader credentials from the environment; every missing or invalid one is named.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BrokerCredentials, ConfigErrors> {
        let mut problems = Vec::new();
        let mut secret = |name: &str| match env(name).map(Secret::new) {
            Some(s) if !s.is_empty() => Some(s),
            _ => {
                problems.push(SettingProblem::new(
                    name,
                    "is missing (set it in the environment)",
                ));
                None
            }
        };
        let client_id = secret("CTRADER_CLIENT_ID");
        let client_secret = secret("CTRADER_CLIENT_SECRET");
        let access_token = secret("CTRADER_ACCESS_TOKEN");
        let refresh_token = env("CTRADER_REFRESH_TOKEN")
            .map(Secret::new)
            .filter(|s| !s.is_empty());
        let account_id = match env("CTRADER_ACCOUNT_ID") {
            None => {
                problems.push(SettingProblem::new(
                    "CTRADER_ACCOUNT_ID",
                    "is missing (set it in the environment)",
                ));
                None
            }
            Some(text) => match text.trim().parse::<i64>() {
                Ok(id) if id > 0 => Some(id),
                _ => {
                    problems.push(SettingProblem::new(
                        "CTRADER_ACCOUNT_ID",
                        "must be the numeric ctidTraderAccountId",
                    ));
                    None
                }
            },
        };
        match (client_id, client_secret, access_token, account_id) {
            (Some(client_id), Some(client_secret), Some(access_token), Some(account_id))
                if problems.is_empty() =>
            {
                Ok(BrokerCredentials {
                    client_id,
                    client_secret,
                    access_token,
                    refresh_token,
                    account_id,
                })
            }
            _ => Err(ConfigErrors(problems)),
        }
    }
}

/// Configurations built from a fixed environment, for this crate's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeMap;

    use super::{Config, ConfigErrors};
    use crate::settings::RawSettings;

    /// An environment holding exactly `pairs`.
    pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    /// The configuration that environment gives (no file).
    pub(crate) fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();
        let raw = RawSettings::layer(None, &env_of(pairs), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        Config::from_raw(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_support::{config_from as config, env_of};

    #[test]
    fn defaults_make_a_valid_demo_config() {
        let c = config(&[]).unwrap();
        assert_eq!(c.broker.env, None, "unset: the account's kind decides");
        assert_eq!(c.broker.host, "demo.ctraderapi.com");
        assert!(!c.broker.host_set);
        assert_eq!(c.strategy.timeframe, Timeframe::M15);
        assert_eq!(c.strategy.stop_loss, Price(4_000_000));
        assert_eq!(c.risk.order_volume, Volume(100));
        assert_eq!(c.http_bind.to_string(), "127.0.0.1:9184");
        assert_eq!(
            c.sentiment.sources,
            vec![SentimentSourceKind::Perplexity, SentimentSourceKind::Nitter]
        );
    }

    #[test]
    fn every_bad_setting_is_named_at_once() {
        let err = config(&[
            ("CTRADER_ENV", "paper"),
            ("TIMEFRAME", "M2"),
            ("RSI_OVERSOLD", "80"),
            ("PORT", "99999"),
            ("NITTER_INSTANCES", "http://nitter.example"),
        ])
        .unwrap_err();
        let names: Vec<&str> = err.0.iter().map(|p| p.setting.as_str()).collect();
        for expected in [
            "CTRADER_ENV",
            "TIMEFRAME",
            "RSI_OVERSOLD",
            "PORT",
            "NITTER_INSTANCES",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
    }

    #[test]
    fn private_ca_is_refused_for_official_hosts() {
        let err = config(&[("CTRADER_CA_FILE", "Cargo.toml")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("refused for the official cTrader host")
        );
        assert!(is_official_host("LIVE.ctraderapi.com."));
    }

    fn problems_of(pairs: &[(&str, &str)]) -> Vec<SettingProblem> {
        match config(pairs) {
            Ok(_) => Vec::new(),
            Err(e) => e.0,
        }
    }

    fn refused(pairs: &[(&str, &str)], setting: &str, needle: &str) {
        let problems = problems_of(pairs);
        assert!(
            problems
                .iter()
                .any(|p| p.setting == setting && p.problem.contains(needle)),
            "{pairs:?}: expected {setting} problem with {needle:?}, got {problems:?}"
        );
    }

    /// Issue 14, report 1: a server database URL became a SQLite file named `./postgres:/x`.
    #[test]
    fn database_url_is_sqlite_or_a_path_and_other_schemes_are_named() {
        refused(
            &[("DATABASE_URL", "postgres://x")],
            "DATABASE_URL",
            "postgres://",
        );
        refused(
            &[("DATABASE_URL", "mysql://u@h/db")],
            "DATABASE_URL",
            "mysql://",
        );
        refused(&[("DATABASE_URL", "sqlite://")], "DATABASE_URL", "file");
        for ok in [
            "sqlite://./data/bot.db",
            "sqlite:bot.db",
            "data/bot.db",
            "/var/x.db",
        ] {
            let c = config(&[("DATABASE_URL", ok)]).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(c.database_url, ok);
        }
    }

    /// Issue 14, report 2: settings `run` refused passed validation.
    #[test]
    fn log_filter_port_and_documented_ranges_are_checked() {
        refused(&[("RUST_LOG", "notalevel===")], "RUST_LOG", "notalevel");
        assert!(problems_of(&[("RUST_LOG", "palm_oil_bot=debug,info")]).is_empty());
        refused(&[("CTRADER_PORT", "0")], "CTRADER_PORT", "1 to 65535");
        refused(&[("SENTIMENT_VETO", "2")], "SENTIMENT_VETO", "from 0 to 1");
        refused(
            &[("SENTIMENT_VETO", "-0.1")],
            "SENTIMENT_VETO",
            "from 0 to 1",
        );
        for ok in ["0", "0.3", "1"] {
            assert!(problems_of(&[("SENTIMENT_VETO", ok)]).is_empty(), "{ok}");
        }
        refused(
            &[("SENTIMENT_MAX_AGE", "0")],
            "SENTIMENT_MAX_AGE",
            "at least 1",
        );
        refused(&[("RSI_PERIOD", "1")], "RSI_PERIOD", "2 to 500");
        refused(
            &[("RISK_PER_TRADE", "0.5")],
            "RISK_PER_TRADE",
            "at most 0.1",
        );
        refused(
            &[("DAILY_LOSS_LIMIT", "1.5")],
            "DAILY_LOSS_LIMIT",
            "at most 1",
        );
        refused(&[("SENTIMENT_REFRESH", "30")], "SENTIMENT_REFRESH", "60");
    }

    /// The README states each range and choice in the setting's description; validation
    /// enforces exactly those, from the same table.
    #[test]
    fn documented_ranges_are_the_ones_enforced() {
        for spec in crate::settings::SETTINGS {
            if let Some(range) = spec.kind.stated_range() {
                assert!(
                    spec.doc.contains(&range),
                    "{}: its description does not state {range:?}",
                    spec.name
                );
            }
            for word in spec.kind.words() {
                assert!(
                    spec.doc.contains(word),
                    "{}: its description does not name {word:?}",
                    spec.name
                );
            }
        }
        let doc = |name: &str| {
            crate::settings::SETTINGS
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.doc)
                .unwrap_or_default()
        };
        assert!(doc("RSI_PERIOD").contains("2 to 500"));
        assert!(doc("SENTIMENT_REFRESH").contains("at least 60"));
        assert!(doc("NOTIFY_EVENTS_OFF").contains("daily_summary"));
    }

    /// Every default parses as its own kind: a default can never be a configuration error.
    #[test]
    fn every_default_is_valid_for_its_kind() {
        for spec in crate::settings::SETTINGS {
            if let Some(default) = spec.default.filter(|d| !d.is_empty()) {
                // The database default is a template; `{env}` and `{account}` are filled later.
                assert!(
                    spec.kind.parse(default).is_ok(),
                    "{}: default {default:?} is refused by its own kind",
                    spec.name
                );
            }
        }
    }

    /// A blank setting takes its default, is read by its kind, or is named, as the table says.
    #[test]
    fn blank_settings_follow_the_table() {
        let c = config(&[
            ("CTRADER_PORT", " "),
            ("SENTIMENT_POLICY", ""),
            ("LOG_FORMAT", ""),
            ("SENTIMENT_SOURCES", ""),
            ("NITTER_QUERIES", " "),
        ])
        .unwrap();
        assert_eq!(c.broker.port, 5035);
        assert_eq!(c.strategy.sentiment_policy, SentimentPolicySetting::Ignore);
        assert_eq!(c.log_format, LogFormat::Auto);
        assert!(c.sentiment.sources.is_empty(), "blank: no sources");
        assert!(c.sentiment.nitter_queries.is_empty());
        refused(
            &[("SYMBOL_CANDIDATES", " ")],
            "SYMBOL_CANDIDATES",
            "at least 1",
        );
        refused(&[("LABEL_PREFIX", "")], "LABEL_PREFIX", "1 to 20");
        refused(&[("DATABASE_URL", "")], "DATABASE_URL", "");
    }

    /// A simulator's clock is followed only for a simulator, and a bad one is named.
    #[test]
    fn a_simulated_clock_is_for_simulators_only() {
        let local = [
            ("CTRADER_HOST", "127.0.0.1"),
            ("CTRADER_CA_FILE", "Cargo.toml"),
            ("SIMULATOR_CLOCK", "1736121600000,1764693550000,300"),
        ];
        let c = config(&local).unwrap();
        assert_eq!(
            c.broker.simulator_clock.map(|k| k.speed),
            Some(300.0),
            "{c:?}"
        );
        refused(
            &[("SIMULATOR_CLOCK", "1736121600000,1764693550000,300")],
            "SIMULATOR_CLOCK",
            "refused for the official cTrader host",
        );
        refused(
            &[
                ("CTRADER_HOST", "127.0.0.1"),
                ("CTRADER_CA_FILE", "Cargo.toml"),
                ("SIMULATOR_CLOCK", "tomorrow"),
            ],
            "SIMULATOR_CLOCK",
            "SIM_MS,WALL_MS,SPEED",
        );
    }

    /// Issue 14, report 3: credentials would go wherever CTRADER_HOST points.
    #[test]
    fn broker_host_is_official_or_a_local_simulator_with_its_ca() {
        refused(
            &[("CTRADER_HOST", "evil.example.com")],
            "CTRADER_HOST",
            "\"evil.example.com\" is refused",
        );
        // A public address is refused even with a CA.
        refused(
            &[
                ("CTRADER_HOST", "8.8.8.8"),
                ("CTRADER_CA_FILE", "Cargo.toml"),
            ],
            "CTRADER_HOST",
            "\"8.8.8.8\" is refused",
        );
        // A private or loopback host needs the simulator's CA.
        for host in ["10.0.0.5", "127.0.0.1", "localhost", "192.168.1.20"] {
            refused(
                &[("CTRADER_HOST", host)],
                "CTRADER_HOST",
                "needs CTRADER_CA_FILE",
            );
            let c = config(&[("CTRADER_HOST", host), ("CTRADER_CA_FILE", "Cargo.toml")])
                .unwrap_or_else(|e| panic!("{host}: {e}"));
            assert_eq!(c.broker.host, host);
        }
        assert!(problems_of(&[("CTRADER_HOST", "live.ctraderapi.com")]).is_empty());
        assert!(is_local_or_private_host("172.16.0.1"));
        assert!(!is_local_or_private_host("172.32.0.1"));
        assert!(!is_local_or_private_host("localhost.evil.example"));
    }

    /// A required setting set blank is named, never a failure without a problem.
    #[test]
    fn a_blank_required_setting_is_named() {
        for name in ["TIMEFRAME", "PORT", "TELEGRAM_API_BASE_URL", "MAX_DRAWDOWN"] {
            refused(&[(name, " ")], name, "is empty");
        }
        // A blank log filter still means info.
        assert!(problems_of(&[("RUST_LOG", "")]).is_empty());
    }

    /// Issue 14, report 6: `--help` said stand-aside, the setting took only stand_aside.
    #[test]
    fn sentiment_policy_takes_both_spellings() {
        for text in ["stand_aside", "stand-aside", "Stand-Aside"] {
            let c = config(&[("SENTIMENT_POLICY", text)]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                c.strategy.sentiment_policy,
                SentimentPolicySetting::StandAside
            );
        }
        refused(
            &[("SENTIMENT_POLICY", "panic")],
            "SENTIMENT_POLICY",
            "stand_aside",
        );
    }

    /// Issue 14, report 8: the sentiment APIs' roots and an extra CA can be set, https only.
    #[test]
    fn sentiment_base_urls_are_https_and_the_ca_file_must_exist() {
        let c = config(&[
            ("PERPLEXITY_BASE_URL", "https://gw.example/pplx/"),
            ("X_API_BASE_URL", "https://127.0.0.1:8443"),
            ("SENTIMENT_CA_FILE", "Cargo.toml"),
        ])
        .unwrap();
        assert_eq!(c.sentiment.perplexity_base_url, "https://gw.example/pplx");
        assert_eq!(c.sentiment.x_base_url, "https://127.0.0.1:8443");
        assert_eq!(c.sentiment.ca_file, Some(PathBuf::from("Cargo.toml")));
        let defaults = config(&[]).unwrap();
        assert_eq!(
            defaults.sentiment.perplexity_base_url,
            "https://api.perplexity.ai"
        );
        assert_eq!(defaults.sentiment.x_base_url, "https://api.x.com");
        refused(
            &[("PERPLEXITY_BASE_URL", "http://gw.example")],
            "PERPLEXITY_BASE_URL",
            "https://",
        );
        refused(
            &[("X_API_BASE_URL", "https://")],
            "X_API_BASE_URL",
            "https://",
        );
        refused(
            &[("SENTIMENT_CA_FILE", "no-such-ca.pem")],
            "SENTIMENT_CA_FILE",
            "not a readable file",
        );
    }

    #[test]
    fn missing_credentials_are_named_without_values() {
        let err = BrokerCredentials::from_env(&env_of(&[
            ("CTRADER_CLIENT_SECRET", "top-secret-value"),
            ("CTRADER_ACCOUNT_ID", "abc"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("CTRADER_CLIENT_ID"));
        assert!(text.contains("CTRADER_ACCESS_TOKEN"));
        assert!(text.contains("CTRADER_ACCOUNT_ID"));
        assert!(!text.contains("CTRADER_CLIENT_SECRET"));
        assert!(!text.contains("top-secret-value"));
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let creds = BrokerCredentials::from_env(&env_of(&[
            ("CTRADER_CLIENT_ID", "id-1"),
            ("CTRADER_CLIENT_SECRET", "sec-2"),
            ("CTRADER_ACCESS_TOKEN", "tok-3"),
            ("CTRADER_ACCOUNT_ID", "44556677"),
        ]))
        .unwrap();
        let debug = format!("{creds:?}");
        assert!(!debug.contains("sec-2") && !debug.contains("tok-3") && !debug.contains("id-1"));
        assert_eq!(creds.account_id, 44_556_677);
    }

    /// The names the assembly asks for.
    fn names_used(pairs: &[(&str, &str)]) -> std::collections::BTreeSet<String> {
        let mut problems = Vec::new();
        let raw = RawSettings::layer(None, &env_of(pairs), &mut problems);
        let mut parsed = Parsed::read(&raw);
        Config::assemble(&mut parsed);
        parsed.used.into_inner()
    }

    /// Every declared setting does something: the configuration uses it, or `auth` reads it.
    #[test]
    fn every_declared_setting_is_used() {
        let used = names_used(&[]);
        let auth = include_str!("commands/auth.rs");
        for spec in crate::settings::SETTINGS {
            if spec.kind == Kind::AuthUrl {
                assert!(
                    auth.contains(&format!("url(\"{}\")", spec.name)),
                    "{} is declared for auth, which does not read it",
                    spec.name
                );
            } else {
                assert!(
                    used.contains(spec.name),
                    "{} is declared but never used",
                    spec.name
                );
            }
        }
    }

    /// Every setting the configuration asks for is declared (so it is parsed, documented and
    /// listed by `check-config`).
    #[test]
    fn every_used_setting_is_declared() {
        let declared: Vec<&str> = crate::settings::SETTINGS.iter().map(|s| s.name).collect();
        // Every optional branch taken too (a live host with a CA, a risk fraction, sources).
        let used = names_used(&[
            ("CTRADER_ENV", "live"),
            ("CTRADER_HOST", "127.0.0.1"),
            ("RISK_PER_TRADE", "0.01"),
            ("SIMULATOR_CLOCK", "1,1,1"),
            ("SENTIMENT_SOURCES", "perplexity,nitter,x"),
        ]);
        for name in &used {
            assert!(
                declared.contains(&name.as_str()),
                "{name} is used but not in the settings table"
            );
        }
    }
}

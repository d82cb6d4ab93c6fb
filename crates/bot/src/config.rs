//! The bot's typed configuration and credentials, validated all at once.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use domain::{AcceleratedClock, LabelPrefix, Price, Secret, Timeframe, Volume};

use crate::settings::{RawSettings, SettingProblem};

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

/// Collects typed values and problems while reading raw settings.
struct Reader<'a> {
    raw: &'a RawSettings,
    problems: Vec<SettingProblem>,
    /// Every name validation asked for, so a test can hold it to the settings table.
    read: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl<'a> Reader<'a> {
    fn new(raw: &'a RawSettings) -> Reader<'a> {
        Reader {
            raw,
            problems: Vec::new(),
            read: Default::default(),
        }
    }

    fn text(&self, name: &str) -> Option<String> {
        self.read.borrow_mut().insert(name.to_owned());
        self.raw.get(name).map(|v| v.trim().to_owned())
    }

    /// A parsed value that must also pass `check`; its failure is the setting's problem.
    fn checked<T: FromStr>(
        &mut self,
        name: &str,
        what: &str,
        check: impl FnOnce(&T) -> Result<(), &'static str>,
    ) -> Option<T> {
        let value = self.parsed::<T>(name, what)?;
        match check(&value) {
            Ok(()) => Some(value),
            Err(problem) => {
                self.problem(name, problem);
                None
            }
        }
    }

    fn parsed<T: FromStr>(&mut self, name: &str, what: &str) -> Option<T> {
        let text = self.text(name)?;
        match text.parse::<T>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.problems
                    .push(SettingProblem::new(name, format!("{text:?} is not {what}")));
                None
            }
        }
    }

    /// A number from `low` to `high`, both included.
    fn within(&mut self, name: &str, low: f64, high: f64) -> Option<f64> {
        let v: f64 = self.parsed(name, "a number")?;
        if v.is_finite() && (low..=high).contains(&v) {
            Some(v)
        } else {
            self.problems.push(SettingProblem::new(
                name,
                format!("{v} must be from {low} to {high}"),
            ));
            None
        }
    }

    /// An `https://` URL with a host; the host is what the allow-list admits.
    fn https_url(&mut self, name: &str) -> Option<String> {
        let url = self.text(name)?;
        let host = url
            .strip_prefix("https://")
            .and_then(crate::allowlist::host_of_url);
        if host.is_some() && !url.contains(char::is_whitespace) {
            Some(url.trim_end_matches('/').to_owned())
        } else {
            self.problems.push(SettingProblem::new(
                name,
                format!("{url:?} must be an https:// URL with a host"),
            ));
            None
        }
    }

    /// A service's root URL: `https://` with a host, or `http://` to this machine (a local mock).
    fn service_url(&mut self, name: &str) -> Option<String> {
        let url = self.text(name)?;
        match check_service_url(&url) {
            Ok(()) => Some(url.trim_end_matches('/').to_owned()),
            Err(why) => {
                self.problems.push(SettingProblem::new(name, why));
                None
            }
        }
    }

    /// A readable file named by the setting, when it is set.
    fn file(&mut self, name: &str) -> Option<PathBuf> {
        let path = PathBuf::from(self.text(name)?);
        if !path.is_file() {
            self.problems.push(SettingProblem::new(
                name,
                format!("{} is not a readable file", path.display()),
            ));
        }
        Some(path)
    }

    fn fraction(&mut self, name: &str, low: f64, high: f64) -> Option<f64> {
        let v: f64 = self.parsed(name, "a number")?;
        if v.is_finite() && v > low && v <= high {
            Some(v)
        } else {
            self.problems.push(SettingProblem::new(
                name,
                format!("{v} must be above {low} and at most {high}"),
            ));
            None
        }
    }

    fn price(&mut self, name: &str) -> Option<Price> {
        let text = self.text(name)?;
        match Price::parse(&text) {
            Ok(p) if p.raw() > 0 => Some(p),
            Ok(_) => {
                self.problems.push(SettingProblem::new(
                    name,
                    "must be a positive price distance",
                ));
                None
            }
            Err(e) => {
                self.problems.push(SettingProblem::new(name, e.to_string()));
                None
            }
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.text(name)
            .map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn problem(&mut self, name: &str, text: impl Into<String>) {
        self.problems.push(SettingProblem::new(name, text));
    }
}

impl Config {
    /// Validates every setting at once; the error lists every problem by name.
    pub fn from_raw(raw: &RawSettings) -> Result<Config, ConfigErrors> {
        let mut r = Reader::new(raw);
        match Config::read(&mut r) {
            Some(config) if r.problems.is_empty() => Ok(config),
            _ => Err(ConfigErrors(r.problems)),
        }
    }

    /// Reads every setting the table declares; `None` only when a problem is recorded.
    fn read(r: &mut Reader<'_>) -> Option<Config> {
        let raw = r.raw;
        // One pass over the table: a setting with a default that was set blank has no value
        // (named here, rather than failing below without a word), except those whose blank
        // means their default or that name their own problem.
        for spec in crate::settings::SETTINGS {
            if let Some(default) = spec.default.filter(|d| !d.is_empty())
                && !spec.blank_handled
                && raw.get(spec.name).is_none()
            {
                r.problem(
                    spec.name,
                    format!("is empty: it needs a value (default {default})"),
                );
            }
        }
        let env = match r
            .text("CTRADER_ENV")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => None,
            Some("demo") => Some(TradingEnv::Demo),
            Some("live") => Some(TradingEnv::Live),
            Some(other) => {
                r.problem("CTRADER_ENV", format!("{other:?} is not demo or live"));
                None
            }
        };
        let host_set = r.text("CTRADER_HOST").is_some();
        let host = r
            .text("CTRADER_HOST")
            .unwrap_or_else(|| env.unwrap_or(TradingEnv::Demo).official_host().to_owned());
        if host.contains(['/', ':', ' ']) {
            r.problem(
                "CTRADER_HOST",
                format!("{host:?} must be a bare host name (no scheme, port or path)"),
            );
        }
        let port = r
            .checked::<u16>("CTRADER_PORT", "a port number", |p| match p {
                0 => Err("0 is not a port to connect to (1 to 65535)"),
                _ => Ok(()),
            })
            .unwrap_or(5035);
        let ca_file = r.file("CTRADER_CA_FILE");
        if ca_file.is_some() && is_official_host(&host) {
            r.problem(
                "CTRADER_CA_FILE",
                format!("a private CA is refused for the official cTrader host {host}"),
            );
        }
        // Credentials go wherever the host points: only cTrader's own hosts, or a simulator on
        // this machine or a private network that the operator vouches for with its CA.
        if !is_official_host(&host) && !host.contains(['/', ':', ' ']) {
            if !is_local_or_private_host(&host) {
                r.problem(
                    "CTRADER_HOST",
                    format!(
                        "{host:?} is refused: credentials go only to {} or {}, or to a simulator on \
                         localhost or a loopback or private IP address (with CTRADER_CA_FILE)",
                        OFFICIAL_HOSTS[0], OFFICIAL_HOSTS[1]
                    ),
                );
            } else if ca_file.is_none() {
                r.problem(
                    "CTRADER_HOST",
                    format!(
                        "{host:?} is not an official cTrader host: a simulator host needs CTRADER_CA_FILE \
                         (the simulator's CA)"
                    ),
                );
            }
        }
        // An accelerated simulator's time runs away from ours: the bot must read time as the
        // simulator keeps it, or reconciliation asks for the wrong days. Never for a real broker.
        let simulator_clock =
            r.text("SIMULATOR_CLOCK")
                .and_then(|text| match text.parse::<AcceleratedClock>() {
                    Ok(_) if is_official_host(&host) => {
                        r.problem(
                            "SIMULATOR_CLOCK",
                            format!(
                                "a simulated clock is refused for the official cTrader host {host}"
                            ),
                        );
                        None
                    }
                    Ok(clock) => Some(clock),
                    Err(e) => {
                        r.problem("SIMULATOR_CLOCK", e);
                        None
                    }
                });
        let symbol_candidates = r.list("SYMBOL_CANDIDATES");
        if symbol_candidates.is_empty() {
            r.problem("SYMBOL_CANDIDATES", "needs at least one symbol name");
        }
        let timeframe = r.parsed::<Timeframe>("TIMEFRAME", "one of M1, M5, M15, M30, H1, H4, D1");
        let rsi_period = r.checked::<usize>("RSI_PERIOD", "a whole number", |p| {
            at_least_most(*p as u64, 2, 500, "must be between 2 and 500")
        });
        let oversold = r.fraction("RSI_OVERSOLD", 0.0, 100.0);
        let overbought = r.fraction("RSI_OVERBOUGHT", 0.0, 100.0);
        if let (Some(lo), Some(hi)) = (oversold, overbought)
            && lo >= hi
        {
            r.problem(
                "RSI_OVERSOLD",
                format!("{lo} must be below RSI_OVERBOUGHT ({hi})"),
            );
        }
        let long_only = r.parsed::<bool>("LONG_ONLY", "true or false");
        let stop_loss = r.price("STOP_LOSS");
        let take_profit = r.price("TAKE_PROFIT");
        let order_volume = r
            .text("ORDER_VOLUME")
            .and_then(|t| match Volume::parse_units(&t) {
                Ok(v) if v.is_positive() => Some(v),
                Ok(_) => {
                    r.problem("ORDER_VOLUME", "must be positive");
                    None
                }
                Err(e) => {
                    r.problem("ORDER_VOLUME", e.to_string());
                    None
                }
            });
        let risk_per_trade = if r.text("RISK_PER_TRADE").is_some() {
            r.fraction("RISK_PER_TRADE", 0.0, 0.1)
        } else {
            None
        };
        let daily_loss_limit = r.fraction("DAILY_LOSS_LIMIT", 0.0, 1.0);
        let max_drawdown = r.fraction("MAX_DRAWDOWN", 0.0, 1.0);
        let sentiment_veto = r.within("SENTIMENT_VETO", 0.0, 1.0);
        let sentiment_policy = match r.text("SENTIMENT_POLICY") {
            None => Some(SentimentPolicySetting::Ignore),
            Some(text) => SentimentPolicySetting::parse(&text).or_else(|| {
                r.problem(
                    "SENTIMENT_POLICY",
                    format!("{text:?} is not ignore or stand_aside"),
                );
                None
            }),
        };
        let sentiment_max_age_secs = r.checked("SENTIMENT_MAX_AGE", SECONDS, |s| {
            at_least_most(*s, 1, u64::MAX, "must be at least 1 second")
        });
        let refresh_secs = r.checked("SENTIMENT_REFRESH", SECONDS, |s| {
            at_least_most(
                *s,
                60,
                u64::MAX,
                "must be at least 60 seconds (API cost and rate limits)",
            )
        });
        let mut sources = Vec::new();
        for name in r.list("SENTIMENT_SOURCES") {
            match name.to_ascii_lowercase().as_str() {
                "perplexity" => sources.push(SentimentSourceKind::Perplexity),
                "nitter" => sources.push(SentimentSourceKind::Nitter),
                "x" => sources.push(SentimentSourceKind::X),
                other => r.problem(
                    "SENTIMENT_SOURCES",
                    format!("{other:?} is not perplexity, nitter or x"),
                ),
            }
        }
        let nitter_instances = r.list("NITTER_INSTANCES");
        for url in &nitter_instances {
            if !url.starts_with("https://") {
                let msg = format!("{url:?} must be an https:// URL");
                r.problem("NITTER_INSTANCES", msg);
            }
        }
        let nitter_queries = r.list("NITTER_QUERIES");
        if nitter_queries.iter().any(|q| q.chars().count() > 200) {
            r.problem(
                "NITTER_QUERIES",
                "each query must be at most 200 characters",
            );
        }
        let perplexity_base_url = r.https_url("PERPLEXITY_BASE_URL");
        let x_base_url = r.https_url("X_API_BASE_URL");
        let sentiment_ca_file = r.file("SENTIMENT_CA_FILE");
        let database_url = r.text("DATABASE_URL").unwrap_or_default();
        if let Err(problem) = check_database_url(&database_url) {
            r.problem("DATABASE_URL", problem);
        }
        let bind_ip = r.parsed::<IpAddr>("BIND_ADDRESS", "an IP address");
        let http_port = r.parsed::<u16>("PORT", "a port number");
        let log_format = match r.text("LOG_FORMAT").as_deref() {
            Some("auto") | None => LogFormat::Auto,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                r.problem(
                    "LOG_FORMAT",
                    format!("{other:?} is not auto, json or pretty"),
                );
                LogFormat::Auto
            }
        };
        let log_filter = r.text("RUST_LOG").unwrap_or_else(|| "info".to_owned());
        // The parser the logger itself uses, so a filter passing here never fails at start-up.
        if let Err(e) = observability::parse_filter(Some(&log_filter)) {
            r.problem("RUST_LOG", e.to_string());
        }
        let label_prefix = LabelPrefix::new(r.text("LABEL_PREFIX").unwrap_or_default())
            .map_err(|_| {
                r.problem(
                    "LABEL_PREFIX",
                    "must be 1 to 20 ASCII letters, digits, '-' or '_'",
                );
            })
            .ok();

        let notify = notify_settings(r);

        // Every value below parsed, or its problem is recorded: `?` meets a `None` only then.
        Some(Config {
            broker: BrokerEndpoint {
                env,
                host,
                host_set,
                port,
                ca_file,
                simulator_clock,
            },
            symbol_candidates,
            strategy: StrategySettings {
                timeframe: timeframe?,
                rsi_period: rsi_period?,
                oversold: oversold?,
                overbought: overbought?,
                long_only: long_only?,
                stop_loss: stop_loss?,
                take_profit: take_profit?,
                sentiment_veto: sentiment_veto?,
                sentiment_policy: sentiment_policy?,
                sentiment_max_age_secs: sentiment_max_age_secs?,
            },
            risk: RiskSettings {
                order_volume: order_volume?,
                risk_per_trade,
                daily_loss_limit: daily_loss_limit?,
                max_drawdown: max_drawdown?,
            },
            sentiment: SentimentSettings {
                sources,
                refresh_secs: refresh_secs?,
                nitter_instances,
                nitter_queries,
                perplexity_base_url: perplexity_base_url?,
                x_base_url: x_base_url?,
                ca_file: sentiment_ca_file,
            },
            database_url,
            http_bind: SocketAddr::new(bind_ip?, http_port?),
            log_format,
            log_filter,
            label_prefix: label_prefix?,
            notify: notify?,
        })
    }
}

/// What a count of seconds is called in a parse error.
const SECONDS: &str = "a number of seconds";

/// `Ok` when `low <= value <= high`, else the setting's `problem`.
fn at_least_most(
    value: u64,
    low: u64,
    high: u64,
    problem: &'static str,
) -> Result<(), &'static str> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(problem)
    }
}

/// The notification settings; `None` when one of them is invalid (the problem is recorded).
fn notify_settings(r: &mut Reader<'_>) -> Option<NotifySettings> {
    let mut events_off = std::collections::BTreeSet::new();
    for name in r.list("NOTIFY_EVENTS_OFF") {
        match notify::NotificationKind::parse(&name) {
            Some(kind) => {
                events_off.insert(kind);
            }
            None => {
                let known: Vec<&str> = notify::NotificationKind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect();
                r.problem(
                    "NOTIFY_EVENTS_OFF",
                    format!("{name:?} is not one of {}", known.join(", ")),
                );
            }
        }
    }
    let disconnect_after_secs = r.checked("NOTIFY_DISCONNECT_AFTER", SECONDS, |s| {
        at_least_most(*s, 1, u64::MAX, "must be at least 1 second")
    });
    let min_interval_secs = r.checked("NOTIFY_MIN_INTERVAL", SECONDS, |s| {
        at_least_most(*s, 0, 3_600, "must be from 0 to 3600 seconds")
    });
    let telegram_base_url = r.service_url("TELEGRAM_API_BASE_URL");
    let discord_base_url = r.service_url("DISCORD_BASE_URL");
    let slack_base_url = r.service_url("SLACK_BASE_URL");
    Some(NotifySettings {
        events_off,
        disconnect_after_secs: disconnect_after_secs?,
        min_interval_secs: min_interval_secs?,
        telegram_base_url: telegram_base_url?,
        discord_base_url: discord_base_url?,
        slack_base_url: slack_base_url?,
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
fn check_database_url(url: &str) -> Result<(), String> {
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
        refused(&[("RSI_PERIOD", "1")], "RSI_PERIOD", "2 and 500");
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

    /// The README states each range in the setting's description; the validation above
    /// enforces exactly those.
    #[test]
    fn documented_ranges_are_in_the_settings_table() {
        let doc = |name: &str| {
            crate::settings::SETTINGS
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.doc)
                .unwrap_or_default()
        };
        assert!(doc("SENTIMENT_VETO").contains("0 to 1"));
        assert!(doc("RSI_PERIOD").contains("2 to 500"));
        assert!(doc("RISK_PER_TRADE").contains("at most 0.1"));
        assert!(doc("SENTIMENT_REFRESH").contains("at least 60"));
        assert!(doc("CTRADER_PORT").contains("1 to 65535"));
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

    /// The names validation reads when everything is at its default.
    fn names_read(pairs: &[(&str, &str)]) -> std::collections::BTreeSet<String> {
        let mut problems = Vec::new();
        let raw = RawSettings::layer(None, &env_of(pairs), &mut problems);
        let mut r = Reader::new(&raw);
        Config::read(&mut r);
        r.read.into_inner()
    }

    /// Read by `auth` alone (its own URLs), not by the trading configuration.
    const READ_BY_AUTH: [&str; 3] = [
        "CTRADER_REDIRECT_URI",
        "CTRADER_AUTH_URL",
        "CTRADER_TOKEN_URL",
    ];

    #[test]
    fn every_declared_setting_is_parsed() {
        let read = names_read(&[]);
        let auth = include_str!("commands/auth.rs");
        for spec in crate::settings::SETTINGS {
            if READ_BY_AUTH.contains(&spec.name) {
                assert!(
                    auth.contains(&format!("url(\"{}\")", spec.name)),
                    "{} is declared for auth, which does not read it",
                    spec.name
                );
            } else {
                assert!(
                    read.contains(spec.name),
                    "{} is declared but never parsed",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn every_parsed_setting_is_declared() {
        let declared: Vec<&str> = crate::settings::SETTINGS.iter().map(|s| s.name).collect();
        // Every optional branch taken too (a live host with a CA, a risk fraction, sources).
        let read = names_read(&[
            ("CTRADER_ENV", "live"),
            ("CTRADER_HOST", "127.0.0.1"),
            ("RISK_PER_TRADE", "0.01"),
            ("SIMULATOR_CLOCK", "1,1,1"),
            ("SENTIMENT_SOURCES", "perplexity,nitter,x"),
        ]);
        for name in &read {
            assert!(
                declared.contains(&name.as_str()),
                "{name} is parsed but not in the settings table"
            );
        }
        assert!(read.len() + READ_BY_AUTH.len() >= declared.len());
    }
}

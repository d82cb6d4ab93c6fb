//! The bot's typed configuration and credentials, validated all at once.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use domain::{Price, Secret, Timeframe, Volume};

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub label_prefix: String,
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
}

impl Reader<'_> {
    fn text(&self, name: &str) -> Option<String> {
        self.raw.get(name).map(|v| v.trim().to_owned())
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
        let mut r = Reader {
            raw,
            problems: Vec::new(),
        };
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
            .parsed::<u16>("CTRADER_PORT", "a port number")
            .unwrap_or(5035);
        let ca_file = r.text("CTRADER_CA_FILE").map(PathBuf::from);
        if ca_file.is_some() && is_official_host(&host) {
            r.problem(
                "CTRADER_CA_FILE",
                format!("a private CA is refused for the official cTrader host {host}"),
            );
        }
        if let Some(path) = ca_file.as_ref().filter(|p| !p.is_file()) {
            r.problem(
                "CTRADER_CA_FILE",
                format!("{} is not a readable file", path.display()),
            );
        }
        let symbol_candidates = r.list("SYMBOL_CANDIDATES");
        if symbol_candidates.is_empty() {
            r.problem("SYMBOL_CANDIDATES", "needs at least one symbol name");
        }
        let timeframe = r.parsed::<Timeframe>("TIMEFRAME", "one of M1, M5, M15, M30, H1, H4, D1");
        let rsi_period = r.parsed::<usize>("RSI_PERIOD", "a whole number");
        if rsi_period.is_some_and(|p| !(2..=500).contains(&p)) {
            r.problem("RSI_PERIOD", "must be between 2 and 500");
        }
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
        let sentiment_veto = r.fraction("SENTIMENT_VETO", 0.0, 2.0);
        let sentiment_policy = match r.text("SENTIMENT_POLICY").as_deref() {
            Some("ignore") | None => Some(SentimentPolicySetting::Ignore),
            Some("stand_aside") => Some(SentimentPolicySetting::StandAside),
            Some(other) => {
                r.problem(
                    "SENTIMENT_POLICY",
                    format!("{other:?} is not ignore or stand_aside"),
                );
                None
            }
        };
        let sentiment_max_age_secs = r.parsed::<u64>("SENTIMENT_MAX_AGE", "a number of seconds");
        let refresh_secs = r.parsed::<u64>("SENTIMENT_REFRESH", "a number of seconds");
        if refresh_secs.is_some_and(|s| s < 60) {
            r.problem(
                "SENTIMENT_REFRESH",
                "must be at least 60 seconds (API cost and rate limits)",
            );
        }
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
        let database_url = r.text("DATABASE_URL").unwrap_or_default();
        if database_url.is_empty() {
            r.problem("DATABASE_URL", "must name a SQLite database");
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
        let label_prefix = r.text("LABEL_PREFIX").unwrap_or_default();
        if label_prefix.is_empty()
            || label_prefix.len() > 20
            || !label_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            r.problem(
                "LABEL_PREFIX",
                "must be 1 to 20 ASCII letters, digits, '-' or '_'",
            );
        }

        let problems = r.problems;
        let (
            Some(timeframe),
            Some(rsi_period),
            Some(oversold),
            Some(overbought),
            Some(long_only),
            Some(stop_loss),
            Some(take_profit),
            Some(order_volume),
            Some(daily_loss_limit),
            Some(max_drawdown),
            Some(sentiment_veto),
            Some(sentiment_policy),
            Some(sentiment_max_age_secs),
            Some(refresh_secs),
            Some(bind_ip),
            Some(http_port),
        ) = (
            timeframe,
            rsi_period,
            oversold,
            overbought,
            long_only,
            stop_loss,
            take_profit,
            order_volume,
            daily_loss_limit,
            max_drawdown,
            sentiment_veto,
            sentiment_policy,
            sentiment_max_age_secs,
            refresh_secs,
            bind_ip,
            http_port,
        )
        else {
            return Err(ConfigErrors(problems));
        };
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        Ok(Config {
            broker: BrokerEndpoint {
                env,
                host,
                host_set,
                port,
                ca_file,
            },
            symbol_candidates,
            strategy: StrategySettings {
                timeframe,
                rsi_period,
                oversold,
                overbought,
                long_only,
                stop_loss,
                take_profit,
                sentiment_veto,
                sentiment_policy,
                sentiment_max_age_secs,
            },
            risk: RiskSettings {
                order_volume,
                risk_per_trade,
                daily_loss_limit,
                max_drawdown,
            },
            sentiment: SentimentSettings {
                sources,
                refresh_secs,
                nitter_instances,
                nitter_queries,
            },
            database_url,
            http_bind: SocketAddr::new(bind_ip, http_port),
            log_format,
            log_filter,
            label_prefix,
        })
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
}

//! Where non-secret settings come from: defaults, an optional TOML file, then the environment.
//!
//! Every setting has one name: the environment variable (e.g. `RSI_PERIOD`), whose lower-case form
//! is its key in the TOML file (`rsi_period = 14`). The environment wins over the file. The table
//! below is the single source for `check-config`, validation and the README's settings table.

use std::collections::BTreeMap;

pub use crate::setting_kind::Kind;

/// One documented setting.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    /// Environment variable name (upper case); the TOML key is its lower-case form.
    pub name: &'static str,
    /// Default value as text, when the setting has one.
    pub default: Option<&'static str>,
    /// What values it takes: the one parser and range validation uses.
    pub kind: Kind,
    /// What it means, for `--help`, `check-config` and the README.
    pub doc: &'static str,
    /// What a blank value means.
    pub blank: Blank,
}

/// What a setting set blank (empty or spaces) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blank {
    /// Unset when it has no default; named as empty when it has one (a value was meant).
    Named,
    /// Its default.
    Default,
    /// A value its kind reads: an empty list, or a problem the kind names.
    Read,
}

const fn spec(
    name: &'static str,
    default: Option<&'static str>,
    kind: Kind,
    doc: &'static str,
) -> SettingSpec {
    SettingSpec {
        name,
        default,
        kind,
        doc,
        blank: Blank::Named,
    }
}

/// A setting whose blank value means its default.
const fn blank_default(
    name: &'static str,
    default: &'static str,
    kind: Kind,
    doc: &'static str,
) -> SettingSpec {
    SettingSpec {
        name,
        default: Some(default),
        kind,
        doc,
        blank: Blank::Default,
    }
}

/// A setting whose blank value its kind reads (an empty list, or a problem it names).
const fn blank_read(
    name: &'static str,
    default: &'static str,
    kind: Kind,
    doc: &'static str,
) -> SettingSpec {
    SettingSpec {
        name,
        default: Some(default),
        kind,
        doc,
        blank: Blank::Read,
    }
}

/// A whole number of seconds, at least `low`.
const fn seconds(low: u64, high: u64) -> Kind {
    Kind::Whole {
        low,
        high,
        unit: "seconds",
    }
}

/// A port; `low` is 0 where 0 picks a free one.
const fn port(low: u64) -> Kind {
    Kind::Whole {
        low,
        high: 65_535,
        unit: "",
    }
}

/// The notification kinds' names, in the order `notify` lists them.
pub const NOTIFICATION_KINDS: [&str; notify::NotificationKind::ALL.len()] = {
    let mut names = [""; notify::NotificationKind::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = notify::NotificationKind::ALL[i].as_str();
        i += 1;
    }
    names
};

/// Every non-secret setting the bot understands.
pub const SETTINGS: &[SettingSpec] = &[
    spec(
        "CTRADER_ENV",
        None,
        Kind::Choice(&["demo", "live"]),
        "demo or live; when set, the account's kind (the broker's isLive) must agree; unset: the account decides",
    ),
    spec(
        "CTRADER_HOST",
        None,
        Kind::Host,
        "cTrader host; defaults to the official host of CTRADER_ENV or of the account's kind; any other host must be localhost or a loopback or private IP address, and needs CTRADER_CA_FILE (a simulator)",
    ),
    blank_default(
        "CTRADER_PORT",
        "5035",
        port(1),
        "cTrader Protobuf port (1 to 65535)",
    ),
    spec(
        "CTRADER_REDIRECT_URI",
        None,
        Kind::AuthUrl,
        "`auth`: the redirect URI registered for the Open API application (http://127.0.0.1:PORT/... lets `auth --listen` catch the code)",
    ),
    blank_default(
        "CTRADER_AUTH_URL",
        "https://id.ctrader.com/my/settings/openapi/grantingaccess/",
        Kind::AuthUrl,
        "`auth`: where a person grants the application access",
    ),
    blank_default(
        "CTRADER_TOKEN_URL",
        "https://openapi.ctrader.com/apps/token",
        Kind::AuthUrl,
        "`auth`: the token endpoint the code is exchanged at (http only to this machine, for a local mock)",
    ),
    spec(
        "CTRADER_CA_FILE",
        None,
        Kind::File,
        "PEM file of a private CA to trust in addition to the public roots (simulators only; refused for the official hosts)",
    ),
    spec(
        "SIMULATOR_CLOCK",
        None,
        Kind::SimulatorClock,
        "an accelerated simulator's clock as SIM_MS,WALL_MS,SPEED (simulate writes it to client.env): the bot keeps time as the simulator does, and its waits before asking again (reconnection, a session's new start) keep the simulator's pace, 10 ms at least (simulators only; refused for the official hosts)",
    ),
    blank_read(
        "SYMBOL_CANDIDATES",
        "PALMOIL,FCPO,CPO",
        Kind::List {
            min: 1,
            max_chars: usize::MAX,
        },
        "symbol names to look up, in order (comma-separated)",
    ),
    spec(
        "TIMEFRAME",
        Some("M15"),
        Kind::Timeframe,
        "bar timeframe: M1, M5, M15, M30, H1, H4 or D1",
    ),
    spec(
        "RSI_PERIOD",
        Some("14"),
        Kind::Whole {
            low: 2,
            high: 500,
            unit: "",
        },
        "RSI period in bars (2 to 500)",
    ),
    spec(
        "RSI_OVERSOLD",
        Some("30"),
        Kind::Fraction {
            low: 0.0,
            high: 100.0,
        },
        "RSI level below which a long entry is considered (above 0, at most 100, below RSI_OVERBOUGHT)",
    ),
    spec(
        "RSI_OVERBOUGHT",
        Some("70"),
        Kind::Fraction {
            low: 0.0,
            high: 100.0,
        },
        "RSI level above which a short entry is considered (above 0, at most 100)",
    ),
    spec(
        "LONG_ONLY",
        Some("false"),
        Kind::Flag,
        "true: never open short positions",
    ),
    spec(
        "STOP_LOSS",
        Some("40"),
        Kind::Distance,
        "stop-loss distance from the fill, in price units (MYR/t)",
    ),
    spec(
        "TAKE_PROFIT",
        Some("80"),
        Kind::Distance,
        "take-profit distance from the fill, in price units (MYR/t)",
    ),
    spec(
        "ORDER_VOLUME",
        Some("1"),
        Kind::Units,
        "fixed order size in units, above 0 (used when RISK_PER_TRADE is not set)",
    ),
    spec(
        "RISK_PER_TRADE",
        None,
        Kind::Fraction {
            low: 0.0,
            high: 0.1,
        },
        "fraction of equity, in the account's currency, that a stop-loss hit may lose, the round trip's commission and one spread of slippage included (above 0, at most 0.1, e.g. 0.01); overrides ORDER_VOLUME",
    ),
    spec(
        "DAILY_LOSS_LIMIT",
        Some("0.03"),
        Kind::Fraction {
            low: 0.0,
            high: 1.0,
        },
        "fraction of the day's starting equity (account currency, UTC day by broker time) whose loss engages the kill switch (above 0, at most 1)",
    ),
    spec(
        "MAX_DRAWDOWN",
        Some("0.10"),
        Kind::Fraction {
            low: 0.0,
            high: 1.0,
        },
        "fraction of peak equity (account currency) whose loss engages the kill switch (above 0, at most 1)",
    ),
    spec(
        "SENTIMENT_VETO",
        Some("0.3"),
        Kind::Within {
            low: 0.0,
            high: 1.0,
        },
        "a sentiment score opposing a trade by more than this vetoes the entry (0 to 1; 1 never vetoes)",
    ),
    blank_default(
        "SENTIMENT_POLICY",
        "ignore",
        Kind::Choice(&["ignore", "stand_aside"]),
        "when sentiment is stale or unavailable: ignore or stand_aside (stand-aside is accepted too)",
    ),
    spec(
        "SENTIMENT_MAX_AGE",
        Some("7200"),
        seconds(1, u64::MAX),
        "seconds after which a sentiment reading is stale (at least 1)",
    ),
    spec(
        "SENTIMENT_REFRESH",
        Some("900"),
        seconds(60, u64::MAX),
        "seconds between sentiment refreshes (at least 60)",
    ),
    blank_read(
        "SENTIMENT_SOURCES",
        "perplexity,nitter",
        Kind::ListOf(&["perplexity", "nitter", "x"]),
        "sentiment sources in fallback order: perplexity, nitter, x (comma-separated)",
    ),
    spec(
        "NITTER_INSTANCES",
        Some(""),
        Kind::HttpsList,
        "Nitter base URLs for the RSS fallback (comma-separated, https)",
    ),
    blank_read(
        "NITTER_QUERIES",
        "palm oil,CPO futures,FCPO",
        Kind::List {
            min: 0,
            max_chars: 200,
        },
        "Nitter search queries (comma-separated, 200 characters at most each)",
    ),
    spec(
        "PERPLEXITY_BASE_URL",
        Some("https://api.perplexity.ai"),
        Kind::HttpsUrl,
        "root of Perplexity's API (https; e.g. an API gateway); its host joins the network allow-list",
    ),
    spec(
        "X_API_BASE_URL",
        Some("https://api.x.com"),
        Kind::HttpsUrl,
        "root of the X API (https; e.g. an API gateway); its host joins the network allow-list",
    ),
    spec(
        "SENTIMENT_CA_FILE",
        None,
        Kind::File,
        "PEM file of a private CA the sentiment sources trust in addition to the public roots (an API gateway or a test mock)",
    ),
    blank_read(
        "DATABASE_URL",
        "sqlite://./data/palm-oil-bot-{env}-{account}.db",
        Kind::Database,
        "SQLite database: sqlite://PATH or a file path (no other scheme); {env} (demo or live) and {account} (CTRADER_ACCOUNT_ID) are filled in, so environments and accounts never share a store",
    ),
    spec(
        "BIND_ADDRESS",
        Some("127.0.0.1"),
        Kind::Ip,
        "address of the metrics, health and dashboard server",
    ),
    spec(
        "PORT",
        Some("9184"),
        port(0),
        "port of the metrics, health and dashboard server (0 to 65535; 0 picks a free port)",
    ),
    blank_default(
        "LOG_FORMAT",
        "auto",
        Kind::Choice(&["auto", "json", "pretty"]),
        "auto (readable on a terminal, JSON otherwise), json or pretty",
    ),
    blank_default(
        "RUST_LOG",
        "info",
        Kind::LogFilter,
        "log level filter, e.g. info or palm_oil_bot=debug,info",
    ),
    spec(
        "NOTIFY_EVENTS_OFF",
        Some(""),
        Kind::ListOf(&NOTIFICATION_KINDS),
        "notification kinds never sent (comma-separated): order_filled, position_closed, order_rejected, kill_switch_engaged, kill_switch_released, disconnected, reconnected, reconciliation, token_refreshed, token_near_expiry, token_invalid, margin_call, sentiment_unavailable, started, stopped, daily_summary; empty: all are sent",
    ),
    spec(
        "NOTIFY_DISCONNECT_AFTER",
        Some("120"),
        seconds(1, u64::MAX),
        "seconds the broker link must stay down before it is notified (at least 1); the recovery after such an outage is notified too",
    ),
    spec(
        "NOTIFY_MIN_INTERVAL",
        Some("1"),
        seconds(0, 3_600),
        "least seconds between two messages to one destination (0 to 3600); messages about the same thing merge while they wait",
    ),
    spec(
        "TELEGRAM_API_BASE_URL",
        Some("https://api.telegram.org"),
        Kind::ServiceUrl,
        "root of Telegram's Bot API (https, or http to this machine for a local mock); its host joins the network allow-list when TELEGRAM_BOT_TOKEN is set",
    ),
    spec(
        "DISCORD_BASE_URL",
        Some("https://discord.com"),
        Kind::ServiceUrl,
        "where DISCORD_WEBHOOK_URL's path is posted (https, or http to this machine for a local mock); its host joins the network allow-list when the webhook is set",
    ),
    spec(
        "SLACK_BASE_URL",
        Some("https://hooks.slack.com"),
        Kind::ServiceUrl,
        "where SLACK_WEBHOOK_URL's path is posted (https, or http to this machine for a local mock); its host joins the network allow-list when the webhook is set",
    ),
    spec(
        "ORDER_ARRIVAL_GRACE",
        Some("30"),
        seconds(0, 600),
        "seconds an order sent just before a restart or a dropped link may show no trace at the broker before it is concluded never to have arrived (0 to 600); trading waits meanwhile, because it may still fill",
    ),
    blank_read(
        "LABEL_PREFIX",
        "pob",
        Kind::Label,
        "prefix of the order labels that mark positions as this bot's",
    ),
];

/// Names of the secrets, which may come only from the environment.
pub const SECRET_NAMES: &[&str] = &[
    "CTRADER_CLIENT_ID",
    "CTRADER_CLIENT_SECRET",
    "CTRADER_ACCESS_TOKEN",
    "CTRADER_REFRESH_TOKEN",
    "PERPLEXITY_API_KEY",
    "X_BEARER_TOKEN",
    "NOTIFY_WEBHOOK_URL",
    "NOTIFY_WEBHOOK_TOKEN",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "DISCORD_WEBHOOK_URL",
    "SLACK_WEBHOOK_URL",
];

/// The environment variable `--config` also reads its file from.
pub const CONFIG_ENV: &str = "PALM_OIL_BOT_CONFIG";

/// `--help`'s list of every setting with its environment variable, default and meaning, and of
/// the secrets (environment only).
pub fn help_text() -> String {
    let mut out = String::from(
        "Settings (each from its environment variable, or from --config FILE under its lower-case name; the environment wins):\n",
    );
    for s in SETTINGS {
        let default = match s.default {
            Some("") => " (default empty)".to_owned(),
            Some(d) => format!(" (default {d})"),
            None => String::new(),
        };
        out.push_str(&format!("  {}{default}\n      {}\n", s.name, s.doc));
    }
    out.push_str("\nSecrets (environment only, never from the file): ");
    out.push_str(&SECRET_NAMES.join(", "));
    out.push('\n');
    out
}

/// Where a setting's effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The TOML file given with `--config`.
    File,
    /// An environment variable.
    Environment,
}

impl Origin {
    /// Lower-case name for `check-config`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::File => "file",
            Origin::Environment => "environment",
        }
    }
}

/// A problem with one setting; never carries a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    /// The setting's name (environment variable name, or the file).
    pub setting: String,
    /// What is wrong, in words.
    pub problem: String,
}

impl SettingProblem {
    /// A problem with `setting`.
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> SettingProblem {
        SettingProblem {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

/// The raw text of every setting after layering defaults, file and environment.
#[derive(Debug, Clone, Default)]
pub struct RawSettings {
    values: BTreeMap<&'static str, (String, Origin)>,
}

impl RawSettings {
    /// Layers defaults, the TOML file text (if any) and the environment; problems found in the
    /// file (unknown keys, secrets, unsupported values) are appended to `problems`.
    pub fn layer(
        file: Option<(&str, &str)>,
        env: &dyn Fn(&str) -> Option<String>,
        problems: &mut Vec<SettingProblem>,
    ) -> RawSettings {
        let mut values = BTreeMap::new();
        for s in SETTINGS {
            if let Some(d) = s.default {
                values.insert(s.name, (d.to_owned(), Origin::Default));
            }
        }
        if let Some((path, text)) = file {
            for (key, value) in parse_file(path, text, problems) {
                values.insert(key, (value, Origin::File));
            }
        }
        for s in SETTINGS {
            if let Some(v) = env(s.name) {
                values.insert(s.name, (v, Origin::Environment));
            }
        }
        RawSettings { values }
    }

    /// The effective text of a setting, trimmed, if it has one; a blank one is its default when
    /// the table says a blank means that ([`Blank::Default`]).
    pub fn get(&self, name: &str) -> Option<&str> {
        let text = self
            .values
            .get(name)
            .map(|(v, _)| v.trim())
            .filter(|v| !v.is_empty());
        text.or_else(|| {
            SETTINGS
                .iter()
                .find(|s| s.name == name && s.blank == Blank::Default)
                .and_then(|s| s.default)
        })
    }

    /// Every setting with a value, its text and origin, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str, Origin)> {
        self.values.iter().map(|(k, (v, o))| (*k, v.as_str(), *o))
    }
}

/// Reads a flat TOML table whose keys are lower-case setting names.
fn parse_file(
    path: &str,
    text: &str,
    problems: &mut Vec<SettingProblem>,
) -> Vec<(&'static str, String)> {
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            problems.push(SettingProblem::new(path, format!("is not valid TOML: {e}")));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (key, value) in table {
        let upper = key.to_ascii_uppercase();
        if SECRET_NAMES.contains(&upper.as_str()) {
            problems.push(SettingProblem::new(
                upper,
                format!("is a secret and may only come from the environment, not from {path}"),
            ));
            continue;
        }
        let Some(spec) = SETTINGS.iter().find(|s| s.name == upper) else {
            problems.push(SettingProblem::new(
                key,
                format!("in {path} is not a known setting"),
            ));
            continue;
        };
        match value_text(&value) {
            Some(v) => out.push((spec.name, v)),
            None => problems.push(SettingProblem::new(
                spec.name,
                format!("in {path} must be a string, number, boolean or list of those"),
            )),
        }
    }
    out
}

fn value_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => {
            let parts: Option<Vec<String>> = items.iter().map(value_text).collect();
            parts.map(|p| p.join(","))
        }
        toml::Value::Datetime(_) | toml::Value::Table(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::test_support::env_of;

    #[test]
    fn environment_wins_over_file_over_default() {
        let mut problems = Vec::new();
        let file = "rsi_period = 21\ntimeframe = \"H1\"\nsymbol_candidates = [\"A\", \"B\"]";
        let raw = RawSettings::layer(
            Some(("bot.toml", file)),
            &env_of(&[("RSI_PERIOD", "9")]),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(raw.get("RSI_PERIOD"), Some("9"));
        assert_eq!(raw.get("TIMEFRAME"), Some("H1"));
        assert_eq!(raw.get("SYMBOL_CANDIDATES"), Some("A,B"));
        assert_eq!(raw.get("RSI_OVERSOLD"), Some("30"));
    }

    #[test]
    fn file_problems_name_the_key_and_never_accept_secrets() {
        let mut problems = Vec::new();
        let file = "rsi_perod = 3\nperplexity_api_key = \"pplx-very-secret\"";
        RawSettings::layer(Some(("bot.toml", file)), &env_of(&[]), &mut problems);
        assert_eq!(problems.len(), 2);
        assert!(problems.iter().any(|p| p.setting == "rsi_perod"));
        assert!(problems.iter().any(|p| p.setting == "PERPLEXITY_API_KEY"));
        assert!(!format!("{problems:?}").contains("pplx-very-secret"));
    }

    #[test]
    fn invalid_toml_is_reported() {
        let mut problems = Vec::new();
        RawSettings::layer(
            Some(("bot.toml", "rsi_period = ")),
            &env_of(&[]),
            &mut problems,
        );
        assert_eq!(problems.len(), 1);
        assert!(problems[0].problem.contains("not valid TOML"));
    }
}

#[cfg(test)]
mod readme {
    use super::*;

    /// The README's configuration table is the user's documentation: it must name every setting.
    #[test]
    fn readme_documents_every_setting_and_secret() {
        let readme = include_str!("../../../README.md");
        let plain = |text: &str| text.replace('`', "");
        for s in SETTINGS {
            let row = readme
                .lines()
                .find(|line| line.starts_with(&format!("| `{}` |", s.name)));
            let Some(row) = row else {
                panic!("README lacks {}", s.name);
            };
            // The description `--help` and check-config show, word for word.
            assert!(
                plain(row).contains(&plain(s.doc)),
                "README's row for {} differs from the settings table: {:?}",
                s.name,
                s.doc
            );
        }
        for name in SECRET_NAMES {
            assert!(readme.contains(name), "README lacks {name}");
        }
    }
}

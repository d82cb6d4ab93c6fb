//! `check-config`: run exactly the validation `run` runs before it connects, and print the
//! effective non-secret settings, which secrets are set (names only) and any warning.

use std::path::Path;
use std::process::ExitCode;

use crate::allowlist::NetworkAllowList;
use crate::config::{BrokerCredentials, Config, ConfigErrors};
use crate::notifications::NotifySecrets;
use crate::sentiment_setup::{SentimentSecrets, plan};
use crate::settings::{RawSettings, SECRET_NAMES, SETTINGS, SettingProblem};
use crate::strategy_setup::strategy_setup;

/// Reads the settings (file + environment); every problem is reported at once (exit status 2).
pub fn load_settings(path: Option<&Path>) -> Result<(RawSettings, Config), ConfigErrors> {
    load_settings_from(path, &|name: &str| std::env::var(name).ok())
}

/// Reads the settings from the file and `env` (a command may overlay its flags on the
/// environment); every problem is reported at once.
pub fn load_settings_from(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(RawSettings, Config), ConfigErrors> {
    let mut problems = Vec::new();
    let text = match path {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(SettingProblem::new(
                    "--config",
                    format!("{}: {e}", p.display()),
                ));
                None
            }
        },
        None => None,
    };
    let shown = path.map(|p| p.display().to_string()).unwrap_or_default();
    let raw = RawSettings::layer(
        text.as_deref().map(|t| (shown.as_str(), t)),
        env,
        &mut problems,
    );
    match Config::from_raw(&raw) {
        Ok(config) if problems.is_empty() => Ok((raw, config)),
        Ok(_) => Err(ConfigErrors(problems)),
        Err(ConfigErrors(more)) => {
            problems.extend(more);
            Err(ConfigErrors(problems))
        }
    }
}

/// Everything `run` (and `reconcile`) checked before connecting, ready to use.
#[derive(Debug)]
pub struct TradingSettings {
    /// The raw settings with their origins (for printing).
    pub raw: RawSettings,
    /// Validated settings.
    pub config: Config,
    /// cTrader credentials from the environment.
    pub credentials: BrokerCredentials,
    /// Sentiment keys from the environment.
    pub sentiment: SentimentSecrets,
    /// Notification secrets from the environment.
    pub notify: NotifySecrets,
    /// The hosts connections may go to.
    pub allow: NetworkAllowList,
    /// Set-ups that are valid but probably not what the operator wants (e.g. no usable
    /// sentiment source).
    pub warnings: Vec<String>,
}

/// The one validation of a trading configuration, shared by `run`, `reconcile` and
/// `check-config`: settings (file + `env`), the strategy's own checks, the credentials (names
/// only in any problem), and the broker host against the allow-list. Every problem is named at
/// once; nothing is installed, opened or connected.
pub fn validate_trading(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TradingSettings, ConfigErrors> {
    let settings = load_settings_from(path, env);
    let credentials = BrokerCredentials::from_env(env);
    let notify = NotifySecrets::from_env(env);
    let mut problems = notify
        .as_ref()
        .err()
        .map(|e| e.0.clone())
        .unwrap_or_default();
    if let Ok((_, config)) = &settings
        && let Err(e) = strategy_setup(config)
    {
        problems.push(SettingProblem::new(e.setting, e.reason));
    }
    let (raw, config, credentials) = match (settings, credentials) {
        (Ok((raw, config)), Ok(credentials)) if problems.is_empty() => (raw, config, credentials),
        (settings, credentials) => {
            let mut all = settings.err().map(|e| e.0).unwrap_or_default();
            all.extend(problems);
            all.extend(credentials.err().map(|e| e.0).unwrap_or_default());
            return Err(ConfigErrors(all));
        }
    };
    let notify = notify.unwrap_or_default();
    let sentiment = SentimentSecrets::from_env(env);
    let mut allow = NetworkAllowList::from_config(
        &config,
        sentiment.perplexity_api_key.is_some(),
        sentiment.x_bearer_token.is_some(),
    );
    allow.allow_notifications(&crate::notifications::hosts(&config.notify, &notify));
    if let Err(e) = allow.check(&config.broker.host) {
        return Err(ConfigErrors(vec![SettingProblem::new(
            "CTRADER_HOST",
            e.to_string(),
        )]));
    }
    let warnings = sentiment_warnings(&config, &sentiment, &allow);
    Ok(TradingSettings {
        raw,
        config,
        credentials,
        sentiment,
        notify,
        allow,
        warnings,
    })
}

/// What the configured sentiment chain will lack: a warning when no source is usable (the
/// strategy then runs on its `SENTIMENT_POLICY`), with each source's reason.
fn sentiment_warnings(
    config: &Config,
    secrets: &SentimentSecrets,
    allow: &NetworkAllowList,
) -> Vec<String> {
    match plan(config, secrets, allow) {
        Ok(_) => Vec::new(),
        Err(e) => {
            let consequence = match config.strategy.sentiment_policy {
                crate::config::SentimentPolicySetting::Ignore => {
                    "SENTIMENT_POLICY=ignore: the strategy trades on RSI alone"
                }
                crate::config::SentimentPolicySetting::StandAside => {
                    "SENTIMENT_POLICY=stand_aside: the bot will open no position"
                }
            };
            vec![format!("{e} ({consequence})")]
        }
    }
}

/// Secrets come from the environment only: a `.env` file is never read, and saying so saves an
/// operator from wondering why its values are ignored. Every command that reads settings calls it.
#[allow(clippy::print_stderr)] // a start-up note for the operator's terminal
pub fn warn_about_dotenv() {
    if Path::new(".env").exists() {
        eprintln!(
            "note: a .env file is present but is never read; export its variables in the environment instead"
        );
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // this command's output is the point
/// Runs `check-config`: exit status 0 when valid (warnings on stderr), 2 with every problem
/// listed otherwise.
pub fn run(path: Option<&Path>) -> ExitCode {
    warn_about_dotenv();
    let env = |name: &str| std::env::var(name).ok();
    match validate_trading(path, &env) {
        Ok(checked) => {
            println!("{:<20} {:<40} FROM", "SETTING", "VALUE");
            for spec in SETTINGS {
                let (value, origin) = checked
                    .raw
                    .iter()
                    .find(|(name, _, _)| *name == spec.name)
                    .map_or(("(unset)", "default"), |(_, v, o)| (v, o.as_str()));
                // The host's default depends on CTRADER_ENV: show the one in effect.
                let value = if spec.name == "CTRADER_HOST" && value == "(unset)" {
                    checked.config.broker.host.as_str()
                } else {
                    value
                };
                println!("{:<20} {:<40} {}", spec.name, value, origin);
            }
            println!();
            println!("{:<24} STATE", "SECRET");
            for name in SECRET_NAMES {
                let set = env(name).is_some_and(|v| !v.trim().is_empty());
                println!("{name:<24} {}", if set { "set" } else { "not set" });
            }
            println!("network allow-list: {}", checked.allow);
            let destinations: Vec<&str> =
                crate::notifications::destinations(&checked.config.notify, &checked.notify)
                    .iter()
                    .map(notify::Destination::name)
                    .collect();
            if destinations.is_empty() {
                println!("notifications: none configured (see the README's Alerting section)");
            } else {
                println!("notifications: {}", destinations.join(", "));
            }
            for warning in &checked.warnings {
                eprintln!("warning: {warning}");
            }
            println!("configuration is valid");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::from(crate::runtime::EXIT_CONFIG)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::env_of;

    const CREDENTIALS: [(&str, &str); 4] = [
        ("CTRADER_CLIENT_ID", "id-1"),
        ("CTRADER_CLIENT_SECRET", "secret-value-2"),
        ("CTRADER_ACCESS_TOKEN", "token-value-3"),
        ("CTRADER_ACCOUNT_ID", "44556677"),
    ];

    fn check(extra: &[(&str, &str)]) -> Result<TradingSettings, ConfigErrors> {
        let mut pairs = CREDENTIALS.to_vec();
        pairs.extend_from_slice(extra);
        validate_trading(None, &env_of(&pairs))
    }

    fn named(err: &ConfigErrors) -> Vec<&str> {
        err.0.iter().map(|p| p.setting.as_str()).collect()
    }

    /// Issue 14, report 2: each of these passed check-config and then stopped `run`.
    #[test]
    fn what_run_refuses_check_config_refuses() {
        for (name, value) in [
            ("RUST_LOG", "notalevel==="),
            ("CTRADER_ACCOUNT_ID", "abc"),
            ("CTRADER_PORT", "0"),
            ("SENTIMENT_VETO", "2"),
            ("DATABASE_URL", "postgres://x"),
            ("CTRADER_HOST", "evil.example.com"),
        ] {
            let err = match check(&[(name, value)]) {
                Ok(_) => panic!("{name}={value} passed"),
                Err(e) => e,
            };
            assert!(named(&err).contains(&name), "{name}: {err}");
        }
    }

    #[test]
    fn missing_secrets_are_named_never_shown() {
        let err = validate_trading(
            None,
            &env_of(&[("CTRADER_CLIENT_SECRET", "secret-value-2")]),
        )
        .unwrap_err();
        let text = err.to_string();
        for name in [
            "CTRADER_CLIENT_ID",
            "CTRADER_ACCESS_TOKEN",
            "CTRADER_ACCOUNT_ID",
        ] {
            assert!(text.contains(name), "{text}");
        }
        assert!(!text.contains("secret-value-2"), "{text}");
    }

    #[test]
    fn settings_and_credential_problems_come_together() {
        let err = validate_trading(None, &env_of(&[("TIMEFRAME", "M2")])).unwrap_err();
        let names = named(&err);
        assert!(names.contains(&"TIMEFRAME") && names.contains(&"CTRADER_CLIENT_ID"));
    }

    #[test]
    fn no_usable_sentiment_source_is_a_warning_saying_what_follows() {
        let checked = check(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checked.warnings.len(), 1, "{:?}", checked.warnings);
        let w = &checked.warnings[0];
        assert!(w.contains("no usable sentiment source"), "{w}");
        assert!(w.contains("PERPLEXITY_API_KEY is not set"), "{w}");
        assert!(w.contains("RSI alone"), "{w}");
        let stand_aside = check(&[("SENTIMENT_POLICY", "stand_aside")]).unwrap();
        assert!(stand_aside.warnings[0].contains("open no position"));
        let usable = check(&[("PERPLEXITY_API_KEY", "pplx-key")]).unwrap();
        assert!(usable.warnings.is_empty(), "{:?}", usable.warnings);
    }
}

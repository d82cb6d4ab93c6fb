//! `palm-oil-bot run` refusing to start: missing secrets, bad settings, an unreachable broker and
//! a private CA for an official host. Each gives the documented exit status and a message that
//! names the problem, and no secret's value ever reaches the output.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::Bot;

const SECRET: &str = "cs-SECRET-MARKER-51d0a7";
const TOKEN: &str = "at-TOKEN-MARKER-9e3b44";

/// Runs `palm-oil-bot run` in `dir` with exactly `env`; its exit code and standard error.
fn run(dir: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut bot = Bot::spawn(dir, &["run"], &env);
    let status = bot.wait_exit(Duration::from_secs(60));
    let text: Vec<String> = bot.lines().into_iter().map(|l| l.raw).collect();
    (status.code(), text.join("\n"))
}

fn base(db: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", format!("sqlite://{db}")),
        ("PORT", "0".to_owned()),
        ("SENTIMENT_SOURCES", String::new()),
    ]
}

fn with<'a>(
    base: &'a [(&'static str, String)],
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(more);
    env
}

const CREDENTIALS: &[(&str, &str)] = &[
    ("CTRADER_CLIENT_ID", "client-id-1234"),
    ("CTRADER_CLIENT_SECRET", SECRET),
    ("CTRADER_ACCESS_TOKEN", TOKEN),
    ("CTRADER_ACCOUNT_ID", "44556677"),
];

#[test]
fn missing_secrets_are_named_without_values_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("bot.db");
    let base = base(&db.display().to_string());
    let (code, err) = run(
        dir.path(),
        &with(&base, &[("CTRADER_CLIENT_SECRET", SECRET)]),
    );
    assert_eq!(code, Some(2), "{err}");
    for name in [
        "CTRADER_CLIENT_ID",
        "CTRADER_ACCESS_TOKEN",
        "CTRADER_ACCOUNT_ID",
    ] {
        assert!(err.contains(name), "{name} not named in: {err}");
    }
    assert!(!err.contains(SECRET), "a secret's value was shown: {err}");
    assert!(
        !db.exists() && !db.parent().unwrap().exists(),
        "the store was created"
    );
}

#[test]
fn every_bad_setting_is_named_at_once_with_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let base = base(&dir.path().join("bot.db").display().to_string());
    let mut env = with(&base, CREDENTIALS);
    env.extend_from_slice(&[
        ("TIMEFRAME", "M2"),
        ("RSI_PERIOD", "1"),
        ("STOP_LOSS", "-5"),
        ("CTRADER_HOST", "https://demo.ctraderapi.com"),
    ]);
    let (code, err) = run(dir.path(), &env);
    assert_eq!(code, Some(2), "{err}");
    for name in ["TIMEFRAME", "RSI_PERIOD", "STOP_LOSS", "CTRADER_HOST"] {
        assert!(err.contains(name), "{name} not named in: {err}");
    }
    assert!(!err.contains(SECRET) && !err.contains(TOKEN), "{err}");
}

#[test]
fn a_private_ca_for_an_official_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not used").unwrap();
    let base = base(&dir.path().join("bot.db").display().to_string());
    let mut env = with(&base, CREDENTIALS);
    let ca_text = ca.display().to_string();
    env.extend_from_slice(&[
        ("CTRADER_HOST", "LIVE.ctraderapi.com"),
        ("CTRADER_ENV", "live"),
        ("CTRADER_CA_FILE", ca_text.as_str()),
    ]);
    let (code, err) = run(dir.path(), &env);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("CTRADER_CA_FILE"), "{err}");
    assert!(err.contains("official cTrader host"), "{err}");
}

#[test]
fn an_unreachable_broker_is_a_runtime_failure_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let base = base(&dir.path().join("bot.db").display().to_string());
    let mut env = with(&base, CREDENTIALS);
    // A host on this machine is a simulator's: it needs the simulator's CA.
    let certs = ctrader_sim::generate_certificates(&dir.path().join("certs")).unwrap();
    let ca = certs.ca_cert.display().to_string();
    env.extend_from_slice(&[
        ("CTRADER_HOST", "127.0.0.1"),
        ("CTRADER_PORT", port.as_str()),
        ("CTRADER_CA_FILE", ca.as_str()),
        ("LOG_FORMAT", "json"),
    ]);
    let (code, err) = run(dir.path(), &env);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert!(!err.contains(SECRET) && !err.contains(TOKEN), "{err}");
}

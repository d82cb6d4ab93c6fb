//! `check-config` tells the truth about what `run` will do (issue 14, reports 1, 2, 3, 5, 6): the
//! same validation, secrets named but never shown, warnings for a set-up without sentiment, exit
//! status 2 for every usage or configuration error, and one set of spellings in help and parser.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

const SECRET: &str = "client-secret-VALUE-91ac";
const TOKEN: &str = "access-token-VALUE-3f07";
const PPLX: &str = "pplx-VALUE-5d2e";

/// Longest one run of the binary may take.
const DEADLINE: Duration = Duration::from_secs(120);

fn credentials() -> Vec<(&'static str, String)> {
    vec![
        ("CTRADER_CLIENT_ID", "client-id-1".to_owned()),
        ("CTRADER_CLIENT_SECRET", SECRET.to_owned()),
        ("CTRADER_ACCESS_TOKEN", TOKEN.to_owned()),
        ("CTRADER_ACCOUNT_ID", "44556677".to_owned()),
    ]
}

fn bot(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    cli::run_bot(dir, args, env, DEADLINE)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secret(out: &Output) {
    let all = text(out);
    for secret in [SECRET, TOKEN, PPLX, "VALUE-"] {
        assert!(!all.contains(secret), "{secret} shown:\n{all}");
    }
}

/// Issue 14, reports 1 to 3 and 5: each of these passed check-config; `run` then refused it,
/// created a file named after a server URL, or sent credentials to any host.
#[test]
fn check_config_and_run_refuse_the_same_settings_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("bot.db").display());
    for (name, value) in [
        ("DATABASE_URL", "postgres://x"),
        ("RUST_LOG", "notalevel==="),
        ("CTRADER_ACCOUNT_ID", "abc"),
        ("CTRADER_PORT", "0"),
        ("SENTIMENT_VETO", "2"),
        ("CTRADER_HOST", "evil.example.com"),
        ("CTRADER_HOST", "10.0.0.5"),
    ] {
        let mut env = credentials();
        env.push(("PORT", "0".to_owned()));
        if name != "DATABASE_URL" {
            env.push(("DATABASE_URL", db.clone()));
        }
        env.retain(|(k, _)| *k != name);
        env.push((name, value.to_owned()));
        for command in ["check-config", "run"] {
            let out = bot(dir.path(), &[command], &env);
            let all = text(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command} {name}={value}:\n{all}"
            );
            assert!(all.contains(name), "{command} did not name {name}:\n{all}");
            assert!(!all.contains("configuration is valid"), "{all}");
            assert_no_secret(&out);
        }
    }
    // The host is named, so the operator sees what was refused.
    let mut env = credentials();
    env.push(("CTRADER_HOST", "evil.example.com".to_owned()));
    assert!(text(&bot(dir.path(), &["check-config"], &env)).contains("evil.example.com"));
    // The server URL is named as a scheme, and no file or folder was made of it.
    let mut env = credentials();
    env.push(("DATABASE_URL", "postgres://x".to_owned()));
    assert!(text(&bot(dir.path(), &["run"], &env)).contains("postgres://"));
    let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(made.is_empty(), "run created {made:?}");
}

/// Issue 14, report 2: check-config reported no missing secret.
#[test]
fn missing_secrets_are_named_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let out = bot(
        dir.path(),
        &["check-config"],
        &[("CTRADER_CLIENT_SECRET", SECRET.to_owned())],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    for name in [
        "CTRADER_CLIENT_ID",
        "CTRADER_ACCESS_TOKEN",
        "CTRADER_ACCOUNT_ID",
    ] {
        assert!(all.contains(name), "{name} not named:\n{all}");
    }
    assert_no_secret(&out);
}

/// Issue 14, report 2: nothing warned that with the defaults no sentiment source is usable.
#[test]
fn a_valid_configuration_shows_secret_states_and_warns_without_sentiment() {
    let dir = tempfile::tempdir().unwrap();
    let out = bot(dir.path(), &["check-config"], &credentials());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    let state = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("{name} not listed:\n{stdout}"))
    };
    assert_eq!(state("CTRADER_CLIENT_SECRET"), "set");
    assert_eq!(state("PERPLEXITY_API_KEY"), "not set");
    assert!(
        stderr.contains("warning: no usable sentiment source"),
        "{stderr}"
    );
    assert!(stderr.contains("PERPLEXITY_API_KEY is not set"), "{stderr}");
    assert_no_secret(&out);

    // With a source usable, no warning; the key is listed as set, never shown.
    let mut env = credentials();
    env.push(("PERPLEXITY_API_KEY", PPLX.to_owned()));
    let out = bot(dir.path(), &["check-config"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("api.perplexity.ai"));
    assert_no_secret(&out);
}

/// Issue 14, report 3: a simulator on this machine is accepted only with its CA.
#[test]
fn a_simulator_host_needs_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "placeholder: only its presence is checked here").unwrap();
    let mut env = credentials();
    env.push(("CTRADER_HOST", "localhost".to_owned()));
    let out = bot(dir.path(), &["check-config"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("needs CTRADER_CA_FILE"),
        "{}",
        text(&out)
    );
    env.push(("CTRADER_CA_FILE", ca.display().to_string()));
    let out = bot(dir.path(), &["check-config"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Issue 14, report 5: usage errors exited 1.
#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = bot(dir.path(), &["demo", "--speed", "0"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--speed"), "{}", text(&out));
    let certs = dir.path().join("certs");
    let simulate = [
        "simulate",
        "--listen",
        "127.0.0.1:0",
        "--cert-dir",
        certs.to_str().unwrap(),
        "--duration",
        "1s",
    ];
    for command in [
        &["demo", "--duration", "1s"][..],
        &simulate,
        &["check-config"],
    ] {
        let out = bot(
            dir.path(),
            command,
            &[("RUST_LOG", "notalevel===".to_owned())],
        );
        assert_eq!(out.status.code(), Some(2), "{command:?}: {}", text(&out));
        assert!(text(&out).contains("RUST_LOG"), "{}", text(&out));
    }
}

/// Issue 14, report 6: help said stand-aside, the setting took only stand_aside.
#[test]
fn help_readme_and_parser_agree_on_the_policy_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let help = text(&bot(dir.path(), &["backtest", "--help"], &[]));
    assert!(help.contains("ignore or stand_aside"), "{help}");
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    assert!(readme.contains("ignore or stand_aside"));
    // Both spellings the help mentions are accepted by the setting, wherever it comes from.
    for spelling in ["stand_aside", "stand-aside"] {
        let mut env = credentials();
        env.push(("SENTIMENT_POLICY", spelling.to_owned()));
        let out = bot(dir.path(), &["check-config"], &env);
        assert_eq!(out.status.code(), Some(0), "{spelling}: {}", text(&out));
        let file = dir.path().join("bot.toml");
        std::fs::write(&file, format!("sentiment_policy = \"{spelling}\"\n")).unwrap();
        let out = bot(
            dir.path(),
            &["--config", file.to_str().unwrap(), "check-config"],
            &credentials(),
        );
        assert_eq!(out.status.code(), Some(0), "{spelling}: {}", text(&out));
    }
}

/// Issue 14, reports 9 and 10: the help shows how to get live sentiment in the demo and a
/// simulator set-up that trades within a minute.
#[test]
fn help_shows_the_demo_flag_and_a_simulator_set_up() {
    let dir = tempfile::tempdir().unwrap();
    let demo = text(&bot(dir.path(), &["demo", "--help"], &[]));
    assert!(demo.contains("--live-sentiment"), "{demo}");
    let simulate = text(&bot(dir.path(), &["simulate", "--help"], &[]));
    for needle in [
        "--market-hours always --speed 300",
        "client.env",
        "TIMEFRAME=M1",
        "palm-oil-bot run",
    ] {
        assert!(simulate.contains(needle), "{needle} missing:\n{simulate}");
    }
}

#[test]
fn help_names_every_setting_by_its_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["check-config", "--help"],
    ] {
        let out = bot(dir.path(), args, &[]);
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        for s in bot::settings::SETTINGS {
            assert!(
                help.contains(&format!("  {}", s.name)),
                "{args:?} lacks {}",
                s.name
            );
        }
        for name in bot::settings::SECRET_NAMES {
            assert!(help.contains(name), "{args:?} lacks {name}");
        }
    }
    let top = bot(dir.path(), &["--help"], &[]);
    assert!(String::from_utf8_lossy(&top.stdout).contains("[env: PALM_OIL_BOT_CONFIG=]"));
    // The variable works like the flag: a file that does not exist is named.
    let out = bot(
        dir.path(),
        &["check-config"],
        &[("PALM_OIL_BOT_CONFIG", "no-such.toml".to_owned())],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no-such.toml"), "{}", text(&out));
}

#[test]
fn check_config_names_the_notification_destinations_never_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = credentials();
    env.push((
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T0/B0/VALUE-slack".to_owned(),
    ));
    env.push(("TELEGRAM_BOT_TOKEN", "1:VALUE-telegram".to_owned()));
    env.push(("TELEGRAM_CHAT_ID", "-1001".to_owned()));
    let out = bot(dir.path(), &["check-config"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("notifications: telegram, slack"), "{all}");
    assert!(
        all.contains("api.telegram.org") && all.contains("hooks.slack.com"),
        "{all}"
    );
    assert!(
        all.contains("SLACK_WEBHOOK_URL") && all.contains("set"),
        "{all}"
    );
    assert_no_secret(&out);
    // A token without its chat is a configuration error (exit 2), named without its value.
    env.retain(|(k, _)| *k != "TELEGRAM_CHAT_ID");
    let out = bot(dir.path(), &["run"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("TELEGRAM_CHAT_ID"), "{}", text(&out));
    assert_no_secret(&out);
}

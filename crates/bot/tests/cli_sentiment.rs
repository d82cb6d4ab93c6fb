//! `palm-oil-bot sentiment` as an operator runs it, with no network: the offline replay, the
//! configuration errors, an unreachable source (a closed port on this machine), and the key never
//! shown.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

const MARKER: &str = "pplx-SECRET-MARKER-8c1f2e";

/// Longest any one run of the binary may take before the test fails (and the run is killed).
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// The binary with an empty environment (settings at their defaults) in a scratch directory.
fn bot(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    cli::run_bot(dir, args, env, RUN_DEADLINE)
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn replay_prints_a_reading_without_keys_or_network() {
    let dir = tempfile::tempdir().unwrap();
    let out = bot(dir.path(), &["sentiment", "--replay"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    for label in [
        "source      replay",
        "score       ",
        "confidence  ",
        "items       ",
        "known at    ",
        "summary     ",
    ] {
        assert!(stdout.contains(label), "{label:?} missing from\n{stdout}");
    }
    let score: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("score"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("a numeric score");
    assert!((-1.0..=1.0).contains(&score));
}

#[test]
fn no_usable_source_is_a_configuration_error_naming_each_reason() {
    let dir = tempfile::tempdir().unwrap();
    // Defaults: perplexity then nitter; no key, no Nitter instance.
    let out = bot(dir.path(), &["sentiment"], &[]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("no usable sentiment source"), "{text}");
    assert!(
        text.contains("perplexity skipped: PERPLEXITY_API_KEY is not set"),
        "{text}"
    );
    assert!(
        text.contains("nitter skipped: NITTER_INSTANCES is empty"),
        "{text}"
    );
}

#[test]
fn invalid_settings_exit_2_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = bot(
        dir.path(),
        &["sentiment"],
        &[("SENTIMENT_SOURCES", "perplexity,rss")],
    );
    let text = both(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("SENTIMENT_SOURCES"), "{text}");
    assert!(text.contains("\"rss\""), "{text}");
}

#[test]
fn an_unreachable_source_is_unavailable_with_its_reason_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // A port on this machine that nothing listens on: the connection is refused at once.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let instance = format!("https://127.0.0.1:{port}");
    let out = bot(
        dir.path(),
        &["sentiment"],
        &[
            ("SENTIMENT_SOURCES", "perplexity,nitter"),
            ("NITTER_INSTANCES", &instance),
        ],
    );
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("sentiment unavailable"), "{text}");
    assert!(text.contains("nitter:"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    // The skipped source is mentioned as a note, not silently dropped.
    assert!(text.contains("note: perplexity skipped"), "{text}");
}

#[test]
fn the_api_key_never_appears_in_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let key = [("PERPLEXITY_API_KEY", MARKER)];
    type Run<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let runs: Vec<Run<'_>> = vec![
        // Offline replay with the key set.
        (vec!["sentiment", "--replay"], key.to_vec()),
        // A configuration error while the key is set.
        (vec!["sentiment"], vec![key[0], ("SENTIMENT_REFRESH", "5")]),
        // Perplexity left out of the chain; X listed without a token: no usable source.
        (vec!["sentiment"], vec![key[0], ("SENTIMENT_SOURCES", "x")]),
    ];
    for (args, env) in runs {
        let out = bot(dir.path(), &args, &env);
        let text = both(&out);
        assert!(out.status.code().is_some(), "{text}");
        assert!(!text.contains(MARKER), "{args:?} leaked the key:\n{text}");
        assert!(
            !text.contains("SECRET-MARKER"),
            "{args:?} leaked part of the key:\n{text}"
        );
    }
}

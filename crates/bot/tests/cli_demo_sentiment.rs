//! `demo` is documented "no credentials, no network": a `PERPLEXITY_API_KEY` that happens to be set
//! must not send a request; only `--live-sentiment` asks for one (issue 14, report 9). Perplexity
//! is stood in for by a loopback port that only counts the connections made to it.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cli.rs"]
mod cli;

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

const KEY: &str = "pplx-DEMO-KEY-0c3e9a";
const DEADLINE: Duration = Duration::from_secs(120);

/// A listener that never answers: each connection attempt waits in its backlog to be counted.
struct CountingPort(TcpListener);

impl CountingPort {
    fn bind() -> CountingPort {
        CountingPort(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.0.local_addr().unwrap().port())
    }

    /// Connections made so far (each is accepted and dropped).
    fn connections(&self) -> usize {
        self.0.set_nonblocking(true).unwrap();
        let mut count = 0;
        // Bounded: the backlog holds at most a handful of attempts.
        for _ in 0..1_000 {
            match self.0.accept() {
                Ok(_) => count += 1,
                Err(_) => break,
            }
        }
        count
    }
}

fn demo(dir: &Path, extra: &[&str], env: &[(&str, String)]) -> Output {
    let data = dir.join("data");
    let mut args = vec![
        "demo",
        "--duration",
        "6s",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut env = env.to_vec();
    env.push(("PORT", "0".to_owned()));
    env.push(("LOG_FORMAT", "json".to_owned()));
    cli::run_bot(dir, &args, &env, DEADLINE)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_set_key_sends_nothing_unless_live_sentiment_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let perplexity = CountingPort::bind();
    let env = [
        ("PERPLEXITY_API_KEY", KEY.to_owned()),
        ("PERPLEXITY_BASE_URL", perplexity.url()),
    ];

    let out = demo(dir.path(), &[], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("replayed from the bundled series"),
        "{}",
        text(&out)
    );
    assert_eq!(
        perplexity.connections(),
        0,
        "the offline demo reached Perplexity"
    );

    // Asked for, it does go there (so the count above could have been more than zero).
    let out = demo(dir.path(), &["--live-sentiment"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("from Perplexity"), "{}", text(&out));
    assert!(perplexity.connections() >= 1, "{}", text(&out));
    assert!(!text(&out).contains(KEY), "the key was printed");
}

#[test]
fn live_sentiment_without_a_key_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo(dir.path(), &["--live-sentiment"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("PERPLEXITY_API_KEY"), "{}", text(&out));
    assert!(!dir.path().join("data").exists(), "nothing is created");
}

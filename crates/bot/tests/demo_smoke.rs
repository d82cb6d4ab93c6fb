//! `palm-oil-bot demo` as a new user runs it: the built binary, offline, against its in-process
//! simulator. While it runs its health, metrics and status endpoints answer on the chosen port;
//! it trades within the first minute; it stops cleanly at `--duration`; and its database holds
//! the fills and positions it made. Bounded throughout: a hang fails the test.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/http.rs"]
mod http;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use http::{free_port, get};
use persistence::{PositionQuery, SqliteTradeStore, TradeStore};

const BIN: &str = env!("CARGO_BIN_EXE_palm-oil-bot");
/// How long the demo runs.
const DURATION_SECS: u64 = 40;
/// How long after start the endpoints must be ready.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// How long the demo may take to stop after its duration.
const EXIT_GRACE: Duration = Duration::from_secs(15);

/// The value of the metric line that starts with `series`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Kills the demo (only the process this test started) if the test fails while it runs.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Demo {
    fn wait_for_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not stop within {within:?} after its duration"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn open_store(path: &Path) -> (tokio::runtime::Runtime, SqliteTradeStore) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(SqliteTradeStore::open_path(path))
        .expect("the demo database opens");
    (rt, store)
}

#[test]
fn demo_serves_health_metrics_and_status_trades_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let started = Instant::now();
    let child = Command::new(BIN)
        .env_clear()
        .env("PORT", port.to_string())
        .env("LOG_FORMAT", "json")
        .current_dir(dir.path())
        .args([
            "demo",
            "--duration",
            &format!("{DURATION_SECS}s"),
            "--data-dir",
        ])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut demo = Demo(child);
    // Drain both pipes while it runs, so a full pipe never blocks the bot.
    let mut stderr_pipe = demo.0.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        stderr_pipe.read_to_string(&mut s).unwrap();
        s
    });
    let mut stdout_pipe = demo.0.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        stdout_pipe.read_to_string(&mut s).unwrap();
        s
    });

    // Ready: connected, authenticated, reconciled, quotes fresh, store writable, kill switch off.
    let ready = loop {
        if let Some((200, body)) = get(port, "/readyz") {
            break body;
        }
        assert!(
            started.elapsed() < READY_WITHIN,
            "/readyz did not answer 200 within {READY_WITHIN:?}"
        );
        assert!(
            demo.0.try_wait().unwrap().is_none(),
            "the demo exited before it was ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let readiness: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(readiness["ready"], true, "{ready}");

    let (code, metrics) = get(port, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    assert_eq!(
        metric(&metrics, "palm_oil_bot_broker_connected"),
        Some(1.0),
        "{metrics}"
    );

    let (code, status) = get(port, "/api/status").expect("/api/status answers");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["live"]["symbol"], "PALMOIL", "{status}");
    assert_eq!(status["live"]["reconciled"], true, "{status}");

    // Trades visibly: a filled order shows on /metrics well within the first minute.
    let filled_series = "palm_oil_bot_orders_total{outcome=\"filled\"}";
    let traded_at = loop {
        let metrics = get(port, "/metrics").map(|(_, m)| m).unwrap_or_default();
        if metric(&metrics, filled_series).is_some_and(|f| f >= 1.0) {
            assert!(
                metric(&metrics, "palm_oil_bot_quotes_total").is_some_and(|q| q > 0.0),
                "quotes are counted: {metrics}"
            );
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(DURATION_SECS - 2),
            "no filled order within {DURATION_SECS} s"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    // A second demo on the same folder is refused, naming the first, and empties nothing.
    let second = Command::new(BIN)
        .env_clear()
        .env("PORT", "0")
        .env("LOG_FORMAT", "json")
        .current_dir(dir.path())
        .args(["demo", "--duration", "5s", "--data-dir"])
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .expect("the second demo runs");
    let second_err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{second_err}");
    assert!(
        second_err.contains(&format!("palm-oil-bot demo (pid {}", demo.0.id()))
            && second_err.contains("demo.db.lock"),
        "the refusal names the holder: {second_err}"
    );

    let (_, status) = get(port, "/api/status").expect("/api/status answers");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        status["live"]["last_quote"]["bid"]
            .as_f64()
            .is_some_and(|b| b > 0.0),
        "{status}"
    );
    let decisions = status["decisions"].as_array().unwrap();
    assert!(
        decisions
            .iter()
            .any(|d| d["action"].as_str().is_some_and(|a| a.starts_with("open_"))),
        "the entry is on the dashboard: {status}"
    );

    let exit = demo.wait_for_exit(Duration::from_secs(DURATION_SECS) + EXIT_GRACE);
    let stderr = stderr.join().unwrap();
    let stdout = stdout.join().unwrap();
    assert!(exit.success(), "demo exited with {exit}: {stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(DURATION_SECS),
        "it ran for its duration"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // JSON logs: every line is one object with a level; nothing at ERROR.
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(entry["level"].is_string(), "{line}");
        assert_ne!(entry["level"], "ERROR", "{line}");
    }
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/")),
        "it says where to look: {stderr}"
    );
    assert!(!stdout.contains("panicked"), "{stdout}");

    // A clean stop checkpointed the log: the .db file alone, copied elsewhere, holds it all.
    let wal = data.join("demo.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
        "the write-ahead log is empty after a clean stop"
    );
    let copy_dir = dir.path().join("copy");
    std::fs::create_dir(&copy_dir).unwrap();
    std::fs::copy(data.join("demo.db"), copy_dir.join("demo.db")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let copy = rt
        .block_on(persistence::inspect_copy(&copy_dir.join("demo.db")))
        .unwrap();
    assert_eq!(copy.integrity, "ok");
    for table in ["fills", "positions", "order_intents", "store_identity"] {
        assert!(
            copy.rows(table).is_some_and(|n| n >= 1),
            "{table} in the copied file: {copy:?}"
        );
    }
    drop(rt);

    // What it traded is in its database.
    let (rt, store) = open_store(&data.join("demo.db"));
    let fills = rt.block_on(store.fills(1_000)).unwrap();
    assert!(
        !fills.is_empty(),
        "a fill was recorded (traded after {traded_at:?})"
    );
    let positions = rt
        .block_on(store.positions(PositionQuery {
            status: None,
            limit: 1_000,
        }))
        .unwrap();
    assert!(!positions.is_empty());
    for fill in &fills {
        assert!(
            positions.iter().any(|p| p.id == fill.position_id),
            "fill {} belongs to a stored position",
            fill.deal_id
        );
    }
    let ours = fills
        .iter()
        .filter_map(|f| f.client_order_id.as_ref())
        .filter(|id| id.as_str().starts_with("pob-"))
        .count();
    assert!(ours >= 1, "the bot's own orders are recorded: {fills:?}");
    assert!(rt.block_on(store.intents_in_flight()).unwrap().is_empty());
    rt.block_on(store.close());
}

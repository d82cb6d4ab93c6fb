//! `palm-oil-bot history` against the simulator: trendbars paged within the span limits and the
//! historical rate limit, resumed without asking twice, read by `backtest`; ticks that aggregate
//! into the simulator's own trendbars; a simulator stricter than the documented limit is waited
//! out rather than failing the download.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "common/cli.rs"]
mod cli;
mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::World;
use ctrader_sim::{FaultPlan, RateLimits};
use domain::{Clock, SymbolId, SystemClock, Timeframe, Timestamp};
use research::{OhlcOptions, read_ohlc_csv, read_ticks_csv};

const MINUTE: i64 = Timestamp::MINUTE_MS;

fn world(history_days: u64, limits: RateLimits) -> (World, Timestamp) {
    let now = SystemClock.now().millis();
    let start = Timestamp(now - now.rem_euclid(Timestamp::DAY_MS) - Timestamp::DAY_MS);
    let world = World::start_configured(1.0, 7, FaultPlan::default(), Some(start), |c| {
        c.history = Duration::from_secs(history_days * 86_400);
        c.rate_limits = limits;
    });
    (world, start)
}

fn history(world: &World, args: &[String]) -> Output {
    let mut cmd = Command::new(common::BIN);
    cmd.env_clear()
        .current_dir(world.dir.path())
        .arg("history")
        .args(args);
    for (k, v) in world.bot_env() {
        cmd.env(k, v);
    }
    cmd.env("LOG_FORMAT", "pretty");
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(240)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("history {args:?} did not finish");
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout {}\nstderr {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn args(from: Timestamp, to: Timestamp, extra: &[&str], out: &Path) -> Vec<String> {
    let mut a = vec![
        "--from".to_owned(),
        from.to_string(),
        "--to".to_owned(),
        to.to_string(),
        "--out".to_owned(),
        out.display().to_string(),
    ];
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

/// The most requests the simulator admitted on one connection within any one second (cTrader's
/// limit is per connection; each `history` run is its own connection).
fn busiest_second(world: &World) -> usize {
    let requests = world.sim.historical_requests();
    let mut connections: Vec<u64> = requests.iter().map(|r| r.connection).collect();
    connections.dedup();
    connections
        .into_iter()
        .map(|connection| {
            let admitted: Vec<_> = requests
                .iter()
                .filter(|r| !r.refused && r.connection == connection)
                .map(|r| r.received)
                .collect();
            (0..admitted.len())
                .map(|i| {
                    admitted[i..]
                        .iter()
                        .take_while(|t| t.duration_since(admitted[i]) < Duration::from_secs(1))
                        .count()
                })
                .max()
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn bars_page_resume_ask_nothing_twice_and_backtest() {
    let (world, start) = world(5, RateLimits::default());
    let out = world.dir.path().join("m1.csv");
    // 4.75 days of M1: two pages of at most 3.5 days; first only the later half (a partial file).
    let from = Timestamp(start.0 - 4 * Timestamp::DAY_MS - 18 * 60 * MINUTE);
    let middle = Timestamp(start.0 - Timestamp::DAY_MS);
    let run = history(&world, &args(middle, start, &["--timeframe", "M1"], &out));
    assert!(run.status.success(), "{}", text(&run));
    let first = world.sim.historical_requests().len();
    assert!(first >= 1);
    let bars = read_ohlc_csv(
        std::fs::File::open(&out).unwrap(),
        &OhlcOptions {
            symbol: SymbolId(0),
            timeframe: Some(Timeframe::M1),
        },
    )
    .unwrap();
    assert!(bars.first().unwrap().start >= middle && bars.last().unwrap().start < start);
    // Resume: only what lies before the file's start is fetched, in pages within the limits.
    let run = history(&world, &args(from, start, &["--timeframe", "M1"], &out));
    assert!(run.status.success(), "{}", text(&run));
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(stdout.contains("now covers"), "{stdout}");
    let resumed = world.sim.historical_requests().len();
    // 3.75 days before the file's start: two M1 pages of at most 3.5 days.
    assert_eq!(resumed - first, 2, "{resumed} after {first}");
    let all = read_ohlc_csv(
        std::fs::File::open(&out).unwrap(),
        &OhlcOptions {
            symbol: SymbolId(0),
            timeframe: Some(Timeframe::M1),
        },
    )
    .unwrap();
    assert!(all.first().unwrap().start < middle);
    assert!(all.len() > bars.len());
    // A rerun with nothing missing asks nothing.
    let run = history(&world, &args(from, start, &["--timeframe", "M1"], &out));
    assert!(run.status.success(), "{}", text(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("0 requests"));
    assert_eq!(world.sim.historical_requests().len(), resumed);
    // Another timeframe into the same file is refused with exit 2.
    let run = history(&world, &args(from, start, &["--timeframe", "M5"], &out));
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    // Never over the limit, never refused.
    assert!(world.sim.historical_requests().iter().all(|r| !r.refused));
    // A day of both sides' ticks: many more historical requests, still within 5 a second.
    let ticks = world.dir.path().join("ticks.csv");
    let day = Timestamp(start.0 - Timestamp::DAY_MS);
    let run = history(&world, &args(day, start, &["--ticks", "both"], &ticks));
    assert!(run.status.success(), "{}", text(&run));
    let busiest = busiest_second(&world);
    eprintln!(
        "measured: {} historical requests, at most {busiest} in any one second",
        world.sim.historical_requests().len()
    );
    assert!(busiest <= 5);
    // The backtester reads it.
    let bt = cli::run_bot(
        world.dir.path(),
        &[
            "backtest",
            "--data",
            out.to_str().unwrap(),
            "--timeframe",
            "M1",
        ],
        &[("SENTIMENT_SOURCES", "")],
        Duration::from_secs(120),
    );
    assert!(bt.status.success(), "{}", text(&bt));
    // Bad dates: exit 2 without a connection.
    let before = world.sim.historical_requests().len();
    let run = history(&world, &args(start, from, &[], &out));
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert_eq!(world.sim.historical_requests().len(), before);
}

#[test]
fn ticks_aggregate_into_the_simulators_trendbars_within_a_strict_limit() {
    // A simulator admitting 2 historical requests a second (stricter than the documented 5 the
    // client keeps to): refusals are waited out, the download completes.
    let (world, start) = world(
        2,
        RateLimits {
            requests_per_second: 50,
            historical_per_second: 2,
        },
    );
    let from = Timestamp(start.0 - 30 * 60 * MINUTE);
    let to = Timestamp(start.0 - 6 * 60 * MINUTE);
    let ticks = world.dir.path().join("bid.csv");
    let run = history(&world, &args(from, to, &["--ticks", "bid"], &ticks));
    assert!(run.status.success(), "{}", text(&run));
    let bars_file = world.dir.path().join("m5.csv");
    let run = history(&world, &args(from, to, &["--timeframe", "M5"], &bars_file));
    assert!(run.status.success(), "{}", text(&run));
    let aggregated = read_ticks_csv(
        std::fs::File::open(&ticks).unwrap(),
        SymbolId(0),
        Timeframe::M5,
    )
    .unwrap();
    let trendbars = read_ohlc_csv(
        std::fs::File::open(&bars_file).unwrap(),
        &OhlcOptions {
            symbol: SymbolId(0),
            timeframe: Some(Timeframe::M5),
        },
    )
    .unwrap();
    assert!(trendbars.len() > 200, "{}", trendbars.len());
    let ohlc = |b: &domain::Bar| (b.start, b.open, b.high, b.low, b.close);
    assert_eq!(
        aggregated.iter().map(ohlc).collect::<Vec<_>>(),
        trendbars.iter().map(ohlc).collect::<Vec<_>>()
    );
    // Both sides: bid never above ask, and the backtester aggregates it.
    let both = world.dir.path().join("both.csv");
    let short_to = Timestamp(from.0 + 60 * MINUTE);
    let run = history(&world, &args(from, short_to, &["--ticks", "both"], &both));
    assert!(run.status.success(), "{}", text(&run));
    let bt = cli::run_bot(
        world.dir.path(),
        &[
            "backtest",
            "--data",
            both.to_str().unwrap(),
            "--timeframe",
            "M1",
        ],
        &[("SENTIMENT_SOURCES", "")],
        Duration::from_secs(120),
    );
    assert!(bt.status.success(), "{}", text(&bt));
    // The strict simulator refused some requests; the download waited and completed anyway.
    let requests = world.sim.historical_requests();
    assert!(
        requests.iter().any(|r| r.refused),
        "{} requests",
        requests.len()
    );
}

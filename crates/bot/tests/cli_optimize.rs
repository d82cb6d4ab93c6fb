//! `palm-oil-bot optimize` and the backtest's date range and HTML report, as a user runs them:
//! the built binary over the shipped sample, outputs parsed back, bad input refused with exit
//! status 2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const RUN_DEADLINE: Duration = Duration::from_secs(300);

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/backtest/fcpo-h1-sample.csv")
        .to_str()
        .unwrap()
        .to_owned()
}

fn bot(dir: &Path, args: &[&str]) -> Output {
    cli::run_bot::<&str, &str, &str>(dir, args, &[], RUN_DEADLINE)
}

fn out(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

const GRID: [&str; 8] = [
    "--param",
    "rsi_period=7..21:7",
    "--param",
    "oversold=20,25,30,80",
    "--constraint",
    "trades>=10",
    "--size",
    "all",
];

#[test]
fn optimize_ranks_writes_every_combination_and_is_the_same_on_one_thread() {
    let (_keep, dir) = scratch();
    let data = sample();
    let mut args = vec!["optimize", "--data", &data];
    args.extend(GRID);
    args.extend(["--results", "all.csv", "--heatmap", "heat.svg"]);
    let o = bot(&dir, &args);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("maximising sharpe"), "{}", out(&o));
    assert!(stdout.contains("12 combination(s)"), "{}", out(&o));
    // oversold 80 is above the default overbought 70: refused by the settings' own rules.
    assert!(stdout.contains("3 invalid"), "{}", out(&o));
    let csv = std::fs::read_to_string(dir.join("all.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13, "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.contains(",invalid,") && l.contains("RSI_OVERSOLD")),
        "{csv}"
    );
    let svg = std::fs::read_to_string(dir.join("heat.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains(">rsi_period</text>"));

    // The same search on one thread writes the same file.
    let mut args = vec!["optimize", "--data", &data];
    args.extend(GRID);
    args.extend(["--results", "one.csv", "--threads", "1"]);
    let o = bot(&dir, &args);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert_eq!(std::fs::read_to_string(dir.join("one.csv")).unwrap(), csv);
}

#[test]
fn walk_forward_reports_each_window_and_the_efficiency() {
    let (_keep, dir) = scratch();
    let data = sample();
    let mut args = vec!["optimize", "--data", &data];
    args.extend(GRID);
    args.extend([
        "--maximize",
        "return",
        "--walk-forward",
        "120d:60d",
        "--anchored",
        "--results",
        "wf.json",
    ]);
    let o = bot(&dir, &args);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("(anchored)"), "{}", out(&o));
    assert!(stdout.contains("Walk-forward efficiency"), "{}", out(&o));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("wf.json")).unwrap()).unwrap();
    let windows = json["windows"].as_array().unwrap();
    assert!(windows.len() >= 5, "{json}");
    // Anchored: every window trains from the first bar; test windows follow each other.
    for w in windows {
        assert_eq!(w["train_from"], windows[0]["train_from"]);
    }
    for pair in windows.windows(2) {
        assert!(pair[0]["test_to"].as_str().unwrap() < pair[1]["test_from"].as_str().unwrap());
    }
}

#[test]
fn bad_optimize_options_are_usage_errors() {
    let (_keep, dir) = scratch();
    let data = sample();
    for (extra, message) in [
        (vec!["--param", "rsi_period"], "expected NAME=VALUES"),
        (vec!["--param", "colour=1,2"], "not a parameter"),
        (vec!["--param", "rsi_period=7..21"], "needs a step"),
        (
            vec!["--param", "rsi_period=7,14", "--maximize", "luck"],
            "unknown metric",
        ),
        (
            vec!["--param", "rsi_period=7,14", "--constraint", "trades>>3"],
            "--constraint",
        ),
        (
            vec!["--param", "rsi_period=7,14", "--heatmap", "h.svg"],
            "needs two parameters",
        ),
        (
            vec!["--param", "rsi_period=7,14", "--walk-forward", "10x:5"],
            "not a length",
        ),
        (
            vec!["--param", "rsi_period=7,14", "--walk-forward", "9000:500"],
            "no training window",
        ),
        (
            vec!["--param", "rsi_period=7,14", "--random", "0"],
            "--random must be at least 1",
        ),
        (
            vec![
                "--param",
                "rsi_period=2..2000:1",
                "--param",
                "oversold=1..99:0.1",
            ],
            "sample them with --random",
        ),
    ] {
        let mut args = vec!["optimize", "--data", data.as_str()];
        args.extend(extra.iter().copied());
        let o = bot(&dir, &args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", out(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(message), "{extra:?}: {}", out(&o));
    }
}

#[test]
fn backtest_date_range_and_html_report() {
    let (_keep, dir) = scratch();
    let data = sample();
    let o = bot(
        &dir,
        &[
            "backtest",
            "--data",
            &data,
            "--from",
            "2025-01-01",
            "--to",
            "2025-03-31",
            "--max-drawdown",
            "0.01",
            "--size",
            "all",
            "--html",
            "r.html",
            "--report",
            "r.json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap();
    let first = json["first_bar"].as_str().unwrap();
    let last = json["last_bar"].as_str().unwrap();
    assert!(("2025-01-01".."2025-01-03").contains(&first), "{first}");
    assert!(
        last.starts_with("2025-03-31"),
        "--to a date keeps that day: {last}"
    );
    let html = std::fs::read_to_string(dir.join("r.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<table id=\"trades\">") && html.contains("<table id=\"statistics\">"));
    if json["kill_switch"].is_string() {
        assert!(
            html.contains("kill switch engaged"),
            "the engagement is named"
        );
    }
    // Epoch milliseconds work as --from; a range without bars and a reversed range are refused.
    let o = bot(
        &dir,
        &["backtest", "--data", &data, "--from", "1735689600000"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    for (from, to, message) in [
        ("2030-01-01", "2031-01-01", "none of its 3150 bars"),
        ("2025-03-01", "2025-02-01", "is not after --from"),
        ("1735689600", "2031-01-01", "epoch seconds"),
    ] {
        let o = bot(
            &dir,
            &["backtest", "--data", &data, "--from", from, "--to", to],
        );
        assert_eq!(o.status.code(), Some(2), "{}", out(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(message),
            "{}",
            out(&o)
        );
    }
}

#[test]
fn a_ticks_file_is_aggregated_into_bars_of_the_timeframe() {
    let (_keep, dir) = scratch();
    // Two days of a tick every 20 s, a slow zigzag so the RSI crosses its levels.
    let mut ticks = String::from("timestamp,bid,ask\n");
    let start: i64 = 1_763_942_400_000;
    for i in 0..8640_i64 {
        let wave = (i / 90) % 40;
        let mid = 4000 * 10 + if wave < 20 { wave * 3 } else { (40 - wave) * 3 };
        ticks.push_str(&format!(
            "{},{}.{},{}.{}\n",
            start + i * 20_000,
            mid / 10,
            mid % 10,
            (mid + 5) / 10,
            (mid + 5) % 10
        ));
    }
    std::fs::write(dir.join("ticks.csv"), ticks).unwrap();
    let o = bot(
        &dir,
        &[
            "backtest",
            "--data",
            "ticks.csv",
            "--timeframe",
            "M15",
            "--report",
            "r.json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap();
    // 48 hours of M15 bars.
    assert_eq!(json["bars"], 192, "{json}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("192 M15 bars"),
        "{}",
        out(&o)
    );
    let o = bot(&dir, &["backtest", "--data", "ticks.csv"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("give --timeframe"),
        "{}",
        out(&o)
    );
}

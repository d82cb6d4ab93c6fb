//! The outputs of one hand-worked run (see strategy's `a_backtest_computed_by_hand`): the table,
//! the JSON report, the trades CSV and the SVG plot all show the same run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{Money, Price};
use research::{OhlcOptions, read_ohlc_csv, render_equity_svg, render_table, write_trades_csv};
use strategy::backtest::{BacktestConfig, BacktestResult, Backtester};
use strategy::{RiskConfig, RsiSentimentConfig, RsiSentimentStrategy, SizingRule};

/// Fourteen H1 bars from Monday 2025-11-24 00:00 UTC.
pub const HAND_CSV: &str = "timestamp,open,high,low,close
2025-11-24 00:00:00,100,101,99,100
2025-11-24 01:00:00,100,103,100,102
2025-11-24 02:00:00,102,105,101,104
2025-11-24 03:00:00,104,104,95,96
2025-11-24 04:00:00,97,99,96,98
2025-11-24 05:00:00,98,106,98,105
2025-11-24 06:00:00,105,106,100,101
2025-11-24 07:00:00,101,102,94,95
2025-11-24 08:00:00,96,100,90,99
2025-11-24 09:00:00,99,112,98,111
2025-11-24 10:00:00,111,114,100,112
2025-11-24 11:00:00,112,113,100,101
2025-11-24 12:00:00,101,103,99,102
2025-11-24 13:00:00,103,104,101,102
";

fn hand_bars() -> Vec<domain::Bar> {
    read_ohlc_csv(HAND_CSV.as_bytes(), &OhlcOptions::default()).unwrap()
}

fn hand_run() -> BacktestResult {
    let bars = hand_bars();
    let backtester = Backtester::new(BacktestConfig {
        initial_cash: Money::new(100_000, 2),
        spread: Price(20_000),
        commission_per_fill: Money::new(100, 2),
        risk: RiskConfig {
            sizing: SizingRule::AllCash,
            daily_loss_limit_bps: None,
            max_drawdown_bps: None,
        },
        ..BacktestConfig::default()
    })
    .unwrap();
    let mut strategy = RsiSentimentStrategy::new(RsiSentimentConfig {
        rsi_period: 2,
        stop_loss: Some(Price(300_000)),
        take_profit: Some(Price(1_000_000)),
        ..RsiSentimentConfig::default()
    })
    .unwrap();
    backtester
        .run(&mut strategy, &bars, &[], &mut |_, _| {})
        .unwrap()
}

#[test]
fn outputs_render_the_same_run() {
    let result = hand_run();
    let table = render_table(&result.report);
    // Rows are `label  value`, labels padded to the longest one.
    let row = |label: &str| {
        table
            .lines()
            .find(|l| l.starts_with(label) && l[label.len()..].starts_with("  "))
            .map(|l| l[label.len()..].trim().to_owned())
            .unwrap_or_else(|| panic!("no {label} row in\n{table}"))
    };
    assert_eq!(row("Return"), "12.00 %");
    assert_eq!(row("Max drawdown"), "5.96 %");
    assert_eq!(row("Win rate"), "60.00 %");
    assert_eq!(row("Profit factor"), "2.71");
    assert_eq!(row("Kill switch"), "not engaged");
    assert_eq!(row("Expectancy"), "24 quote");
    assert_eq!(row("Longest losing streak"), "2");
    assert_eq!(row("Max drawdown duration"), "6h 00m");
    assert_eq!(row("Sharpe (annualised)"), "n/a");
    // Every value starts in the same column.
    let columns: std::collections::HashSet<usize> = table
        .lines()
        .map(|l| l.len() - l[l.find("  ").unwrap()..].trim_start().len())
        .collect();
    assert_eq!(columns.len(), 1, "{table}");

    let json = serde_json::to_value(&result.report).unwrap();
    assert_eq!(json["final_equity"], "1120");
    assert_eq!(json["trade_count"], 5);
    assert_eq!(json["win_rate_pct"], 60.0);
    assert_eq!(json["kill_switch"], serde_json::Value::Null);
    assert_eq!(json["trades"][2]["exit_kind"], "stop_loss");
    assert_eq!(json["trades"][2]["entry_price"], "96.1");
    assert_eq!(json["trades"][2]["side"], "long");

    let mut csv_out = Vec::new();
    write_trades_csv(&result.report.trades, &mut csv_out).unwrap();
    let text = String::from_utf8(csv_out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "side,volume,entry_time,entry_price,exit_time,exit_price,pnl,commission,exit_kind,entry_bar,exit_bar,entry_reason,exit_reason"
        )
    );
    let second = lines.nth(1).unwrap();
    assert!(
        second.starts_with("short,10,2025-11-24T06:00:00.000Z,104.9,2025-11-24T07:00:00.000Z,94.9,98,2,take_profit,6,7,"),
        "{second}"
    );
    assert_eq!(text.lines().count(), 6);

    let svg = render_equity_svg(&result, &hand_bars());
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>"));
    // One exit ring per trade plus the legend's; one entry triangle per trade plus the legend's two.
    assert_eq!(svg.matches("<circle").count(), 5 + 1, "{svg}");
    assert_eq!(svg.matches("<polygon points=").count(), 5 + 2);
    assert!(svg.contains("max drawdown 5.96 %"));
    assert!(
        svg.contains(">buy &amp; hold</text>"),
        "legend names buy & hold"
    );
    assert!(
        svg.contains("stroke-dasharray=\"5 3\" points="),
        "the buy & hold line"
    );
    // Time ticks on the axis and value ticks on the scale.
    assert!(svg.contains(">11-24 00:00</text>"), "{svg}");
    assert!(svg.contains(">1100</text>"), "{svg}");

    let html = research::render_html_report(&result, &hand_bars(), "hand <run>");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("hand &lt;run&gt;"), "titles are escaped");
    assert!(!html.contains("<script"), "no script");
    assert!(
        !html
            .replace("http://www.w3.org/2000/svg", "")
            .contains("://"),
        "no network"
    );
    assert_eq!(html.matches("<tr class=").count(), 5, "one row per trade");
    assert!(html.contains("<th>Sortino</th>"));
    assert!(html.contains("Price (quote) with entries and exits"));
}

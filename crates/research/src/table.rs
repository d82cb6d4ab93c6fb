//! The report as a terminal table, and the trades CSV.

use std::fmt::Write as _;
use std::io;

use strategy::backtest::{Report, TradeRecord};

fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2} %"))
}

/// An amount with the account's currency code.
fn money(amount: domain::Money, report: &Report) -> String {
    format!("{amount} {}", report.currencies.account)
}

/// A ratio to two decimals, or `n/a`.
fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
}

/// An optional amount with the account's currency code, or `n/a`.
fn money_opt(amount: Option<domain::Money>, report: &Report) -> String {
    amount.map_or_else(|| "n/a".to_owned(), |m| money(m, report))
}

/// A duration in milliseconds as days, hours and minutes (`3d 4h 05m`, `45m`).
pub fn human_duration(ms: i64) -> String {
    let minutes = ms / 60_000;
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{minutes}m"),
        (0, _) => format!("{hours}h {minutes:02}m"),
        _ => format!("{days}d {hours}h {minutes:02}m"),
    }
}

fn duration_opt(ms: Option<i64>) -> String {
    ms.map_or_else(|| "n/a".to_owned(), human_duration)
}

/// The report's statistics as (label, value) rows, in the order the table and the HTML report
/// show them.
pub fn statistics_rows(report: &Report) -> Vec<(&'static str, String)> {
    vec![
        (
            "Bars",
            format!(
                "{} ({} .. {})",
                report.bars, report.first_bar, report.last_bar
            ),
        ),
        (
            "Currencies",
            format!(
                "prices in {}, account in {}",
                report.currencies.quote, report.currencies.account
            ),
        ),
        ("Initial equity", money(report.initial_equity, report)),
        ("Final equity", money(report.final_equity, report)),
        ("Peak equity", money(report.peak_equity, report)),
        ("Return", pct(Some(report.return_pct))),
        ("Return (annualised)", pct(report.annual_return_pct)),
        ("CAGR", pct(report.cagr_pct)),
        ("Volatility (annualised)", pct(report.volatility_pct)),
        (
            "Buy & hold return",
            pct(Some(report.buy_and_hold_return_pct)),
        ),
        ("Max drawdown", pct(Some(report.max_drawdown_pct))),
        (
            "Max drawdown duration",
            duration_opt(report.max_drawdown_duration_ms),
        ),
        ("Sharpe (annualised)", ratio(report.sharpe)),
        ("Sortino", ratio(report.sortino)),
        ("Calmar", ratio(report.calmar)),
        ("Trades", report.trade_count.to_string()),
        ("Win rate", pct(report.win_rate_pct)),
        (
            "Profit factor",
            match (report.profit_factor, report.trade_count) {
                (Some(pf), _) => format!("{pf:.2}"),
                (None, 0) => "n/a".to_owned(),
                (None, _) => "n/a (no losing trade)".to_owned(),
            },
        ),
        ("Expectancy", money_opt(report.expectancy, report)),
        ("Average win", money_opt(report.average_win, report)),
        ("Average loss", money_opt(report.average_loss, report)),
        ("Best trade", money_opt(report.best_trade, report)),
        ("Worst trade", money_opt(report.worst_trade, report)),
        (
            "Average trade duration",
            duration_opt(report.average_trade_duration_ms),
        ),
        (
            "Longest trade duration",
            duration_opt(report.longest_trade_duration_ms),
        ),
        ("SQN", ratio(report.sqn)),
        (
            "Longest losing streak",
            report.longest_losing_streak.to_string(),
        ),
        ("Exposure", pct(Some(report.exposure_pct))),
        ("Commission paid", money(report.total_commission, report)),
        ("Refused entries", report.refused_entries.to_string()),
        (
            "Kill switch",
            match (&report.kill_switch, report.kill_switch_at) {
                (Some(reason), Some(at)) => format!("{reason} (at {at})"),
                (Some(reason), None) => reason.clone(),
                (None, _) => "not engaged".to_owned(),
            },
        ),
    ]
}

/// The report as an aligned table for a terminal.
pub fn render_table(report: &Report) -> String {
    let rows = statistics_rows(report);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{key:<width$}  {value}");
    }
    out
}

/// Header of the trades CSV, in field order.
const TRADE_COLUMNS: [&str; 13] = [
    "side",
    "volume",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
    "commission",
    "exit_kind",
    "entry_bar",
    "exit_bar",
    "entry_reason",
    "exit_reason",
];

/// Writes every trade as CSV (header first, even without trades).
pub fn write_trades_csv<W: io::Write>(trades: &[TradeRecord], out: W) -> io::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    writer.write_record(TRADE_COLUMNS)?;
    for trade in trades {
        writer.serialize(trade)?;
    }
    writer.flush()
}

//! The self-contained HTML report of a run: one page, no script, no network: the charts as
//! inline SVG, the statistics table and the trades table.

use std::fmt::Write as _;

use domain::{Bar, Side};
use strategy::backtest::BacktestResult;

use crate::svg::{escape, render_report_charts};
use crate::table::{human_duration, statistics_rows};

/// The page's style: readable tables, charts that shrink with the window.
const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1040px}\
h1{font-size:20px}h2{font-size:16px;margin-top:28px}\
svg{max-width:100%;height:auto;border:1px solid #ddd}\
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
tr.win td.pnl{color:#1a8f3a}tr.loss td.pnl{color:#c0392b}.note{color:#666;font-size:12px}";

/// Trades listed in the table (the first ones; the rest are in `--trades`).
const MAX_TRADE_ROWS: usize = 5_000;

/// Renders the report of `result` over `bars` (the run's bars) as one HTML page; `title` names
/// the run (e.g. the data file and the settings).
pub fn render_html_report(result: &BacktestResult, bars: &[Bar], title: &str) -> String {
    let report = &result.report;
    let mut html = String::with_capacity(256 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Backtest report: {}</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
    let _ = write!(
        html,
        "<h1>Backtest report</h1><p>{}</p><p>Return <b>{:.2} %</b> (buy &amp; hold {:.2} %), max drawdown <b>{:.2} %</b>, {} trades{}.</p>",
        escape(title),
        report.return_pct,
        report.buy_and_hold_return_pct,
        report.max_drawdown_pct,
        report.trade_count,
        report
            .kill_switch
            .as_ref()
            .map_or_else(String::new, |k| format!(
                ", <span style=\"color:#8e44ad\">kill switch engaged: {}</span>",
                escape(k)
            ))
    );
    html.push_str("<h2>Charts</h2>");
    html.push_str(&render_report_charts(result, bars));
    html.push_str("<h2>Statistics</h2><table id=\"statistics\"><tbody>");
    for (label, value) in statistics_rows(report) {
        let _ = write!(
            html,
            "<tr><th>{}</th><td class=\"n\">{}</td></tr>",
            escape(label),
            escape(&value)
        );
    }
    html.push_str("</tbody></table>");
    let _ = write!(
        html,
        "<h2>Trades ({})</h2><table id=\"trades\"><thead><tr><th>#</th><th>side</th><th>volume</th><th>entry</th><th>entry price</th><th>exit</th><th>exit price</th><th>held</th><th>PnL ({})</th><th>commission</th><th>exit kind</th><th>exit reason</th></tr></thead><tbody>",
        report.trades.len(),
        escape(&report.currencies.account)
    );
    for (i, t) in report.trades.iter().take(MAX_TRADE_ROWS).enumerate() {
        let class = if t.pnl.minor > 0 { "win" } else { "loss" };
        let _ = write!(
            html,
            "<tr class=\"{class}\"><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n pnl\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            if t.side == Side::Buy { "long" } else { "short" },
            t.volume,
            t.entry_time,
            t.entry_price,
            t.exit_time,
            t.exit_price,
            human_duration(t.exit_time.millis_since(t.entry_time)),
            t.pnl,
            t.commission,
            t.exit_kind.as_str(),
            escape(&t.exit_reason)
        );
    }
    html.push_str("</tbody></table>");
    if report.trades.len() > MAX_TRADE_ROWS {
        let _ = write!(
            html,
            "<p class=\"note\">The first {MAX_TRADE_ROWS} of {} trades are listed; --trades writes them all.</p>",
            report.trades.len()
        );
    }
    html.push_str("<p class=\"note\">Formulas: docs/backtesting.md. Times are UTC bar starts.</p></body></html>\n");
    html
}

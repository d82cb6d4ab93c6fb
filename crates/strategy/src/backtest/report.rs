//! Statistics of a run, the terminal table and the trades CSV.

use std::fmt::Write as _;
use std::io;

use domain::{Bar, Money, Timestamp};

use super::{BacktestConfig, EquityPoint, Report, TradeRecord};

#[allow(clippy::cast_precision_loss)] // statistics only
fn f(minor: i64) -> f64 {
    minor as f64
}

#[allow(clippy::cast_precision_loss)] // statistics only
fn count(n: usize) -> f64 {
    n as f64
}

/// Computes the report's statistics from the equity curve and the closed trades.
#[allow(clippy::too_many_arguments)] // one call site, every argument a different fact of the run
pub(super) fn summarize(
    config: &BacktestConfig,
    first: &Bar,
    last: &Bar,
    curve: &[EquityPoint],
    trades: Vec<TradeRecord>,
    total_commission: Money,
    refused_entries: usize,
    kill_switch: Option<String>,
) -> Report {
    let initial = config.initial_cash.minor;
    let final_equity = curve.last().map_or(config.initial_cash, |p| p.equity);
    let return_pct = (f(final_equity.minor) - f(initial)) / f(initial) * 100.0;
    let buy_and_hold_return_pct =
        (f(last.close.raw()) - f(first.open.raw())) / f(first.open.raw()) * 100.0;

    let mut peak = initial;
    let mut max_drawdown = 0.0_f64;
    for point in curve {
        peak = peak.max(point.equity.minor);
        if peak > 0 {
            max_drawdown = max_drawdown.max((f(peak) - f(point.equity.minor)) / f(peak));
        }
    }

    let wins = trades.iter().filter(|t| t.pnl.minor > 0).count();
    let win_rate_pct = (!trades.is_empty()).then(|| count(wins) / count(trades.len()) * 100.0);
    let gross_profit: f64 = trades
        .iter()
        .filter(|t| t.pnl.minor > 0)
        .map(|t| f(t.pnl.minor))
        .sum();
    let gross_loss: f64 = trades
        .iter()
        .filter(|t| t.pnl.minor < 0)
        .map(|t| -f(t.pnl.minor))
        .sum();
    let profit_factor = (gross_loss > 0.0).then(|| gross_profit / gross_loss);

    let span_ms = last
        .start
        .plus_millis(last.timeframe.millis())
        .millis_since(first.start);
    let exposed = curve.iter().filter(|p| p.exposed).count();
    Report {
        currencies: config.currencies.clone(),
        bars: curve.len(),
        first_bar: first.start,
        last_bar: last.start,
        initial_equity: config.initial_cash,
        final_equity,
        return_pct,
        buy_and_hold_return_pct,
        max_drawdown_pct: max_drawdown * 100.0,
        trade_count: trades.len(),
        win_rate_pct,
        profit_factor,
        sharpe: sharpe(initial, curve, span_ms),
        exposure_pct: if curve.is_empty() {
            0.0
        } else {
            count(exposed) / count(curve.len()) * 100.0
        },
        total_commission,
        refused_entries,
        kill_switch,
        trades,
    }
}

/// Mean over sample standard deviation of close-to-close returns (the first from the initial
/// cash), times the square root of the bars per year actually observed in the data
/// (bars / years spanned), so sessions and weekends are accounted for. Risk-free rate 0.
fn sharpe(initial: i64, curve: &[EquityPoint], span_ms: i64) -> Option<f64> {
    if curve.len() < 2 || span_ms <= 0 {
        return None;
    }
    let mut previous = initial;
    let mut returns = Vec::with_capacity(curve.len());
    for point in curve {
        if previous <= 0 {
            return None;
        }
        returns.push(f(point.equity.minor) / f(previous) - 1.0);
        previous = point.equity.minor;
    }
    let n = count(returns.len());
    let mean = returns.iter().sum::<f64>() / n;
    let variance = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let sd = variance.sqrt();
    if sd.is_nan() || sd <= 1e-15 {
        return None;
    }
    let years = f(span_ms) / (365.25 * f(Timestamp::DAY_MS));
    let bars_per_year = n / years;
    Some(mean / sd * bars_per_year.sqrt())
}

fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2} %"))
}

/// An amount with the account's currency code.
fn money(amount: domain::Money, report: &Report) -> String {
    format!("{amount} {}", report.currencies.account)
}

/// The report as an aligned table for a terminal.
pub fn render_table(report: &Report) -> String {
    let rows: Vec<(&str, String)> = vec![
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
        ("Return", pct(Some(report.return_pct))),
        (
            "Buy & hold return",
            pct(Some(report.buy_and_hold_return_pct)),
        ),
        ("Max drawdown", pct(Some(report.max_drawdown_pct))),
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
        (
            "Sharpe (annualised)",
            report
                .sharpe
                .map_or_else(|| "n/a".to_owned(), |s| format!("{s:.2}")),
        ),
        ("Exposure", pct(Some(report.exposure_pct))),
        ("Commission paid", money(report.total_commission, report)),
        ("Refused entries", report.refused_entries.to_string()),
        (
            "Kill switch",
            report
                .kill_switch
                .clone()
                .unwrap_or_else(|| "not engaged".to_owned()),
        ),
    ];
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

//! The equity curve as an SVG picture: equity with trade markers above, drawdown below.

use std::fmt::Write as _;

use domain::Side;

use strategy::backtest::BacktestResult;

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 20.0;
const EQUITY_TOP: f64 = 50.0;
const EQUITY_BOTTOM: f64 = 380.0;
const DD_TOP: f64 = 420.0;
const DD_BOTTOM: f64 = 560.0;
const HEIGHT: f64 = 600.0;
/// At most this many x positions are drawn; longer curves keep each column's min and max.
const COLUMNS: usize = 1_000;
/// Beyond this many trades, markers would hide the curve: they are left out (and the picture says so).
const MAX_MARKERS: usize = 2_000;

#[allow(clippy::cast_precision_loss)] // drawing only
fn f(v: i64) -> f64 {
    v as f64
}

#[allow(clippy::cast_precision_loss)] // drawing only
fn fu(v: usize) -> f64 {
    v as f64
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the equity curve (downsampled to at most 1,000 columns, each keeping its lowest and
/// highest equity), the drawdown from the running peak, and a marker per trade: a triangle at the
/// entry (up for long, down for short) and a dot at the exit (green for a profit, red for a loss).
pub fn render_equity_svg(result: &BacktestResult) -> String {
    let curve = &result.equity_curve;
    let report = &result.report;
    let mut svg = String::with_capacity(64 * 1024);
    // Writing to a String cannot fail: the results of write! are ignored below.
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="25" font-size="15">Equity: return {:.2} %, max drawdown {:.2} %, {} trades (buy &amp; hold {:.2} %)</text>"#,
        report.return_pct,
        report.max_drawdown_pct,
        report.trade_count,
        report.buy_and_hold_return_pct
    );
    if curve.is_empty() {
        svg.push_str("</svg>");
        return svg;
    }

    let n = curve.len();
    let columns = n.min(COLUMNS);
    let column_of = |i: usize| {
        if n <= 1 {
            0
        } else {
            i * (columns - 1) / (n - 1)
        }
    };
    let x_of_column = |c: usize| {
        if columns <= 1 {
            LEFT
        } else {
            LEFT + (WIDTH - LEFT - RIGHT) * fu(c) / fu(columns - 1)
        }
    };
    let x_of = |i: usize| x_of_column(column_of(i));

    // Per column: lowest and highest equity, deepest drawdown.
    let mut low = vec![i64::MAX; columns];
    let mut high = vec![i64::MIN; columns];
    let mut deepest = vec![0.0_f64; columns];
    let mut peak = report.initial_equity.minor;
    for (i, point) in curve.iter().enumerate() {
        let e = point.equity.minor;
        peak = peak.max(e);
        let dd = if peak > 0 {
            (f(peak) - f(e)) / f(peak) * 100.0
        } else {
            0.0
        };
        let c = column_of(i);
        low[c] = low[c].min(e);
        high[c] = high[c].max(e);
        deepest[c] = deepest[c].max(dd);
    }
    let min_e = low
        .iter()
        .copied()
        .filter(|&v| v != i64::MAX)
        .min()
        .unwrap_or(0);
    let max_e = high
        .iter()
        .copied()
        .filter(|&v| v != i64::MIN)
        .max()
        .unwrap_or(0);
    let range = if max_e > min_e { f(max_e - min_e) } else { 1.0 };
    let y_of = |e: i64| EQUITY_BOTTOM - (EQUITY_BOTTOM - EQUITY_TOP) * (f(e) - f(min_e)) / range;
    let max_dd = deepest.iter().copied().fold(0.0_f64, f64::max).max(1e-9);
    let y_dd = |dd: f64| DD_TOP + (DD_BOTTOM - DD_TOP) * dd / max_dd;

    // Frames and labels.
    let digits = i32::from(report.initial_equity.digits);
    let money = |minor: i64| f(minor) / 10_f64.powi(digits);
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{EQUITY_TOP}" width="{}" height="{}" fill="none" stroke="#ccc"/>"##,
        WIDTH - LEFT - RIGHT,
        EQUITY_BOTTOM - EQUITY_TOP
    );
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="end">{:.2}</text><text x="{}" y="{}" text-anchor="end">{:.2}</text>"##,
        LEFT - 6.0,
        EQUITY_TOP + 4.0,
        money(max_e),
        LEFT - 6.0,
        EQUITY_BOTTOM,
        money(min_e)
    );
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"##,
        HEIGHT - 20.0,
        escape(&report.first_bar.to_string()),
        WIDTH - RIGHT,
        HEIGHT - 20.0,
        escape(&report.last_bar.to_string())
    );

    // Equity envelope.
    svg.push_str(r##"<polyline fill="none" stroke="#1f5fbf" stroke-width="1.2" points=""##);
    for c in 0..columns {
        if low[c] == i64::MAX {
            continue;
        }
        let x = x_of_column(c);
        let _ = write!(svg, "{x:.1},{:.1} ", y_of(high[c]));
        if low[c] != high[c] {
            let _ = write!(svg, "{x:.1},{:.1} ", y_of(low[c]));
        }
    }
    svg.push_str(r#""/>"#);

    // Drawdown area.
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="{}">Drawdown (deepest {:.2} %)</text>"##,
        DD_TOP - 6.0,
        report.max_drawdown_pct
    );
    let _ = write!(
        svg,
        r##"<polygon fill="#e4a0a0" stroke="#b03030" stroke-width="0.8" points="{LEFT:.1},{DD_TOP:.1} "##
    );
    for (c, dd) in deepest.iter().enumerate() {
        let _ = write!(svg, "{:.1},{:.1} ", x_of_column(c), y_dd(*dd));
    }
    let _ = write!(svg, r#"{:.1},{DD_TOP:.1}"/>"#, x_of_column(columns - 1));

    // Trade markers.
    let trades = &report.trades;
    if trades.len() > MAX_MARKERS {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end" fill="#666">{} trades: markers left out</text>"##,
            WIDTH - RIGHT,
            EQUITY_TOP - 8.0,
            trades.len()
        );
    } else {
        for trade in trades {
            let (Some(entry), Some(exit)) = (curve.get(trade.entry_bar), curve.get(trade.exit_bar))
            else {
                continue;
            };
            let (x, y) = (x_of(trade.entry_bar), y_of(entry.equity.minor));
            let (points, colour) = match trade.side {
                Side::Buy => (
                    format!(
                        "{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}",
                        y - 6.0,
                        x - 5.0,
                        y + 3.0,
                        x + 5.0,
                        y + 3.0
                    ),
                    "#1a8f3a",
                ),
                Side::Sell => (
                    format!(
                        "{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}",
                        y + 6.0,
                        x - 5.0,
                        y - 3.0,
                        x + 5.0,
                        y - 3.0
                    ),
                    "#c0392b",
                ),
            };
            let _ = write!(svg, r#"<polygon points="{points}" fill="{colour}"/>"#);
            let colour = if trade.pnl.minor > 0 {
                "#1a8f3a"
            } else {
                "#c0392b"
            };
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                x_of(trade.exit_bar),
                y_of(exit.equity.minor)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

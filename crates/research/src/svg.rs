//! Charts of a run as SVG: equity against buy & hold, the price with entries and exits, and the
//! drawdown, each with a time axis, value ticks and a legend; kill-switch engagements marked.
//! The `--plot` picture and the HTML report draw the same panels.

use std::fmt::Write as _;

use domain::{Bar, Side, Timestamp};
use strategy::backtest::{BacktestResult, ExitKind};

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 20.0;
/// At most this many x positions are drawn; longer curves keep each column's min and max.
const COLUMNS: usize = 1_000;
/// Beyond this many trades, markers would hide the curve: they are left out (and the panel says so).
const MAX_MARKERS: usize = 2_000;

#[allow(clippy::cast_precision_loss)] // drawing only
fn f(v: i64) -> f64 {
    v as f64
}

#[allow(clippy::cast_precision_loss)] // drawing only
fn fu(v: usize) -> f64 {
    v as f64
}

/// Escapes text for SVG and HTML.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// "Nice" tick values covering `lo..=hi`: about `count` steps of 1, 2 or 5 × 10^k.
fn nice_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / fu(count.max(1));
    let magnitude = 10_f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let mut ticks = Vec::new();
    let mut v = (lo / step).ceil() * step;
    // Bounded: at most count + 2 steps fit between lo and hi.
    while v <= hi + step * 1e-9 && ticks.len() <= count + 2 {
        ticks.push(v);
        v += step;
    }
    ticks
}

/// Time ticks: a date (or date and hour for short spans) at about `count` evenly spaced bars.
fn time_ticks(times: &[Timestamp], count: usize) -> Vec<(usize, String)> {
    let n = times.len();
    if n == 0 {
        return Vec::new();
    }
    let span = times[n - 1].millis_since(times[0]);
    let label = |t: Timestamp| {
        let text = t.to_string();
        if span > 3 * Timestamp::DAY_MS {
            text.chars().take(10).collect::<String>()
        } else {
            text.chars()
                .skip(5)
                .take(11)
                .collect::<String>()
                .replace('T', " ")
        }
    };
    let count = count.min(n).max(1);
    (0..count)
        .map(|k| {
            let i = if count == 1 {
                0
            } else {
                k * (n - 1) / (count - 1)
            };
            (i, label(times[i]))
        })
        .collect()
}

/// A panel: a plot area with a y scale, drawn from bar indices.
struct Panel {
    top: f64,
    bottom: f64,
    lo: f64,
    hi: f64,
    n: usize,
}

impl Panel {
    fn x(&self, i: usize) -> f64 {
        if self.n <= 1 {
            LEFT
        } else {
            LEFT + (WIDTH - LEFT - RIGHT) * fu(i) / fu(self.n - 1)
        }
    }

    fn y(&self, v: f64) -> f64 {
        let range = if self.hi > self.lo {
            self.hi - self.lo
        } else {
            1.0
        };
        self.bottom - (self.bottom - self.top) * (v - self.lo) / range
    }

    /// Frame, horizontal grid lines with value labels, and the time axis below.
    fn axes(&self, svg: &mut String, times: &[Timestamp], unit: &str, decimals: usize) {
        let _ = write!(
            svg,
            r##"<rect x="{LEFT}" y="{}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
            self.top,
            WIDTH - LEFT - RIGHT,
            self.bottom - self.top
        );
        for v in nice_ticks(self.lo, self.hi, 5) {
            let y = self.y(v);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end" class="tick">{v:.decimals$}{unit}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0
            );
        }
        let ticks = time_ticks(times, 6);
        let last = ticks.len().saturating_sub(1);
        for (k, (i, label)) in ticks.into_iter().enumerate() {
            let x = self.x(i);
            // The end labels stay inside the picture.
            let anchor = match k {
                0 => "start",
                k if k == last => "end",
                _ => "middle",
            };
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#999"/><text x="{x:.1}" y="{}" text-anchor="{anchor}" class="tick">{}</text>"##,
                self.bottom,
                self.bottom + 5.0,
                self.bottom + 17.0,
                escape(&label)
            );
        }
    }

    /// A polyline of `values` (one per bar), downsampled to at most [`COLUMNS`] columns that
    /// keep their lowest and highest value.
    fn line(&self, svg: &mut String, values: &[f64], colour: &str, width: f64, dash: &str) {
        let n = values.len();
        if n == 0 {
            return;
        }
        let columns = n.min(COLUMNS);
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="{width}" stroke-dasharray="{dash}" points=""#
        );
        let mut c = 0;
        while c < columns {
            let from = c * n / columns;
            let to = ((c + 1) * n / columns).max(from + 1);
            let slice = &values[from..to];
            let lo = slice.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = slice.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let x = self.x(from);
            let _ = write!(svg, "{x:.1},{:.1} ", self.y(hi));
            if lo < hi {
                let _ = write!(svg, "{x:.1},{:.1} ", self.y(lo));
            }
            c += 1;
        }
        svg.push_str(r#""/>"#);
    }
}

fn legend(svg: &mut String, x: f64, y: f64, items: &[(&str, &str, &str)]) {
    let mut left = x;
    for (label, colour, shape) in items {
        match *shape {
            "line" => {
                let _ = write!(
                    svg,
                    r#"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="{colour}" stroke-width="2"/>"#,
                    left + 18.0
                );
            }
            "dash" => {
                let _ = write!(
                    svg,
                    r#"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="{colour}" stroke-width="2" stroke-dasharray="5 3"/>"#,
                    left + 18.0
                );
            }
            "up" => {
                let _ = write!(
                    svg,
                    r#"<polygon points="{},{} {},{} {},{}" fill="{colour}"/>"#,
                    left + 9.0,
                    y - 6.0,
                    left + 4.0,
                    y + 3.0,
                    left + 14.0,
                    y + 3.0
                );
            }
            "down" => {
                let _ = write!(
                    svg,
                    r#"<polygon points="{},{} {},{} {},{}" fill="{colour}"/>"#,
                    left + 9.0,
                    y + 6.0,
                    left + 4.0,
                    y - 3.0,
                    left + 14.0,
                    y - 3.0
                );
            }
            _ => {
                let _ = write!(
                    svg,
                    r#"<circle cx="{}" cy="{y}" r="4" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                    left + 9.0
                );
            }
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" class="legend">{}</text>"#,
            left + 24.0,
            y + 4.0,
            escape(label)
        );
        left += 30.0 + 7.0 * fu(label.len());
    }
}

const GREEN: &str = "#1a8f3a";
const RED: &str = "#c0392b";
const BLUE: &str = "#1f5fbf";
const GREY: &str = "#777777";
const KILL: &str = "#8e44ad";

/// Vertical marks where the kill switch engaged (its time and each kill-switch exit).
fn kill_marks(svg: &mut String, panel: &Panel, result: &BacktestResult) {
    let curve = &result.equity_curve;
    let mut at: Vec<usize> = result
        .report
        .trades
        .iter()
        .filter(|t| t.exit_kind == ExitKind::KillSwitch)
        .map(|t| t.exit_bar)
        .collect();
    if let Some(t) = result.report.kill_switch_at {
        let i = curve.partition_point(|p| p.time <= t).saturating_sub(1);
        at.push(i);
    }
    at.sort_unstable();
    at.dedup();
    for i in at {
        let x = panel.x(i);
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="{KILL}" stroke-width="1.5" stroke-dasharray="4 2"><title>kill switch: {}</title></line>"#,
            panel.top,
            panel.bottom,
            escape(result.report.kill_switch.as_deref().unwrap_or("engaged"))
        );
    }
}

/// The equity panel (with buy & hold of the same cash, and the trades' entries and exits) and the
/// drawdown panel, as the body of an SVG `height` tall starting at `y0`. Returns the height used.
fn equity_panels(svg: &mut String, result: &BacktestResult, bars: &[Bar], y0: f64) -> f64 {
    let curve = &result.equity_curve;
    let report = &result.report;
    let times: Vec<Timestamp> = curve.iter().map(|p| p.time).collect();
    let scale = 10_f64.powi(i32::from(report.initial_equity.digits));
    let equity: Vec<f64> = curve.iter().map(|p| f(p.equity.minor) / scale).collect();
    let initial = f(report.initial_equity.minor) / scale;
    // Buy & hold: the starting cash in the instrument at the first open, marked at each close.
    let hold: Vec<f64> = match bars.first() {
        Some(first) if bars.len() == curve.len() && first.open.raw() > 0 => bars
            .iter()
            .map(|b| initial * f(b.close.raw()) / f(first.open.raw()))
            .collect(),
        _ => Vec::new(),
    };
    let all = equity.iter().chain(&hold).copied();
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let panel = Panel {
        top: y0 + 30.0,
        bottom: y0 + 330.0,
        lo: lo - pad,
        hi: hi + pad,
        n: curve.len(),
    };
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{}" class="title">Equity ({})</text>"#,
        y0 + 14.0,
        escape(&report.currencies.account)
    );
    panel.axes(svg, &times, "", 0);
    if !hold.is_empty() {
        panel.line(svg, &hold, GREY, 1.0, "5 3");
    }
    panel.line(svg, &equity, BLUE, 1.4, "none");
    kill_marks(svg, &panel, result);
    let trades = &report.trades;
    if trades.len() > MAX_MARKERS {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end" fill="#666">{} trades: markers left out</text>"##,
            WIDTH - RIGHT,
            y0 + 14.0,
            trades.len()
        );
    } else {
        for trade in trades {
            let (Some(entry), Some(exit)) =
                (equity.get(trade.entry_bar), equity.get(trade.exit_bar))
            else {
                continue;
            };
            let (x, y) = (panel.x(trade.entry_bar), panel.y(*entry));
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
                    GREEN,
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
                    RED,
                ),
            };
            let _ = write!(svg, r#"<polygon points="{points}" fill="{colour}"/>"#);
            let colour = if trade.pnl.minor > 0 { GREEN } else { RED };
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                panel.x(trade.exit_bar),
                panel.y(*exit)
            );
        }
    }
    let mut items = vec![("strategy equity", BLUE, "line")];
    if !hold.is_empty() {
        items.push(("buy & hold", GREY, "dash"));
    }
    items.extend([
        ("long entry", GREEN, "up"),
        ("short entry", RED, "down"),
        ("exit (green profit, red loss)", GREEN, "ring"),
    ]);
    if report.kill_switch.is_some() {
        items.push(("kill switch", KILL, "dash"));
    }
    legend(svg, LEFT + 10.0, panel.top + 14.0, &items);

    // Drawdown.
    let mut peak = f(report.initial_equity.minor);
    let dd: Vec<f64> = curve
        .iter()
        .map(|p| {
            let e = f(p.equity.minor);
            peak = peak.max(e);
            if peak > 0.0 {
                -(peak - e) / peak * 100.0
            } else {
                0.0
            }
        })
        .collect();
    let deepest = dd.iter().copied().fold(0.0_f64, f64::min);
    let dd_panel = Panel {
        top: y0 + 390.0,
        bottom: y0 + 540.0,
        lo: deepest.min(-0.01) * 1.05,
        hi: 0.0,
        n: curve.len(),
    };
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{}" class="title">Drawdown (deepest {:.2} %)</text>"#,
        y0 + 378.0,
        report.max_drawdown_pct
    );
    dd_panel.axes(svg, &times, " %", 1);
    if !dd.is_empty() {
        let _ = write!(
            svg,
            r##"<polygon fill="#e4a0a0" stroke="{RED}" stroke-width="0.8" points="{:.1},{:.1} "##,
            dd_panel.x(0),
            dd_panel.y(0.0)
        );
        let n = dd.len();
        let columns = n.min(COLUMNS);
        for c in 0..columns {
            let from = c * n / columns;
            let to = ((c + 1) * n / columns).max(from + 1);
            let low = dd[from..to].iter().copied().fold(0.0_f64, f64::min);
            let _ = write!(svg, "{:.1},{:.1} ", dd_panel.x(from), dd_panel.y(low));
        }
        let _ = write!(svg, r#"{:.1},{:.1}"/>"#, dd_panel.x(n - 1), dd_panel.y(0.0));
    }
    kill_marks(svg, &dd_panel, result);
    570.0
}

/// The price panel: closes, with each trade's entry (triangle) and exit (ring) at its fill price.
fn price_panel(svg: &mut String, result: &BacktestResult, bars: &[Bar], y0: f64) -> f64 {
    if bars.is_empty() {
        return 0.0;
    }
    let times: Vec<Timestamp> = bars.iter().map(|b| b.start).collect();
    let closes: Vec<f64> = bars.iter().map(|b| f(b.close.raw()) / 1e5).collect();
    let (lo, hi) = bars
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), bar| {
            (
                a.min(f(bar.low.raw()) / 1e5),
                b.max(f(bar.high.raw()) / 1e5),
            )
        });
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let panel = Panel {
        top: y0 + 30.0,
        bottom: y0 + 300.0,
        lo: lo - pad,
        hi: hi + pad,
        n: bars.len(),
    };
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{}" class="title">Price ({}) with entries and exits</text>"#,
        y0 + 14.0,
        escape(&result.report.currencies.quote)
    );
    panel.axes(svg, &times, "", 0);
    panel.line(svg, &closes, "#333333", 1.0, "none");
    kill_marks(svg, &panel, result);
    let trades = &result.report.trades;
    if trades.len() <= MAX_MARKERS {
        for t in trades {
            let (x, y) = (panel.x(t.entry_bar), panel.y(f(t.entry_price.raw()) / 1e5));
            let colour = if t.side == Side::Buy { GREEN } else { RED };
            let points = if t.side == Side::Buy {
                format!(
                    "{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}",
                    y - 6.0,
                    x - 5.0,
                    y + 3.0,
                    x + 5.0,
                    y + 3.0
                )
            } else {
                format!(
                    "{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}",
                    y + 6.0,
                    x - 5.0,
                    y - 3.0,
                    x + 5.0,
                    y - 3.0
                )
            };
            let _ = write!(
                svg,
                r#"<polygon points="{points}" fill="{colour}"><title>{} {} at {}</title></polygon>"#,
                if t.side == Side::Buy { "long" } else { "short" },
                t.volume,
                t.entry_price
            );
            let ring = if t.pnl.minor > 0 { GREEN } else { RED };
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="none" stroke="{ring}" stroke-width="1.5"><title>exit at {} ({}), PnL {}</title></circle>"#,
                panel.x(t.exit_bar),
                panel.y(f(t.exit_price.raw()) / 1e5),
                t.exit_price,
                t.exit_kind.as_str(),
                t.pnl
            );
        }
    }
    legend(
        svg,
        LEFT + 10.0,
        panel.top + 14.0,
        &[
            ("close", "#333333", "line"),
            ("long entry", GREEN, "up"),
            ("short entry", RED, "down"),
            ("exit", GREEN, "ring"),
        ],
    );
    330.0
}

const STYLE: &str = "<style>.tick{font-size:11px;fill:#444}.title{font-size:14px;font-weight:bold}.legend{font-size:11px}</style>";

/// The `--plot` picture: a headline, the equity panel (with buy & hold when `bars` are the run's
/// bars) and the drawdown panel, each with axes, ticks and a legend.
pub fn render_equity_svg(result: &BacktestResult, bars: &[Bar]) -> String {
    let report = &result.report;
    let height = 600.0;
    let mut svg = String::with_capacity(64 * 1024);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">{STYLE}"#
    );
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="20" font-size="15">Equity: return {:.2} %, max drawdown {:.2} %, {} trades (buy &amp; hold {:.2} %)</text>"#,
        report.return_pct,
        report.max_drawdown_pct,
        report.trade_count,
        report.buy_and_hold_return_pct
    );
    if !result.equity_curve.is_empty() {
        equity_panels(&mut svg, result, bars, 24.0);
    }
    svg.push_str("</svg>");
    svg
}

/// The charts of the HTML report: price with trades, equity with buy & hold, drawdown.
pub(crate) fn render_report_charts(result: &BacktestResult, bars: &[Bar]) -> String {
    let mut body = String::with_capacity(128 * 1024);
    let used_price = price_panel(&mut body, result, bars, 0.0);
    let used_equity = if result.equity_curve.is_empty() {
        0.0
    } else {
        equity_panels(&mut body, result, bars, used_price)
    };
    let height = used_price + used_equity + 10.0;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12" role="img" aria-label="price, equity and drawdown charts">{STYLE}<rect width="100%" height="100%" fill="white"/>{body}</svg>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_inside_the_range() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        let t = nice_ticks(9_870.0, 10_720.0, 5);
        assert_eq!(t, vec![10_000.0, 10_200.0, 10_400.0, 10_600.0]);
        assert_eq!(nice_ticks(5.0, 5.0, 5), vec![5.0]);
    }
}

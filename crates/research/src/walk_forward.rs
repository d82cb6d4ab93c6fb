//! Walk-forward analysis: optimise on a training window, trade the winner on the test window
//! that follows, move on; stitch the out-of-sample equity and compare it with the in-sample
//! results, so overfitting shows.

use std::fmt::Write as _;
use std::ops::Range;

use domain::{Bar, Money, Timestamp};
use serde_json::Value;
use strategy::RsiSentimentStrategy;
use strategy::Strategy;
use strategy::backtest::{Backtester, EquityPoint, Report};

use crate::metric::Constraint;
use crate::metric::Objective;
use crate::optimize::{Build, Market, search};
use crate::space::{Space, SpaceError};

/// The length of a window: a number of bars or a span of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// This many bars.
    Bars(usize),
    /// This many milliseconds.
    Millis(i64),
}

/// How training windows move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Each training window has the same length and ends where its test window starts.
    Rolling,
    /// Each training window starts at the first bar.
    Anchored,
}

fn parse_span(text: &str, whole: &str) -> Result<Span, SpaceError> {
    let text = text.trim();
    let bad = || {
        SpaceError(format!(
            "--walk-forward {whole:?}: {text:?} is not a length; use bars (2000) or time with a unit h, d or w (90d)"
        ))
    };
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => (&text[..at], &text[at..]),
        None => (text, ""),
    };
    let n: i64 = number.parse().map_err(|_| bad())?;
    if n <= 0 {
        return Err(SpaceError(format!(
            "--walk-forward {whole:?}: {text:?} must be positive"
        )));
    }
    let unit_ms = match unit {
        "" => return usize::try_from(n).map(Span::Bars).map_err(|_| bad()),
        "h" => Timestamp::HOUR_MS,
        "d" => Timestamp::DAY_MS,
        "w" => 7 * Timestamp::DAY_MS,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ms).map(Span::Millis).ok_or_else(bad)
}

/// Parses `TRAIN:TEST`, e.g. `180d:30d`, `12w:4w`, `2000:500` (bars).
pub fn parse_walk_forward(text: &str) -> Result<(Span, Span), SpaceError> {
    let (train, test) = text.split_once(':').ok_or_else(|| {
        SpaceError(format!(
            "--walk-forward {text:?}: expected TRAIN:TEST, e.g. 180d:30d or 2000:500"
        ))
    })?;
    let (train, test) = (parse_span(train, text)?, parse_span(test, text)?);
    if std::mem::discriminant(&train) != std::mem::discriminant(&test) {
        return Err(SpaceError(format!(
            "--walk-forward {text:?}: give both lengths in bars or both in time"
        )));
    }
    Ok((train, test))
}

/// One training window and the test window after it, as bar index ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Bars optimised on.
    pub train: Range<usize>,
    /// Bars the winner trades.
    pub test: Range<usize>,
}

/// The windows over `bars`: test windows follow each other from the end of the first training
/// window to the last bar (the last may be shorter); a training window always precedes its test
/// window without overlap.
pub fn windows(bars: &[Bar], train: Span, test: Span, kind: WindowKind) -> Vec<Window> {
    let n = bars.len();
    let mut out = Vec::new();
    match (train, test) {
        (Span::Bars(train), Span::Bars(test)) => {
            let mut start = train;
            while start < n && test > 0 {
                let end = (start + test).min(n);
                let from = match kind {
                    WindowKind::Rolling => start - train,
                    WindowKind::Anchored => 0,
                };
                out.push(Window {
                    train: from..start,
                    test: start..end,
                });
                start = end;
            }
        }
        (Span::Millis(train), Span::Millis(test)) => {
            let Some(first) = bars.first() else {
                return out;
            };
            let index_at = |t: Timestamp| bars.partition_point(|b| b.start < t);
            let mut t = first.start.plus_millis(train);
            while index_at(t) < n && test > 0 {
                let (start, end) = (index_at(t), index_at(t.plus_millis(test)));
                let from = match kind {
                    WindowKind::Rolling => index_at(t.plus_millis(-train)),
                    WindowKind::Anchored => 0,
                };
                if end > start && start > from {
                    out.push(Window {
                        train: from..start,
                        test: start..end,
                    });
                }
                t = t.plus_millis(test);
            }
        }
        _ => {}
    }
    out
}

/// One window's results.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowResult {
    /// The window.
    pub window: Window,
    /// First and last bar start of the training and the test window.
    pub train_span: (Timestamp, Timestamp),
    /// First and last bar start of the test window.
    pub test_span: (Timestamp, Timestamp),
    /// The winning combination's values (None: nothing ranked in training; the test window
    /// then stays flat).
    pub best: Option<Vec<String>>,
    /// The winner's in-sample report.
    pub in_sample: Option<Report>,
    /// The winner's report on the test window.
    pub out_of_sample: Option<Report>,
}

/// A whole walk-forward run.
#[derive(Debug, Clone, PartialEq)]
pub struct WalkForward {
    /// Parameter names.
    pub params: Vec<String>,
    /// The objective.
    pub objective: Objective,
    /// Per window.
    pub windows: Vec<WindowResult>,
    /// The test windows' equity, each window starting from the previous one's final equity.
    pub equity: Vec<EquityPoint>,
    /// Starting cash.
    pub initial: Money,
    /// Annualised out-of-sample return over annualised in-sample return (mean over windows), as
    /// a fraction; `None` when in-sample returns are not positive.
    pub efficiency: Option<f64>,
}

/// Runs a walk-forward analysis; `progress(window, windows)` after each window.
#[allow(clippy::too_many_arguments)] // each argument a different part of the set-up
pub fn walk_forward(
    space: &Space,
    indices: &[u64],
    build: &Build<'_>,
    market: Market<'_>,
    objective: Objective,
    constraints: &[Constraint],
    windows: &[Window],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<WalkForward, SpaceError> {
    let params: Vec<String> = space.params().iter().map(|p| p.name.clone()).collect();
    let mut results = Vec::new();
    let mut equity: Vec<EquityPoint> = Vec::new();
    let mut initial: Option<Money> = None;
    let mut carried: Option<Money> = None;
    for (w, window) in windows.iter().enumerate() {
        let train_bars = &market.bars[window.train.clone()];
        let test_bars = &market.bars[window.test.clone()];
        let span = |bars: &[Bar]| {
            (
                bars.first().map_or(Timestamp(0), |b| b.start),
                bars.last().map_or(Timestamp(0), |b| b.start),
            )
        };
        let found = search(
            space,
            indices,
            build,
            Market {
                warm_up: &[],
                bars: train_bars,
                sentiment: market.sentiment,
            },
            objective,
            constraints,
            &|_, _| {},
        );
        let best = found.best().cloned();
        let mut out_of_sample = None;
        if let Some(best) = &best {
            let pairs: Vec<(&str, &str)> = params
                .iter()
                .map(String::as_str)
                .zip(best.values.iter().map(String::as_str))
                .collect();
            let mut candidate = build(&pairs).map_err(SpaceError)?;
            initial.get_or_insert(candidate.backtest.initial_cash);
            if let Some(cash) = carried {
                candidate.backtest.initial_cash = cash;
            }
            let backtester =
                Backtester::new(candidate.backtest).map_err(|e| SpaceError(e.to_string()))?;
            let mut strategy = RsiSentimentStrategy::new(candidate.strategy)
                .map_err(|e| SpaceError(e.to_string()))?;
            // The RSI is warm at the test window's first bar, as it would be live.
            strategy.warm_up(train_bars);
            let run = backtester
                .run(&mut strategy, test_bars, market.sentiment, &mut |_, _| {})
                .map_err(|e| SpaceError(e.to_string()))?;
            equity.extend_from_slice(&run.equity_curve);
            carried = Some(run.report.final_equity);
            out_of_sample = Some(run.report);
        } else if let Some(cash) = carried.or(initial) {
            // Nothing to trade: the test window stays flat at the carried equity.
            equity.extend(test_bars.iter().map(|b| EquityPoint {
                time: b.start,
                equity: cash,
                exposed: false,
            }));
        }
        results.push(WindowResult {
            window: window.clone(),
            train_span: span(train_bars),
            test_span: span(test_bars),
            best: best.as_ref().map(|b| b.values.clone()),
            in_sample: best.as_ref().and_then(|b| b.report().cloned()),
            out_of_sample,
        });
        progress(w + 1, windows.len());
    }
    let efficiency = efficiency(&results);
    Ok(WalkForward {
        params,
        objective,
        windows: results,
        equity,
        initial: initial.unwrap_or(Money::zero(2)),
        efficiency,
    })
}

#[allow(clippy::cast_precision_loss)] // statistics only
fn f(x: i64) -> f64 {
    x as f64
}

/// A return over `span_ms` compounded to one year.
fn annualised(return_pct: f64, span_ms: i64) -> Option<f64> {
    if span_ms <= 0 {
        return None;
    }
    let years = f(span_ms) / (365.25 * f(Timestamp::DAY_MS));
    let growth = 1.0 + return_pct / 100.0;
    (growth > 0.0).then(|| growth.powf(1.0 / years) - 1.0)
}

/// Length a report covers: first bar start to last bar's end.
fn covered(r: &Report, bar_ms: i64) -> i64 {
    r.last_bar.millis_since(r.first_bar) + bar_ms
}

/// Mean annualised out-of-sample return over mean annualised in-sample return.
fn efficiency(windows: &[WindowResult]) -> Option<f64> {
    let mut is = Vec::new();
    let mut oos = Vec::new();
    for w in windows {
        let (Some(i), Some(o)) = (&w.in_sample, &w.out_of_sample) else {
            continue;
        };
        let bar_ms = bar_length(i);
        is.push(annualised(i.return_pct, covered(i, bar_ms))?);
        oos.push(annualised(o.return_pct, covered(o, bar_ms))?);
    }
    if is.is_empty() {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / f(i64::try_from(v.len()).unwrap_or(1));
    let (a, b) = (mean(&oos), mean(&is));
    (b > 0.0).then(|| a / b).filter(|x| x.is_finite())
}

/// The bar length a report's bars imply (span / (bars − 1)).
fn bar_length(r: &Report) -> i64 {
    let n = i64::try_from(r.bars).unwrap_or(1);
    if n > 1 {
        r.last_bar.millis_since(r.first_bar) / (n - 1)
    } else {
        0
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.2}"))
}

impl WalkForward {
    /// Final equity of the stitched out-of-sample run.
    pub fn final_equity(&self) -> Money {
        self.equity.last().map_or(self.initial, |p| p.equity)
    }

    /// Total out-of-sample return, in percent.
    pub fn return_pct(&self) -> f64 {
        let a = f(self.initial.minor);
        if a == 0.0 {
            return 0.0;
        }
        (f(self.final_equity().minor) - a) / a * 100.0
    }

    /// Deepest fall of the stitched equity from its running peak, in percent.
    pub fn max_drawdown_pct(&self) -> f64 {
        let mut peak = self.initial.minor;
        let mut max = 0.0_f64;
        for p in &self.equity {
            peak = peak.max(p.equity.minor);
            if peak > 0 {
                max = max.max((f(peak) - f(p.equity.minor)) / f(peak));
            }
        }
        max * 100.0
    }

    /// The per-window table and the summary lines.
    pub fn render_table(&self) -> String {
        let metric = self.objective.metric.name();
        let mut rows: Vec<Vec<String>> = vec![
            [
                "window",
                "train from",
                "test from",
                "test to",
                "best",
                &format!("IS {metric}"),
                &format!("OOS {metric}"),
                "IS return%",
                "OOS return%",
                "OOS trades",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        ];
        let day = |t: Timestamp| t.to_string().chars().take(16).collect::<String>();
        for (i, w) in self.windows.iter().enumerate() {
            let best = w.best.as_ref().map_or_else(
                || "(none ranked)".to_owned(),
                |values| {
                    self.params
                        .iter()
                        .zip(values)
                        .map(|(p, v)| format!("{p}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                },
            );
            let m =
                |r: &Option<Report>| pct(r.as_ref().and_then(|r| self.objective.metric.value(r)));
            rows.push(vec![
                (i + 1).to_string(),
                day(w.train_span.0),
                day(w.test_span.0),
                day(w.test_span.1),
                best,
                m(&w.in_sample),
                m(&w.out_of_sample),
                pct(w.in_sample.as_ref().map(|r| r.return_pct)),
                pct(w.out_of_sample.as_ref().map(|r| r.return_pct)),
                w.out_of_sample
                    .as_ref()
                    .map_or_else(|| "0".to_owned(), |r| r.trade_count.to_string()),
            ]);
        }
        let columns = rows.first().map_or(0, Vec::len);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                rows.iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", line.join("  ").trim_end());
        }
        let _ = writeln!(
            out,
            "Out of sample (stitched): return {:.2} %, max drawdown {:.2} %, final equity {}",
            self.return_pct(),
            self.max_drawdown_pct(),
            self.final_equity()
        );
        let _ = writeln!(
            out,
            "Walk-forward efficiency (annualised OOS return / annualised IS return): {}",
            self.efficiency.map_or_else(
                || "n/a (no positive in-sample return)".to_owned(),
                |e| format!("{:.1} %", e * 100.0)
            )
        );
        out
    }

    /// The run as JSON: windows with their in- and out-of-sample statistics, the stitched
    /// summary and the efficiency.
    pub fn to_json(&self) -> Value {
        let stats = |r: &Option<Report>| {
            r.as_ref().and_then(|r| {
                let mut v = serde_json::to_value(r).ok()?;
                if let Some(map) = v.as_object_mut() {
                    map.remove("trades");
                }
                Some(v)
            })
        };
        let windows: Vec<Value> = self
            .windows
            .iter()
            .map(|w| {
                serde_json::json!({
                    "train_from": w.train_span.0.to_string(),
                    "train_to": w.train_span.1.to_string(),
                    "test_from": w.test_span.0.to_string(),
                    "test_to": w.test_span.1.to_string(),
                    "best": w.best.as_ref().map(|values| self.params.iter().cloned().zip(values.iter().map(|v| Value::String(v.clone()))).collect::<serde_json::Map<String, Value>>()),
                    "in_sample": stats(&w.in_sample),
                    "out_of_sample": stats(&w.out_of_sample),
                })
            })
            .collect();
        serde_json::json!({
            "params": self.params,
            "objective": self.objective.metric.name(),
            "windows": windows,
            "out_of_sample": {
                "initial_equity": self.initial.to_string(),
                "final_equity": self.final_equity().to_string(),
                "return_pct": self.return_pct(),
                "max_drawdown_pct": self.max_drawdown_pct(),
            },
            "efficiency": self.efficiency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Price, SymbolId, Timeframe};

    fn bars(n: usize) -> Vec<Bar> {
        (0..n)
            .map(|i| Bar {
                symbol: SymbolId(0),
                timeframe: Timeframe::H1,
                start: Timestamp(i64::try_from(i).unwrap() * Timestamp::HOUR_MS),
                open: Price(100),
                high: Price(100),
                low: Price(100),
                close: Price(100),
                volume: 0,
            })
            .collect()
    }

    #[test]
    fn walk_forward_lengths_parse() {
        assert_eq!(
            parse_walk_forward("2000:500").unwrap(),
            (Span::Bars(2000), Span::Bars(500))
        );
        assert_eq!(
            parse_walk_forward("2d:12h").unwrap(),
            (
                Span::Millis(2 * Timestamp::DAY_MS),
                Span::Millis(12 * Timestamp::HOUR_MS)
            )
        );
        for bad in ["2000", "2000:5x", "0:5", "10d:5", ":"] {
            assert!(parse_walk_forward(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rolling_and_anchored_windows_follow_each_other() {
        let b = bars(10);
        let rolling = windows(&b, Span::Bars(4), Span::Bars(3), WindowKind::Rolling);
        assert_eq!(
            rolling,
            vec![
                Window {
                    train: 0..4,
                    test: 4..7
                },
                Window {
                    train: 3..7,
                    test: 7..10
                },
            ]
        );
        let anchored = windows(&b, Span::Bars(4), Span::Bars(4), WindowKind::Anchored);
        assert_eq!(
            anchored,
            vec![
                Window {
                    train: 0..4,
                    test: 4..8
                },
                Window {
                    train: 0..8,
                    test: 8..10
                },
            ]
        );
        let by_time = windows(
            &b,
            Span::Millis(4 * Timestamp::HOUR_MS),
            Span::Millis(3 * Timestamp::HOUR_MS),
            WindowKind::Rolling,
        );
        assert_eq!(by_time, rolling);
        assert!(windows(&b, Span::Bars(10), Span::Bars(3), WindowKind::Rolling).is_empty());
    }
}

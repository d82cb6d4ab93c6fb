//! An optimisation's results: the ranked table, every combination as CSV or JSON, and the
//! heatmap of two parameters.

use std::fmt::Write as _;
use std::io;

use serde_json::{Map, Value};
use strategy::backtest::Report;

use crate::metric::{Direction, Metric, Objective};
use crate::optimize::{Outcome, SearchResult, Status};
use crate::space::{SpaceError, normalise_name};

/// The report's statistics in the order of the CSV columns (every JSON field but the lists).
pub(crate) const STAT_COLUMNS: [&str; 35] = [
    "bars",
    "first_bar",
    "last_bar",
    "initial_equity",
    "final_equity",
    "peak_equity",
    "return_pct",
    "annual_return_pct",
    "cagr_pct",
    "volatility_pct",
    "buy_and_hold_return_pct",
    "max_drawdown_pct",
    "max_drawdown_duration_ms",
    "trade_count",
    "win_rate_pct",
    "profit_factor",
    "expectancy",
    "average_win",
    "average_loss",
    "best_trade",
    "worst_trade",
    "average_trade_duration_ms",
    "longest_trade_duration_ms",
    "sharpe",
    "sortino",
    "calmar",
    "sqn",
    "longest_losing_streak",
    "exposure_pct",
    "total_commission",
    "refused_entries",
    "kill_switch",
    "kill_switch_at",
    "currency",
    "status_note",
];

fn status_name(o: &Outcome) -> &'static str {
    match &o.status {
        Status::Ran { passes: true, .. } => "ok",
        Status::Ran { passes: false, .. } => "failed_constraint",
        Status::Excluded(_) => "excluded",
        Status::Invalid(_) => "invalid",
    }
}

fn note(o: &Outcome) -> String {
    match &o.status {
        Status::Excluded(c) => format!("excluded by {c}"),
        Status::Invalid(why) => why.clone(),
        Status::Ran { .. } => String::new(),
    }
}

/// The report as a JSON object of its statistics (no trade list).
fn stats_json(report: &Report) -> Map<String, Value> {
    match serde_json::to_value(report) {
        Ok(Value::Object(mut map)) => {
            map.remove("trades");
            map
        }
        _ => Map::new(),
    }
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Writes one row per combination in grid order: `index`, `rank`, each parameter, `status`
/// (`ok`, `failed_constraint`, `excluded`, `invalid`), then every statistic (empty when not run
/// or undefined) and a note saying why a combination did not run.
pub fn write_results_csv<W: io::Write>(result: &SearchResult, out: W) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<String> = vec!["index".into(), "rank".into()];
    header.extend(result.params.iter().cloned());
    header.push("status".into());
    header.extend(STAT_COLUMNS.iter().map(|s| (*s).to_owned()));
    w.write_record(&header)?;
    for o in &result.outcomes {
        let mut row: Vec<String> = vec![
            o.index.to_string(),
            o.rank.map(|r| r.to_string()).unwrap_or_default(),
        ];
        row.extend(o.values.iter().cloned());
        row.push(status_name(o).to_owned());
        let stats = o.report().map(stats_json).unwrap_or_default();
        for column in STAT_COLUMNS {
            row.push(match column {
                "currency" => o
                    .report()
                    .map(|r| r.currencies.account.clone())
                    .unwrap_or_default(),
                "status_note" => note(o),
                name => cell(stats.get(name)),
            });
        }
        w.write_record(&row)?;
    }
    w.flush()
}

/// Every combination as JSON: `{ "params": [...], "objective": ..., "combinations": [{index,
/// rank, params: {name: value}, status, note, statistics: {...}}] }`, in grid order.
pub fn results_json(result: &SearchResult, objective: Objective) -> Value {
    let combinations: Vec<Value> = result
        .outcomes
        .iter()
        .map(|o| {
            let params: Map<String, Value> = result
                .params
                .iter()
                .cloned()
                .zip(o.values.iter().map(|v| Value::String(v.clone())))
                .collect();
            serde_json::json!({
                "index": o.index,
                "rank": o.rank,
                "params": params,
                "status": status_name(o),
                "note": note(o),
                "statistics": o.report().map(stats_json),
            })
        })
        .collect();
    serde_json::json!({
        "params": result.params,
        "objective": {
            "metric": objective.metric.name(),
            "direction": match objective.direction {
                Direction::Maximise => "maximise",
                Direction::Minimise => "minimise",
            },
        },
        "bar_evaluations": result.bar_evaluations,
        "combinations": combinations,
    })
}

fn show(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.2}{unit}"))
}

/// The `top` best combinations as an aligned table, plus a line counting the others.
pub fn render_ranking(result: &SearchResult, objective: Objective, top: usize) -> String {
    let mut header: Vec<String> = vec!["rank".into()];
    header.extend(result.params.iter().cloned());
    let metric = objective.metric.name();
    // The objective first, then the usual figures (the objective not twice).
    let fixed: Vec<(&str, Metric, &str)> = [
        ("return%", Metric::Return),
        ("sharpe", Metric::Sharpe),
        ("max_dd%", Metric::MaxDrawdown),
        ("trades", Metric::Trades),
        ("win%", Metric::WinRate),
        ("pf", Metric::ProfitFactor),
    ]
    .into_iter()
    .filter(|(_, m)| *m != objective.metric)
    .map(|(label, m)| (label, m, ""))
    .collect();
    header.push(metric.to_owned());
    header.extend(fixed.iter().map(|(label, _, _)| (*label).to_owned()));
    let mut rows: Vec<Vec<String>> = vec![header];
    for &i in result.ranking.iter().take(top) {
        let Some(o) = result.outcomes.get(i) else {
            continue;
        };
        let Some(r) = o.report() else { continue };
        let mut row = vec![o.rank.map(|r| r.to_string()).unwrap_or_default()];
        row.extend(o.values.iter().cloned());
        row.push(show(objective.metric.value(r), ""));
        for (_, m, unit) in &fixed {
            row.push(if *m == Metric::Trades {
                r.trade_count.to_string()
            } else {
                show(m.value(r), unit)
            });
        }
        rows.push(row);
    }
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:>w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let count = |f: fn(&Status) -> bool| result.outcomes.iter().filter(|o| f(&o.status)).count();
    let _ = writeln!(
        out,
        "{} combination(s): {} ranked, {} failed a constraint or had no {metric}, {} excluded, {} invalid",
        result.outcomes.len(),
        result.ranking.len(),
        count(|s| matches!(s, Status::Ran { .. })) - result.ranking.len(),
        count(|s| matches!(s, Status::Excluded(_))),
        count(|s| matches!(s, Status::Invalid(_))),
    );
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Sorts parameter values numerically when they all are numbers, else as given.
fn axis_values(result: &SearchResult, param: usize) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    for o in &result.outcomes {
        if let Some(v) = o.values.get(param)
            && !values.contains(v)
        {
            values.push(v.clone());
        }
    }
    let numbers: Option<Vec<f64>> = values.iter().map(|v| v.parse::<f64>().ok()).collect();
    if let Some(numbers) = numbers {
        let mut pairs: Vec<(f64, String)> = numbers.into_iter().zip(values).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        values = pairs.into_iter().map(|(_, v)| v).collect();
    }
    values
}

/// A heatmap of the objective over two parameters (`x`, `y`): each cell shows the best value
/// among the ranked combinations with that pair (the other parameters free), coloured from the
/// worst (red) to the best (green); an empty cell had no ranked combination.
pub fn render_heatmap_svg(
    result: &SearchResult,
    objective: Objective,
    x: &str,
    y: &str,
) -> Result<String, SpaceError> {
    let find = |name: &str| {
        let n = normalise_name(name);
        result.params.iter().position(|p| *p == n).ok_or_else(|| {
            SpaceError(format!(
                "--heatmap-params: {name:?} is not a --param (one of: {})",
                result.params.join(", ")
            ))
        })
    };
    let (xi, yi) = (find(x)?, find(y)?);
    if xi == yi {
        return Err(SpaceError(
            "--heatmap-params: name two different parameters".into(),
        ));
    }
    let xs = axis_values(result, xi);
    let ys = axis_values(result, yi);
    // Best score per cell, over the ranked combinations.
    let mut cells: Vec<Option<f64>> = vec![None; xs.len() * ys.len()];
    for &i in &result.ranking {
        let Some(o) = result.outcomes.get(i) else {
            continue;
        };
        let (Some(xv), Some(yv), Some(r)) = (o.values.get(xi), o.values.get(yi), o.report()) else {
            continue;
        };
        let (Some(cx), Some(cy)) = (
            xs.iter().position(|v| v == xv),
            ys.iter().position(|v| v == yv),
        ) else {
            continue;
        };
        if let Some(score) = objective.score(r) {
            let slot = &mut cells[cy * xs.len() + cx];
            *slot = Some(slot.map_or(score, |s: f64| s.max(score)));
        }
    }
    let (lo, hi) = cells
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let shown = |score: f64| match objective.direction {
        Direction::Maximise => score,
        Direction::Minimise => -score,
    };
    const CELL_W: f64 = 64.0;
    const CELL_H: f64 = 28.0;
    const LEFT: f64 = 110.0;
    const TOP: f64 = 60.0;
    // Wide enough for the title even with few columns.
    let width = (LEFT + CELL_W * count(xs.len()) + 150.0).max(640.0);
    let height = TOP + CELL_H * count(ys.len()) + 70.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    let metric = objective.metric.name();
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="14">Best {} by {} and {} ({} ranked of {} combinations)</text>"#,
        escape(metric),
        escape(&result.params[xi]),
        escape(&result.params[yi]),
        result.ranking.len(),
        result.outcomes.len()
    );
    for (cy, yv) in ys.iter().enumerate() {
        let top = TOP + CELL_H * count(cy);
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            top + CELL_H / 2.0 + 4.0,
            escape(yv)
        );
        for (cx, _) in xs.iter().enumerate() {
            let left = LEFT + CELL_W * count(cx);
            let value = cells[cy * xs.len() + cx];
            let fill = value.map_or_else(|| "#eeeeee".to_owned(), |v| colour(v, lo, hi));
            let _ = write!(
                svg,
                r#"<rect x="{left}" y="{top}" width="{CELL_W}" height="{CELL_H}" fill="{fill}" stroke="white"><title>{}={}, {}={}: {}</title></rect>"#,
                escape(&result.params[xi]),
                escape(&xs[cx]),
                escape(&result.params[yi]),
                escape(yv),
                value.map_or_else(
                    || "no ranked combination".to_owned(),
                    |v| format!("{:.4}", shown(v))
                )
            );
            if let Some(v) = value {
                let _ = write!(
                    svg,
                    r#"<text x="{}" y="{}" text-anchor="middle">{:.2}</text>"#,
                    left + CELL_W / 2.0,
                    top + CELL_H / 2.0 + 4.0,
                    shown(v)
                );
            }
        }
    }
    let bottom = TOP + CELL_H * count(ys.len());
    for (cx, xv) in xs.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + CELL_W * count(cx) + CELL_W / 2.0,
            bottom + 16.0,
            escape(xv)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="13">{}</text>"#,
        LEFT + CELL_W * count(xs.len()) / 2.0,
        bottom + 40.0,
        escape(&result.params[xi])
    );
    let _ = write!(
        svg,
        r#"<text x="16" y="{}" font-size="13" transform="rotate(-90 16 {})" text-anchor="middle">{}</text>"#,
        TOP + CELL_H * count(ys.len()) / 2.0,
        TOP + CELL_H * count(ys.len()) / 2.0,
        escape(&result.params[yi])
    );
    // Colour scale.
    let scale_x = LEFT + CELL_W * count(xs.len()) + 30.0;
    if lo.is_finite() {
        for step in 0..10 {
            let t = f64::from(step) / 9.0;
            let v = hi - (hi - lo) * t;
            let _ = write!(
                svg,
                r#"<rect x="{scale_x}" y="{}" width="18" height="12" fill="{}"/>"#,
                TOP + f64::from(step) * 12.0,
                colour(v, lo, hi)
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}">{:.2} (best)</text><text x="{}" y="{}">{:.2}</text>"#,
            scale_x + 24.0,
            TOP + 10.0,
            shown(hi),
            scale_x + 24.0,
            TOP + 118.0,
            shown(lo)
        );
    }
    svg.push_str("</svg>");
    Ok(svg)
}

#[allow(clippy::cast_precision_loss)] // drawing only
fn count(n: usize) -> f64 {
    n as f64
}

/// Red (worst) through yellow to green (best).
fn colour(v: f64, lo: f64, hi: f64) -> String {
    let t = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
    let (r, g) = if t < 0.5 {
        (220.0, 60.0 + 340.0 * t)
    } else {
        (220.0 - 340.0 * (t - 0.5), 230.0)
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped to 0..=255
    let byte = |x: f64| x.clamp(0.0, 255.0).round() as u8;
    format!("#{:02x}{:02x}{:02x}", byte(r), byte(g), byte(80.0))
}

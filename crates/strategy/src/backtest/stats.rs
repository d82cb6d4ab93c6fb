//! Statistics of a run, computed from its equity curve and closed trades.
//!
//! The formulas are in `docs/backtesting.md`. The annualised return, volatility, Sharpe, Sortino
//! and Calmar ratios follow backtesting.py's definitions (daily equity returns, compounded), so a
//! result can be compared with that tool's; a test checks them against its output on a fixture.

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

/// A finite number, or `None` (a ratio with a zero or undefined denominator).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Facts of a run besides its curve and trades.
#[derive(Debug)]
pub(super) struct RunFacts {
    pub(super) total_commission: Money,
    pub(super) refused_entries: usize,
    pub(super) kill_switch: Option<String>,
    pub(super) kill_switch_at: Option<Timestamp>,
}

/// Computes the report's statistics from the equity curve and the closed trades.
pub(super) fn summarize(
    config: &BacktestConfig,
    first: &Bar,
    last: &Bar,
    curve: &[EquityPoint],
    trades: Vec<TradeRecord>,
    facts: RunFacts,
) -> Report {
    let initial = config.initial_cash.minor;
    let digits = config.initial_cash.digits;
    let final_equity = curve.last().map_or(config.initial_cash, |p| p.equity);
    let return_pct = (f(final_equity.minor) - f(initial)) / f(initial) * 100.0;
    let buy_and_hold_return_pct =
        (f(last.close.raw()) - f(first.open.raw())) / f(first.open.raw()) * 100.0;

    let drawdown = drawdown(initial, curve);
    let daily = DailyReturns::of(curve);
    let annual = daily.annualised();

    let pnls: Vec<i64> = trades.iter().map(|t| t.pnl.minor).collect();
    let wins: Vec<i64> = pnls.iter().copied().filter(|&p| p > 0).collect();
    let losses: Vec<i64> = pnls.iter().copied().filter(|&p| p < 0).collect();
    let win_rate_pct =
        (!trades.is_empty()).then(|| count(wins.len()) / count(trades.len()) * 100.0);
    let gross_profit: f64 = wins.iter().map(|&p| f(p)).sum();
    let gross_loss: f64 = losses.iter().map(|&p| -f(p)).sum();
    let profit_factor = (gross_loss > 0.0).then(|| gross_profit / gross_loss);
    let mean_money = |values: &[i64]| {
        let n = i64::try_from(values.len()).ok().filter(|&n| n > 0)?;
        // i128: a sum of many i64 amounts must not overflow; truncated toward zero.
        let sum: i128 = values.iter().map(|&v| i128::from(v)).sum();
        i64::try_from(sum / i128::from(n))
            .ok()
            .map(|m| Money::new(m, digits))
    };
    let durations: Vec<i64> = trades
        .iter()
        .map(|t| t.exit_time.millis_since(t.entry_time))
        .collect();

    let span_ms = last.start.millis_since(first.start);
    let years = f(span_ms) / (365.25 * f(Timestamp::DAY_MS));
    let cagr_pct = (years > 0.0 && initial > 0)
        .then(|| ((f(final_equity.minor) / f(initial)).powf(1.0 / years) - 1.0) * 100.0)
        .and_then(finite);
    let exposed = curve.iter().filter(|p| p.exposed).count();
    Report {
        currencies: config.currencies.clone(),
        bars: curve.len(),
        first_bar: first.start,
        last_bar: last.start,
        initial_equity: config.initial_cash,
        final_equity,
        peak_equity: Money::new(drawdown.peak.max(initial), digits),
        return_pct,
        annual_return_pct: annual.map(|a| a.annual_return * 100.0),
        cagr_pct,
        volatility_pct: annual.and_then(|a| finite(a.volatility * 100.0)),
        buy_and_hold_return_pct,
        max_drawdown_pct: drawdown.max * 100.0,
        max_drawdown_duration_ms: drawdown.longest_ms,
        trade_count: trades.len(),
        win_rate_pct,
        profit_factor,
        expectancy: mean_money(&pnls),
        average_win: mean_money(&wins),
        average_loss: mean_money(&losses),
        best_trade: pnls.iter().max().map(|&p| Money::new(p, digits)),
        worst_trade: pnls.iter().min().map(|&p| Money::new(p, digits)),
        average_trade_duration_ms: i64::try_from(durations.len())
            .ok()
            .filter(|&n| n > 0)
            .map(|n| durations.iter().sum::<i64>() / n),
        longest_trade_duration_ms: durations.iter().max().copied(),
        sharpe: annual.and_then(|a| finite(a.annual_return / a.volatility)),
        sortino: annual.and_then(|a| finite(a.annual_return / a.downside)),
        calmar: annual
            .filter(|_| drawdown.max > 0.0)
            .and_then(|a| finite(a.annual_return / drawdown.max)),
        sqn: sqn(&pnls),
        longest_losing_streak: longest_losing_streak(&pnls),
        exposure_pct: if curve.is_empty() {
            0.0
        } else {
            count(exposed) / count(curve.len()) * 100.0
        },
        total_commission: facts.total_commission,
        refused_entries: facts.refused_entries,
        kill_switch: facts.kill_switch,
        kill_switch_at: facts.kill_switch_at,
        trades,
    }
}

/// The deepest fall from a running peak and the longest time under water.
#[derive(Debug)]
struct Drawdown {
    /// Deepest fall as a fraction of its peak.
    max: f64,
    /// Highest equity marked.
    peak: i64,
    /// Longest time from a bar at a peak to the next bar back at a peak (or the last bar when
    /// equity never got back), in ms; `None` when equity never fell.
    longest_ms: Option<i64>,
}

fn drawdown(initial: i64, curve: &[EquityPoint]) -> Drawdown {
    let mut peak = initial;
    let mut max = 0.0_f64;
    let mut longest: Option<i64> = None;
    let mut at_peak: Option<Timestamp> = None;
    let mut under_water = false;
    for (i, point) in curve.iter().enumerate() {
        let e = point.equity.minor;
        if e >= peak {
            peak = e;
            if under_water && let Some(from) = at_peak {
                let length = point.time.millis_since(from);
                longest = Some(longest.map_or(length, |l: i64| l.max(length)));
            }
            under_water = false;
            at_peak = Some(point.time);
        } else {
            under_water = true;
            if peak > 0 {
                max = max.max((f(peak) - f(e)) / f(peak));
            }
            if i + 1 == curve.len()
                && let Some(from) = at_peak
            {
                let length = point.time.millis_since(from);
                longest = Some(longest.map_or(length, |l: i64| l.max(length)));
            }
        }
    }
    Drawdown {
        max,
        peak,
        longest_ms: longest,
    }
}

/// Returns of the equity at the last bar of each UTC day that has bars, day over day.
#[derive(Debug)]
struct DailyReturns {
    returns: Vec<f64>,
    /// Trading days per year: 365 when more than 60 % of a full week's share of bars fall on
    /// weekends (a market that trades every day), else 252.
    days_per_year: f64,
}

/// The annualised figures derived from daily returns.
#[derive(Debug, Clone, Copy)]
struct Annual {
    annual_return: f64,
    volatility: f64,
    /// Annualised downside deviation (root mean square of the negative daily returns).
    downside: f64,
}

impl DailyReturns {
    fn of(curve: &[EquityPoint]) -> DailyReturns {
        let mut closes: Vec<i64> = Vec::new();
        let mut day = None;
        let mut weekend_bars = 0usize;
        for point in curve {
            let d = point.time.epoch_day();
            // 1970-01-01 was a Thursday: Monday is 0, Saturday 5, Sunday 6.
            if (d + 3).rem_euclid(7) >= 5 {
                weekend_bars += 1;
            }
            if day == Some(d) {
                if let Some(last) = closes.last_mut() {
                    *last = point.equity.minor;
                }
            } else {
                closes.push(point.equity.minor);
                day = Some(d);
            }
        }
        let returns = closes.windows(2).map(|w| f(w[1]) / f(w[0]) - 1.0).collect();
        let weekend_share = if curve.is_empty() {
            0.0
        } else {
            count(weekend_bars) / count(curve.len())
        };
        DailyReturns {
            returns,
            days_per_year: if weekend_share > 2.0 / 7.0 * 0.6 {
                365.0
            } else {
                252.0
            },
        }
    }

    /// `None` without at least one daily return.
    fn annualised(&self) -> Option<Annual> {
        let r = &self.returns;
        if r.is_empty() {
            return None;
        }
        let n = count(r.len());
        let a = self.days_per_year;
        // Geometric mean daily return; 0 when some day lost everything (as backtesting.py).
        let gmean = if r.iter().any(|x| 1.0 + x <= 0.0) {
            0.0
        } else {
            (r.iter().map(|x| (1.0 + x).ln()).sum::<f64>() / n).exp() - 1.0
        };
        let mean = r.iter().sum::<f64>() / n;
        let variance = if r.len() > 1 {
            r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            f64::NAN
        };
        let growth = 1.0 + gmean;
        let annual_return = growth.powf(a) - 1.0;
        let volatility = ((variance + growth * growth).powf(a) - growth.powf(2.0 * a)).sqrt();
        let downside = (r.iter().map(|x| x.min(0.0).powi(2)).sum::<f64>() / n).sqrt() * a.sqrt();
        Some(Annual {
            annual_return,
            volatility,
            downside,
        })
    }
}

/// Van Tharp's system quality number: √n × mean PnL / sample standard deviation of PnL.
fn sqn(pnls: &[i64]) -> Option<f64> {
    if pnls.len() < 2 {
        return None;
    }
    let n = count(pnls.len());
    let mean = pnls.iter().map(|&p| f(p)).sum::<f64>() / n;
    let sd = (pnls.iter().map(|&p| (f(p) - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    finite(n.sqrt() * mean / sd).filter(|_| sd > 0.0)
}

/// Most losing trades (net PnL below zero) in a row.
fn longest_losing_streak(pnls: &[i64]) -> usize {
    let mut longest = 0;
    let mut current = 0;
    for &p in pnls {
        current = if p < 0 { current + 1 } else { 0 };
        longest = longest.max(current);
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Money;

    fn point(day: i64, hour: i64, equity: i64) -> EquityPoint {
        EquityPoint {
            time: Timestamp(day * Timestamp::DAY_MS + hour * Timestamp::HOUR_MS),
            equity: Money::new(equity, 2),
            exposed: false,
        }
    }

    #[test]
    fn daily_returns_take_each_days_last_mark() {
        // 2025-11-24 is epoch day 20416, a Monday.
        let d = 20_416;
        let curve = [
            point(d, 1, 100),
            point(d, 5, 110),
            point(d + 1, 1, 99),
            point(d + 1, 9, 121),
            point(d + 3, 2, 242),
        ];
        let daily = DailyReturns::of(&curve);
        assert_eq!(daily.returns.len(), 2);
        assert!((daily.returns[0] - 0.1).abs() < 1e-12 && (daily.returns[1] - 1.0).abs() < 1e-12);
        assert_eq!(daily.days_per_year, 252.0);
        let weekend = [point(d + 5, 1, 100), point(d + 6, 1, 100), point(d, 1, 1)];
        assert_eq!(DailyReturns::of(&weekend).days_per_year, 365.0);
    }

    #[test]
    fn drawdown_duration_runs_from_the_peak_to_the_recovery_or_the_end() {
        let curve = [
            point(0, 0, 100),
            point(0, 1, 90),
            point(0, 2, 95),
            point(0, 3, 100),
            point(0, 4, 120),
            point(0, 5, 110),
        ];
        let dd = drawdown(100, &curve);
        assert_eq!(dd.longest_ms, Some(3 * Timestamp::HOUR_MS));
        assert!(
            (dd.max - 0.1).abs() < 1e-12,
            "100 to 90 is the deepest fall"
        );
        assert_eq!(dd.peak, 120);
        assert_eq!(drawdown(100, &curve[..1]).longest_ms, None);
        // Never recovered: from the peak to the last bar.
        let dd = drawdown(100, &curve[..3]);
        assert_eq!(dd.longest_ms, Some(2 * Timestamp::HOUR_MS));
    }

    #[test]
    fn streaks_and_sqn() {
        assert_eq!(longest_losing_streak(&[5, -1, -2, 0, -3, -4, -5, 7]), 3);
        assert_eq!(longest_losing_streak(&[1, 2]), 0);
        let s = sqn(&[10, -5, 20, -5]).unwrap();
        // mean 5, sample sd sqrt(((5)^2 + 10^2 + 15^2 + 10^2) / 3) = sqrt(150)
        assert!((s - 2.0 * 5.0 / 150_f64.sqrt()).abs() < 1e-12);
        assert_eq!(sqn(&[3, 3]), None);
        assert_eq!(sqn(&[3]), None);
    }
}

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

/// What the statistics need of a closed trade (a run that keeps no trade list keeps these).
#[derive(Debug, Clone, Copy)]
pub(super) struct TradeFigures {
    /// Net PnL in minor units.
    pub(super) pnl: i64,
    /// Entry fill to exit bar, in milliseconds.
    pub(super) duration_ms: i64,
}

/// The statistics of an equity curve gathered mark by mark, so that a run keeping no curve (an
/// optimisation) reports exactly what a run keeping one reports.
#[derive(Debug, Clone)]
pub(super) struct CurveStats {
    marks: usize,
    exposed: usize,
    last: Option<EquityPoint>,
    drawdown: DrawdownTracker,
    daily: DailyTracker,
}

impl CurveStats {
    /// Nothing marked yet, from `initial` cash (minor units).
    pub(super) fn new(initial: i64) -> CurveStats {
        CurveStats {
            marks: 0,
            exposed: 0,
            last: None,
            drawdown: DrawdownTracker::new(initial),
            daily: DailyTracker::default(),
        }
    }

    /// Takes the next mark (times strictly increasing).
    #[inline]
    pub(super) fn mark(&mut self, point: EquityPoint) {
        self.marks += 1;
        self.exposed += usize::from(point.exposed);
        self.drawdown.mark(point.equity.minor, point.time);
        self.daily.mark(point.equity.minor, point.time);
        self.last = Some(point);
    }

    /// The statistics of every mark of `curve`.
    #[cfg(test)]
    fn of(initial: i64, curve: &[EquityPoint]) -> CurveStats {
        let mut stats = CurveStats::new(initial);
        for &point in curve {
            stats.mark(point);
        }
        stats
    }
}

/// Computes the report's statistics from the curve's statistics and the closed trades
/// (`figures` has one entry per closed trade, in order; `trades` is the full list when kept,
/// else empty).
pub(super) fn summarize(
    config: &BacktestConfig,
    first: &Bar,
    last: &Bar,
    curve: CurveStats,
    figures: &[TradeFigures],
    trades: Vec<TradeRecord>,
    facts: RunFacts,
) -> Report {
    let initial = config.initial_cash.minor;
    let digits = config.initial_cash.digits;
    let final_equity = curve.last.map_or(config.initial_cash, |p| p.equity);
    let return_pct = (f(final_equity.minor) - f(initial)) / f(initial) * 100.0;
    let buy_and_hold_return_pct =
        (f(last.close.raw()) - f(first.open.raw())) / f(first.open.raw()) * 100.0;

    let drawdown = curve.drawdown.finish(curve.last.map(|p| p.time));
    let daily = curve.daily.finish(curve.marks);
    let annual = daily.annualised();

    let pnls: Vec<i64> = figures.iter().map(|t| t.pnl).collect();
    let wins: Vec<i64> = pnls.iter().copied().filter(|&p| p > 0).collect();
    let losses: Vec<i64> = pnls.iter().copied().filter(|&p| p < 0).collect();
    let win_rate_pct =
        (!figures.is_empty()).then(|| count(wins.len()) / count(figures.len()) * 100.0);
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
    let durations: Vec<i64> = figures.iter().map(|t| t.duration_ms).collect();

    let span_ms = last.start.millis_since(first.start);
    let years = f(span_ms) / (365.25 * f(Timestamp::DAY_MS));
    let cagr_pct = (years > 0.0 && initial > 0)
        .then(|| ((f(final_equity.minor) / f(initial)).powf(1.0 / years) - 1.0) * 100.0)
        .and_then(finite);
    Report {
        currencies: config.currencies.clone(),
        bars: curve.marks,
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
        trade_count: figures.len(),
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
        exposure_pct: if curve.marks == 0 {
            0.0
        } else {
            count(curve.exposed) / count(curve.marks) * 100.0
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

/// [`Drawdown`] gathered mark by mark.
#[derive(Debug, Clone)]
struct DrawdownTracker {
    peak: i64,
    /// The lowest equity since the peak: the fall is a division, done only at a new low (for
    /// one peak the fall only grows as the equity falls, rounding included, so the deepest is
    /// the same).
    low: i64,
    max: f64,
    longest: Option<i64>,
    at_peak: Option<Timestamp>,
    under_water: bool,
}

impl DrawdownTracker {
    fn new(initial: i64) -> DrawdownTracker {
        DrawdownTracker {
            peak: initial,
            low: initial,
            max: 0.0,
            longest: None,
            at_peak: None,
            under_water: false,
        }
    }

    #[inline]
    fn mark(&mut self, e: i64, time: Timestamp) {
        if e >= self.peak {
            self.peak = e;
            self.low = e;
            if self.under_water
                && let Some(from) = self.at_peak
            {
                let length = time.millis_since(from);
                self.longest = Some(self.longest.map_or(length, |l| l.max(length)));
            }
            self.under_water = false;
            self.at_peak = Some(time);
        } else {
            self.under_water = true;
            if e < self.low {
                self.low = e;
                if self.peak > 0 {
                    self.max = self.max.max((f(self.peak) - f(e)) / f(self.peak));
                }
            }
        }
    }

    /// The figures, `last` being the time of the last mark (still under water: the time since
    /// the peak counts).
    fn finish(&self, last: Option<Timestamp>) -> Drawdown {
        let mut longest = self.longest;
        if self.under_water
            && let (Some(from), Some(time)) = (self.at_peak, last)
        {
            let length = time.millis_since(from);
            longest = Some(longest.map_or(length, |l: i64| l.max(length)));
        }
        Drawdown {
            max: self.max,
            peak: self.peak,
            longest_ms: longest,
        }
    }
}

#[cfg(test)]
fn drawdown(initial: i64, curve: &[EquityPoint]) -> Drawdown {
    let stats = CurveStats::of(initial, curve);
    stats.drawdown.finish(stats.last.map(|p| p.time))
}

/// Returns of the equity at the last bar of each UTC day that has bars, day over day.
#[derive(Debug)]
struct DailyReturns {
    returns: Vec<f64>,
    /// Trading days per year: 365 when more than 60 % of a full week's share of bars fall on
    /// weekends (a market that trades every day), else 252.
    days_per_year: f64,
}

/// [`DailyReturns`] gathered mark by mark: the UTC day is worked out once per day, not per mark.
#[derive(Debug, Clone, Default)]
struct DailyTracker {
    /// The current day's first and past-the-end millisecond (empty before the first mark).
    day: (i64, i64),
    weekend: bool,
    weekend_marks: usize,
    /// The previous day's last equity and the current day's latest.
    previous: Option<i64>,
    current: Option<i64>,
    returns: Vec<f64>,
}

impl DailyTracker {
    #[inline]
    fn mark(&mut self, equity: i64, time: Timestamp) {
        let t = time.millis();
        if t < self.day.0 || t >= self.day.1 || self.current.is_none() {
            let d = time.epoch_day();
            self.day = (d * Timestamp::DAY_MS, (d + 1) * Timestamp::DAY_MS);
            // 1970-01-01 was a Thursday: Monday is 0, Saturday 5, Sunday 6.
            self.weekend = (d + 3).rem_euclid(7) >= 5;
            if let Some(close) = self.current {
                self.close_day(close);
            }
        }
        self.weekend_marks += usize::from(self.weekend);
        self.current = Some(equity);
    }

    fn close_day(&mut self, close: i64) {
        if let Some(previous) = self.previous {
            self.returns.push(f(close) / f(previous) - 1.0);
        }
        self.previous = Some(close);
    }

    fn finish(mut self, marks: usize) -> DailyReturns {
        if let Some(close) = self.current.take() {
            self.close_day(close);
        }
        let weekend_share = if marks == 0 {
            0.0
        } else {
            count(self.weekend_marks) / count(marks)
        };
        DailyReturns {
            returns: self.returns,
            days_per_year: if weekend_share > 2.0 / 7.0 * 0.6 {
                365.0
            } else {
                252.0
            },
        }
    }
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
    #[cfg(test)]
    fn of(curve: &[EquityPoint]) -> DailyReturns {
        let stats = CurveStats::of(0, curve);
        stats.daily.finish(stats.marks)
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

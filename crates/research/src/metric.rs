//! The statistics an optimisation can maximise or constrain, by name.

use domain::Money;
use strategy::backtest::Report;

use crate::space::{SpaceError, normalise_name};

/// A statistic of a [`Report`] as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `return`: total return, %.
    Return,
    /// `annual_return`: annualised return, %.
    AnnualReturn,
    /// `cagr`: compound annual growth rate, %.
    Cagr,
    /// `volatility`: annualised volatility, %.
    Volatility,
    /// `sharpe`.
    Sharpe,
    /// `sortino`.
    Sortino,
    /// `calmar`.
    Calmar,
    /// `max_drawdown`: %.
    MaxDrawdown,
    /// `profit_factor`.
    ProfitFactor,
    /// `expectancy`: mean PnL per trade.
    Expectancy,
    /// `win_rate`: %.
    WinRate,
    /// `trades`: number of closed trades.
    Trades,
    /// `exposure`: %.
    Exposure,
    /// `sqn`.
    Sqn,
    /// `losing_streak`: most losing trades in a row.
    LosingStreak,
    /// `final_equity`.
    FinalEquity,
}

/// Every metric with its name.
pub const METRICS: [(&str, Metric); 16] = [
    ("return", Metric::Return),
    ("annual_return", Metric::AnnualReturn),
    ("cagr", Metric::Cagr),
    ("volatility", Metric::Volatility),
    ("sharpe", Metric::Sharpe),
    ("sortino", Metric::Sortino),
    ("calmar", Metric::Calmar),
    ("max_drawdown", Metric::MaxDrawdown),
    ("profit_factor", Metric::ProfitFactor),
    ("expectancy", Metric::Expectancy),
    ("win_rate", Metric::WinRate),
    ("trades", Metric::Trades),
    ("exposure", Metric::Exposure),
    ("sqn", Metric::Sqn),
    ("losing_streak", Metric::LosingStreak),
    ("final_equity", Metric::FinalEquity),
];

#[allow(clippy::cast_precision_loss)] // statistics only
fn money(m: Money) -> f64 {
    m.minor as f64 / 10_f64.powi(i32::from(m.digits))
}

#[allow(clippy::cast_precision_loss)] // statistics only
fn n(count: usize) -> f64 {
    count as f64
}

impl Metric {
    /// The metric called `name` (`sharpe`, `max-drawdown`, ...); the error lists the names.
    pub fn parse(name: &str) -> Result<Metric, SpaceError> {
        let wanted = normalise_name(name);
        METRICS
            .iter()
            .find(|(n, _)| *n == wanted)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                SpaceError(format!(
                    "unknown metric {name:?}; one of: {}",
                    METRICS.map(|(n, _)| n).join(", ")
                ))
            })
    }

    /// The metric's name.
    pub fn name(self) -> &'static str {
        METRICS
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }

    /// The metric's value in `report`; `None` when undefined (e.g. Sharpe without daily returns).
    pub fn value(self, r: &Report) -> Option<f64> {
        match self {
            Metric::Return => Some(r.return_pct),
            Metric::AnnualReturn => r.annual_return_pct,
            Metric::Cagr => r.cagr_pct,
            Metric::Volatility => r.volatility_pct,
            Metric::Sharpe => r.sharpe,
            Metric::Sortino => r.sortino,
            Metric::Calmar => r.calmar,
            Metric::MaxDrawdown => Some(r.max_drawdown_pct),
            Metric::ProfitFactor => r.profit_factor,
            Metric::Expectancy => r.expectancy.map(money),
            Metric::WinRate => r.win_rate_pct,
            Metric::Trades => Some(n(r.trade_count)),
            Metric::Exposure => Some(r.exposure_pct),
            Metric::Sqn => r.sqn,
            Metric::LosingStreak => Some(n(r.longest_losing_streak)),
            Metric::FinalEquity => Some(money(r.final_equity)),
        }
        .filter(|v| v.is_finite())
    }
}

/// Which way the objective is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Higher is better.
    Maximise,
    /// Lower is better (e.g. `max_drawdown`).
    Minimise,
}

/// The metric an optimisation ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Objective {
    /// What to rank by.
    pub metric: Metric,
    /// Which way is better.
    pub direction: Direction,
}

impl Objective {
    /// The objective's value as a score where higher is better (`None` when undefined).
    pub fn score(&self, report: &Report) -> Option<f64> {
        let v = self.metric.value(report)?;
        Some(match self.direction {
            Direction::Maximise => v,
            Direction::Minimise => -v,
        })
    }
}

/// One side of a constraint.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    /// A statistic of the run.
    Metric(Metric),
    /// A parameter's value in the combination (must be numeric).
    Param(usize),
    /// A number.
    Number(f64),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
}

/// A condition a combination must meet to be ranked, e.g. `trades >= 30`, `max_drawdown < 15`,
/// `oversold < overbought`. One that names only parameters and numbers is checked before the
/// run (a combination that fails it is not run at all).
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// As written.
    pub text: String,
    left: Operand,
    op: Comparison,
    right: Operand,
}

impl Constraint {
    /// Parses `LEFT OP RIGHT` with OP one of `<=`, `>=`, `==`, `!=`, `<`, `>`; each side a metric
    /// name, a parameter name from `params`, or a number.
    pub fn parse(text: &str, params: &[String]) -> Result<Constraint, SpaceError> {
        let ops = [
            ("<=", Comparison::LessOrEqual),
            (">=", Comparison::GreaterOrEqual),
            ("==", Comparison::Equal),
            ("!=", Comparison::NotEqual),
            ("<", Comparison::Less),
            (">", Comparison::Greater),
        ];
        let (at, token, op) = ops
            .iter()
            .filter_map(|(t, op)| text.find(t).map(|at| (at, *t, *op)))
            .min_by_key(|(at, t, _)| (*at, std::cmp::Reverse(t.len())))
            .ok_or_else(|| {
                SpaceError(format!(
                    "--constraint {text:?}: expected LEFT OP RIGHT with OP one of < <= > >= == !=, e.g. trades>=30"
                ))
            })?;
        let operand = |side: &str| -> Result<Operand, SpaceError> {
            let side = side.trim();
            if let Ok(x) = side.parse::<f64>()
                && x.is_finite()
            {
                return Ok(Operand::Number(x));
            }
            let name = normalise_name(side);
            if let Some(i) = params.iter().position(|p| *p == name) {
                return Ok(Operand::Param(i));
            }
            Metric::parse(side).map(Operand::Metric).map_err(|_| {
                SpaceError(format!(
                    "--constraint {text:?}: {side:?} is neither a number, a --param name ({}) nor a metric ({})",
                    params.join(", "),
                    METRICS.map(|(n, _)| n).join(", ")
                ))
            })
        };
        Ok(Constraint {
            text: text.trim().to_owned(),
            left: operand(&text[..at])?,
            op,
            right: operand(&text[at + token.len()..])?,
        })
    }

    /// True when the constraint names no statistic, so it can be checked before running.
    pub fn on_params_only(&self) -> bool {
        !matches!(self.left, Operand::Metric(_)) && !matches!(self.right, Operand::Metric(_))
    }

    /// Whether the combination (`values`, one per parameter) and its report (if run) meet it; an
    /// undefined or non-numeric side fails it.
    pub fn holds(&self, values: &[&str], report: Option<&Report>) -> bool {
        let value = |o: &Operand| -> Option<f64> {
            match o {
                Operand::Number(x) => Some(*x),
                Operand::Param(i) => values.get(*i)?.trim().parse().ok(),
                Operand::Metric(m) => m.value(report?),
            }
        };
        let (Some(a), Some(b)) = (value(&self.left), value(&self.right)) else {
            return false;
        };
        match self.op {
            Comparison::Less => a < b,
            Comparison::LessOrEqual => a <= b,
            Comparison::Greater => a > b,
            Comparison::GreaterOrEqual => a >= b,
            Comparison::Equal => a == b,
            Comparison::NotEqual => a != b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_parse_by_name() {
        assert_eq!(Metric::parse("Max-Drawdown").unwrap(), Metric::MaxDrawdown);
        assert_eq!(Metric::Sharpe.name(), "sharpe");
        let err = Metric::parse("shrpe").unwrap_err().0;
        assert!(err.contains("one of: return, annual_return"), "{err}");
    }

    #[test]
    fn constraints_on_parameters_are_checked_without_a_run() {
        let params = vec!["oversold".to_owned(), "overbought".to_owned()];
        let c = Constraint::parse("oversold + 0 < overbought", &params);
        assert!(c.is_err(), "arithmetic is not supported");
        let c = Constraint::parse("oversold<overbought", &params).unwrap();
        assert!(c.on_params_only());
        assert!(c.holds(&["30", "70"], None));
        assert!(!c.holds(&["70", "30"], None));
        assert!(!c.holds(&["x", "30"], None), "a non-number fails");
        let c = Constraint::parse("trades >= 30", &params).unwrap();
        assert!(!c.on_params_only());
        assert!(!c.holds(&["30", "70"], None), "not run: fails");
        let c = Constraint::parse("max_drawdown<=15.5", &params).unwrap();
        assert_eq!(c.op, Comparison::LessOrEqual);
        assert!(Constraint::parse("trades => 3", &params).is_err());
        assert!(Constraint::parse("trades 3", &params).is_err());
    }
}

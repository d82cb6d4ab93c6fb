//! Parameter search: every combination of a [`Space`] (or a seeded sample of it) backtested on
//! all cores, ranked by an objective under constraints.
//!
//! Results never depend on the thread count: each combination is one independent backtest,
//! results are collected in grid order, and ties rank by grid index. Combinations that share an
//! RSI period share one [`RsiSeries`], computed once; each combination keeps only its
//! statistics ([`Backtester::run_report`]: no equity curve, no trade texts).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use domain::{Bar, Price, SentimentReading};
use rayon::prelude::*;
use strategy::backtest::{BacktestConfig, Backtester, Report};
use strategy::{RsiSentimentConfig, RsiSentimentStrategy, RsiSeries, Strategy};

use crate::metric::{Constraint, Objective};
use crate::space::Space;

/// What one combination runs: the backtest settings and the strategy's.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Cash, costs, risk rules.
    pub backtest: BacktestConfig,
    /// The strategy's settings.
    pub strategy: RsiSentimentConfig,
}

/// Turns one combination (`(name, value)` per parameter) into a [`Candidate`], or says why the
/// combination is invalid (e.g. oversold above overbought).
pub type Build<'a> = dyn Fn(&[(&str, &str)]) -> Result<Candidate, String> + Sync + 'a;

/// The market data a search runs over.
#[derive(Debug, Clone, Copy)]
pub struct Market<'a> {
    /// Bars before the first traded bar, fed to the strategy first so its RSI is warm (e.g. the
    /// bars before `--from`); may be empty.
    pub warm_up: &'a [Bar],
    /// Bars, oldest first.
    pub bars: &'a [Bar],
    /// Sentiment readings sorted by the time they became known.
    pub sentiment: &'a [SentimentReading],
}

/// How a combination ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Ran; `passes` says whether it met every constraint.
    Ran {
        /// Statistics (without the trade list, to keep memory flat).
        report: Box<Report>,
        /// Met every constraint.
        passes: bool,
    },
    /// Not run: a parameter-only constraint excluded it.
    Excluded(String),
    /// Not run: its settings are invalid.
    Invalid(String),
}

/// One combination's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Its index in the grid.
    pub index: u64,
    /// One value per parameter.
    pub values: Vec<String>,
    /// What happened.
    pub status: Status,
    /// 1 for the best ranked combination; `None` when not ranked (not run, failed a constraint
    /// or an undefined objective).
    pub rank: Option<usize>,
}

impl Outcome {
    /// The report when it ran.
    pub fn report(&self) -> Option<&Report> {
        match &self.status {
            Status::Ran { report, .. } => Some(report),
            _ => None,
        }
    }
}

/// Every outcome, in grid order, and the ranked order.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// Parameter names, in order.
    pub params: Vec<String>,
    /// One per combination searched, in grid order.
    pub outcomes: Vec<Outcome>,
    /// Positions in `outcomes` of the ranked combinations, best first.
    pub ranking: Vec<usize>,
    /// Bar evaluations done (combinations run × bars).
    pub bar_evaluations: u64,
    /// RSI series computed: one per RSI period in use, shared by every combination with it.
    pub rsi_series: usize,
}

impl SearchResult {
    /// The best ranked outcome.
    pub fn best(&self) -> Option<&Outcome> {
        self.ranking.first().and_then(|&i| self.outcomes.get(i))
    }
}

/// Searches `indices` of `space` over `market`; `progress(done, total)` is called from worker
/// threads as combinations finish. Runs on the current rayon pool (all cores by default).
pub fn search(
    space: &Space,
    indices: &[u64],
    build: &Build<'_>,
    market: Market<'_>,
    objective: Objective,
    constraints: &[Constraint],
    progress: &(dyn Fn(usize, usize) + Sync),
) -> SearchResult {
    let names: Vec<String> = space.params().iter().map(|p| p.name.clone()).collect();
    // 1. Settings of every combination (cheap; in parallel for large grids).
    let prepared: Vec<(Vec<&str>, Result<Candidate, Status>)> = indices
        .par_iter()
        .map(|&index| {
            let values = space.combination(index);
            if let Some(c) = constraints
                .iter()
                .find(|c| c.on_params_only() && !c.holds(&values, None))
            {
                return (values, Err(Status::Excluded(c.text.clone())));
            }
            let pairs: Vec<(&str, &str)> = names
                .iter()
                .map(String::as_str)
                .zip(values.iter().copied())
                .collect();
            let candidate = build(&pairs).map_err(Status::Invalid);
            (values, candidate)
        })
        .collect();
    // 2. The backtests, grouped by RSI period: each group computes its series once (over the
    // warm-up bars too: the strategy is fed them first) and shares it. Groups and combinations
    // are separate tasks, so a thread that finishes early steals a single combination or a whole
    // group: no barrier between computing series and backtesting, and no tail of several
    // combinations left to one thread.
    let closes: Arc<[Price]> = market
        .warm_up
        .iter()
        .chain(market.bars)
        .map(|b| b.close)
        .collect();
    let total = prepared.len();
    let done = AtomicUsize::new(0);
    let finished = || {
        let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
        progress(finished, total);
    };
    // Every position once: not run, or in the group of its period.
    let mut settled: Vec<(usize, Status)> = Vec::new();
    let mut groups: BTreeMap<u32, Vec<Member<'_>>> = BTreeMap::new();
    for (position, (values, candidate)) in prepared.iter().enumerate() {
        match candidate {
            Ok(c) => groups
                .entry(c.strategy.rsi_period)
                .or_default()
                .push((position, values, c)),
            Err(status) => {
                settled.push((position, status.clone()));
                finished();
            }
        }
    }
    let groups: Vec<(u32, Vec<Member<'_>>)> = groups.into_iter().collect();
    let computed = AtomicUsize::new(0);
    let ran: Vec<Vec<(usize, Status)>> = groups
        .par_iter()
        .with_max_len(1)
        .map(|(period, members)| {
            let series = RsiSeries::compute(*period, Arc::clone(&closes)).ok();
            computed.fetch_add(usize::from(series.is_some()), Ordering::Relaxed);
            members
                .par_iter()
                .with_max_len(1)
                .map(|&(position, values, candidate)| {
                    let status = run_one(candidate, series.as_ref(), market, values, constraints);
                    finished();
                    (position, status)
                })
                .collect()
        })
        .collect();
    settled.extend(ran.into_iter().flatten());
    settled.sort_unstable_by_key(|(position, _)| *position);
    let statuses: Vec<Status> = settled.into_iter().map(|(_, status)| status).collect();
    let ran = statuses
        .iter()
        .filter(|s| matches!(s, Status::Ran { .. }))
        .count();
    let mut outcomes: Vec<Outcome> = indices
        .iter()
        .zip(prepared)
        .zip(statuses)
        .map(|((&index, (values, _)), status)| Outcome {
            index,
            values: values.into_iter().map(str::to_owned).collect(),
            status,
            rank: None,
        })
        .collect();
    let ranking = rank(&mut outcomes, objective);
    SearchResult {
        params: names,
        outcomes,
        ranking,
        bar_evaluations: u64::try_from(ran)
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::try_from(market.bars.len()).unwrap_or(u64::MAX)),
        rsi_series: computed.into_inner(),
    }
}

/// A combination to run: its position in the grid's order, values and settings.
type Member<'a> = (usize, &'a [&'a str], &'a Candidate);

fn run_one(
    candidate: &Candidate,
    series: Option<&RsiSeries>,
    market: Market<'_>,
    values: &[&str],
    constraints: &[Constraint],
) -> Status {
    let backtester = match Backtester::new(candidate.backtest.clone()) {
        Ok(b) => b,
        Err(e) => return Status::Invalid(e.to_string()),
    };
    let strategy = match series {
        Some(s) => RsiSentimentStrategy::with_shared_rsi(candidate.strategy.clone(), s.clone()),
        None => RsiSentimentStrategy::new(candidate.strategy.clone()),
    };
    let mut strategy = match strategy {
        Ok(s) => s,
        Err(e) => return Status::Invalid(e.to_string()),
    };
    strategy.warm_up(market.warm_up);
    match backtester.run_report(&mut strategy, market.bars, market.sentiment) {
        Ok(report) => {
            let passes = constraints.iter().all(|c| c.holds(values, Some(&report)));
            Status::Ran {
                report: Box::new(report),
                passes,
            }
        }
        Err(e) => Status::Invalid(e.to_string()),
    }
}

/// Ranks the combinations that ran, met every constraint and have a defined objective: best
/// score first, ties by grid index. Sets each one's rank and returns their positions.
fn rank(outcomes: &mut [Outcome], objective: Objective) -> Vec<usize> {
    let mut ranked: Vec<(usize, f64, u64)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match &o.status {
            Status::Ran {
                report,
                passes: true,
            } => objective.score(report).map(|s| (i, s, o.index)),
            _ => None,
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    for (rank, (i, _, _)) in ranked.iter().enumerate() {
        if let Some(o) = outcomes.get_mut(*i) {
            o.rank = Some(rank + 1);
        }
    }
    ranked.into_iter().map(|(i, _, _)| i).collect()
}

/// Runs `work` on a pool of `threads` threads (`None`: one per core); the results of a search
/// do not depend on it.
pub fn with_threads<R: Send>(
    threads: Option<usize>,
    work: impl FnOnce() -> R + Send,
) -> Result<R, String> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        if n == 0 {
            return Err("--threads must be at least 1".to_owned());
        }
        builder = builder.num_threads(n);
    }
    let pool = builder
        .build()
        .map_err(|e| format!("cannot start the worker threads: {e}"))?;
    Ok(pool.install(work))
}

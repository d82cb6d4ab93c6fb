//! Benchmarks of the parameter search: bar evaluations per second (combinations × bars) over
//! 100,000 synthetic M1 bars, on one thread and on two, and the CSV reader. Compare the
//! `optimize/threads_1` and `optimize/threads_2` throughputs: the target is at least 20 million
//! bar evaluations per second per core and at least 1.8× on two cores.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::{Bar, Money, Price, SymbolId, Timeframe, Timestamp};
use research::{
    Candidate, Direction, Market, Metric, Objective, OhlcOptions, Space, parse_param,
    read_ohlc_csv, search, with_threads,
};
use strategy::backtest::BacktestConfig;
use strategy::{RiskConfig, RsiSentimentConfig, SizingRule};

const BARS: usize = 100_000;

/// A palm-oil-like random walk (xorshift), the same on every run.
fn walk(n: usize) -> Vec<Bar> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut step = |range: i64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        i64::try_from(state % u64::try_from(2 * range + 1).unwrap()).unwrap() - range
    };
    let mut price: i64 = 400_000_000;
    (0..n)
        .map(|i| {
            let open = price;
            let close = (open + step(300_000)).max(100_000_000);
            let high = open.max(close) + step(100_000).abs();
            let low = open.min(close) - step(100_000).abs();
            price = close;
            Bar {
                symbol: SymbolId(0),
                timeframe: Timeframe::M1,
                start: Timestamp((29_376_000 + i64::try_from(i).unwrap()) * 60_000),
                open: Price(open),
                high: Price(high),
                low: Price(low),
                close: Price(close),
                volume: 0,
            }
        })
        .collect()
}

fn build(pairs: &[(&str, &str)]) -> Result<Candidate, String> {
    let mut strategy = RsiSentimentConfig::default();
    for (name, value) in pairs {
        match *name {
            "rsi_period" => strategy.rsi_period = value.parse().map_err(|e| format!("{e}"))?,
            "oversold" => strategy.oversold = value.parse().map_err(|e| format!("{e}"))?,
            "stop_loss" => {
                strategy.stop_loss = Some(Price::parse(value).map_err(|e| e.to_string())?)
            }
            other => return Err(format!("unknown {other}")),
        }
    }
    Ok(Candidate {
        backtest: BacktestConfig {
            spread: Price(100_000),
            commission_per_fill: Money::new(250, 2),
            risk: RiskConfig {
                sizing: SizingRule::AllCash,
                daily_loss_limit_bps: Some(300),
                max_drawdown_bps: Some(1_000),
            },
            ..BacktestConfig::default()
        },
        strategy,
    })
}

/// The benchmark's grid and bars: 4 periods × 4 levels × 2 stops = 32 combinations sharing 4
/// RSI series, over 100,000 bars.
pub(crate) fn set_up() -> (Space, Vec<Bar>) {
    let space = Space::new(vec![
        parse_param("rsi_period=7..28:7").unwrap(),
        parse_param("oversold=20..35:5").unwrap(),
        parse_param("stop_loss=20,40").unwrap(),
    ])
    .unwrap();
    (space, walk(BARS))
}

/// The issue's grid: 10 periods × 10 levels × 10 stops = 1,000 combinations sharing 10 RSI
/// series (run over the same 100,000 bars by the `throughput` example's `issue` grid).
#[allow(dead_code)] // used by the `throughput` example only
pub(crate) fn issue_grid() -> Space {
    Space::new(vec![
        parse_param("rsi_period=5..50:5").unwrap(),
        parse_param("oversold=16..34:2").unwrap(),
        parse_param("stop_loss=10..100:10").unwrap(),
    ])
    .unwrap()
}

/// One search; returns the bar evaluations done.
pub(crate) fn run(space: &Space, indices: &[u64], bars: &[Bar]) -> u64 {
    let objective = Objective {
        metric: Metric::Sharpe,
        direction: Direction::Maximise,
    };
    let market = Market {
        warm_up: &[],
        bars,
        sentiment: &[],
    };
    search(space, indices, &build, market, objective, &[], &|_, _| {}).bar_evaluations
}

fn optimize(c: &mut Criterion) {
    let (space, bars) = set_up();
    let indices = space.indices(None);
    let mut group = c.benchmark_group("optimize");
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        u64::try_from(indices.len() * BARS).unwrap(),
    ));
    for threads in [1, 2] {
        group.bench_function(format!("threads_{threads}"), |b| {
            b.iter(|| {
                with_threads(Some(threads), || run(&space, black_box(&indices), &bars)).unwrap()
            });
        });
    }
    group.finish();
}

fn csv_parse(c: &mut Criterion) {
    let bars = walk(BARS);
    let mut csv = String::from("timestamp,open,high,low,close\n");
    for b in &bars {
        let _ = writeln!(
            csv,
            "{},{},{},{},{}",
            b.start.millis(),
            b.open,
            b.high,
            b.low,
            b.close
        );
    }
    let mut group = c.benchmark_group("csv");
    group.throughput(Throughput::Elements(u64::try_from(BARS).unwrap()));
    group.bench_function("read_100k_bars", |b| {
        b.iter(|| {
            read_ohlc_csv(black_box(csv.as_bytes()), &OhlcOptions::default())
                .unwrap()
                .len()
        });
    });
    group.finish();
}

criterion_group!(benches, optimize, csv_parse);
criterion_main!(benches);

//! Benchmarks: RSI updates, and a full backtest over one million synthetic bars (CSV parsing is
//! measured in `research`'s benchmarks).
// A benchmark that cannot set itself up should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::{Bar, Price, SymbolId, Timeframe, Timestamp, Volume};
use strategy::backtest::{BacktestConfig, Backtester};
use strategy::{RiskConfig, Rsi, RsiSentimentConfig, RsiSentimentStrategy, SizingRule};

/// A deterministic pseudo-random walk (xorshift), so every run measures the same data.
struct Walk {
    state: u64,
    price: i64,
}

impl Walk {
    fn new() -> Walk {
        Walk {
            state: 0x9E37_79B9_7F4A_7C15,
            price: 400_000_000, // 4000.0
        }
    }

    /// A step in -range..=range.
    fn step(&mut self, range: i64) -> i64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        i64::try_from(self.state % u64::try_from(2 * range + 1).unwrap()).unwrap() - range
    }
}

/// M1 bars of a palm-oil-like walk.
fn synthetic_bars(bars: usize) -> Vec<Bar> {
    let mut walk = Walk::new();
    let start_minute: i64 = 29_376_000; // 2025-11-09 00:00 UTC in minutes since the epoch
    (0..bars)
        .map(|i| {
            let open = walk.price;
            let close = (open + walk.step(300_000)).max(100_000_000);
            let high = open.max(close) + walk.step(100_000).abs();
            let low = open.min(close) - walk.step(100_000).abs();
            walk.price = close;
            Bar {
                symbol: SymbolId(0),
                timeframe: Timeframe::M1,
                start: Timestamp((start_minute + i64::try_from(i).unwrap()) * 60_000),
                open: Price(open),
                high: Price(high),
                low: Price(low),
                close: Price(close),
                volume: 0,
            }
        })
        .collect()
}

fn rsi_updates(c: &mut Criterion) {
    let mut walk = Walk::new();
    let closes: Vec<Price> = (0..10_000)
        .map(|_| {
            walk.price += walk.step(200_000);
            Price(walk.price)
        })
        .collect();
    let mut group = c.benchmark_group("rsi");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("update_10k_closes", |b| {
        b.iter(|| {
            let mut rsi = Rsi::new(14).unwrap();
            let mut last = None;
            for &close in &closes {
                last = rsi.update(black_box(close));
            }
            last
        });
    });
    group.finish();
}

fn full_backtest(c: &mut Criterion) {
    const BARS: usize = 1_000_000;
    let bars = synthetic_bars(BARS);
    let backtester = Backtester::new(BacktestConfig {
        spread: Price(100_000),
        risk: RiskConfig {
            sizing: SizingRule::Fixed(Volume(100)),
            daily_loss_limit_bps: None,
            max_drawdown_bps: None,
        },
        ..BacktestConfig::default()
    })
    .unwrap();
    let strategy_config = RsiSentimentConfig {
        stop_loss: Some(Price(2_000_000)),
        take_profit: Some(Price(4_000_000)),
        ..RsiSentimentConfig::default()
    };
    let mut group = c.benchmark_group("backtest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(u64::try_from(BARS).unwrap()));
    group.bench_function("run_1m_bars", |b| {
        b.iter(|| {
            let mut strategy = RsiSentimentStrategy::new(strategy_config.clone()).unwrap();
            let result = backtester
                .run(&mut strategy, black_box(&bars), &[], &mut |_, _| {})
                .unwrap();
            assert!(result.report.trade_count > 0);
            result.report.final_equity
        });
    });
    group.finish();
}

criterion_group!(benches, rsi_updates, full_backtest);
criterion_main!(benches);

//! Cost of recording metrics on the quote path: each must stay well under a microsecond.
// A benchmark whose subject cannot be built has nothing to measure: failing loudly is right.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use domain::{FixedClock, Timestamp};
use observability::{Metrics, OrderOutcome};

fn quote_path(c: &mut Criterion) {
    let clock = Arc::new(FixedClock::new(Timestamp(1_763_950_000_000)));
    let metrics = Metrics::new(clock).expect("metrics build");
    let mut group = c.benchmark_group("quote_path");
    group.bench_function("record_quote", |b| {
        let mut t = 1_763_950_000_000_i64;
        b.iter(|| {
            t += 1;
            metrics.record_quote(black_box(Timestamp(t)));
        });
    });
    group.bench_function("observe_tick_to_decision", |b| {
        b.iter(|| metrics.observe_tick_to_decision(black_box(Duration::from_micros(42))));
    });
    group.bench_function("set_rsi", |b| b.iter(|| metrics.set_rsi(black_box(55.5))));
    group.bench_function("set_equity", |b| {
        b.iter(|| metrics.set_equity(black_box(10_123.45)));
    });
    group.bench_function("record_order_labelled", |b| {
        b.iter(|| metrics.record_order(black_box(OrderOutcome::Filled)));
    });
    group.bench_function("whole_quote_path", |b| {
        let mut t = 1_763_950_000_000_i64;
        b.iter(|| {
            t += 1;
            metrics.record_quote(Timestamp(t));
            metrics.set_unrealized_pnl(black_box(12.5));
            metrics.set_equity(black_box(10_012.5));
            metrics.observe_tick_to_decision(black_box(Duration::from_micros(42)));
        });
    });
    group.finish();

    // Scraping is off the quote path, but a scrape must not be slow enough to matter either.
    c.bench_function("encode_registry", |b| {
        b.iter(|| black_box(metrics.encode().expect("encode")));
    });
}

criterion_group!(benches, quote_path);
criterion_main!(benches);

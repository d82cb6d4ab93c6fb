//! Loopback round trip of a market order against the simulator over TLS: from `place_order` to its
//! fill. Target: p50 under 300 µs. Besides criterion's own statistics, the percentiles are
//! computed from samples collected here and printed to stderr.
//!
//! Rate limits are raised on both sides for this benchmark: it measures latency, and at cTrader's
//! 50 requests per second the limiter, not the link, would set the pace. The simulator keeps every
//! order it ever filled and scans them on each market tick, so it is restarted (outside the timing)
//! every [`ORDERS_PER_SIMULATOR`] orders; otherwise its growing books, not the link, would be
//! measured.

// Setup works on fixed, valid data: a failure there is a broken benchmark, reported by panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ctrader_client::{
    Broker, CTraderClient, CTraderConfig, Credentials, ExtraCa, OrderOutcome, RateLimits,
};
use ctrader_sim::{
    CertificateSource, MarketHours, PALM_OIL_SYMBOL_ID, SimConfig, SimCredentials, SimHandle,
    Simulator,
};
use domain::{ClientOrderId, OrderRequest, Price, Side, SymbolId, Volume};

const SAMPLES: usize = 2_000;
const ORDERS_PER_SIMULATOR: u64 = 2_000;
const WARM_UP_ORDERS: u64 = 100;

/// A simulator and a client connected to it.
struct Session {
    client: CTraderClient,
    sim: SimHandle,
    volume: Volume,
    orders: u64,
    _dir: tempfile::TempDir,
}

struct Bench {
    runtime: tokio::runtime::Runtime,
    session: Option<Session>,
    next: u64,
}

async fn start_session() -> Session {
    let dir = tempfile::tempdir().unwrap();
    let limits = RateLimits {
        requests_per_second: 1_000_000,
        historical_per_second: 1_000_000,
    };
    let sim = Simulator::start(SimConfig {
        certificates: CertificateSource::Directory(dir.path().join("certs")),
        market_hours: MarketHours::AlwaysOpen,
        history: Duration::from_secs(3_600),
        rate_limits: ctrader_sim::RateLimits {
            requests_per_second: limits.requests_per_second,
            historical_per_second: limits.historical_per_second,
        },
        initial_balance: 1_000_000_000_000,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let creds = SimCredentials::default();
    let mut config = CTraderConfig::new(
        "localhost",
        sim.local_addr().port(),
        Credentials {
            client_id: creds.client_id,
            client_secret: creds.client_secret,
            access_token: creds.access_token,
            refresh_token: None,
        },
        creds.account_id,
    );
    config.extra_ca = Some(ExtraCa::PemFile(sim.ca_cert_path().unwrap().to_path_buf()));
    config.rate_limits = limits;
    let client = CTraderClient::connect(config).await.unwrap();
    let spec = client
        .resolve_symbol(&["PALMOIL".to_owned()])
        .await
        .unwrap();
    Session {
        client,
        sim,
        volume: spec.min_volume,
        orders: 0,
        _dir: dir,
    }
}

impl Bench {
    fn new() -> Bench {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Bench {
            runtime,
            session: None,
            next: 0,
        }
    }

    /// A fresh simulator when there is none or the current one has seen enough orders; untimed.
    fn session(&mut self) -> &Session {
        let stale = self
            .session
            .as_ref()
            .is_none_or(|s| s.orders >= ORDERS_PER_SIMULATOR);
        if stale {
            if let Some(old) = self.session.take() {
                old.client.shutdown();
                self.runtime.block_on(old.sim.shutdown());
            }
            let session = self.runtime.block_on(start_session());
            self.session = Some(session);
            for _ in 0..WARM_UP_ORDERS {
                self.timed_order();
            }
        }
        self.session.as_ref().unwrap()
    }

    /// One timed market order; the position it opens is closed outside the timing.
    fn round_trip(&mut self) -> Duration {
        self.session();
        self.timed_order()
    }

    fn timed_order(&mut self) -> Duration {
        self.next += 1;
        let session = self.session.as_mut().unwrap();
        session.orders += 1;
        let order = OrderRequest {
            client_order_id: ClientOrderId::new(format!("bench-{}", self.next)).unwrap(),
            symbol: SymbolId(PALM_OIL_SYMBOL_ID),
            side: Side::Buy,
            volume: session.volume,
            relative_stop_loss: Some(Price(4_000_000)),
            relative_take_profit: Some(Price(8_000_000)),
            label: "bench".to_owned(),
            position_to_close: None,
        };
        let client = &session.client;
        let volume = session.volume;
        self.runtime.block_on(async {
            let started = Instant::now();
            let outcome = client.place_order(&order).await.unwrap();
            let elapsed = started.elapsed();
            let OrderOutcome::Filled(fill) = outcome else {
                panic!("not filled: {outcome:?}")
            };
            client
                .close_position(fill.fill.position_id, volume)
                .await
                .unwrap();
            elapsed
        })
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    if samples.is_empty() {
        return;
    }
    samples.sort_unstable();
    eprintln!(
        "market order -> fill over TLS loopback, {what} ({} samples): p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
    );
}

fn order_round_trip(c: &mut Criterion) {
    let mut bench = Bench::new();
    let samples: Vec<Duration> = (0..SAMPLES).map(|_| bench.round_trip()).collect();
    report("dedicated samples", samples);
    let mut all = Vec::new();
    c.bench_function("market_order_to_fill", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| {
                    let d = bench.round_trip();
                    all.push(d);
                    d
                })
                .sum()
        });
    });
    report("every criterion iteration", all);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    targets = order_round_trip
}
criterion_main!(benches);

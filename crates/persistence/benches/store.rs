//! Store benchmarks: the latency of a durable order-intent commit (fsync included, p50/p99 from
//! our own samples), and reconciling 10,000 stored positions against a broker snapshot of the
//! same size (plan + apply, target under one second).
#![allow(missing_docs)]
// A benchmark's report is its output.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use domain::{
    BrokerPosition, BrokerSnapshot, ClientOrderId, IntentStatus, LabelPrefix, Money, OrderIntent,
    OrderRequest, Position, PositionId, Price, Side, SymbolId, Timestamp, Volume,
};
use persistence::{Correction, ReconcilePlan, SqliteTradeStore, StoredIntent, TradeStore, plan};
use tokio::runtime::Runtime;

static PREFIX: LazyLock<LabelPrefix> =
    LazyLock::new(|| LabelPrefix::new("pob").expect("a valid prefix"));
const POSITIONS: i64 = 10_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn intent(n: u64) -> OrderIntent {
    let id = ClientOrderId::new(format!("pob-bench-{n}")).unwrap();
    OrderIntent {
        request: OrderRequest {
            label: id.to_string(),
            client_order_id: id,
            symbol: SymbolId(1),
            side: Side::Buy,
            volume: Volume(100),
            relative_stop_loss: Some(Price(2_000_000)),
            relative_take_profit: Some(Price(4_000_000)),
            position_to_close: None,
        },
        status: IntentStatus::Pending,
        created_at: Timestamp(i64::try_from(n).unwrap()),
        reason: "bench".to_owned(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn broker_position(id: i64, stop_shift: i64) -> BrokerPosition {
    let coid = ClientOrderId::new(format!("pob-{id}")).unwrap();
    BrokerPosition {
        id: PositionId(id),
        symbol: SymbolId(1),
        side: if id % 2 == 0 { Side::Buy } else { Side::Sell },
        volume: Volume(100),
        entry_price: Price(400_000_000),
        open_time: Timestamp(id),
        // Half the positions move their stop every round, so every round has 5,000 corrections.
        stop_loss: Some(Price(
            398_000_000 + if id % 2 == 0 { stop_shift } else { 0 },
        )),
        take_profit: Some(Price(404_000_000)),
        label: Some(coid.to_string()),
        client_order_id: Some(coid),
        swap: Money::new(0, 2),
        commission: Money::new(0, 2),
    }
}

fn snapshot(round: i64) -> BrokerSnapshot {
    BrokerSnapshot {
        positions: (1..=POSITIONS)
            .map(|id| broker_position(id, round % 2 * 100_000))
            .collect(),
        orders: Vec::new(),
        deals: Vec::new(),
        taken_at: Timestamp(1_000_000 + round),
    }
}

async fn seeded_store(dir: &std::path::Path) -> SqliteTradeStore {
    let store = SqliteTradeStore::open_path(dir.join("bench.db"))
        .await
        .unwrap();
    // Adopt all 10,000 positions in one transaction (reconciliation of an empty store).
    let seed = plan(&[], &[], &snapshot(1), &PREFIX).unwrap();
    assert!(
        seed.corrections
            .iter()
            .all(|c| matches!(c, Correction::AdoptPosition { .. }))
    );
    store.apply(&seed, Timestamp(1)).await.unwrap();
    store
}

async fn reconcile_round(store: &SqliteTradeStore, round: i64) -> (Duration, Duration, usize) {
    let snap = snapshot(round);
    let start = Instant::now();
    let stored: Vec<Position> = store.open_positions().await.unwrap();
    let in_flight: Vec<StoredIntent> = store.intents_in_flight().await.unwrap();
    let the_plan: ReconcilePlan = plan(&stored, &in_flight, &snap, &PREFIX).unwrap();
    let planned = start.elapsed();
    let n = store
        .apply(&the_plan, Timestamp(2_000_000 + round))
        .await
        .unwrap();
    (planned, start.elapsed(), n)
}

/// Our own p50/p99 (criterion reports means and confidence intervals, not tail latency).
fn report_percentiles() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let store = SqliteTradeStore::open_path(dir.path().join("latency.db")).await.unwrap();
        let mut samples = Vec::with_capacity(1_000);
        for n in 0..1_000 {
            let i = intent(n);
            let start = Instant::now();
            store.commit_intent(&i).await.unwrap();
            samples.push(start.elapsed());
        }
        samples.sort_unstable();
        println!(
            "durable intent commit (synchronous=FULL, WAL), {} samples: p50 {:?}, p99 {:?}, max {:?}",
            samples.len(),
            percentile(&samples, 0.50),
            percentile(&samples, 0.99),
            samples[samples.len() - 1]
        );

        let store = seeded_store(dir.path()).await;
        let mut totals = Vec::new();
        for round in 2..7 {
            let (planned, total, n) = reconcile_round(&store, round).await;
            println!(
                "reconcile {POSITIONS} stored vs {POSITIONS} at the broker: read+plan {planned:?}, \
                 read+plan+apply {total:?} ({n} corrections)"
            );
            totals.push(total);
        }
        totals.sort_unstable();
        println!("reconcile median {:?} (target < 1 s)", percentile(&totals, 0.5));
    });
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(SqliteTradeStore::open_path(dir.path().join("criterion.db")))
        .unwrap();
    let mut next = 10_000_000_u64;
    c.bench_function("commit_intent_durable", |b| {
        b.iter(|| {
            next += 1;
            rt.block_on(store.commit_intent(&intent(next))).unwrap();
        });
    });

    let store = rt.block_on(seeded_store(dir.path()));
    let mut round = 2;
    let mut group = c.benchmark_group("reconcile_10k");
    group.sample_size(10);
    group.bench_function("plan_and_apply", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                total += rt.block_on(reconcile_round(&store, round)).1;
            }
            total
        });
    });
    group.finish();
}

criterion_group!(store_benches, benches);

fn main() {
    report_percentiles();
    store_benches();
    Criterion::default().configure_from_args().final_summary();
}

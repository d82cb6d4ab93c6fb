//! The trading engine's test harness: a `FakeBroker` account with PALMOIL and its history, a
//! `MemoryTradeStore`, a `FixedClock` the test moves, and the engine running in a task on the
//! broker's event stream, with waits that are bounded and a `settle` barrier that makes every step
//! deterministic.

// Test helpers: a panic is how they fail a test; each test binary uses a different subset.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use bot::engine::{Engine, EngineError, EngineExit, EngineSettings, Observers};
use ctrader_client::{Broker, FakeBroker};
use domain::{
    Bar, BrokerPosition, ClientOrderId, Clock, FixedClock, Money, PositionId, Price,
    SentimentReading, Side, SymbolId, SymbolSpec, Timeframe, Timestamp, TradingSchedule, Volume,
};
use observability::{Metrics, StatusConfig, StatusHandle};
use persistence::{MemoryTradeStore, PositionQuery, TradeStore};
use strategy::{RiskConfig, RsiSentimentConfig, RsiSentimentStrategy};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const PALM: SymbolId = SymbolId(310);
/// 2025-11-24 00:00:00 UTC, a Monday: bar 0 starts here.
pub const T0: i64 = 1_763_942_400_000;
pub const MIN: i64 = 60_000;
pub const PREFIX: &str = "pob";
/// Longest any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// Whole MYR as a price (the symbol has no decimals).
pub const fn myr(units: i64) -> Price {
    Price(units * 100_000)
}

pub fn spec() -> SymbolSpec {
    SymbolSpec {
        id: PALM,
        name: "PALMOIL".into(),
        digits: 0,
        pip_position: 0,
        lot_size: Volume(2_500),
        min_volume: Volume(100),
        max_volume: Volume(100_000),
        step_volume: Volume(100),
        schedule: TradingSchedule::always_open(),
        commission: None,
    }
}

/// The client order id a dry run derives for the same decision (its own prefix).
pub fn dry_run_decision_id(bar: i64, letter: char) -> ClientOrderId {
    ClientOrderId::new(format!(
        "{PREFIX}-dry-{PALM}-{}-{letter}",
        (T0 + bar * MIN) / MIN
    ))
    .unwrap()
}

/// The id the engine derives for a decision on bar `i` (see `domain::DecisionId`).
pub fn decision_id(bar: i64, letter: char) -> ClientOrderId {
    ClientOrderId::new(format!(
        "{PREFIX}-{PALM}-{}-{letter}",
        (T0 + bar * MIN) / MIN
    ))
    .unwrap()
}

/// Ten rising one-minute bars before T0 (4100 to 4190): RSI(2) warms up at 100, so a sharp fall
/// on bar 0 crosses below 30 and is a long entry.
pub fn history() -> Vec<Bar> {
    (1..=10)
        .map(|k| {
            let close = myr(4_200 - 10 * k);
            Bar {
                symbol: PALM,
                timeframe: Timeframe::M1,
                start: Timestamp(T0 - k * MIN),
                open: close,
                high: close,
                low: close,
                close,
                volume: 1,
            }
        })
        .collect()
}

/// RSI(2) 30/70, long only (an exit is a plain close), stop-loss 40 MYR, take-profit 80 MYR.
pub fn strategy() -> RsiSentimentStrategy {
    RsiSentimentStrategy::new(RsiSentimentConfig {
        rsi_period: 2,
        oversold: 30.0,
        overbought: 70.0,
        long_only: true,
        stop_loss: Some(myr(40)),
        take_profit: Some(myr(80)),
        ..RsiSentimentConfig::default()
    })
    .unwrap()
}

/// Waits until `ready` holds, failing the test with `what` after [`WAIT`].
pub async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A running engine: its stop switch and its task.
pub type Running = (
    watch::Sender<bool>,
    JoinHandle<Result<EngineExit, EngineError>>,
);

/// One account at the fake broker, one store, and at most one engine running at a time.
pub struct Harness {
    pub clock: Arc<FixedClock>,
    pub broker: Arc<FakeBroker>,
    pub store: Arc<MemoryTradeStore>,
    pub obs: Observers,
    pub dry_run: bool,
    pub reset_kill_switch: bool,
    /// How long a sent order may stay unseen before it is concluded lost (zero: at once).
    pub unseen_order_grace: Duration,
    pub risk: RiskConfig,
    /// Where sentiment readings come from, as the refresher publishes them; `None` starts the
    /// engine with the sender already gone, as `run` and `demo` do when no sentiment service
    /// could be built.
    pub sentiment: Option<watch::Sender<Option<SentimentReading>>>,
    /// The last quote sent (bid, ask), repeated by [`Harness::settle`].
    pub last: Option<(Price, Price)>,
    pub running: Option<Running>,
}

impl Harness {
    /// PALMOIL listed with its history, 10 000.00 in the account, an empty store.
    pub fn new() -> Harness {
        let clock = Arc::new(FixedClock::new(Timestamp(T0)));
        let broker = Arc::new(FakeBroker::new(clock.clone(), Money::new(1_000_000, 2)));
        broker.add_symbol(spec());
        broker.add_bars(history());
        Harness {
            obs: observers(clock.clone()),
            clock,
            broker,
            store: Arc::new(MemoryTradeStore::new()),
            dry_run: false,
            reset_kill_switch: false,
            unseen_order_grace: Duration::ZERO,
            risk: RiskConfig::default(),
            sentiment: Some(watch::channel(None).0),
            last: None,
            running: None,
        }
    }

    pub async fn start(&self) -> Result<Engine<FakeBroker>, EngineError> {
        let sentiment = match &self.sentiment {
            Some(sender) => sender.subscribe(),
            None => watch::channel(None).1,
        };
        let store: Arc<dyn TradeStore> = self.store.clone();
        let clock: Arc<dyn Clock> = self.clock.clone();
        Engine::start(
            self.broker.clone(),
            store,
            clock,
            self.obs.clone(),
            EngineSettings {
                label_prefix: domain::LabelPrefix::new(PREFIX).unwrap(),
                dry_run: self.dry_run,
                symbol_candidates: vec!["FCPO".to_owned(), "PALMOIL".to_owned()],
                warmup_bars: 20,
                timeframe: Timeframe::M1,
                reset_kill_switch: self.reset_kill_switch,
                unseen_order_grace: self.unseen_order_grace,
            },
            strategy(),
            self.risk.clone(),
            sentiment,
        )
        .await
    }

    /// Starts the engine and runs it on the broker's event stream in a task.
    pub async fn run(&mut self) {
        let engine = self.start().await.expect("the engine starts");
        let events = self.broker.take_events().expect("the event stream is free");
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(engine.run(events, bot::runtime::wait_for(stopped)));
        self.running = Some((stop, task));
    }

    /// Stops the running engine and checks it ended cleanly.
    pub async fn stop(&mut self) {
        let (stop, task) = self.running.take().expect("an engine is running");
        stop.send(true).unwrap();
        let exit = tokio::time::timeout(WAIT, task)
            .await
            .expect("the engine stops in time")
            .expect("the engine task did not panic");
        assert_eq!(exit.unwrap(), EngineExit::Shutdown);
    }

    /// A restart: the engine stops, and the next one gets a fresh event stream from the same
    /// account (positions and deals stay at the broker), with new observers and the same store.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.broker.restart_events();
        self.obs = observers(self.clock.clone());
        self.run().await;
    }

    /// Sends a quote around `mid` (spread 2 MYR) at `ms` after T0, and waits until the engine has
    /// handled it and everything it caused.
    pub async fn quote_at(&mut self, ms: i64, mid: i64) {
        self.clock.set(Timestamp(T0 + ms));
        let (bid, ask) = (myr(mid - 1), myr(mid + 1));
        self.last = Some((bid, ask));
        self.broker.set_quote(PALM, bid, ask);
        self.settle().await;
    }

    /// The first quote of bar `i` (one second into it), which closes bar `i - 1`.
    pub async fn bar(&mut self, i: i64, mid: i64) {
        self.quote_at(i * MIN + 1_000, mid).await;
    }

    /// Waits until every event queued so far, and every event those caused, was handled: the
    /// last quote is repeated one millisecond later (same prices: no bar or trigger changes) and
    /// the engine's status shows it received; twice, because handling an event may queue more
    /// (execution reports of an order sent while handling it).
    pub async fn settle(&mut self) {
        let Some((bid, ask)) = self.last else { return };
        for _ in 0..2 {
            self.clock.advance(1);
            self.broker.set_quote(PALM, bid, ask);
            let at = self.clock.now().millis();
            let status = self.obs.status.clone();
            wait_until("the engine to handle the marker quote", || {
                status
                    .live()
                    .last_quote
                    .is_some_and(|q| q.received_at_ms == at)
            })
            .await;
        }
    }

    /// Drives bars 0 and 1 at 4100 after the warm-up at 4190: bar 0 closes on an RSI crossing
    /// below 30, a long entry decided on bar 0.
    pub async fn cross_down(&mut self) {
        self.bar(0, 4_100).await;
        self.bar(1, 4_100).await;
    }

    pub fn metrics(&self) -> String {
        self.obs.metrics.encode().unwrap()
    }

    pub fn events(&self) -> Vec<String> {
        self.obs
            .status
            .snapshot()
            .events
            .into_iter()
            .map(|e| e.message)
            .collect()
    }

    pub fn has_event(&self, text: &str) -> bool {
        self.events().iter().any(|e| e.contains(text))
    }

    pub async fn all_positions(&self) -> Vec<domain::Position> {
        self.store
            .positions(PositionQuery {
                status: None,
                limit: 100,
            })
            .await
            .unwrap()
    }
}

pub fn observers(clock: Arc<FixedClock>) -> Observers {
    let clock: Arc<dyn Clock> = clock;
    Observers::new(
        Arc::new(Metrics::new(clock.clone()).unwrap()),
        StatusHandle::new(StatusConfig::default(), clock),
    )
}

/// The value of the metric line that starts with `series` (name and labels as exported).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// A position opened by this bot before a crash (our label), as the broker lists it.
pub fn our_position(id: i64, client_order_id: &ClientOrderId) -> BrokerPosition {
    BrokerPosition {
        id: PositionId(id),
        symbol: PALM,
        side: Side::Buy,
        volume: Volume(100),
        entry_price: myr(4_150),
        open_time: Timestamp(T0 - 3 * MIN),
        stop_loss: Some(myr(4_000)),
        take_profit: Some(myr(4_300)),
        label: Some(client_order_id.to_string()),
        client_order_id: Some(client_order_id.clone()),
        swap: Money::zero(2),
        commission: Money::zero(2),
    }
}

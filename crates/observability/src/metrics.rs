//! The metrics registry: OpenTelemetry instruments read through the Prometheus exporter, with
//! typed recording methods so label names and values stay consistent.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use domain::{Clock, Timestamp};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider, ObservableGauge};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

use crate::ObservabilityError;
use crate::status::ConnectionState;

/// Prefix of every metric the bot exports.
pub const METRIC_PREFIX: &str = "palm_oil_bot_";

/// The `Content-Type` of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Buckets for order latency (send to fill), in seconds: a broker answers in tens of ms to seconds.
const ORDER_LATENCY_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets for tick-to-decision latency, in seconds: in-process work, microseconds to 100 ms.
const TICK_TO_DECISION_BUCKETS: [f64; 14] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25,
];

/// How an order ended, as counted in `palm_oil_bot_orders_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderOutcome {
    /// Filled completely.
    Filled,
    /// Filled in part.
    PartiallyFilled,
    /// Refused by the broker.
    Rejected,
    /// Cancelled before filling.
    Cancelled,
    /// Expired before filling.
    Expired,
    /// No answer in time (state resolved later by reconciliation).
    TimedOut,
}

impl OrderOutcome {
    /// Every outcome, for pre-registering series at zero.
    pub const ALL: [OrderOutcome; 6] = [
        OrderOutcome::Filled,
        OrderOutcome::PartiallyFilled,
        OrderOutcome::Rejected,
        OrderOutcome::Cancelled,
        OrderOutcome::Expired,
        OrderOutcome::TimedOut,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderOutcome::Filled => "filled",
            OrderOutcome::PartiallyFilled => "partially_filled",
            OrderOutcome::Rejected => "rejected",
            OrderOutcome::Cancelled => "cancelled",
            OrderOutcome::Expired => "expired",
            OrderOutcome::TimedOut => "timed_out",
        }
    }
}

/// How a closed trade ended, as counted in `palm_oil_bot_trades_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TradeOutcome {
    /// Closed with a profit.
    Win,
    /// Closed with a loss.
    Loss,
    /// Closed at zero net profit.
    Breakeven,
}

impl TradeOutcome {
    /// Every outcome, for pre-registering series at zero.
    pub const ALL: [TradeOutcome; 3] = [
        TradeOutcome::Win,
        TradeOutcome::Loss,
        TradeOutcome::Breakeven,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            TradeOutcome::Win => "win",
            TradeOutcome::Loss => "loss",
            TradeOutcome::Breakeven => "breakeven",
        }
    }
}

/// How a sentiment request ended, as counted in `palm_oil_bot_sentiment_requests_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SentimentResult {
    /// A valid reading came back.
    Ok,
    /// The source failed (HTTP error, bad answer).
    Error,
    /// The source did not answer in time.
    Timeout,
    /// The source refused for rate limiting.
    RateLimited,
}

impl SentimentResult {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            SentimentResult::Ok => "ok",
            SentimentResult::Error => "error",
            SentimentResult::Timeout => "timeout",
            SentimentResult::RateLimited => "rate_limited",
        }
    }
}

/// State read at scrape time by observable gauges: written with plain atomics so the quote path
/// pays a store, not an aggregation.
struct ScrapeState {
    clock: Arc<dyn Clock>,
    started_at_ms: i64,
    last_quote_ms: AtomicI64,
    last_sentiment_ok_ms: AtomicI64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

/// Marks "never happened" in the timestamp atomics.
const NEVER: i64 = i64::MIN;

impl ScrapeState {
    /// Seconds since `at_ms`, or since start when it never happened; never negative.
    fn age_seconds(&self, at_ms: i64) -> f64 {
        let since = if at_ms == NEVER {
            self.started_at_ms
        } else {
            at_ms
        };
        let ms = self.clock.now().millis().saturating_sub(since).max(0);
        // Millisecond ages fit f64's 53-bit mantissa exactly for 285,000 years.
        #[allow(clippy::cast_precision_loss)]
        let secs = ms as f64 / 1000.0;
        secs
    }

    fn cache_hit_ratio(&self) -> Option<f64> {
        let hits = self.cache_hits.load(Ordering::Relaxed);
        let misses = self.cache_misses.load(Ordering::Relaxed);
        let total = hits.saturating_add(misses);
        // Counts stay far below 2^53, so the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let ratio = (total > 0).then(|| hits as f64 / total as f64);
        ratio
    }
}

/// Every instrument the bot records, and the Prometheus registry they are exported through.
pub struct Metrics {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
    scrape: Arc<ScrapeState>,
    realized_pnl: Gauge<f64>,
    unrealized_pnl: Gauge<f64>,
    equity: Gauge<f64>,
    balance: Gauge<f64>,
    drawdown: Gauge<f64>,
    drawdown_limit: Gauge<f64>,
    win_rate: Gauge<f64>,
    position_volume: Gauge<f64>,
    trades: Counter<u64>,
    orders: Counter<u64>,
    order_rejections: Counter<u64>,
    entries_refused: Counter<u64>,
    order_latency: Histogram<f64>,
    tick_to_decision: Histogram<f64>,
    broker_connected: Gauge<u64>,
    broker_connection_state: Gauge<u64>,
    reconnects: Counter<u64>,
    broker_events: Counter<u64>,
    quotes: Counter<u64>,
    market_open: Gauge<u64>,
    rsi: Gauge<f64>,
    sentiment_score: Gauge<f64>,
    sentiment_requests: Counter<u64>,
    sentiment_cache_hits: Counter<u64>,
    sentiment_cache_misses: Counter<u64>,
    reconciliation_corrections: Counter<u64>,
    kill_switch: Gauge<u64>,
    build_info: Gauge<u64>,
    account_info: Gauge<u64>,
    account_currency: std::sync::Mutex<Option<String>>,
    notifications: Counter<u64>,
    // Held so their callbacks stay registered for the provider's lifetime.
    _observables: Vec<ObservableGauge<f64>>,
    _process_cpu: opentelemetry::metrics::ObservableCounter<f64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("started_at_ms", &self.scrape.started_at_ms)
            .finish_non_exhaustive()
    }
}

fn gauge(meter: &Meter, name: &str, help: &'static str) -> Gauge<f64> {
    meter
        .f64_gauge(format!("{METRIC_PREFIX}{name}"))
        .with_description(help)
        .build()
}

fn flag(meter: &Meter, name: &str, help: &'static str) -> Gauge<u64> {
    meter
        .u64_gauge(format!("{METRIC_PREFIX}{name}"))
        .with_description(help)
        .build()
}

// The exporter appends `_total` to every monotonic counter, so names here go without it.
fn counter(meter: &Meter, name: &str, help: &'static str) -> Counter<u64> {
    meter
        .u64_counter(format!("{METRIC_PREFIX}{name}"))
        .with_description(help)
        .build()
}

fn histogram(meter: &Meter, name: &str, help: &'static str, buckets: &[f64]) -> Histogram<f64> {
    meter
        .f64_histogram(format!("{METRIC_PREFIX}{name}"))
        .with_description(help)
        .with_boundaries(buckets.to_vec())
        .build()
}

/// Keeps label values short and printable: they come from brokers and sources we do not control,
/// and an unbounded label would blow up the series count.
fn label_value(raw: &str) -> String {
    let cleaned: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "unknown".to_owned()
    } else {
        cleaned
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Metrics {
    /// Builds the registry, the exporter and every instrument; `clock` dates quote and sentiment
    /// ages at scrape time. Installs nothing globally.
    pub fn new(clock: Arc<dyn Clock>) -> Result<Metrics, ObservabilityError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| ObservabilityError::MetricsSetup(e.to_string()))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter("palm-oil-bot");
        let scrape = Arc::new(ScrapeState {
            started_at_ms: clock.now().millis(),
            clock,
            last_quote_ms: AtomicI64::new(NEVER),
            last_sentiment_ok_ms: AtomicI64::new(NEVER),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        });

        let observables = vec![
            {
                let s = Arc::clone(&scrape);
                meter
                    .f64_observable_gauge(format!("{METRIC_PREFIX}last_quote_age_seconds"))
                    .with_description(
                        "Seconds since the last quote arrived (since start when none has).",
                    )
                    .with_callback(move |o| {
                        o.observe(s.age_seconds(s.last_quote_ms.load(Ordering::Relaxed)), &[]);
                    })
                    .build()
            },
            {
                let s = Arc::clone(&scrape);
                meter
                    .f64_observable_gauge(format!("{METRIC_PREFIX}sentiment_staleness_seconds"))
                    .with_description(
                        "Seconds since the last successful sentiment reading from any source \
                         (since start when none has).",
                    )
                    .with_callback(move |o| {
                        let at = s.last_sentiment_ok_ms.load(Ordering::Relaxed);
                        o.observe(s.age_seconds(at), &[]);
                    })
                    .build()
            },
            {
                let s = Arc::clone(&scrape);
                meter
                    .f64_observable_gauge(format!("{METRIC_PREFIX}sentiment_cache_hit_ratio"))
                    .with_description("Share of sentiment lookups answered by the cache (0..1).")
                    .with_callback(move |o| {
                        if let Some(ratio) = s.cache_hit_ratio() {
                            o.observe(ratio, &[]);
                        }
                    })
                    .build()
            },
        ];
        let mut observables = observables;
        let (process_cpu, process_gauges) = process::instruments(&meter);
        observables.extend(process_gauges);

        let metrics = Metrics {
            realized_pnl: gauge(
                &meter,
                "realized_pnl",
                "Realized profit and loss since the account's start, in account currency.",
            ),
            unrealized_pnl: gauge(
                &meter,
                "unrealized_pnl",
                "Unrealized profit and loss of the open position, in account currency.",
            ),
            equity: gauge(&meter, "equity", "Account equity, in account currency."),
            balance: gauge(&meter, "balance", "Account balance, in account currency."),
            drawdown: gauge(
                &meter,
                "drawdown_ratio",
                "Drawdown from the equity peak, as a fraction (0.1 = 10%).",
            ),
            drawdown_limit: gauge(
                &meter,
                "drawdown_limit_ratio",
                "The drawdown at which the kill switch engages, as a fraction.",
            ),
            win_rate: gauge(
                &meter,
                "win_rate_ratio",
                "Share of closed trades that made a profit (0..1).",
            ),
            position_volume: gauge(
                &meter,
                "position_volume_units",
                "Open position size in units of the instrument: positive long, negative short.",
            ),
            trades: counter(&meter, "trades", "Closed trades by outcome."),
            orders: counter(&meter, "orders", "Orders by final outcome."),
            order_rejections: counter(
                &meter,
                "order_rejections",
                "Orders refused by the broker, by error code.",
            ),
            entries_refused: counter(
                &meter,
                "entries_refused",
                "Entries the bot decided but its own rules refused before any order, by reason.",
            ),
            order_latency: histogram(
                &meter,
                "order_latency_seconds",
                "Time from sending an order to its fill.",
                &ORDER_LATENCY_BUCKETS,
            ),
            tick_to_decision: histogram(
                &meter,
                "tick_to_decision_seconds",
                "Time from a quote's arrival to the strategy's decision.",
                &TICK_TO_DECISION_BUCKETS,
            ),
            broker_connected: flag(
                &meter,
                "broker_connected",
                "1 while the broker connection is up (connected or authenticated), else 0.",
            ),
            broker_connection_state: flag(
                &meter,
                "broker_connection_state",
                "1 for the broker connection's current state, 0 for the others.",
            ),
            reconnects: counter(
                &meter,
                "broker_reconnects",
                "Reconnections to the broker after a lost link.",
            ),
            broker_events: counter(
                &meter,
                "broker_events",
                "Account and market events the broker sent on its own, by kind (margin_call_trigger, margin_call_update, account_changed, symbol_changed, symbol_not_tradable, order_error).",
            ),
            quotes: counter(&meter, "quotes", "Quotes received from the broker."),
            market_open: flag(
                &meter,
                "market_open",
                "1 while the traded symbol's market is open by its schedule, else 0.",
            ),
            rsi: gauge(
                &meter,
                "rsi",
                "Latest RSI of the strategy's timeframe (0..100).",
            ),
            sentiment_score: gauge(
                &meter,
                "sentiment_score",
                "Latest sentiment score by source, from -1 (bearish) to 1 (bullish).",
            ),
            sentiment_requests: counter(
                &meter,
                "sentiment_requests",
                "Sentiment requests by source and result.",
            ),
            sentiment_cache_hits: counter(
                &meter,
                "sentiment_cache_hits",
                "Sentiment lookups answered by the cache.",
            ),
            sentiment_cache_misses: counter(
                &meter,
                "sentiment_cache_misses",
                "Sentiment lookups the cache could not answer.",
            ),
            reconciliation_corrections: counter(
                &meter,
                "reconciliation_corrections",
                "Corrections applied when the broker's state differed from the store's, by kind.",
            ),
            kill_switch: flag(
                &meter,
                "kill_switch_engaged",
                "1 while the kill switch stops new positions, else 0.",
            ),
            build_info: flag(
                &meter,
                "build_info",
                "Always 1; the version label says which build is running.",
            ),
            account_info: flag(
                &meter,
                "account_info",
                "1 for the account's deposit currency (label currency): every money metric is in it.",
            ),
            account_currency: std::sync::Mutex::new(None),
            notifications: counter(
                &meter,
                "notifications",
                "Operator notifications by destination and outcome (sent, failed, dropped, merged, retried).",
            ),
            _observables: observables,
            _process_cpu: process_cpu,
            registry,
            provider,
            scrape,
        };
        metrics.register_zero_series();
        Ok(metrics)
    }

    /// Counters start at zero for every known label so `increase()` sees their first event and
    /// alerts fire on it (a series born at 1 has no earlier sample to compare with).
    fn register_zero_series(&self) {
        for outcome in OrderOutcome::ALL {
            self.orders
                .add(0, &[KeyValue::new("outcome", outcome.as_str())]);
        }
        for outcome in TradeOutcome::ALL {
            self.trades
                .add(0, &[KeyValue::new("outcome", outcome.as_str())]);
        }
        self.reconnects.add(0, &[]);
        for kind in ["margin_call_trigger", "margin_call_update"] {
            self.broker_events.add(0, &[KeyValue::new("kind", kind)]);
        }
        self.quotes.add(0, &[]);
        self.sentiment_cache_hits.add(0, &[]);
        self.sentiment_cache_misses.add(0, &[]);
        self.set_connection_state(ConnectionState::Disconnected);
        self.build_info
            .record(1, &[KeyValue::new("version", env!("CARGO_PKG_VERSION"))]);
    }

    /// Encodes every metric in the Prometheus text format (what `GET /metrics` serves).
    pub fn encode(&self) -> Result<String, ObservabilityError> {
        let families = self.registry.gather();
        let mut out = Vec::with_capacity(8192);
        TextEncoder::new()
            .encode(&families, &mut out)
            .map_err(|e| ObservabilityError::MetricsEncode(e.to_string()))?;
        String::from_utf8(out).map_err(|e| ObservabilityError::MetricsEncode(e.to_string()))
    }

    /// The Prometheus registry, to add process or other collectors to the same scrape.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Flushes and stops the meter provider (at shutdown; later recordings are dropped).
    pub fn shutdown(&self) -> Result<(), ObservabilityError> {
        self.provider
            .shutdown()
            .map_err(|e| ObservabilityError::MetricsSetup(e.to_string()))
    }

    // ---- quote path: each of these is a few atomic operations -------------------------------

    /// A quote arrived at `at` (the bot's receive time): counts it and restarts the quote age.
    pub fn record_quote(&self, at: Timestamp) {
        self.scrape
            .last_quote_ms
            .store(at.millis(), Ordering::Relaxed);
        self.quotes.add(1, &[]);
    }

    /// Time from a quote's arrival to the strategy's decision on it.
    pub fn observe_tick_to_decision(&self, elapsed: Duration) {
        self.tick_to_decision.record(secs(elapsed), &[]);
    }

    /// The latest RSI value.
    pub fn set_rsi(&self, rsi: f64) {
        self.rsi.record(rsi, &[]);
    }

    /// The open position's unrealized PnL (account currency).
    pub fn set_unrealized_pnl(&self, pnl: f64) {
        self.unrealized_pnl.record(pnl, &[]);
    }

    /// Account equity (account currency).
    pub fn set_equity(&self, equity: f64) {
        self.equity.record(equity, &[]);
    }

    // ---- orders and trades --------------------------------------------------------------------

    /// An order reached its final outcome. Use [`Metrics::record_order_rejection`] for rejections.
    pub fn record_order(&self, outcome: OrderOutcome) {
        self.orders
            .add(1, &[KeyValue::new("outcome", outcome.as_str())]);
    }

    /// The broker rejected an order with `error_code` (e.g. `NOT_ENOUGH_MONEY`); also counts the
    /// order as rejected.
    pub fn record_order_rejection(&self, error_code: &str) {
        self.record_order(OrderOutcome::Rejected);
        self.order_rejections
            .add(1, &[KeyValue::new("code", label_value(error_code))]);
    }

    /// The bot's own rules refused an entry (`reason`: e.g. `kill_switch`, `below_minimum`,
    /// `no_conversion_rate`); no order was sent.
    pub fn record_entry_refused(&self, reason: &str) {
        self.entries_refused
            .add(1, &[KeyValue::new("reason", label_value(reason))]);
    }

    /// Time from sending an order to its fill.
    pub fn observe_order_latency(&self, send_to_fill: Duration) {
        self.order_latency.record(secs(send_to_fill), &[]);
    }

    /// A trade (position) closed with `outcome`.
    pub fn record_trade(&self, outcome: TradeOutcome) {
        self.trades
            .add(1, &[KeyValue::new("outcome", outcome.as_str())]);
    }

    /// Share of closed trades that won (0..1), from the store's full history.
    pub fn set_win_rate(&self, ratio: f64) {
        self.win_rate.record(ratio, &[]);
    }

    /// Open position size in units: positive long, negative short, zero flat.
    pub fn set_position_volume(&self, signed_units: f64) {
        self.position_volume.record(signed_units, &[]);
    }

    // ---- account --------------------------------------------------------------------------------

    /// Realized PnL (account currency).
    pub fn set_realized_pnl(&self, pnl: f64) {
        self.realized_pnl.record(pnl, &[]);
    }

    /// Account balance (account currency).
    pub fn set_balance(&self, balance: f64) {
        self.balance.record(balance, &[]);
    }

    /// Drawdown from the equity peak as a fraction (0.1 = 10%).
    pub fn set_drawdown(&self, ratio: f64) {
        self.drawdown.record(ratio, &[]);
    }

    /// The configured drawdown limit as a fraction; the drawdown alert compares against it.
    pub fn set_drawdown_limit(&self, ratio: f64) {
        self.drawdown_limit.record(ratio, &[]);
    }

    /// Whether the kill switch is engaged.
    pub fn set_kill_switch(&self, engaged: bool) {
        self.kill_switch.record(u64::from(engaged), &[]);
    }

    // ---- broker link --------------------------------------------------------------------------

    /// The broker connection's state: sets the one-hot state series and `broker_connected`.
    pub fn set_connection_state(&self, state: ConnectionState) {
        for s in ConnectionState::ALL {
            self.broker_connection_state
                .record(u64::from(s == state), &[KeyValue::new("state", s.as_str())]);
        }
        self.broker_connected
            .record(u64::from(state.is_connected()), &[]);
    }

    /// The link to the broker was re-established after a loss.
    pub fn record_reconnect(&self) {
        self.reconnects.add(1, &[]);
    }

    /// The broker sent an account or market event of `kind` on its own (a margin call, a
    /// balance or symbol change): alerts count these.
    pub fn record_broker_event(&self, kind: &str) {
        self.broker_events
            .add(1, &[KeyValue::new("kind", label_value(kind))]);
    }

    /// Whether the market is open by the symbol's schedule (stale-quote alerts depend on it).
    pub fn set_market_open(&self, open: bool) {
        self.market_open.record(u64::from(open), &[]);
    }

    // ---- sentiment ----------------------------------------------------------------------------

    /// The latest sentiment score from `source` (-1..1).
    pub fn set_sentiment_score(&self, source: &str, score: f64) {
        self.sentiment_score
            .record(score, &[KeyValue::new("source", label_value(source))]);
    }

    /// A sentiment request to `source` ended with `result` at `at`; an `Ok` restarts the
    /// sentiment staleness clock.
    pub fn record_sentiment_request(&self, source: &str, result: SentimentResult, at: Timestamp) {
        if result == SentimentResult::Ok {
            self.scrape
                .last_sentiment_ok_ms
                .fetch_max(at.millis(), Ordering::Relaxed);
        }
        self.sentiment_requests.add(
            1,
            &[
                KeyValue::new("source", label_value(source)),
                KeyValue::new("result", result.as_str()),
            ],
        );
    }

    /// A sentiment cache lookup hit (`true`) or missed.
    pub fn record_sentiment_cache(&self, hit: bool) {
        if hit {
            self.scrape.cache_hits.fetch_add(1, Ordering::Relaxed);
            self.sentiment_cache_hits.add(1, &[]);
        } else {
            self.scrape.cache_misses.fetch_add(1, Ordering::Relaxed);
            self.sentiment_cache_misses.add(1, &[]);
        }
    }

    // ---- account and notifications ------------------------------------------------------------

    /// The account's deposit currency (ISO code): `palm_oil_bot_account_info{currency}` is 1 for
    /// it (0 for one seen before, after a change of account).
    pub fn set_account_currency(&self, code: &str) {
        let code = label_value(code);
        let mut current = self
            .account_currency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = current.as_deref()
            && old != code
        {
            self.account_info
                .record(0, &[KeyValue::new("currency", old.to_owned())]);
        }
        self.account_info
            .record(1, &[KeyValue::new("currency", code.clone())]);
        *current = Some(code);
    }

    /// A notification to `destination` ended with `outcome` (`sent`, `failed`, `dropped`, ...).
    pub fn record_notification(&self, destination: &str, outcome: &str) {
        self.notifications.add(
            1,
            &[
                KeyValue::new("destination", label_value(destination)),
                KeyValue::new("outcome", label_value(outcome)),
            ],
        );
    }

    /// Starts a destination's notification series at zero, so alerts see their first increase.
    pub fn register_notification_destination(&self, destination: &str, outcomes: &[&str]) {
        for outcome in outcomes {
            self.notifications.add(
                0,
                &[
                    KeyValue::new("destination", label_value(destination)),
                    KeyValue::new("outcome", label_value(outcome)),
                ],
            );
        }
    }

    // ---- reconciliation -----------------------------------------------------------------------

    /// Reconciliation applied a correction of `kind` (e.g. `closed_externally`, `adopted`).
    pub fn record_reconciliation_correction(&self, kind: &str) {
        self.reconciliation_corrections
            .add(1, &[KeyValue::new("kind", label_value(kind))]);
    }
}

/// Process figures read from `/proc/self` at scrape time (Linux; nothing elsewhere):
/// `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`.
mod process {
    use opentelemetry::metrics::{Meter, ObservableCounter, ObservableGauge};

    /// Clock ticks per second of `/proc/self/stat`'s times: USER_HZ, fixed at 100 by the Linux
    /// user-space ABI on every architecture the bot is built for.
    const USER_HZ: f64 = 100.0;

    /// CPU time (user + system) of the whole process, in seconds.
    pub(super) fn cpu_seconds() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after ")": state is 0.
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / USER_HZ)
    }

    /// Resident set size in bytes (`VmRSS`).
    pub(super) fn resident_bytes() -> Option<f64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024.0)
    }

    /// Open file descriptors.
    pub(super) fn open_fds() -> Option<f64> {
        let count = std::fs::read_dir("/proc/self/fd").ok()?.count();
        // Far below 2^53.
        #[allow(clippy::cast_precision_loss)]
        let count = count as f64;
        Some(count)
    }

    pub(super) fn instruments(
        meter: &Meter,
    ) -> (ObservableCounter<f64>, Vec<ObservableGauge<f64>>) {
        let cpu = meter
            .f64_observable_counter("process_cpu_seconds")
            .with_description("Total user and system CPU time spent by the bot, in seconds.")
            .with_callback(|o| {
                if let Some(v) = cpu_seconds() {
                    o.observe(v, &[]);
                }
            })
            .build();
        let gauges = vec![
            meter
                .f64_observable_gauge("process_resident_memory_bytes")
                .with_description("Resident memory of the bot, in bytes.")
                .with_callback(|o| {
                    if let Some(v) = resident_bytes() {
                        o.observe(v, &[]);
                    }
                })
                .build(),
            meter
                .f64_observable_gauge("process_open_fds")
                .with_description("File descriptors the bot holds open.")
                .with_callback(|o| {
                    if let Some(v) = open_fds() {
                        o.observe(v, &[]);
                    }
                })
                .build(),
        ];
        (cpu, gauges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_process_account_and_notification_series_are_exported() {
        let clock: Arc<dyn Clock> = Arc::new(domain::FixedClock::new(Timestamp(0)));
        let m = Metrics::new(clock).unwrap();
        m.set_account_currency("USD");
        m.set_account_currency("MYR");
        m.record_notification("telegram", "failed");
        let text = m.encode().unwrap();
        let value = |series: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{series} missing from\n{text}"))
        };
        assert_eq!(
            value(&format!(
                "palm_oil_bot_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )),
            1.0
        );
        assert_eq!(value("palm_oil_bot_account_info{currency=\"MYR\"}"), 1.0);
        assert_eq!(value("palm_oil_bot_account_info{currency=\"USD\"}"), 0.0);
        assert_eq!(
            value("palm_oil_bot_notifications_total{destination=\"telegram\",outcome=\"failed\"}"),
            1.0
        );
        // This test process has memory, files and some CPU time of its own.
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_cpu_seconds_total") >= 0.0);
    }

    #[test]
    fn label_values_are_bounded_and_printable() {
        assert_eq!(label_value("NOT_ENOUGH_MONEY"), "NOT_ENOUGH_MONEY");
        assert_eq!(label_value("  "), "unknown");
        assert_eq!(label_value("a\"b\nc{d}"), "abcd");
        assert_eq!(label_value(&"x".repeat(500)).len(), 64);
    }
}

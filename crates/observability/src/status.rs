//! The status the bot publishes and the HTTP server reads: live figures, bounded histories
//! (events, decisions, equity curve) and the readiness checks derived from them.

use std::collections::VecDeque;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use domain::{Clock, Position, Quote, Timestamp};
use serde::{Deserialize, Serialize};

/// The broker link's state, as the client reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// No link.
    #[default]
    Disconnected,
    /// TCP/TLS or application auth in progress.
    Connecting,
    /// Link up, application authorised, account not yet.
    Connected,
    /// Account authorised: orders can be sent.
    Authenticated,
}

impl ConnectionState {
    /// Every state, for one-hot metric series.
    pub const ALL: [ConnectionState; 4] = [
        ConnectionState::Disconnected,
        ConnectionState::Connecting,
        ConnectionState::Connected,
        ConnectionState::Authenticated,
    ];

    /// Lower-case name, as in metrics labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Disconnected => "disconnected",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Authenticated => "authenticated",
        }
    }

    /// True once the link is up (connected or authenticated).
    pub const fn is_connected(self) -> bool {
        matches!(
            self,
            ConnectionState::Connected | ConnectionState::Authenticated
        )
    }
}

/// Severity of an event shown on the dashboard and in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventLevel {
    /// Routine: orders sent, fills, closes, reconnects.
    Info,
    /// Unexpected but handled: rejections, corrections.
    Warn,
    /// Needs a person: kill switch, lost track of a position.
    Error,
}

/// The latest quote, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteView {
    /// Best bid.
    pub bid: f64,
    /// Best ask.
    pub ask: f64,
    /// When the bot received it (ms since the epoch, UTC); freshness is judged from this.
    pub received_at_ms: i64,
    /// When the broker quoted it (ms since the epoch, UTC): how far behind the bot reads.
    pub quoted_at_ms: i64,
}

impl QuoteView {
    /// From a domain quote and the instant the bot received it.
    pub fn from_quote(quote: &Quote, received_at: Timestamp) -> QuoteView {
        QuoteView {
            bid: quote.bid.to_f64(),
            ask: quote.ask.to_f64(),
            received_at_ms: received_at.millis(),
            quoted_at_ms: quote.time.millis(),
        }
    }
}

/// The open position, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionView {
    /// The broker's position id.
    pub position_id: i64,
    /// `buy` or `sell`.
    pub side: String,
    /// Volume in units of the instrument.
    pub volume_units: f64,
    /// Entry price.
    pub entry_price: f64,
    /// When it opened (ms since the epoch).
    pub opened_at_ms: i64,
    /// Stop-loss price, if any.
    pub stop_loss: Option<f64>,
    /// Take-profit price, if any.
    pub take_profit: Option<f64>,
    /// Unrealized PnL in account currency, when known.
    pub unrealized_pnl: Option<f64>,
}

impl PositionView {
    /// From a domain position and its current unrealized PnL.
    pub fn from_position(position: &Position, unrealized_pnl: Option<f64>) -> PositionView {
        PositionView {
            position_id: position.id.0,
            side: position.side.as_str().to_owned(),
            volume_units: position.volume.units_f64(),
            entry_price: position.entry_price.to_f64(),
            opened_at_ms: position.entry_time.millis(),
            stop_loss: position.stop_loss.map(domain::Price::to_f64),
            take_profit: position.take_profit.map(domain::Price::to_f64),
            unrealized_pnl,
        }
    }
}

/// Account figures in account currency, for display.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountView {
    /// ISO currency code, e.g. `USD`.
    pub currency: String,
    /// Balance.
    pub balance: f64,
    /// Equity (balance plus unrealized PnL).
    pub equity: f64,
    /// Realized PnL since the bot's records begin.
    pub realized_pnl: f64,
    /// Unrealized PnL of the open position.
    pub unrealized_pnl: f64,
    /// Drawdown from the equity peak as a fraction: the kill switch's own figure
    /// (`drawdown_bps` / 10 000).
    pub drawdown_ratio: f64,
    /// Drawdown from the equity peak in basis points, exactly as the kill switch compares it.
    #[serde(default)]
    pub drawdown_bps: u32,
    /// The drawdown limit in basis points, when one is set.
    #[serde(default)]
    pub drawdown_limit_bps: Option<u32>,
    /// Loss since the start of the UTC day in basis points, as the kill switch compares it.
    #[serde(default)]
    pub daily_loss_bps: u32,
    /// The daily-loss limit in basis points, when one is set.
    #[serde(default)]
    pub daily_loss_limit_bps: Option<u32>,
    /// Share of closed trades that won, when any closed.
    pub win_rate: Option<f64>,
    /// Closed trades counted.
    pub closed_trades: u64,
}

/// One fill, for the dashboard's trades table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FillRecord {
    /// When it filled (ms since the epoch).
    pub at_ms: i64,
    /// The broker's position id.
    pub position_id: i64,
    /// `open` (a position opened or grew) or `close`.
    pub effect: String,
    /// `buy` or `sell`.
    pub side: String,
    /// Volume in units of the instrument.
    pub volume_units: f64,
    /// Fill price.
    pub price: f64,
    /// Net realized PnL in the account's currency, on a close when known.
    pub pnl: Option<f64>,
    /// The account's currency code.
    pub currency: String,
    /// Why: `strategy`, `stop_loss`, `take_profit`, `manual`, ...
    pub reason: String,
}

/// The latest sentiment reading, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentView {
    /// -1 (bearish) to 1 (bullish).
    pub score: f64,
    /// 0 to 1.
    pub confidence: f64,
    /// Which source.
    pub source: String,
    /// One readable line.
    pub summary: String,
    /// When it became known (ms since the epoch).
    pub known_at_ms: i64,
}

impl SentimentView {
    /// From a domain reading.
    pub fn from_reading(reading: &domain::SentimentReading) -> SentimentView {
        SentimentView {
            score: reading.score,
            confidence: reading.confidence,
            source: reading.source.clone(),
            summary: reading.summary.clone(),
            known_at_ms: reading.known_at.millis(),
        }
    }
}

/// The kill switch, for display and readiness.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KillSwitchView {
    /// Whether new positions are stopped.
    pub engaged: bool,
    /// Why, when engaged.
    pub reason: Option<String>,
}

/// How quote-currency amounts become the account's currency right now.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConversionView {
    /// The traded symbol's quote currency (e.g. `MYR`).
    pub quote_currency: String,
    /// The account's deposit currency (e.g. `USD`).
    pub account_currency: String,
    /// Units of account currency per unit of quote currency, when known.
    pub rate: Option<f64>,
    /// The broker's conversion symbols, in order (empty for the same currency).
    pub via: Vec<String>,
    /// Why no rate may be used, when none may.
    pub unavailable: Option<String>,
}

/// The figures the bot keeps current; it changes them through [`StatusHandle::update`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LiveStatus {
    /// The traded symbol's name.
    pub symbol: String,
    /// The broker link.
    pub connection: ConnectionState,
    /// Whether the store was reconciled with the broker since the last (re)connect.
    pub reconciled: bool,
    /// Whether the market is open by the symbol's schedule.
    pub market_open: bool,
    /// Whether the last write to the store succeeded.
    pub store_writable: bool,
    /// The latest quote.
    pub last_quote: Option<QuoteView>,
    /// The open position, if any.
    pub position: Option<PositionView>,
    /// Account figures, once known.
    pub account: Option<AccountView>,
    /// Latest RSI.
    pub rsi: Option<f64>,
    /// Latest sentiment.
    pub sentiment: Option<SentimentView>,
    /// The kill switch.
    pub kill_switch: KillSwitchView,
    /// Quote-to-account currency conversion, once the bot knows the account.
    pub conversion: Option<ConversionView>,
}

/// One point of the equity curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EquityPoint {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Equity in account currency.
    pub equity: f64,
}

/// One strategy decision, for the dashboard's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// What was decided, e.g. `open_buy`, `close`, `hold`.
    pub action: String,
    /// Why, in words.
    pub reason: String,
    /// RSI at the decision.
    pub rsi: Option<f64>,
    /// Sentiment score at the decision.
    pub sentiment: Option<f64>,
    /// Price at the decision.
    pub price: Option<f64>,
}

/// One notable event (order sent, fill, reconnect, correction), for the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// How serious.
    pub level: EventLevel,
    /// What happened, in words.
    pub message: String,
}

/// One readiness check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Which check (`connected`, `authenticated`, `reconciled`, `quotes_fresh`,
    /// `store_writable`, `kill_switch_off`).
    pub name: String,
    /// Whether it passes.
    pub ok: bool,
    /// What was seen, in words.
    pub detail: String,
}

/// Whether the bot is ready to trade, and why (not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// True only when every check passes.
    pub ready: bool,
    /// Every check, in a fixed order.
    pub checks: Vec<CheckResult>,
}

/// Everything `/api/status` serves: the live figures, histories and readiness at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// When the snapshot was taken, RFC 3339 UTC.
    pub generated_at: String,
    /// The same instant in ms since the epoch.
    pub generated_at_ms: i64,
    /// When the status handle was created (the bot's start).
    pub started_at_ms: i64,
    /// The live figures.
    pub live: LiveStatus,
    /// Seconds since the last quote was received, if any.
    pub last_quote_age_seconds: Option<f64>,
    /// Readiness checks evaluated at `generated_at`.
    pub readiness: Readiness,
    /// Equity over time, oldest first.
    pub equity_curve: Vec<EquityPoint>,
    /// Recent decisions, oldest first.
    pub decisions: Vec<DecisionRecord>,
    /// Recent events, oldest first.
    pub events: Vec<EventRecord>,
    /// Recent fills, oldest first.
    #[serde(default)]
    pub fills: Vec<FillRecord>,
}

/// Bounds and thresholds of the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusConfig {
    /// Recent events kept.
    pub max_events: usize,
    /// Recent decisions kept.
    pub max_decisions: usize,
    /// Recent fills kept.
    pub max_fills: usize,
    /// Equity-curve points kept.
    pub max_equity_points: usize,
    /// A new equity point closer than this to the previous one replaces it, so a day of
    /// heartbeats does not crowd out the curve's history.
    pub equity_min_interval: Duration,
    /// While the market is open, a quote older than this makes the bot unready.
    pub max_quote_age: Duration,
}

impl Default for StatusConfig {
    fn default() -> StatusConfig {
        StatusConfig {
            max_events: 200,
            max_decisions: 200,
            max_fills: 100,
            max_equity_points: 2_000,
            equity_min_interval: Duration::from_secs(60),
            max_quote_age: Duration::from_secs(60),
        }
    }
}

/// Longest message kept in an event or decision, so one runaway string cannot eat memory.
const MAX_TEXT_CHARS: usize = 500;

fn bounded_text(text: &str) -> String {
    text.chars().take(MAX_TEXT_CHARS).collect()
}

#[derive(Debug)]
struct StatusState {
    live: LiveStatus,
    equity: VecDeque<EquityPoint>,
    decisions: VecDeque<DecisionRecord>,
    events: VecDeque<EventRecord>,
    fills: VecDeque<FillRecord>,
}

/// The shared, cheaply cloned handle the bot writes to and the server reads from. The lock is a
/// std `RwLock` held only for a copy or an update, never across an await.
#[derive(Clone)]
pub struct StatusHandle {
    state: Arc<RwLock<StatusState>>,
    clock: Arc<dyn Clock>,
    config: StatusConfig,
    started_at_ms: i64,
}

impl std::fmt::Debug for StatusHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusHandle")
            .field("config", &self.config)
            .field("started_at_ms", &self.started_at_ms)
            .finish_non_exhaustive()
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, cap: usize) {
    if cap == 0 {
        return;
    }
    while queue.len() >= cap {
        queue.pop_front();
    }
    queue.push_back(item);
}

impl StatusHandle {
    /// An empty status (disconnected, nothing known) dated by `clock`.
    pub fn new(config: StatusConfig, clock: Arc<dyn Clock>) -> StatusHandle {
        let started_at_ms = clock.now().millis();
        StatusHandle {
            state: Arc::new(RwLock::new(StatusState {
                live: LiveStatus::default(),
                equity: VecDeque::new(),
                decisions: VecDeque::new(),
                events: VecDeque::new(),
                fills: VecDeque::new(),
            })),
            clock,
            config,
            started_at_ms,
        }
    }

    /// The bounds and thresholds in force.
    pub fn config(&self) -> StatusConfig {
        self.config
    }

    /// Changes the live figures in place.
    pub fn update(&self, change: impl FnOnce(&mut LiveStatus)) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        change(&mut state.live);
    }

    /// A copy of the live figures.
    pub fn live(&self) -> LiveStatus {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.live.clone()
    }

    /// Adds an equity point; one within `equity_min_interval` of the last replaces it.
    pub fn push_equity(&self, at: Timestamp, equity: f64) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let min_ms = i64::try_from(self.config.equity_min_interval.as_millis()).unwrap_or(i64::MAX);
        let point = EquityPoint {
            at_ms: at.millis(),
            equity,
        };
        let replace = state
            .equity
            .back()
            .is_some_and(|last| at.millis().saturating_sub(last.at_ms) < min_ms);
        if replace {
            state.equity.pop_back();
        }
        let cap = self.config.max_equity_points;
        push_bounded(&mut state.equity, point, cap);
    }

    /// Records a strategy decision.
    pub fn push_decision(&self, mut decision: DecisionRecord) {
        decision.action = bounded_text(&decision.action);
        decision.reason = bounded_text(&decision.reason);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let cap = self.config.max_decisions;
        push_bounded(&mut state.decisions, decision, cap);
    }

    /// Records a fill.
    pub fn push_fill(&self, mut fill: FillRecord) {
        fill.reason = bounded_text(&fill.reason);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let cap = self.config.max_fills;
        push_bounded(&mut state.fills, fill, cap);
    }

    /// Records a notable event at `at`.
    pub fn push_event(&self, at: Timestamp, level: EventLevel, message: &str) {
        let event = EventRecord {
            at_ms: at.millis(),
            level,
            message: bounded_text(message),
        };
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let cap = self.config.max_events;
        push_bounded(&mut state.events, event, cap);
    }

    /// The whole status at this instant, with readiness evaluated now.
    pub fn snapshot(&self) -> StatusSnapshot {
        let now = self.clock.now();
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let live = state.live.clone();
        let equity_curve = state.equity.iter().copied().collect();
        let decisions = state.decisions.iter().cloned().collect();
        let events = state.events.iter().cloned().collect();
        let fills = state.fills.iter().cloned().collect();
        drop(state);
        let last_quote_age_seconds = live
            .last_quote
            .as_ref()
            .map(|q| millis_to_secs(now.millis().saturating_sub(q.received_at_ms)));
        let readiness = evaluate_readiness(&live, now, self.config.max_quote_age);
        StatusSnapshot {
            generated_at: now.to_string(),
            generated_at_ms: now.millis(),
            started_at_ms: self.started_at_ms,
            live,
            last_quote_age_seconds,
            readiness,
            equity_curve,
            decisions,
            events,
            fills,
        }
    }

    /// Readiness alone, evaluated now (what `/readyz` serves).
    pub fn readiness(&self) -> Readiness {
        let now = self.clock.now();
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        evaluate_readiness(&state.live, now, self.config.max_quote_age)
    }
}

fn millis_to_secs(ms: i64) -> f64 {
    // Ages in ms are far below 2^53, so the conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    let secs = ms as f64 / 1000.0;
    secs
}

fn check(name: &str, ok: bool, detail: String) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        ok,
        detail,
    }
}

/// The readiness rule: connected, authenticated, reconciled, quotes fresh while the market is
/// open, store writable and kill switch off.
pub fn evaluate_readiness(live: &LiveStatus, now: Timestamp, max_quote_age: Duration) -> Readiness {
    let state = live.connection.as_str();
    let quotes = if !live.market_open {
        check("quotes_fresh", true, "market closed".to_owned())
    } else {
        match &live.last_quote {
            None => check(
                "quotes_fresh",
                false,
                "market open and no quote yet".to_owned(),
            ),
            Some(q) => {
                let age_ms = now.millis().saturating_sub(q.received_at_ms);
                let limit_ms = i64::try_from(max_quote_age.as_millis()).unwrap_or(i64::MAX);
                let age = millis_to_secs(age_ms);
                let limit = millis_to_secs(limit_ms);
                if age_ms <= limit_ms {
                    check("quotes_fresh", true, format!("last quote {age:.1} s ago"))
                } else {
                    check(
                        "quotes_fresh",
                        false,
                        format!("last quote {age:.1} s ago, limit {limit:.0} s"),
                    )
                }
            }
        }
    };
    let conversion = match &live.conversion {
        None => check("conversion_rate", true, "not needed yet".to_owned()),
        Some(c) => match (&c.unavailable, c.rate) {
            (Some(why), _) if live.market_open => check("conversion_rate", false, why.clone()),
            (Some(why), _) => check("conversion_rate", true, format!("market closed; {why}")),
            (None, Some(rate)) => check(
                "conversion_rate",
                true,
                format!("1 {} = {rate:.6} {}", c.quote_currency, c.account_currency),
            ),
            (None, None) => check("conversion_rate", true, "same currency".to_owned()),
        },
    };
    let checks = vec![
        // The link (TCP and TLS up) and the account's authorisation are told apart.
        check(
            "connected",
            live.connection.is_connected(),
            if live.connection.is_connected() {
                "broker link up".to_owned()
            } else {
                format!("broker link {state}")
            },
        ),
        check(
            "authenticated",
            live.connection == ConnectionState::Authenticated,
            if live.connection == ConnectionState::Authenticated {
                "account authorised for trading".to_owned()
            } else {
                format!("account not authorised (broker link {state})")
            },
        ),
        check(
            "reconciled",
            live.reconciled,
            if live.reconciled {
                "store matches the broker".to_owned()
            } else {
                "not reconciled since the last connect".to_owned()
            },
        ),
        quotes,
        conversion,
        check(
            "store_writable",
            live.store_writable,
            if live.store_writable {
                "last write succeeded".to_owned()
            } else {
                "store not writable".to_owned()
            },
        ),
        check(
            "kill_switch_off",
            !live.kill_switch.engaged,
            match (&live.kill_switch.engaged, &live.kill_switch.reason) {
                (false, _) => "off".to_owned(),
                (true, Some(reason)) => format!("engaged: {reason}"),
                (true, None) => "engaged".to_owned(),
            },
        ),
    ];
    Readiness {
        ready: checks.iter().all(|c| c.ok),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::FixedClock;

    fn handle(config: StatusConfig) -> (StatusHandle, Arc<FixedClock>) {
        let clock = Arc::new(FixedClock::new(Timestamp(1_000_000)));
        (StatusHandle::new(config, clock.clone()), clock)
    }

    fn ready_live(received_at_ms: i64) -> LiveStatus {
        LiveStatus {
            connection: ConnectionState::Authenticated,
            reconciled: true,
            market_open: true,
            store_writable: true,
            last_quote: Some(QuoteView {
                bid: 1.0,
                ask: 1.1,
                received_at_ms,
                quoted_at_ms: received_at_ms,
            }),
            ..LiveStatus::default()
        }
    }

    fn failing(r: &Readiness) -> Vec<&str> {
        r.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn ready_only_when_every_check_passes() {
        let (status, clock) = handle(StatusConfig::default());
        let r = status.readiness();
        assert!(!r.ready);
        assert_eq!(
            failing(&r),
            ["connected", "authenticated", "reconciled", "store_writable"]
        );
        status.update(|l| *l = ready_live(1_000_000));
        assert!(status.readiness().ready);

        clock.advance(60_001);
        assert_eq!(failing(&status.readiness()), ["quotes_fresh"]);
        status.update(|l| l.market_open = false);
        assert!(
            status.readiness().ready,
            "stale quotes are fine while closed"
        );

        status.update(|l| {
            l.kill_switch = KillSwitchView {
                engaged: true,
                reason: Some("drawdown 12%".into()),
            };
        });
        let r = status.readiness();
        assert_eq!(failing(&r), ["kill_switch_off"]);
        let kill = r
            .checks
            .iter()
            .find(|c| c.name == "kill_switch_off")
            .unwrap();
        assert_eq!(kill.detail, "engaged: drawdown 12%");
    }

    #[test]
    fn connected_but_not_authenticated_is_not_ready() {
        let (status, _) = handle(StatusConfig::default());
        status.update(|l| {
            *l = ready_live(1_000_000);
            l.connection = ConnectionState::Connected;
        });
        assert_eq!(failing(&status.readiness()), ["authenticated"]);
    }

    #[test]
    fn histories_stay_bounded_and_ordered() {
        let config = StatusConfig {
            max_events: 3,
            max_decisions: 2,
            max_equity_points: 4,
            equity_min_interval: Duration::from_secs(10),
            ..StatusConfig::default()
        };
        let (status, _) = handle(config);
        for i in 0..10 {
            status.push_event(Timestamp(i), EventLevel::Info, &format!("event {i}"));
            status.push_decision(DecisionRecord {
                at_ms: i,
                action: "hold".into(),
                reason: "x".repeat(2_000),
                rsi: None,
                sentiment: None,
                price: None,
            });
        }
        for i in 0..10 {
            status.push_equity(
                Timestamp(i * 10_000),
                1_000.0 + f64::from(u8::try_from(i).unwrap()),
            );
        }
        // Within the interval: replaces the last point rather than adding one.
        status.push_equity(Timestamp(95_000), 5_000.0);
        let snap = status.snapshot();
        let msgs: Vec<_> = snap.events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs, ["event 7", "event 8", "event 9"]);
        assert_eq!(snap.decisions.len(), 2);
        assert_eq!(snap.decisions[1].reason.chars().count(), MAX_TEXT_CHARS);
        let curve: Vec<_> = snap
            .equity_curve
            .iter()
            .map(|p| (p.at_ms, p.equity))
            .collect();
        assert_eq!(
            curve,
            [
                (60_000, 1_006.0),
                (70_000, 1_007.0),
                (80_000, 1_008.0),
                (95_000, 5_000.0)
            ]
        );
    }

    #[test]
    fn fills_are_kept_newest_last_and_bounded() {
        let (status, _) = handle(StatusConfig {
            max_fills: 2,
            ..StatusConfig::default()
        });
        for i in 0..3 {
            status.push_fill(FillRecord {
                at_ms: i,
                position_id: 7,
                effect: if i == 2 { "close" } else { "open" }.into(),
                side: "buy".into(),
                volume_units: 1.0,
                price: 4_100.0,
                pnl: (i == 2).then_some(-12.5),
                currency: "USD".into(),
                reason: "stop_loss".into(),
            });
        }
        let fills = status.snapshot().fills;
        assert_eq!(fills.iter().map(|f| f.at_ms).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(fills[1].pnl, Some(-12.5));
        let json = serde_json::to_value(status.snapshot()).unwrap();
        assert_eq!(json["fills"][1]["pnl"], -12.5);
        assert_eq!(json["fills"][1]["currency"], "USD");
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let (status, clock) = handle(StatusConfig::default());
        status.update(|l| *l = ready_live(999_000));
        clock.advance(500);
        let snap = status.snapshot();
        assert_eq!(snap.last_quote_age_seconds, Some(1.5));
        let json = serde_json::to_string(&snap).unwrap();
        let back: StatusSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
        assert_eq!(snap.generated_at, "1970-01-01T00:16:40.500Z");
    }
}

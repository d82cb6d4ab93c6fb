//! The trading engine: one quote's path from the broker to a recorded fill.
//!
//! Start-up resolves the symbol (refusing to trade without it), restores the kill switch,
//! reconciles with the broker (fail closed), warms the RSI from history and subscribes. Then each
//! quote feeds the bar aggregator; each closed bar goes to the strategy with the latest sentiment,
//! and a decision becomes a durable intent before its order leaves. A disconnect pauses trading
//! until a reconciliation after the reconnect succeeds.

mod account;
mod fills;
mod money;
mod orders;
mod publish;

pub use self::publish::AlertSettings;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ctrader_client::{Broker, BrokerError, BrokerEvent, BrokerEvents};
use domain::{
    Bar, Clock, KillSwitchState, LabelPrefix, Money, Position, PositionStatus, Quote,
    SentimentReading, SymbolSpec, Timestamp,
};

use self::money::AccountMoney;
use self::publish::{AlertState, TradeStats};
use notify::{NotificationKind, Notifier, Severity};
use observability::{ConnectionState, EventLevel, Metrics, StatusHandle};
use persistence::{StoreError, TradeStore};
use strategy::{
    Action, BarAggregator, BarContext, PositionView, RiskConfig, RiskGate, RsiSentimentStrategy,
    Strategy,
};
use tokio::sync::watch;

use crate::market_hours;
use crate::reconcile::{ReconcileFailure, UnseenOrders, reconcile};

/// What the engine needs to know that is not in the strategy's or the risk rules' configuration.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Prefix of our order labels and client order ids.
    pub label_prefix: LabelPrefix,
    /// Decide and record, but send no order.
    pub dry_run: bool,
    /// Symbol names to look up, in order.
    pub symbol_candidates: Vec<String>,
    /// Bars of history to warm the RSI with.
    pub warmup_bars: usize,
    /// The bar timeframe the strategy decides on.
    pub timeframe: domain::Timeframe,
    /// An operator's decision to release an engaged kill switch at start-up.
    pub reset_kill_switch: bool,
    /// How long an order sent before a restart or a dropped link may show no trace at the broker
    /// before it is concluded lost (trading waits meanwhile).
    pub unseen_order_grace: Duration,
}

/// Where the engine reports what it does.
#[derive(Debug, Clone)]
pub struct Observers {
    /// Prometheus instruments.
    pub metrics: Arc<Metrics>,
    /// The status the dashboard and health checks read.
    pub status: StatusHandle,
    /// Messages to the operator (a disabled notifier when none is configured).
    pub notifier: Notifier,
    /// When time-dependent alerts fire.
    pub alerts: AlertSettings,
}

impl Observers {
    /// Metrics and status, without notifications and with the default alert timings.
    pub fn new(metrics: Arc<Metrics>, status: StatusHandle) -> Observers {
        Observers {
            metrics,
            status,
            notifier: Notifier::disabled(),
            alerts: AlertSettings::default(),
        }
    }
}

/// Why the engine stopped trading.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The broker failed in a way that rules out trading (bad credentials, missing symbol, ...).
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    /// The store failed: nothing can be made durable, so nothing is sent.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Reconciliation could not finish: trading does not start or resume.
    #[error(transparent)]
    Reconcile(#[from] ReconcileFailure),
    /// The strategy or risk configuration is invalid.
    #[error("strategy configuration: {0}")]
    Strategy(#[from] strategy::ConfigError),
    /// The access token is gone and could not be refreshed.
    #[error("stopped trading: {0}")]
    Stopped(String),
}

/// How the engine ended when nothing went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineExit {
    /// Asked to stop (signal or duration).
    Shutdown,
}

/// The trading engine over any broker and store.
pub struct Engine<B: Broker> {
    broker: Arc<B>,
    store: Arc<dyn TradeStore>,
    clock: Arc<dyn Clock>,
    obs: Observers,
    settings: EngineSettings,
    symbol: SymbolSpec,
    strategy: RsiSentimentStrategy,
    risk: RiskGate,
    bars: BarAggregator,
    kill: KillSwitchState,
    sentiment: watch::Receiver<Option<SentimentReading>>,
    /// Our open position on the traded symbol, as stored.
    position: Option<Position>,
    /// Balance, charges and the conversion rate, in the account's deposit currency.
    money: AccountMoney,
    last_quote: Option<Quote>,
    /// Why trading is paused, if it is.
    paused: Option<Pause>,
    last_rsi: Option<f64>,
    /// Whether the schedule said open at the last tick (`None` before the first), so a closed
    /// market is announced once, with when it opens next.
    market_open: Option<bool>,
    /// Closed-trade statistics from the store, for metrics and the dashboard.
    trades: TradeStats,
    /// Time-dependent alerts (outage, stale sentiment, token expiry, the daily summary).
    alerts: AlertState,
    /// Orders sent whose fate the broker does not show yet: trading waits for them.
    unseen: UnseenOrders,
}

/// Why no order may leave right now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pause {
    /// The link is down; the reconnect event triggers reconciliation.
    Disconnected(String),
    /// The store may not match the broker: reconcile (retried every tick) before trading.
    NeedsReconcile(String),
    /// The broker suspended the symbol (or made it close-only): resumes when it trades again.
    SymbolNotTradable(String),
}

impl std::fmt::Display for Pause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pause::Disconnected(why)
            | Pause::NeedsReconcile(why)
            | Pause::SymbolNotTradable(why) => f.write_str(why),
        }
    }
}

impl<B: Broker> std::fmt::Debug for Engine<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("symbol", &self.symbol.name)
            .field("position", &self.position)
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl<B: Broker + 'static> Engine<B> {
    /// Start-up: resolve the symbol, restore the kill switch, reconcile (fail closed), warm up,
    /// subscribe. Returns an engine ready to [`Engine::run`].
    #[allow(clippy::too_many_arguments)] // the engine's collaborators, each distinct
    pub async fn start(
        broker: Arc<B>,
        store: Arc<dyn TradeStore>,
        clock: Arc<dyn Clock>,
        obs: Observers,
        settings: EngineSettings,
        strategy: RsiSentimentStrategy,
        risk: RiskConfig,
        sentiment: watch::Receiver<Option<SentimentReading>>,
    ) -> Result<Engine<B>, EngineError> {
        publish::connection(&obs, ConnectionState::Authenticated);
        let symbol = broker.resolve_symbol(&settings.symbol_candidates).await?;
        tracing::info!(symbol_id = symbol.id.0, symbol = %symbol.name, digits = symbol.digits, "trading symbol resolved");
        let risk = RiskGate::new(risk, symbol.clone())?;
        let currency = broker.account_currency().await?;
        let chain = broker.conversion_chain(symbol.id).await?;
        tracing::info!(
            account_currency = %currency,
            quote_currency = %chain.quote_currency,
            via = %chain.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(" "),
            "money is kept in the account's currency"
        );
        let mut kill = store.kill_switch().await?;
        if kill.currency.as_deref() != Some(currency.code.as_str()) {
            if kill.equity_peak.is_some() || kill.day_start_equity.is_some() {
                tracing::warn!(
                    stored_currency = kill.currency.as_deref().unwrap_or("none recorded"),
                    account_currency = %currency,
                    peak = ?kill.equity_peak.map(|m| m.to_string()),
                    "the kill switch's stored equity marks are not in the account's currency (written by an older version, or for another account): reset, not trusted"
                );
            }
            kill.equity_peak = None;
            kill.day_start_equity = None;
            kill.day = None;
            kill.currency = Some(currency.code.clone());
            store.save_kill_switch(&kill).await?;
        }
        let mut released = None;
        if kill.engaged && settings.reset_kill_switch {
            let reason = kill.reason.clone().unwrap_or_else(|| "unknown".to_owned());
            tracing::warn!(
                reason = reason.as_str(),
                "kill switch reset by the operator (--reset-kill-switch)"
            );
            kill.reset();
            store.save_kill_switch(&kill).await?;
            released = Some(reason);
        }
        if kill.engaged {
            tracing::error!(
                reason = kill.reason.as_deref().unwrap_or("unknown"),
                "kill switch is engaged (restored): no new positions until an operator resets it"
            );
        }
        let balance = broker.balance().await?;
        let money = AccountMoney::new(currency, chain, balance);
        let bars = BarAggregator::new(symbol.id, settings.timeframe);
        let alerts = AlertState::new(&obs.alerts);
        let settings_grace = settings.unseen_order_grace;
        let mut engine = Engine {
            broker,
            store,
            clock,
            obs,
            settings,
            symbol,
            strategy,
            risk,
            bars,
            kill,
            sentiment,
            position: None,
            money,
            last_quote: None,
            paused: Some(Pause::NeedsReconcile(
                "start-up reconciliation pending".to_owned(),
            )),
            last_rsi: None,
            market_open: None,
            trades: TradeStats::default(),
            alerts,
            unseen: UnseenOrders::new(settings_grace),
        };
        engine.publish_symbol();
        if let Some(reason) = released {
            engine.notify(
                NotificationKind::KillSwitchReleased,
                Severity::Warning,
                "kill switch released by the operator (--reset-kill-switch)".to_owned(),
                format!("it had engaged because: {reason}"),
            );
        }
        engine.publish();
        engine.reconcile_now("start-up").await?;
        engine.warm_up().await?;
        engine.broker.subscribe_quotes(engine.symbol.id).await?;
        for conversion in engine.money.chain.symbols().collect::<Vec<_>>() {
            engine.broker.subscribe_quotes(conversion).await?;
        }
        engine.publish();
        engine.publish_started();
        Ok(engine)
    }

    /// The symbol being traded.
    pub fn symbol(&self) -> &SymbolSpec {
        &self.symbol
    }

    /// Handles broker events until `shutdown` completes or trading must stop. An order in flight
    /// is always finished before shutdown is noticed, because orders are awaited between events.
    pub async fn run(
        mut self,
        mut events: BrokerEvents,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<EngineExit, EngineError> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        let mut sentiment_open = true;
        // The grace's end last looked at: once only, so a failing look cannot spin (the tick
        // retries it).
        let mut looked_at: Option<tokio::time::Instant> = None;
        loop {
            let unseen_due = self
                .unseen
                .next_due()
                .map(tokio::time::Instant::from_std)
                .filter(|due| looked_at.is_none_or(|at| *due > at));
            let handled = tokio::select! {
                biased;
                () = &mut shutdown => {
                    self.publish_stopped(None);
                    return Ok(EngineExit::Shutdown);
                }
                // Ahead of the events, which a busy stream always has ready: trading waits on it.
                () = tokio::time::sleep_until(unseen_due.unwrap_or_else(tokio::time::Instant::now)), if unseen_due.is_some() => {
                    looked_at = unseen_due;
                    // A failure keeps trading paused; the tick retries it.
                    let _ = self.reconcile_now("an unseen order's grace is over").await;
                    Ok(())
                }
                event = events.next() => match event {
                    Some(event) => self.on_event(event).await,
                    None => Err(EngineError::Stopped("the broker client ended".to_owned())),
                },
                // A closed channel (no sentiment source) answers at once forever: stop polling it,
                // or this biased select would spin and starve the tick.
                changed = self.sentiment.changed(), if sentiment_open => {
                    if changed.is_ok() {
                        self.publish_sentiment();
                    } else {
                        sentiment_open = false;
                        tracing::warn!("no sentiment source is running; the strategy's SENTIMENT_POLICY applies");
                    }
                    Ok(())
                }
                _ = tick.tick() => self.on_tick().await,
            };
            // One projection per event: the position, kill switch, money and statistics the
            // event left behind, onto metrics and status.
            self.publish();
            if let Err(e) = handled {
                self.publish_stopped(Some(&e));
                return Err(e);
            }
        }
    }

    async fn on_event(&mut self, event: BrokerEvent) -> Result<(), EngineError> {
        match event {
            BrokerEvent::Quote(quote) => self.on_quote(quote).await,
            BrokerEvent::Execution(report) => self.on_execution(*report).await,
            BrokerEvent::OrderError {
                order_id,
                position_id,
                code,
                description,
            } => {
                let text = format!(
                    "order error {code}{}{}{}",
                    order_id.map(|o| format!(" order {o}")).unwrap_or_default(),
                    position_id
                        .map(|p| format!(" position {p}"))
                        .unwrap_or_default(),
                    description.map(|d| format!(": {d}")).unwrap_or_default()
                );
                self.publish_rejection(&code, text);
                Ok(())
            }
            BrokerEvent::Disconnected { reason } => {
                self.pause(Pause::Disconnected(format!(
                    "broker disconnected: {reason}"
                )));
                self.money.link_lost();
                self.publish_disconnected(&reason);
                Ok(())
            }
            BrokerEvent::Reconnected => {
                self.publish_reconnected();
                // A failure keeps trading paused; the tick retries it.
                let _ = self.reconcile_now("reconnect").await;
                Ok(())
            }
            BrokerEvent::TokenRefreshed { expires_at, .. } => {
                // The client hands the event over only once the pair is stored.
                self.publish_token_refreshed(expires_at);
                Ok(())
            }
            BrokerEvent::TokenInvalidated { reason } => {
                self.publish_token_invalid(&reason);
                Err(EngineError::Stopped(format!(
                    "access token invalidated: {reason}"
                )))
            }
            BrokerEvent::AccountChanged { balance } => self.on_account_changed(balance).await,
            BrokerEvent::SymbolChanged { symbols } => self.on_symbol_changed(symbols).await,
            BrokerEvent::MarginCall {
                kind,
                threshold,
                level,
            } => self.on_margin_call(kind, &threshold, level).await,
            BrokerEvent::MarginChanged {
                position,
                used_margin,
            } => {
                self.on_margin_changed(position, used_margin);
                Ok(())
            }
            BrokerEvent::Stopped(error) => {
                self.event(EventLevel::Error, format!("broker client stopped: {error}"));
                Err(EngineError::Broker(error))
            }
        }
    }

    async fn on_quote(&mut self, quote: Quote) -> Result<(), EngineError> {
        if quote.symbol != self.symbol.id {
            self.money.on_quote(quote);
            return Ok(());
        }
        let received = Instant::now();
        self.last_quote = Some(quote);
        self.publish_quote(&quote);
        match self.bars.on_quote(&quote) {
            Ok(Some(bar)) => self.on_bar(bar, received).await,
            Ok(None) => Ok(()),
            Err(e) => {
                // A late or foreign quote is dropped, never fatal.
                tracing::debug!("quote not aggregated: {e}");
                Ok(())
            }
        }
    }

    async fn on_tick(&mut self) -> Result<(), EngineError> {
        if matches!(self.paused, Some(Pause::NeedsReconcile(_))) {
            // A failure keeps trading paused; the next tick tries again.
            let _ = self.reconcile_now("retry").await;
        }
        let now = self.clock.now();
        // The schedule, not the last quote, says whether the market is open: before the first
        // quote of a session, readiness must see an open market with no quote yet.
        let open = self.symbol.schedule.is_open(now);
        publish::market_open(&self.obs, open);
        if self.market_open != Some(open) {
            if !open {
                let note = market_hours::closed_note(&self.symbol.name, &self.symbol.schedule, now);
                self.event(EventLevel::Info, note);
            } else if self.market_open.is_some() {
                self.event(
                    EventLevel::Info,
                    format!("market open: {}", self.symbol.name),
                );
            }
            self.market_open = Some(open);
        }
        self.check_alerts(now);
        // Closes the bar on time when quotes stop at the end of a period.
        if let Some(bar) = self.bars.on_tick(now) {
            self.on_bar(bar, Instant::now()).await?;
        }
        Ok(())
    }

    async fn on_bar(&mut self, bar: Bar, received: Instant) -> Result<(), EngineError> {
        let reading = self.sentiment.borrow().clone();
        let ctx = BarContext {
            now: bar.start.plus_millis(bar.timeframe.millis()),
            position: self.position.as_ref().map(|p| PositionView {
                side: p.side,
                entry_price: p.entry_price,
                volume: p.volume,
            }),
            sentiment: reading.as_ref(),
        };
        let decision = self.strategy.on_bar(&bar, &ctx);
        let decided_in = received.elapsed();
        self.last_rsi = self.strategy.rsi();
        // Marked at the broker's latest time: a bar closed late (a gap, a reconnect) must not
        // stamp the kill switch with a moment long past.
        let marked_at = self.last_quote.map_or(ctx.now, |q| q.time.max(ctx.now));
        self.observe_equity(marked_at).await?;
        let action = action_name(&decision.action);
        let reason = decision.reason.to_string();
        self.publish_decision(
            &bar,
            ctx.now,
            action,
            &reason,
            reading.as_ref().map(|r| r.score),
            decided_in,
        );
        if matches!(decision.action, Action::Hold) {
            return Ok(());
        }
        if let Some(why) = &self.paused {
            self.event(
                EventLevel::Warn,
                format!("decision {action} not executed: trading paused ({why})"),
            );
            return Ok(());
        }
        match decision.action {
            Action::Hold => Ok(()),
            Action::Open(entry) => self.open(&bar, ctx.now, &entry, &reason).await,
            Action::Close => self.close(&bar, ctx.now, &reason).await,
            Action::Reverse(entry) => {
                self.close(&bar, ctx.now, &reason).await?;
                if self.position.is_none() && self.paused.is_none() {
                    self.open(&bar, ctx.now, &entry, &reason).await?;
                }
                Ok(())
            }
        }
    }

    /// Reconciles with the broker and resumes trading only when it finished.
    async fn reconcile_now(&mut self, why: &str) -> Result<(), EngineError> {
        let (plan, report) = match reconcile(
            self.broker.as_ref(),
            self.store.as_ref(),
            self.clock.as_ref(),
            &self.settings.label_prefix,
            !self.settings.dry_run,
            &mut self.unseen,
        )
        .await
        {
            Ok(done) => done,
            Err(e) => {
                self.publish_reconcile_failed(&e);
                self.pause(Pause::NeedsReconcile(e.to_string()));
                return Err(e.into());
            }
        };
        self.publish_reconciled(why, &plan, &report);
        self.refresh_position().await?;
        self.refresh_trade_stats().await?;
        let balance = self.broker.balance().await?;
        self.money.currency.money_digits = balance.digits;
        self.money.balance = balance;
        self.account_for_cash_moved_away().await?;
        self.refresh_charges().await?;
        // Changes to the symbol may have been missed while the link was down.
        let state = match self
            .broker
            .symbol_state(self.symbol.id, &self.symbol.name)
            .await
        {
            Ok(state) => state,
            Err(e) => {
                // Not reconciled until the symbol is known: the tick tries again.
                self.pause(Pause::NeedsReconcile(format!(
                    "symbol {} could not be read after reconciling: {e}",
                    self.symbol.name
                )));
                return Err(e.into());
            }
        };
        if let Some(id) = self.unseen.waiting().first() {
            // The order may still fill: no other may leave until its fate is known.
            self.pause(Pause::NeedsReconcile(format!(
                "order {id} was sent but the broker shows no trace of it yet; trading waits up to {:?} for it before concluding it never arrived",
                self.unseen.grace()
            )));
            return Ok(());
        }
        self.paused = None;
        if state.spec != self.symbol || state.mode != ctrader_client::TradingMode::Enabled {
            self.apply_symbol_state(state);
        }
        self.publish_trading_enabled(why, plan.corrections.len());
        Ok(())
    }

    async fn warm_up(&mut self) -> Result<(), EngineError> {
        let timeframe = self.settings.timeframe;
        let to = self.clock.now();
        let span = i64::try_from(self.settings.warmup_bars)
            .unwrap_or(0)
            .saturating_mul(timeframe.millis());
        let history = self
            .broker
            .trendbars(self.symbol.id, timeframe, Timestamp(to.millis() - span), to)
            .await?;
        // The last bar may still be forming: only closed bars warm the indicator.
        let closed: Vec<Bar> = history
            .into_iter()
            .filter(|b| b.start.plus_millis(timeframe.millis()) <= to)
            .collect();
        self.strategy.warm_up(&closed);
        self.last_rsi = self.strategy.rsi();
        tracing::info!(
            bars = closed.len(),
            rsi = self.last_rsi,
            "indicators warmed up from history"
        );
        Ok(())
    }

    async fn refresh_position(&mut self) -> Result<(), EngineError> {
        let open = self.store.open_positions().await?;
        self.position = open.into_iter().find(|p| {
            p.symbol == self.symbol.id
                && p.status == PositionStatus::Open
                && p.label
                    .as_deref()
                    .is_some_and(|l| self.settings.label_prefix.is_ours(l))
        });
        Ok(())
    }

    /// Recounts closed trades from the store (after reconciliation may have added some).
    async fn refresh_trade_stats(&mut self) -> Result<(), EngineError> {
        let closed = self
            .store
            .positions(persistence::PositionQuery {
                status: Some(PositionStatus::Closed),
                limit: usize::MAX,
            })
            .await?;
        let mut stats = TradeStats {
            realized: Money::zero(self.money.currency.money_digits),
            ..TradeStats::default()
        };
        for p in closed.iter().filter(|p| p.symbol == self.symbol.id) {
            stats.add(p.pnl);
        }
        self.trades = stats;
        Ok(())
    }

    /// The swap and commission the broker has charged on our open position (part of its PnL).
    async fn refresh_charges(&mut self) -> Result<(), EngineError> {
        let digits = self.money.currency.money_digits;
        let mut charges = Money::zero(digits);
        if let Some(ours) = &self.position {
            let open = self.broker.open_state().await?;
            if let Some(bp) = open.positions.iter().find(|p| p.id == ours.id) {
                charges = bp
                    .swap
                    .checked_add(bp.commission)
                    .and_then(|c| c.rescale(digits))
                    .unwrap_or(charges);
            }
        }
        self.money.charges = charges;
        Ok(())
    }

    /// Marks equity for the kill switch (once per closed bar and after fills) and the equity curve.
    async fn observe_equity(&mut self, at: Timestamp) -> Result<(), EngineError> {
        let unrealized = self
            .money
            .unrealized(self.position.as_ref(), self.last_quote);
        if self.position.is_some() && unrealized.is_none() {
            // Without a rate the open position's value is unknown: no mark beats a wrong one.
            tracing::warn!(
                reason = %self.money.rate().err().unwrap_or_default(),
                "equity not marked: the open position cannot be valued in the account's currency"
            );
            return Ok(());
        }
        let equity = self.money.equity(unrealized);
        let before = self.kill.clone();
        let engaged = self.risk.observe_equity(&mut self.kill, equity, at);
        // A durable write only when the state moved (a new peak, a new day, the switch):
        // most bars change nothing, and each write is an fsync.
        if self.kill != before {
            self.store.save_kill_switch(&self.kill).await?;
        }
        self.publish_equity_mark(at, equity);
        if engaged {
            self.publish_kill_switch_engaged(equity, unrealized, at);
        }
        Ok(())
    }

    /// Balance plus the open position's unrealized PnL at the last quote.
    fn equity(&self) -> Money {
        self.money.equity(
            self.money
                .unrealized(self.position.as_ref(), self.last_quote),
        )
    }

    fn pause(&mut self, why: Pause) {
        if self.paused.as_ref() != Some(&why) {
            self.publish_paused(&why.to_string());
        }
        self.paused = Some(why);
    }
}

/// Short name of an action for logs and the dashboard.
fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Hold => "hold",
        Action::Open(e) if e.side == domain::Side::Buy => "open_buy",
        Action::Open(_) => "open_sell",
        Action::Close => "close",
        Action::Reverse(e) if e.side == domain::Side::Buy => "reverse_to_buy",
        Action::Reverse(_) => "reverse_to_sell",
    }
}

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

use std::sync::Arc;
use std::time::{Duration, Instant};

use ctrader_client::{Broker, BrokerError, BrokerEvent, BrokerEvents};
use domain::{
    Bar, Clock, KillSwitchState, LabelPrefix, Money, Position, PositionStatus, Quote,
    SentimentReading, SymbolSpec, Timestamp,
};

use self::money::AccountMoney;
use observability::{
    ConnectionState, DecisionRecord, EventLevel, KillSwitchView, Metrics,
    PositionView as PositionStatusView, SentimentView, StatusHandle,
};
use persistence::{StoreError, TradeStore};
use strategy::{
    Action, BarAggregator, BarContext, PositionView, RiskConfig, RiskGate, RsiSentimentStrategy,
    Strategy,
};
use tokio::sync::watch;

use crate::market_hours;
use crate::reconcile::{ReconcileFailure, reconcile};

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
}

/// Where the engine reports what it does.
#[derive(Debug, Clone)]
pub struct Observers {
    /// Prometheus instruments.
    pub metrics: Arc<Metrics>,
    /// The status the dashboard and health checks read.
    pub status: StatusHandle,
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

/// Closed trades as the store records them, in the deposit currency.
#[derive(Debug, Clone, Copy, Default)]
struct TradeStats {
    closed: u64,
    wins: u64,
    realized: Money,
}

impl TradeStats {
    /// Counts one closed trade with its net PnL (`None`: not known, counted as zero).
    fn add(&mut self, pnl: Option<Money>) {
        let pnl = pnl.unwrap_or(Money::zero(self.realized.digits));
        self.closed += 1;
        self.wins += u64::from(pnl.minor > 0);
        self.realized = self.realized.checked_add(pnl).unwrap_or(self.realized);
    }

    fn win_rate(self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)] // trade counts are far below 2^52
        (self.closed > 0).then(|| self.wins as f64 / self.closed as f64)
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
        obs.status
            .update(|s| s.connection = ConnectionState::Authenticated);
        obs.metrics
            .set_connection_state(ConnectionState::Authenticated);
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
        if kill.engaged && settings.reset_kill_switch {
            tracing::warn!(
                reason = kill.reason.as_deref().unwrap_or("unknown"),
                "kill switch reset by the operator (--reset-kill-switch)"
            );
            kill.reset();
            store.save_kill_switch(&kill).await?;
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
        };
        engine.obs.status.update(|s| {
            s.symbol = engine.symbol.name.clone();
            s.store_writable = true;
        });
        engine.publish_kill_switch();
        engine.reconcile_now("start-up").await?;
        engine.warm_up().await?;
        engine.broker.subscribe_quotes(engine.symbol.id).await?;
        for conversion in engine.money.chain.symbols().collect::<Vec<_>>() {
            engine.broker.subscribe_quotes(conversion).await?;
        }
        engine.publish_money();
        engine.event(
            EventLevel::Info,
            format!(
                "trading {} ({}), {}",
                engine.symbol.name,
                engine.symbol.id,
                if engine.settings.dry_run {
                    "dry run: no orders are sent"
                } else {
                    "orders enabled"
                }
            ),
        );
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
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    self.event(EventLevel::Info, "shutting down: no new orders; open positions stay protected by their broker-side stop-loss and take-profit".to_owned());
                    return Ok(EngineExit::Shutdown);
                }
                event = events.next() => match event {
                    Some(event) => self.on_event(event).await?,
                    None => return Err(EngineError::Stopped("the broker client ended".to_owned())),
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
                }
                _ = tick.tick() => self.on_tick().await?,
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
                self.obs.metrics.record_order_rejection(&code);
                let text = format!(
                    "order error {code}{}{}{}",
                    order_id.map(|o| format!(" order {o}")).unwrap_or_default(),
                    position_id
                        .map(|p| format!(" position {p}"))
                        .unwrap_or_default(),
                    description.map(|d| format!(": {d}")).unwrap_or_default()
                );
                self.event(EventLevel::Warn, text);
                Ok(())
            }
            BrokerEvent::Disconnected { reason } => {
                self.pause(Pause::Disconnected(format!(
                    "broker disconnected: {reason}"
                )));
                self.money.link_lost();
                self.publish_money();
                self.obs.status.update(|s| {
                    s.connection = ConnectionState::Connecting;
                    s.reconciled = false;
                });
                self.obs
                    .metrics
                    .set_connection_state(ConnectionState::Connecting);
                Ok(())
            }
            BrokerEvent::Reconnected => {
                self.obs.metrics.record_reconnect();
                self.obs
                    .status
                    .update(|s| s.connection = ConnectionState::Authenticated);
                self.obs
                    .metrics
                    .set_connection_state(ConnectionState::Authenticated);
                self.event(
                    EventLevel::Info,
                    "reconnected: reconciling before trading resumes".to_owned(),
                );
                // A failure keeps trading paused; the tick retries it.
                let _ = self.reconcile_now("reconnect").await;
                Ok(())
            }
            BrokerEvent::TokenRefreshed { expires_at, .. } => {
                // The client hands the event over only once the pair is stored.
                self.event(
                    EventLevel::Info,
                    format!(
                        "access token refreshed and the new pair stored for the next start{}",
                        expires_at
                            .map(|t| format!(" (expires {t})"))
                            .unwrap_or_default()
                    ),
                );
                Ok(())
            }
            BrokerEvent::TokenInvalidated { reason } => {
                self.event(
                    EventLevel::Error,
                    format!("access token invalidated: {reason}"),
                );
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
            if self.money.on_quote(quote) {
                self.publish_money();
            }
            return Ok(());
        }
        let received = Instant::now();
        let now = self.clock.now();
        self.obs.metrics.record_quote(now);
        self.last_quote = Some(quote);
        self.obs.status.update(|s| {
            s.last_quote = Some(observability::QuoteView::from_quote(&quote, now));
            s.market_open = self.symbol.schedule.is_open(quote.time);
        });
        self.publish_money();
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
        self.obs.metrics.set_market_open(open);
        self.obs.status.update(|s| s.market_open = open);
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
        self.obs
            .metrics
            .observe_tick_to_decision(received.elapsed());
        self.last_rsi = self.strategy.rsi();
        if let Some(rsi) = self.last_rsi {
            self.obs.metrics.set_rsi(rsi);
        }
        self.obs.status.update(|s| s.rsi = self.last_rsi);
        // Marked at the broker's latest time: a bar closed late (a gap, a reconnect) must not
        // stamp the kill switch with a moment long past.
        let marked_at = self.last_quote.map_or(ctx.now, |q| q.time.max(ctx.now));
        self.observe_equity(marked_at).await?;
        let action = action_name(&decision.action);
        let reason = decision.reason.to_string();
        self.obs.status.push_decision(DecisionRecord {
            at_ms: ctx.now.millis(),
            action: action.to_owned(),
            reason: reason.clone(),
            rsi: self.last_rsi,
            sentiment: reading.as_ref().map(|r| r.score),
            price: Some(bar.close.to_f64()),
        });
        if matches!(decision.action, Action::Hold) {
            tracing::debug!(symbol_id = self.symbol.id.0, price = %bar.close, reason = %reason, "hold");
            return Ok(());
        }
        tracing::info!(symbol_id = self.symbol.id.0, price = %bar.close, action, reason = %reason, "decision");
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
        )
        .await
        {
            Ok(done) => done,
            Err(e) => {
                self.obs.status.update(|s| s.reconciled = false);
                self.pause(Pause::NeedsReconcile(e.to_string()));
                return Err(e.into());
            }
        };
        for correction in &plan.corrections {
            self.obs
                .metrics
                .record_reconciliation_correction(correction.kind());
        }
        if !plan.corrections.is_empty() || !plan.foreign.is_empty() {
            let level = if plan.flagged() > 0 {
                EventLevel::Warn
            } else {
                EventLevel::Info
            };
            self.event(
                level,
                format!(
                    "reconciled ({why}): {} correction(s), {} flagged, {} in sync, {} position(s) not ours",
                    report.corrections.len(),
                    report.flagged,
                    report.in_sync,
                    report.foreign_positions.len()
                ),
            );
        }
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
        self.paused = None;
        if state.spec != self.symbol || state.mode != ctrader_client::TradingMode::Enabled {
            self.apply_symbol_state(state);
        }
        self.obs.status.update(|s| s.reconciled = true);
        tracing::info!(
            reason = why,
            corrections = plan.corrections.len(),
            "reconciled with the broker; trading enabled"
        );
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
        tracing::info!(bars = closed.len(), rsi = ?self.last_rsi, "indicators warmed up from history");
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
        self.publish_position();
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
        self.obs.metrics.set_realized_pnl(stats.realized.to_f64());
        if let Some(rate) = stats.win_rate() {
            self.obs.metrics.set_win_rate(rate);
        }
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
        let (equity, unrealized) = self.publish_money();
        if self.position.is_some() && unrealized.is_none() {
            // Without a rate the open position's value is unknown: no mark beats a wrong one.
            tracing::warn!(
                reason = %self.money.rate().err().unwrap_or_default(),
                "equity not marked: the open position cannot be valued in the account's currency"
            );
            return Ok(());
        }
        let before = self.kill.clone();
        let engaged = self.risk.observe_equity(&mut self.kill, equity, at);
        // A durable write only when the state moved (a new peak, a new day, the switch):
        // most bars change nothing, and each write is an fsync.
        if self.kill != before {
            self.store.save_kill_switch(&self.kill).await?;
        }
        self.obs.status.push_equity(at, equity.to_f64());
        if engaged {
            let reason = self.kill.reason.clone().unwrap_or_default();
            // The figures it acted on, so an operator can check them against the broker's.
            tracing::info!(
                equity = %equity,
                balance = %self.money.balance,
                unrealized = %unrealized.map(|u| u.to_string()).unwrap_or_default(),
                position_id = self.position.as_ref().map_or(0, |p| p.id.0),
                at = %at,
                "kill switch figures"
            );
            self.event(
                EventLevel::Error,
                format!(
                    "kill switch engaged: {reason}; no new positions until an operator resets it"
                ),
            );
        }
        self.publish_money();
        self.publish_kill_switch();
        Ok(())
    }

    /// Computes unrealized PnL and equity once, and shows that one result everywhere: metrics,
    /// the position card and the account card. Returns (equity, unrealized).
    fn publish_money(&self) -> (Money, Option<Money>) {
        let unrealized = self
            .money
            .unrealized(self.position.as_ref(), self.last_quote);
        let equity = self.money.equity(unrealized);
        let drawdown = drawdown_ratio(self.kill.equity_peak, equity);
        let m = &self.obs.metrics;
        m.set_equity(equity.to_f64());
        m.set_balance(self.money.balance.to_f64());
        m.set_drawdown(drawdown);
        m.set_unrealized_pnl(unrealized.map_or(0.0, Money::to_f64));
        let stats = self.trades;
        let account = observability::AccountView {
            currency: self.money.currency.code.clone(),
            balance: self.money.balance.to_f64(),
            equity: equity.to_f64(),
            realized_pnl: stats.realized.to_f64(),
            unrealized_pnl: unrealized.map_or(0.0, Money::to_f64),
            drawdown_ratio: drawdown,
            win_rate: stats.win_rate(),
            closed_trades: stats.closed,
        };
        let conversion = self.money.view();
        self.obs.status.update(|s| {
            if let Some(p) = s.position.as_mut() {
                p.unrealized_pnl = unrealized.map(Money::to_f64);
            }
            s.account = Some(account);
            s.conversion = Some(conversion);
        });
        (equity, unrealized)
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
            tracing::warn!(reason = %why, "trading paused");
            self.obs.status.push_event(
                self.clock.now(),
                EventLevel::Warn,
                &format!("trading paused: {why}"),
            );
        }
        self.paused = Some(why);
    }

    fn event(&self, level: EventLevel, message: String) {
        match level {
            EventLevel::Info => tracing::info!("{message}"),
            EventLevel::Warn => tracing::warn!("{message}"),
            EventLevel::Error => tracing::error!("{message}"),
        }
        self.obs
            .status
            .push_event(self.clock.now(), level, &message);
    }

    fn publish_position(&self) {
        let view = self
            .position
            .as_ref()
            .map(|p| PositionStatusView::from_position(p, None));
        let signed = self.position.as_ref().map_or(0.0, |p| match p.side {
            domain::Side::Buy => p.volume.units_f64(),
            domain::Side::Sell => -p.volume.units_f64(),
        });
        self.obs.metrics.set_position_volume(signed);
        self.obs.status.update(|s| s.position = view);
        // The position's PnL and the account's equity come from one computation.
        self.publish_money();
    }

    fn publish_kill_switch(&self) {
        self.obs.metrics.set_kill_switch(self.kill.engaged);
        let view = KillSwitchView {
            engaged: self.kill.engaged,
            reason: self.kill.reason.clone(),
        };
        self.obs.status.update(|s| s.kill_switch = view);
    }

    fn publish_sentiment(&mut self) {
        let reading = self.sentiment.borrow_and_update().clone();
        if let Some(r) = reading {
            self.obs.metrics.set_sentiment_score(&r.source, r.score);
            self.obs
                .status
                .update(|s| s.sentiment = Some(SentimentView::from_reading(&r)));
        }
    }
}

/// How far `equity` is below `peak`, as a fraction (0 at or above the peak), from integer money.
fn drawdown_ratio(peak: Option<Money>, equity: Money) -> f64 {
    let Some(peak) = peak.filter(|p| p.minor > 0) else {
        return 0.0;
    };
    let digits = peak.digits.max(equity.digits);
    match (peak.rescale(digits), equity.rescale(digits)) {
        (Some(p), Some(e)) if e.minor < p.minor => {
            // Basis points of a millionth, exact in integers, then a fraction for display.
            let fall =
                (i128::from(p.minor) - i128::from(e.minor)) * 1_000_000 / i128::from(p.minor);
            #[allow(clippy::cast_precision_loss)] // at most 10^6
            let ratio = fall as f64 / 1_000_000.0;
            ratio
        }
        _ => 0.0,
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

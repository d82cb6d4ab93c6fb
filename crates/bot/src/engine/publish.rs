//! Publishing: what the engine shows and tells, kept out of the trading code. Once per event,
//! [`Engine::publish`] projects the position, the kill switch, the account's money and the trade
//! statistics onto the metrics and the status the dashboard reads. The other functions here are
//! the moments worth telling: each is logged, shown on the dashboard and, unless the operator
//! switched its kind off, sent as a notification (queued; delivery never touches this path).

use std::time::Duration;

use ctrader_client::Broker;
use domain::{
    Bar, ClientOrderId, CloseReason, Fill, Money, Position, PositionStatus, Price, Quote, Side,
    Timestamp,
};
use notify::{Notification, NotificationKind, Severity};
use observability::{
    AccountView, ConnectionState, DecisionRecord, EventLevel, FillRecord, KillSwitchView,
    OrderOutcome, PositionView, QuoteView, SentimentView, TradeOutcome,
};
use persistence::{ReconcilePlan, ReconcileReport, StoreError};

use super::{Engine, EngineError, Observers};
use crate::reconcile::ReconcileFailure;

/// When the time-dependent alerts fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertSettings {
    /// A broker link down at least this long is notified once, and its recovery after it.
    pub disconnect_after: Duration,
    /// No sentiment reading younger than this is notified once, until a fresh one arrives;
    /// `None`: not watched.
    pub sentiment_max_age: Option<Duration>,
    /// When the session's access token expires, when known (a refresh moves it).
    pub token_expires_at: Option<Timestamp>,
    /// A token this close to its expiry, not refreshed, is notified once.
    pub token_warn_before: Duration,
}

impl Default for AlertSettings {
    fn default() -> AlertSettings {
        AlertSettings {
            disconnect_after: Duration::from_secs(120),
            sentiment_max_age: None,
            token_expires_at: None,
            token_warn_before: Duration::from_secs(600),
        }
    }
}

/// Closed trades as the store records them, in integer money of the deposit currency.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TradeStats {
    pub(super) closed: u64,
    pub(super) wins: u64,
    pub(super) realized: Money,
}

impl TradeStats {
    /// Counts one closed trade with its net PnL (`None`: not known, counted as zero).
    pub(super) fn add(&mut self, pnl: Option<Money>) {
        let pnl = pnl.unwrap_or(Money::zero(self.realized.digits));
        self.closed += 1;
        self.wins += u64::from(pnl.minor > 0);
        self.realized = self
            .realized
            .rescale(self.realized.digits.max(pnl.digits))
            .and_then(|r| r.checked_add(pnl))
            .unwrap_or(self.realized);
    }

    /// The share of wins in basis points, from integer counts.
    fn win_rate_bps(self) -> Option<u32> {
        (self.closed > 0).then(|| {
            u32::try_from(self.wins.saturating_mul(10_000) / self.closed).unwrap_or(10_000)
        })
    }
}

/// Basis points as a fraction, for display only.
fn ratio(bps: u32) -> f64 {
    f64::from(bps) / 10_000.0
}

/// What the time-dependent alerts remember between ticks.
#[derive(Debug, Clone)]
pub(super) struct AlertState {
    settings: AlertSettings,
    started_at: Option<Timestamp>,
    down_since: Option<Timestamp>,
    down_reason: String,
    down_notified: bool,
    sentiment_alerted: bool,
    token_expires_at: Option<Timestamp>,
    token_alerted: bool,
    findings_alerted: bool,
    summary_day: Option<i64>,
    today: TradeStats,
}

impl AlertState {
    pub(super) fn new(settings: &AlertSettings) -> AlertState {
        AlertState {
            settings: *settings,
            started_at: None,
            down_since: None,
            down_reason: String::new(),
            down_notified: false,
            sentiment_alerted: false,
            token_expires_at: settings.token_expires_at,
            token_alerted: false,
            findings_alerted: false,
            summary_day: None,
            today: TradeStats::default(),
        }
    }
}

/// The broker link's state onto metrics and status.
pub(super) fn connection(obs: &Observers, state: ConnectionState) {
    obs.status.update(|s| s.connection = state);
    obs.metrics.set_connection_state(state);
}

/// Whether the market is open, by the schedule.
pub(super) fn market_open(obs: &Observers, open: bool) {
    obs.metrics.set_market_open(open);
    obs.status.update(|s| s.market_open = open);
}

/// Whole seconds of a span in ms, for messages.
fn secs(ms: i64) -> i64 {
    ms.max(0) / 1_000
}

impl<B: Broker + 'static> Engine<B> {
    /// The projection: unrealized PnL and equity computed once, the drawdown as the kill switch
    /// counts it (basis points of integer money), the statistics from integer counts; written to
    /// metrics and, in one update, to the status.
    pub(super) fn publish(&self) {
        let unrealized = self
            .money
            .unrealized(self.position.as_ref(), self.last_quote);
        let equity = self.money.equity(unrealized);
        let drawdown = strategy::drawdown_bps(&self.kill, equity);
        let daily_loss = strategy::daily_loss_bps(&self.kill, equity);
        let stats = self.trades;
        let win_rate = stats.win_rate_bps().map(ratio);
        let signed_volume = self.position.as_ref().map_or(0.0, |p| match p.side {
            Side::Buy => p.volume.units_f64(),
            Side::Sell => -p.volume.units_f64(),
        });
        let m = &self.obs.metrics;
        m.set_equity(equity.to_f64());
        m.set_balance(self.money.balance.to_f64());
        m.set_drawdown(ratio(drawdown));
        m.set_unrealized_pnl(unrealized.map_or(0.0, Money::to_f64));
        m.set_realized_pnl(stats.realized.to_f64());
        if let Some(rate) = win_rate {
            m.set_win_rate(rate);
        }
        m.set_position_volume(signed_volume);
        m.set_kill_switch(self.kill.engaged);
        if let Some(rsi) = self.last_rsi {
            m.set_rsi(rsi);
        }
        let account = AccountView {
            currency: self.money.currency.code.clone(),
            balance: self.money.balance.to_f64(),
            equity: equity.to_f64(),
            realized_pnl: stats.realized.to_f64(),
            unrealized_pnl: unrealized.map_or(0.0, Money::to_f64),
            drawdown_ratio: ratio(drawdown),
            drawdown_bps: drawdown,
            drawdown_limit_bps: self.risk.max_drawdown_bps(),
            daily_loss_bps: daily_loss,
            daily_loss_limit_bps: self.risk.daily_loss_limit_bps(),
            win_rate,
            closed_trades: stats.closed,
        };
        let position = self
            .position
            .as_ref()
            .map(|p| PositionView::from_position(p, unrealized.map(Money::to_f64)));
        let kill = KillSwitchView {
            engaged: self.kill.engaged,
            reason: self.kill.reason.clone(),
        };
        let conversion = self.money.view();
        let rsi = self.last_rsi;
        self.obs.status.update(|s| {
            s.position = position;
            s.account = Some(account);
            s.kill_switch = kill;
            s.conversion = Some(conversion);
            s.rsi = rsi;
        });
    }

    /// Logs an event and shows it on the dashboard.
    pub(super) fn event(&self, level: EventLevel, message: String) {
        match level {
            EventLevel::Info => tracing::info!("{message}"),
            EventLevel::Warn => tracing::warn!("{message}"),
            EventLevel::Error => tracing::error!("{message}"),
        }
        self.obs
            .status
            .push_event(self.clock.now(), level, &message);
    }

    /// Queues a notification (returns at once; nothing when its kind is off).
    pub(super) fn notify(
        &self,
        kind: NotificationKind,
        severity: Severity,
        title: String,
        body: String,
    ) {
        self.tell(Notification::new(kind, severity, self.clock.now(), title).body(body));
    }

    fn tell(&self, notification: Notification) {
        let notification = notification
            .field("symbol", self.symbol.name.as_str())
            .field("currency", self.money.currency.code.as_str());
        self.obs.notifier.send(notification);
    }

    /// A money amount with its currency, e.g. `-12.5 USD`.
    fn show(&self, amount: Money) -> String {
        self.money.show(amount)
    }

    /// Trading paused: one log line with the reason as a field (scripts and tests look for its
    /// fixed message), and the reason on the dashboard.
    pub(super) fn publish_paused(&self, why: &str) {
        tracing::warn!(reason = why, "trading paused");
        self.obs.status.push_event(
            self.clock.now(),
            EventLevel::Warn,
            &format!("trading paused: {why}"),
        );
    }

    /// Something the broker sent on its own (`account_changed`, `symbol_changed`, ...), counted.
    pub(super) fn publish_broker_event(&self, kind: &str) {
        self.obs.metrics.record_broker_event(kind);
    }

    pub(super) fn publish_symbol(&self) {
        self.obs
            .metrics
            .set_account_currency(&self.money.currency.code);
        self.obs.status.update(|s| {
            s.symbol = self.symbol.name.clone();
            s.store_writable = true;
        });
    }

    pub(super) fn publish_started(&mut self) {
        let now = self.clock.now();
        self.alerts.started_at = Some(now);
        self.alerts.summary_day = Some(now.epoch_day());
        let paused = self
            .paused
            .as_ref()
            .map(|why| format!("orders paused: {why}"));
        let mode = match (&paused, self.settings.dry_run) {
            (_, true) => "dry run: no orders are sent",
            (Some(why), false) => why.as_str(),
            (None, false) => "orders enabled",
        };
        self.event(
            EventLevel::Info,
            format!("trading {} ({}), {mode}", self.symbol.name, self.symbol.id),
        );
        let equity = self.equity();
        self.tell(
            Notification::new(
                NotificationKind::Started,
                Severity::Info,
                now,
                format!("started trading {} ({mode})", self.symbol.name),
            )
            .body(format!(
                "equity {}, {}",
                self.show(equity),
                match &self.position {
                    Some(p) => format!("open position {} {} {}", p.id, p.side, p.volume),
                    None => "flat".to_owned(),
                }
            ))
            .field("equity", equity.to_f64())
            .field("dry_run", self.settings.dry_run),
        );
    }

    /// The engine stops: cleanly (`None`) or on a failure.
    pub(super) fn publish_stopped(&self, failure: Option<&EngineError>) {
        match failure {
            None => {
                self.event(EventLevel::Info, "shutting down: no new orders; open positions stay protected by their broker-side stop-loss and take-profit".to_owned());
                self.notify(
                    NotificationKind::Stopped,
                    Severity::Info,
                    "stopped cleanly".to_owned(),
                    "no new orders; open positions stay protected by their broker-side stop-loss and take-profit".to_owned(),
                );
            }
            Some(e) => {
                self.notify(
                    NotificationKind::Stopped,
                    Severity::Critical,
                    format!("trading stopped: {e}"),
                    "open positions stay protected by their broker-side stop-loss and take-profit; the bot needs a person".to_owned(),
                );
            }
        }
    }

    pub(super) fn publish_quote(&self, quote: &Quote) {
        let now = self.clock.now();
        self.obs.metrics.record_quote(now);
        let open = self.symbol.schedule.is_open(quote.time);
        self.obs.status.update(|s| {
            s.last_quote = Some(QuoteView::from_quote(quote, now));
            s.market_open = open;
        });
    }

    pub(super) fn publish_decision(
        &self,
        bar: &Bar,
        at: Timestamp,
        action: &str,
        reason: &str,
        sentiment: Option<f64>,
        decided_in: Duration,
    ) {
        self.obs.metrics.observe_tick_to_decision(decided_in);
        self.obs.status.push_decision(DecisionRecord {
            at_ms: at.millis(),
            action: action.to_owned(),
            reason: reason.to_owned(),
            rsi: self.last_rsi,
            sentiment,
            price: Some(bar.close.to_f64()),
        });
        let price = bar.close.to_f64();
        if action == "hold" {
            tracing::debug!(
                symbol_id = self.symbol.id.0,
                price,
                rsi = self.last_rsi,
                sentiment,
                reason,
                "hold"
            );
        } else {
            tracing::info!(
                symbol_id = self.symbol.id.0,
                price,
                rsi = self.last_rsi,
                sentiment,
                action,
                reason,
                "decision"
            );
        }
    }

    pub(super) fn publish_sentiment(&mut self) {
        let reading = self.sentiment.borrow_and_update().clone();
        if let Some(r) = reading {
            self.obs.metrics.set_sentiment_score(&r.source, r.score);
            self.obs
                .status
                .update(|s| s.sentiment = Some(SentimentView::from_reading(&r)));
            if self.alerts.sentiment_alerted && !self.sentiment_stale(self.clock.now()) {
                self.alerts.sentiment_alerted = false;
                tracing::info!(source = %r.source, "sentiment available again");
            }
        }
    }

    /// True when no reading younger than the maximum age is at hand.
    fn sentiment_stale(&self, now: Timestamp) -> bool {
        let Some(max_age) = self.alerts.settings.sentiment_max_age else {
            return false;
        };
        let max_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        match self.sentiment.borrow().as_ref() {
            Some(r) => now.millis().saturating_sub(r.known_at.millis()) > max_ms,
            // None yet: stale once the bot has run that long without one.
            None => self
                .alerts
                .started_at
                .is_some_and(|t| now.millis().saturating_sub(t.millis()) > max_ms),
        }
    }

    pub(super) fn publish_rejection(&self, code: &str, text: String) {
        self.obs.metrics.record_order_rejection(code);
        self.event(EventLevel::Warn, text.clone());
        self.tell(
            Notification::new(
                NotificationKind::OrderRejected,
                Severity::Warning,
                self.clock.now(),
                text,
            )
            .field("code", code),
        );
    }

    pub(super) fn publish_entry_refused(&self, label: &str, level: EventLevel, why: &str) {
        self.obs.metrics.record_entry_refused(label);
        self.event(level, format!("entry not taken: {why}"));
    }

    /// Sent once, answer unknown: reconciliation will tell.
    pub(super) fn publish_order_unknown(&self) {
        self.obs.metrics.record_order(OrderOutcome::TimedOut);
    }

    pub(super) fn publish_order_filled(&self, latency: Duration, partial: bool) {
        self.obs.metrics.observe_order_latency(latency);
        self.obs.metrics.record_order(if partial {
            OrderOutcome::PartiallyFilled
        } else {
            OrderOutcome::Filled
        });
    }

    /// A fill recorded in the store: ours (`own` names the order) or the broker's (SL/TP, a
    /// manual close, a stop-out). `position` is as stored after it.
    pub(super) fn publish_fill(
        &mut self,
        fill: &Fill,
        position: &Position,
        own: Option<&ClientOrderId>,
    ) {
        let closed = position.status == PositionStatus::Closed;
        let currency = self.money.currency.code.clone();
        let reason = if closed {
            position.close_reason.map_or("unknown", CloseReason::as_str)
        } else if own.is_some() {
            "order filled"
        } else {
            "position changed"
        };
        let pnl = position.pnl.filter(|_| closed);
        tracing::info!(
            trade_id = fill.deal_id,
            client_order_id = own.map(ClientOrderId::as_str),
            position_id = position.id.0,
            symbol_id = fill.symbol.0,
            side = fill.side.as_str(),
            volume = fill.volume.units_f64(),
            price = fill.price.to_f64(),
            pnl = pnl.map(Money::to_f64),
            currency = currency.as_str(),
            reason,
            "{}",
            if closed {
                "position closed"
            } else {
                "fill recorded"
            }
        );
        self.obs.status.push_fill(FillRecord {
            at_ms: fill.time.millis(),
            position_id: position.id.0,
            effect: if closed { "close" } else { "open" }.to_owned(),
            side: fill.side.as_str().to_owned(),
            volume_units: fill.volume.units_f64(),
            price: fill.price.to_f64(),
            pnl: pnl.map(Money::to_f64),
            currency: currency.clone(),
            reason: reason.to_owned(),
        });
        let base = |kind, severity, title: String| {
            Notification::new(kind, severity, fill.time, title)
                .key(None)
                .field("position_id", position.id.0)
                .field("side", fill.side.as_str())
                .field("volume", fill.volume.units_f64())
                .field("price", fill.price.to_f64())
                .field("reason", reason)
        };
        if closed {
            self.trades.add(position.pnl);
            self.alerts.today.add(position.pnl);
            let outcome = match position.pnl.map_or(0, |p| p.minor).signum() {
                1 => TradeOutcome::Win,
                -1 => TradeOutcome::Loss,
                _ => TradeOutcome::Breakeven,
            };
            self.obs.metrics.record_trade(outcome);
            let shown = pnl.map_or_else(|| "unknown".to_owned(), |p| self.show(p));
            let exit = position.exit_price.unwrap_or(fill.price);
            let slipped = stop_slippage(position, exit);
            let text = match slipped {
                Some(beyond) => format!(
                    "position {} closed ({reason}) at {exit}, {beyond} past its stop-loss (the price jumped through it): PnL {shown}, more than the risk per trade planned",
                    position.id
                ),
                None => format!(
                    "position {} closed ({reason}) at {exit}: PnL {shown}",
                    position.id
                ),
            };
            let (level, severity) = if slipped.is_some() {
                (EventLevel::Warn, Severity::Warning)
            } else {
                (EventLevel::Info, Severity::Info)
            };
            self.event(level, text.clone());
            let mut n = base(NotificationKind::PositionClosed, severity, text).body(format!(
                "{} {} {} from {} to {}",
                position.side, position.volume, self.symbol.name, position.entry_price, exit
            ));
            if let Some(p) = pnl {
                n = n.field("pnl", p.to_f64());
            }
            self.tell(n);
        } else if let Some(id) = own {
            let text = format!(
                "filled: {} {} {} at {} (position {}, order {id})",
                fill.side, fill.volume, self.symbol.name, fill.price, position.id
            );
            self.event(EventLevel::Info, text.clone());
            self.tell(
                base(NotificationKind::OrderFilled, Severity::Info, text).body(format!(
                    "stop-loss {}, take-profit {}",
                    position
                        .stop_loss
                        .map_or_else(|| "none".to_owned(), |p| p.to_string()),
                    position
                        .take_profit
                        .map_or_else(|| "none".to_owned(), |p| p.to_string())
                )),
            );
        } else {
            let text = format!(
                "position {} changed by the broker: volume {}",
                position.id, position.volume
            );
            self.event(EventLevel::Info, text.clone());
            self.tell(base(NotificationKind::OrderFilled, Severity::Warning, text));
        }
    }

    pub(super) fn publish_kill_switch_engaged(
        &self,
        equity: Money,
        unrealized: Option<Money>,
        at: Timestamp,
    ) {
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
            format!("kill switch engaged: {reason}; no new positions until an operator resets it"),
        );
        self.tell(
            Notification::new(
                NotificationKind::KillSwitchEngaged,
                Severity::Critical,
                self.clock.now(),
                format!("kill switch engaged: {reason}"),
            )
            .body(format!(
                "equity {}; no new positions until an operator restarts with --reset-kill-switch",
                self.show(equity)
            ))
            .field("equity", equity.to_f64())
            .field("drawdown_bps", strategy::drawdown_bps(&self.kill, equity)),
        );
    }

    pub(super) fn publish_equity_mark(&self, at: Timestamp, equity: Money) {
        self.obs.status.push_equity(at, equity.to_f64());
    }

    pub(super) fn publish_store_failed(&self, error: &StoreError) {
        self.obs.status.update(|s| s.store_writable = false);
        self.event(
            EventLevel::Error,
            format!("store failed, trading stopped: {error}"),
        );
    }

    pub(super) fn publish_disconnected(&mut self, reason: &str) {
        self.obs.status.update(|s| {
            s.connection = ConnectionState::Connecting;
            s.reconciled = false;
        });
        self.obs
            .metrics
            .set_connection_state(ConnectionState::Connecting);
        if self.alerts.down_since.is_none() {
            self.alerts.down_since = Some(self.clock.now());
        }
        reason.clone_into(&mut self.alerts.down_reason);
    }

    pub(super) fn publish_reconnected(&mut self) {
        self.obs.metrics.record_reconnect();
        connection(&self.obs, ConnectionState::Authenticated);
        self.event(
            EventLevel::Info,
            "reconnected: reconciling before trading resumes".to_owned(),
        );
        if let Some(since) = self.alerts.down_since.take()
            && std::mem::take(&mut self.alerts.down_notified)
        {
            let down = secs(self.clock.now().millis() - since.millis());
            self.notify(
                NotificationKind::Reconnected,
                Severity::Info,
                format!("broker link back after {down} s"),
                "reconciling with the broker before trading resumes".to_owned(),
            );
        }
    }

    pub(super) fn publish_token_refreshed(&mut self, expires_at: Option<Timestamp>) {
        let until = expires_at
            .map(|t| format!(" (expires {t})"))
            .unwrap_or_default();
        self.event(
            EventLevel::Info,
            format!("access token refreshed and the new pair stored for the next start{until}"),
        );
        self.alerts.token_expires_at = expires_at;
        self.alerts.token_alerted = false;
        self.notify(
            NotificationKind::TokenRefreshed,
            Severity::Info,
            format!("access token refreshed{until}"),
            "the new pair is stored (sealed) for the next start".to_owned(),
        );
    }

    pub(super) fn publish_token_invalid(&self, reason: &str) {
        self.event(
            EventLevel::Error,
            format!("access token invalidated: {reason}"),
        );
        self.notify(
            NotificationKind::TokenInvalid,
            Severity::Critical,
            format!("access token invalid: {reason}"),
            "trading stopped; run `palm-oil-bot auth` for a new token pair".to_owned(),
        );
    }

    pub(super) fn publish_reconcile_failed(&mut self, failure: &ReconcileFailure) {
        self.obs.status.update(|s| s.reconciled = false);
        if let ReconcileFailure::Unacknowledged(findings) = failure
            && !self.alerts.findings_alerted
        {
            self.alerts.findings_alerted = true;
            let list: Vec<String> = findings.iter().map(ToString::to_string).collect();
            self.tell(
                Notification::new(
                    NotificationKind::Reconciliation,
                    Severity::Critical,
                    self.clock.now(),
                    format!(
                        "check it by hand: {} reconciliation finding(s); trading is paused",
                        findings.len()
                    ),
                )
                .body(format!(
                    "{}\ncompare each with the broker, then run `palm-oil-bot acknowledge N` (or --all)",
                    list.join("\n")
                ))
                .key(Some("reconciliation_findings".to_owned()))
                .field("findings", findings.len()),
            );
        }
    }

    pub(super) fn publish_reconciled(
        &mut self,
        why: &str,
        plan: &ReconcilePlan,
        report: &ReconcileReport,
    ) {
        self.alerts.findings_alerted = false;
        for correction in &plan.corrections {
            self.obs
                .metrics
                .record_reconciliation_correction(correction.kind());
        }
        if plan.corrections.is_empty() && plan.foreign.is_empty() {
            return;
        }
        let flagged = plan.flagged() > 0;
        let text = format!(
            "reconciled ({why}): {} correction(s), {} flagged, {} in sync, {} position(s) not ours",
            report.corrections.len(),
            report.flagged,
            report.in_sync,
            report.foreign_positions.len()
        );
        self.event(
            if flagged {
                EventLevel::Warn
            } else {
                EventLevel::Info
            },
            text.clone(),
        );
        if report.corrections.is_empty() {
            return;
        }
        let lines: Vec<String> = report
            .corrections
            .iter()
            .map(|c| {
                format!(
                    "{}{} {}: {} -> {} ({})",
                    if c.flagged { "FLAGGED " } else { "" },
                    c.kind,
                    c.subject,
                    c.before,
                    c.after,
                    c.why
                )
            })
            .collect();
        self.tell(
            Notification::new(
                NotificationKind::Reconciliation,
                if flagged {
                    Severity::Warning
                } else {
                    Severity::Info
                },
                self.clock.now(),
                text,
            )
            .body(lines.join("\n"))
            .key(None)
            .field("corrections", report.corrections.len())
            .field("flagged", report.flagged),
        );
    }

    pub(super) fn publish_trading_enabled(&self, why: &str, corrections: usize) {
        self.obs.status.update(|s| s.reconciled = true);
        tracing::info!(
            reason = why,
            corrections,
            "reconciled with the broker; trading enabled"
        );
    }

    /// The broker warned that the account's margin is low: shown, logged and notified (critical).
    /// `details` says what the broker said (margin level, threshold).
    pub fn publish_margin_call(&self, details: &str) {
        self.event(EventLevel::Error, format!("margin call: {details}"));
        self.notify(
            NotificationKind::MarginCall,
            Severity::Critical,
            format!("margin call: {details}"),
            "the broker may close positions (stop-out) if the margin level keeps falling"
                .to_owned(),
        );
    }

    /// The alerts that depend on time, once per tick: a long outage, stale sentiment, a token
    /// about to expire, and the daily summary when the UTC day turns.
    pub(super) fn check_alerts(&mut self, now: Timestamp) {
        if let Some(since) = self.alerts.down_since
            && !self.alerts.down_notified
        {
            let down_ms = now.millis().saturating_sub(since.millis());
            let limit = i64::try_from(self.alerts.settings.disconnect_after.as_millis())
                .unwrap_or(i64::MAX);
            if down_ms >= limit {
                self.alerts.down_notified = true;
                self.notify(
                    NotificationKind::Disconnected,
                    Severity::Warning,
                    format!("broker link down for {} s", secs(down_ms)),
                    format!(
                        "{}; trading is paused and resumes by itself after a reconciliation",
                        self.alerts.down_reason
                    ),
                );
            }
        }
        if !self.alerts.sentiment_alerted && self.sentiment_stale(now) {
            self.alerts.sentiment_alerted = true;
            let max = self
                .alerts
                .settings
                .sentiment_max_age
                .map_or(0, |d| d.as_secs());
            let last = self.sentiment.borrow().as_ref().map_or_else(
                || "none since start".to_owned(),
                |r| format!("last from {} at {}", r.source, r.known_at),
            );
            self.notify(
                NotificationKind::SentimentUnavailable,
                Severity::Warning,
                format!("no sentiment reading younger than {max} s"),
                format!("{last}; SENTIMENT_POLICY decides what the strategy does without one"),
            );
        }
        if let Some(expires) = self.alerts.token_expires_at
            && !self.alerts.token_alerted
        {
            let left = expires.millis().saturating_sub(now.millis());
            let warn = i64::try_from(self.alerts.settings.token_warn_before.as_millis())
                .unwrap_or(i64::MAX);
            if left <= warn {
                self.alerts.token_alerted = true;
                self.notify(
                    NotificationKind::TokenNearExpiry,
                    Severity::Warning,
                    format!(
                        "access token expires in {} s and was not refreshed",
                        secs(left)
                    ),
                    format!("expires {expires}; without a refresh the bot stops trading then"),
                );
            }
        }
        let day = now.epoch_day();
        match self.alerts.summary_day {
            Some(d) if d != day => {
                self.alerts.summary_day = Some(day);
                self.publish_daily_summary(d);
            }
            None => self.alerts.summary_day = Some(day),
            Some(_) => {}
        }
    }

    fn publish_daily_summary(&mut self, day: i64) {
        let today = std::mem::replace(
            &mut self.alerts.today,
            TradeStats {
                realized: Money::zero(self.money.currency.money_digits),
                ..TradeStats::default()
            },
        );
        let equity = self.equity();
        let drawdown = strategy::drawdown_bps(&self.kill, equity);
        let date = chrono::DateTime::from_timestamp_millis(day.saturating_mul(Timestamp::DAY_MS))
            .map_or_else(|| day.to_string(), |d| d.format("%Y-%m-%d").to_string());
        let pnl = Money::zero(self.money.currency.money_digits)
            .checked_add(today.realized)
            .unwrap_or(today.realized);
        self.tell(
            Notification::new(
                NotificationKind::DailySummary,
                Severity::Info,
                self.clock.now(),
                format!(
                    "daily summary {date}: {} trade(s), PnL {}, equity {}",
                    today.closed,
                    self.show(pnl),
                    self.show(equity)
                ),
            )
            .body(format!(
                "wins {} of {}; drawdown {:.2}% from the peak{}; kill switch {}",
                today.wins,
                today.closed,
                ratio(drawdown) * 100.0,
                self.risk
                    .max_drawdown_bps()
                    .map(|l| format!(" (limit {:.2}%)", ratio(l) * 100.0))
                    .unwrap_or_default(),
                if self.kill.engaged { "ENGAGED" } else { "off" }
            ))
            .field("date", date.as_str())
            .field("trades", today.closed)
            .field("wins", today.wins)
            .field("pnl", pnl.to_f64())
            .field("equity", equity.to_f64())
            .field("drawdown_bps", drawdown),
        );
    }
}

/// How far past its stop-loss a position stopped out was closed, when that is more than a tenth of
/// the stop's distance: a plain stop is a market order once touched, and a price jump fills it far
/// beyond, so the loss exceeds the risk the position was sized for.
fn stop_slippage(position: &Position, exit: Price) -> Option<Price> {
    if position.close_reason != Some(CloseReason::StopLoss) {
        return None;
    }
    let stop = position.stop_loss?;
    let (beyond, distance) = match position.side {
        Side::Buy => (
            stop.raw() - exit.raw(),
            position.entry_price.raw() - stop.raw(),
        ),
        Side::Sell => (
            exit.raw() - stop.raw(),
            stop.raw() - position.entry_price.raw(),
        ),
    };
    (distance > 0 && beyond > distance / 10).then_some(Price(beyond))
}

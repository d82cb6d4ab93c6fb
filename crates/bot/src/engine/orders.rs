//! Turning a decision into exactly one order: risk, a durable intent, the order, the recorded answer.

use std::time::Instant;

use ctrader_client::{Broker, OrderFill, OrderOutcome};
use domain::{
    Bar, ClientOrderId, CloseReason, DecisionId, IntentStatus, OrderIntent, OrderPurpose,
    OrderRequest, Position, PositionStatus, Price, Side, Timestamp,
};
use observability::EventLevel;
use persistence::{OrderAnswer, StoreError};
use strategy::Entry;

use super::{Engine, EngineError};

impl<B: Broker + 'static> Engine<B> {
    /// Opens a position for `entry`, if the risk rules allow it.
    pub(super) async fn open(
        &mut self,
        bar: &Bar,
        now: Timestamp,
        entry: &Entry,
        reason: &str,
    ) -> Result<(), EngineError> {
        // The order leaves now, not when the bar closed: a bar closed by the first quote after a
        // gap (a disconnect, a session's end) must not send an order into a closed market.
        let leaves_at = self.last_quote.map_or(now, |q| q.time.max(now));
        if let Err(refusal) = self
            .risk
            .check_entry(&self.kill, leaves_at, self.position.is_some())
        {
            self.publish_entry_refused(refusal.label(), EventLevel::Info, &refusal.to_string());
            return Ok(());
        }
        // Sizing needs the loss at the stop in the account's currency: no rate, no entry.
        let rate = match self.money.rate() {
            Ok(rate) => rate,
            Err(why) => {
                self.publish_entry_refused("no_conversion_rate", EventLevel::Warn, &why);
                return Ok(());
            }
        };
        // Size at the price the order will likely fill at.
        let price = match (entry.side, self.last_quote) {
            (Side::Buy, Some(q)) => q.ask,
            (Side::Sell, Some(q)) => q.bid,
            (_, None) => bar.close,
        };
        // A stop fills at the first price through it, which is often a spread beyond it: size for
        // the stop plus today's spread, so a stop-out stays within the risk per trade.
        let sizing = Entry {
            stop_loss: entry.stop_loss.map(|d| {
                let spread = self
                    .last_quote
                    .and_then(|q| q.ask.checked_sub(q.bid))
                    .filter(|s| s.raw() > 0)
                    .unwrap_or(Price::ZERO);
                d.checked_add(spread).unwrap_or(d)
            }),
            ..*entry
        };
        let volume = match self.risk.size(&sizing, self.equity(), price, rate) {
            Ok(v) => v,
            Err(refusal) => {
                self.publish_entry_refused(refusal.label(), EventLevel::Warn, &refusal.to_string());
                return Ok(());
            }
        };
        tracing::info!(
            equity = %self.equity(),
            balance = %self.money.balance,
            volume = %volume,
            price = %price,
            "position sized"
        );
        let purpose = match entry.side {
            Side::Buy => OrderPurpose::OpenLong,
            Side::Sell => OrderPurpose::OpenShort,
        };
        let id = self.order_id(bar, purpose)?;
        let request = OrderRequest {
            label: id.to_string(),
            client_order_id: id,
            symbol: self.symbol.id,
            side: entry.side,
            volume,
            relative_stop_loss: entry.stop_loss,
            relative_take_profit: entry.take_profit,
            position_to_close: None,
        };
        self.send(request, now, reason).await
    }

    /// Closes our open position, if there is one.
    pub(super) async fn close(
        &mut self,
        bar: &Bar,
        now: Timestamp,
        reason: &str,
    ) -> Result<(), EngineError> {
        let Some(position) = self.position.clone() else {
            return Ok(());
        };
        let id = self.order_id(bar, OrderPurpose::Close)?;
        let request = OrderRequest {
            label: id.to_string(),
            client_order_id: id,
            symbol: self.symbol.id,
            side: position.side.opposite(),
            volume: position.volume,
            relative_stop_loss: None,
            relative_take_profit: None,
            position_to_close: Some(position.id),
        };
        self.send(request, now, reason).await
    }

    fn order_id(&self, bar: &Bar, purpose: OrderPurpose) -> Result<ClientOrderId, EngineError> {
        DecisionId {
            symbol: self.symbol.id,
            bar_start: bar.start,
            purpose,
            dry_run: self.settings.dry_run,
        }
        .client_order_id(&self.settings.label_prefix)
        .map_err(|e| EngineError::Stopped(format!("cannot name the order: {e}")))
    }

    /// The intent protocol: commit (pending) → mark sent → send once → record the answer.
    async fn send(
        &mut self,
        request: OrderRequest,
        now: Timestamp,
        reason: &str,
    ) -> Result<(), EngineError> {
        let id = request.client_order_id.clone();
        let intent = OrderIntent {
            request: request.clone(),
            status: IntentStatus::Pending,
            // Our clock, not the bar's (broker) time: reconciliation compares intents with
            // snapshots taken on our clock, and a broker clock running ahead must not make a
            // fresh snapshot look older than the intent.
            created_at: self.clock.now(),
            reason: reason.to_owned(),
        };
        match self.store.commit_intent(&intent).await {
            Ok(()) => {}
            Err(StoreError::DuplicateIntent(_)) => {
                // The same decision was made before (e.g. before a restart): never a second order.
                self.event(
                    EventLevel::Warn,
                    format!("order {id} was already decided once; not sent again"),
                );
                return Ok(());
            }
            Err(e) => return Err(self.store_failed(e)),
        }
        if self.settings.dry_run {
            let answer = OrderAnswer::Rejected {
                client_order_id: id.clone(),
                reason: "dry run: not sent".to_owned(),
            };
            self.store
                .record_answer(&answer, now)
                .await
                .map_err(|e| self.store_failed(e))?;
            self.event(
                EventLevel::Info,
                format!(
                    "dry run: would {} {} {} ({id})",
                    request.side, request.volume, self.symbol.name
                ),
            );
            return Ok(());
        }
        if let Err(e) = self.store.mark_sent(&id, self.clock.now()).await {
            return Err(self.store_failed(e));
        }
        tracing::info!(
            client_order_id = %id,
            symbol_id = self.symbol.id.0,
            side = request.side.as_str(),
            volume = request.volume.units_f64(),
            position_id = request.position_to_close.map(|p| p.0),
            reason,
            "order sent"
        );
        let started = Instant::now();
        match self.broker.place_order(&request).await {
            Ok(OrderOutcome::Filled(fill)) => {
                self.on_order_filled(&request, fill, started.elapsed())
                    .await
            }
            Ok(OrderOutcome::Rejected(rejection)) => {
                let why = match &rejection.description {
                    Some(d) => format!("{}: {d}", rejection.code),
                    None => rejection.code.clone(),
                };
                let answer = OrderAnswer::Rejected {
                    client_order_id: id.clone(),
                    reason: why.clone(),
                };
                self.store
                    .record_answer(&answer, self.clock.now())
                    .await
                    .map_err(|e| self.store_failed(e))?;
                self.publish_rejection(
                    &rejection.code,
                    format!("order {id} rejected by the broker: {why}"),
                );
                Ok(())
            }
            Err(e) => {
                // Sent once, answer unknown: the broker's view decides, never a resend.
                self.publish_order_unknown();
                self.pause(super::Pause::NeedsReconcile(format!(
                    "order {id} outcome unknown ({e}); reconciling"
                )));
                // A failure keeps trading paused; the tick retries it.
                let _ = self.reconcile_now("order outcome unknown").await;
                Ok(())
            }
        }
    }

    async fn on_order_filled(
        &mut self,
        request: &OrderRequest,
        filled: OrderFill,
        latency: std::time::Duration,
    ) -> Result<(), EngineError> {
        let OrderFill {
            fill,
            position: broker_position,
            position_closed,
            partial,
        } = filled;
        let now = self.clock.now();
        let position = match (request.position_to_close, self.position.clone()) {
            (Some(_), Some(mut stored)) => {
                if position_closed {
                    stored.status = PositionStatus::Closed;
                    stored.exit_price = Some(fill.price);
                    stored.exit_time = Some(fill.time);
                    stored.pnl = fill.close.as_ref().and_then(domain::realized_pnl);
                    stored.close_reason = Some(CloseReason::Strategy);
                } else if let Some(bp) = &broker_position {
                    stored.volume = bp.volume;
                }
                stored
            }
            _ => match &broker_position {
                Some(bp) => Position {
                    id: bp.id,
                    symbol: bp.symbol,
                    side: bp.side,
                    volume: bp.volume,
                    entry_price: bp.entry_price,
                    entry_time: fill.time,
                    stop_loss: bp.stop_loss,
                    take_profit: bp.take_profit,
                    label: bp.label.clone().or_else(|| Some(request.label.clone())),
                    client_order_id: Some(request.client_order_id.clone()),
                    status: PositionStatus::Open,
                    exit_price: None,
                    exit_time: None,
                    pnl: None,
                    close_reason: None,
                },
                None => {
                    // A fill without its position cannot be recorded faithfully: ask the broker.
                    self.pause(super::Pause::NeedsReconcile(format!(
                        "fill {} came without its position; reconciling",
                        fill.deal_id
                    )));
                    // A failure keeps trading paused; the tick retries it.
                    let _ = self.reconcile_now("fill without position").await;
                    return Ok(());
                }
            },
        };
        let answer = OrderAnswer::Filled {
            client_order_id: request.client_order_id.clone(),
            fill: fill.clone(),
            position: position.clone(),
        };
        self.store
            .record_answer(&answer, now)
            .await
            .map_err(|e| self.store_failed(e))?;
        if let Some(balance) = fill.close.as_ref().map(|c| c.balance) {
            self.money.balance = balance;
            self.mark_closing_balance(balance, fill.time);
        }
        let mut position = position;
        if position.status == PositionStatus::Closed {
            self.settle(&mut position).await?;
        }
        match (&broker_position, position.status) {
            (Some(bp), PositionStatus::Open) => self.money.set_charges(bp),
            _ => self.money.clear_charges(),
        }
        self.publish_order_filled(latency, partial);
        self.publish_fill(&fill, &position, Some(&request.client_order_id));
        if position.status == PositionStatus::Closed {
            self.position = None;
            // A realized loss counts against the kill switch's limits at once.
            // Broker time, like the bars': the kill switch's UTC day must follow one clock.
            return self.observe_equity(fill.time).await;
        }
        self.position = Some(position);
        Ok(())
    }

    /// A closed position's exit and net result as the store settled them from every closing
    /// deal (a close in several deals made their sum, swap and commission included).
    pub(super) async fn settle(&mut self, position: &mut Position) -> Result<(), EngineError> {
        match self.store.position(position.id).await {
            Ok(Some(stored)) => {
                position.pnl = stored.pnl.or(position.pnl);
                position.exit_price = stored.exit_price.or(position.exit_price);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(self.store_failed(e)),
        }
    }

    /// A store failure: nothing can be made durable, so trading stops (fail closed).
    pub(super) fn store_failed(&mut self, error: StoreError) -> EngineError {
        self.publish_store_failed(&error);
        EngineError::Store(error)
    }
}

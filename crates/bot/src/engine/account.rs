//! Account and market events the broker sends on its own: a deposit or withdrawal (or new money
//! digits), a symbol's details or trading mode changing, margin calls.

use ctrader_client::{Broker, MarginCallKind, SymbolState, TradingMode};
use domain::{Money, PositionId};
use observability::EventLevel;
use strategy::{RiskGate, SizingRule};

use super::{Engine, EngineError, Pause};

impl<B: Broker + 'static> Engine<B> {
    /// A deposit, a withdrawal or new money digits: the balance is the broker's, and the kill
    /// switch's equity marks move by the cash that moved, so a withdrawal is not taken for a loss
    /// (nor a deposit for a gain).
    pub(super) async fn on_account_changed(&mut self, balance: Money) -> Result<(), EngineError> {
        self.publish_broker_event("account_changed");
        let before = self.money.balance;
        let old_digits = self.money.currency.money_digits;
        if balance.digits != old_digits {
            tracing::warn!(
                old_digits,
                new_digits = balance.digits,
                "the account's money digits changed: amounts are read with the new ones from now on"
            );
            self.money.currency.money_digits = balance.digits;
            self.money.charges = self
                .money
                .charges
                .rescale(balance.digits)
                .unwrap_or(Money::zero(balance.digits));
        }
        self.money.balance = balance;
        let moved = balance.checked_sub(before);
        if let Some(delta) = moved.filter(|d| d.minor != 0) {
            let shift = |mark: Option<Money>| mark.and_then(|m| m.checked_add(delta)).or(mark);
            self.kill.equity_peak = shift(self.kill.equity_peak);
            self.kill.day_start_equity = shift(self.kill.day_start_equity);
            self.kill.marked_balance = Some(balance);
            if let Err(e) = self.store.save_kill_switch(&self.kill).await {
                return Err(self.store_failed(e));
            }
        }
        self.event(
            EventLevel::Info,
            format!(
                "account balance changed by the broker (deposit, withdrawal or adjustment): {} -> {} ({})",
                self.money.show(before),
                self.money.show(balance),
                moved.map_or_else(|| "change unknown".to_owned(), |d| self.money.show(d))
            ),
        );
        Ok(())
    }

    /// Records the balance a closing deal left: the kill switch's marks account for it.
    pub(super) fn mark_closing_balance(&mut self, balance: Money, at: domain::Timestamp) {
        self.kill.marked_balance = Some(balance);
        self.kill.marked_balance_at = Some(at);
    }

    /// After a reconciliation: cash paid in or taken out while the bot was away, i.e. a change of
    /// balance that no closing deal explains, moves the kill switch's marks as a live deposit or
    /// withdrawal does, so a withdrawal is never taken for a loss (nor a deposit for a gain).
    pub(super) async fn account_for_cash_moved_away(&mut self) -> Result<(), EngineError> {
        let now = self.money.balance;
        let fills = match self.store.fills(usize::MAX).await {
            Ok(fills) => fills,
            Err(e) => return Err(self.store_failed(e)),
        };
        let since = self.kill.marked_balance_at;
        let mut closes: Vec<&domain::Fill> = fills
            .iter()
            .filter(|f| f.close.is_some() && since.is_none_or(|at| f.time > at))
            .collect();
        closes.sort_by_key(|f| (f.time, f.deal_id));
        let before = self.kill.clone();
        if let Some(marked) = self.kill.marked_balance {
            // Walk the closing deals since the mark: each one's balance before it, against the
            // balance after the one before, says what cash moved in between.
            let mut cash = Some(Money::zero(now.digits));
            let mut previous = Some(marked);
            for close in closes.iter().filter_map(|f| f.close.as_ref()) {
                let before_deal =
                    domain::realized_pnl(close).and_then(|n| close.balance.checked_sub(n));
                cash = cash
                    .zip(
                        before_deal
                            .zip(previous)
                            .and_then(|(b, p)| b.checked_sub(p)),
                    )
                    .and_then(|(c, d)| c.checked_add(d));
                previous = Some(close.balance);
            }
            cash = cash
                .zip(previous.and_then(|p| now.checked_sub(p)))
                .and_then(|(c, d)| c.checked_add(d));
            if let Some(delta) = cash.filter(|d| d.minor != 0) {
                let shift = |mark: Option<Money>| mark.and_then(|m| m.checked_add(delta)).or(mark);
                self.kill.equity_peak = shift(self.kill.equity_peak);
                self.kill.day_start_equity = shift(self.kill.day_start_equity);
                self.obs.metrics.record_broker_event("account_changed");
                self.event(
                    EventLevel::Info,
                    format!(
                        "the balance moved by {} while the bot was away with no deal to explain it (a deposit or withdrawal): the kill switch's marks move with it",
                        self.money.show(delta)
                    ),
                );
            }
        }
        self.kill.marked_balance = Some(now);
        self.kill.marked_balance_at = closes.last().map(|f| f.time).or(since);
        if self.kill != before
            && let Err(e) = self.store.save_kill_switch(&self.kill).await
        {
            return Err(self.store_failed(e));
        }
        Ok(())
    }

    /// The broker changed symbols: ours is read again, the risk rules size against its new limits,
    /// and trading pauses while it is not tradable (resumes when it is again).
    pub(super) async fn on_symbol_changed(
        &mut self,
        symbols: Vec<domain::SymbolId>,
    ) -> Result<(), EngineError> {
        if !symbols.contains(&self.symbol.id) {
            tracing::debug!(?symbols, "symbols changed that are not traded here");
            return Ok(());
        }
        self.publish_broker_event("symbol_changed");
        let state = match self
            .broker
            .symbol_state(self.symbol.id, &self.symbol.name)
            .await
        {
            Ok(state) => state,
            Err(e) => {
                // Unknown limits: no order until they are known (the next reconciliation asks again).
                self.pause(Pause::NeedsReconcile(format!(
                    "symbol {} changed and could not be read again: {e}",
                    self.symbol.name
                )));
                return Ok(());
            }
        };
        self.apply_symbol_state(state);
        Ok(())
    }

    /// Takes the symbol's details and trading mode as the broker gave them: the risk rules size
    /// against the new limits, and trading pauses while the symbol does not trade.
    pub(super) fn apply_symbol_state(&mut self, state: SymbolState) {
        let spec = state.spec;
        match RiskGate::new(self.risk.config().clone(), spec.clone()) {
            Ok(gate) => self.risk = gate,
            Err(e) => {
                self.pause(Pause::SymbolNotTradable(format!(
                    "symbol {} changed to limits the risk rules cannot use: {e}",
                    spec.name
                )));
                self.symbol = spec;
                return;
            }
        }
        tracing::warn!(
            symbol_id = spec.id.0,
            symbol = %spec.name,
            min_volume = %spec.min_volume,
            max_volume = %spec.max_volume,
            step_volume = %spec.step_volume,
            trading_mode = state.mode.as_str(),
            "the broker changed the traded symbol; sizing follows its new limits"
        );
        if let SizingRule::Fixed(volume) = self.risk.config().sizing
            && (volume < spec.min_volume
                || volume > spec.max_volume
                || volume.raw() % spec.step_volume.raw().max(1) != 0)
        {
            self.event(
                EventLevel::Warn,
                format!(
                    "ORDER_VOLUME {volume} no longer fits {} (min {}, max {}, step {}): entries will be refused",
                    spec.name, spec.min_volume, spec.max_volume, spec.step_volume
                ),
            );
        }
        self.symbol = spec;
        match state.mode {
            TradingMode::Enabled => {
                if matches!(self.paused, Some(Pause::SymbolNotTradable(_))) {
                    self.paused = None;
                    self.event(
                        EventLevel::Info,
                        format!("{} is tradable again: trading resumed", self.symbol.name),
                    );
                }
            }
            mode => {
                self.publish_broker_event("symbol_not_tradable");
                self.pause(Pause::SymbolNotTradable(format!(
                    "the broker set {} to {} (open positions keep their broker-side stop-loss and take-profit)",
                    self.symbol.name,
                    mode.as_str()
                )));
            }
        }
    }

    /// A margin call: logged and counted; on a trigger the kill switch engages, so no new
    /// position opens until an operator resets it (open positions keep their broker-side
    /// stop-loss and take-profit, and the broker's stop-out stays the last resort).
    pub(super) async fn on_margin_call(
        &mut self,
        kind: MarginCallKind,
        threshold: &str,
        level: f64,
    ) -> Result<(), EngineError> {
        let label = match kind {
            MarginCallKind::Trigger => "margin_call_trigger",
            MarginCallKind::Update => "margin_call_update",
        };
        self.publish_broker_event(label);
        match kind {
            MarginCallKind::Update => {
                tracing::warn!(
                    threshold,
                    margin_level = level,
                    "the broker changed a margin call threshold"
                );
                Ok(())
            }
            MarginCallKind::Trigger => {
                tracing::error!(
                    threshold,
                    margin_level = level,
                    balance = %self.money.show(self.money.balance),
                    "margin call: the account's margin level crossed the broker's threshold"
                );
                let now = self.clock.now();
                let reason = format!("margin call ({threshold}, margin level {level}%)");
                let was = self.kill.engaged;
                self.kill.engage(reason.clone(), now);
                if let Err(e) = self.store.save_kill_switch(&self.kill).await {
                    return Err(self.store_failed(e));
                }
                self.publish_margin_call(&format!(
                    "{threshold} crossed, margin level {level}%, balance {}; the kill switch is engaged",
                    self.money.show(self.money.balance)
                ));
                if !was {
                    self.event(
                        EventLevel::Error,
                        format!(
                            "kill switch engaged: {reason}; no new positions until an operator resets it"
                        ),
                    );
                }
                Ok(())
            }
        }
    }

    /// A position's used margin changed: worth a debug line, nothing to act on.
    pub(super) fn on_margin_changed(&self, position: PositionId, used_margin: Money) {
        tracing::debug!(
            position_id = position.0,
            used_margin = %self.money.show(used_margin),
            "used margin changed"
        );
    }
}

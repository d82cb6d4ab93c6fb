//! The account and market events tests (and long soak runs) drive the simulated broker with:
//! cash in and out, new money digits, a symbol's limits or trading mode changing, margin calls,
//! a stop-out, the account logged out. Each reaches every connection that authorised the account
//! shaped as the official messages carry it.

use ctrader_proto::openapi::{
    ProtoOaAccountDisconnectEvent, ProtoOaDepositWithdraw, ProtoOaExecutionEvent,
    ProtoOaMarginCall, ProtoOaMarginCallTriggerEvent, ProtoOaMarginCallUpdateEvent,
    ProtoOaSymbolChangedEvent, ProtoOaTraderUpdatedEvent,
};
use ctrader_proto::{Envelope, Payload, ProtoMessage};

use super::{Push, SimHandle, lock};
use crate::SimError;
use crate::broker::Account;
use crate::wire;

/// Which of the broker's margin call thresholds (`ProtoOANotificationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarginCallType {
    /// `MARGIN_LEVEL_THRESHOLD_1`.
    Threshold1,
    /// `MARGIN_LEVEL_THRESHOLD_2`.
    Threshold2,
    /// `MARGIN_LEVEL_THRESHOLD_3`.
    Threshold3,
}

impl MarginCallType {
    fn code(self) -> i32 {
        match self {
            MarginCallType::Threshold1 => 61,
            MarginCallType::Threshold2 => 62,
            MarginCallType::Threshold3 => 63,
        }
    }
}

/// A pushed event frame (no `clientMsgId`).
fn frame(message: impl Into<Payload>) -> ProtoMessage {
    Envelope::new(message).to_proto()
}

/// `ProtoOATraderUpdatedEvent` for the account as it is now.
fn trader_updated(account: &Account) -> ProtoMessage {
    frame(ProtoOaTraderUpdatedEvent {
        ctid_trader_account_id: account.id,
        trader: wire::trader(account),
        ..ProtoOaTraderUpdatedEvent::default()
    })
}

impl SimHandle {
    fn account_id(&self) -> i64 {
        self.shared.config.credentials.account_id
    }

    fn push_to_account(&self, messages: Vec<ProtoMessage>) {
        self.shared.push(Push::AccountMessages {
            account: self.account_id(),
            messages,
        });
    }

    /// Deposits `amount` (minor units, positive) into the account: a `DEPOSIT_WITHDRAW`
    /// execution event and a `ProtoOATraderUpdatedEvent` follow. The balance after.
    pub fn deposit(&self, amount: i64) -> Result<i64, SimError> {
        if amount <= 0 {
            return Err(SimError::Config(format!(
                "a deposit of {amount} must be positive"
            )));
        }
        self.move_cash(amount)
    }

    /// Withdraws `amount` (minor units, positive) from the account, as [`SimHandle::deposit`];
    /// more than the balance is refused. The balance after.
    pub fn withdraw(&self, amount: i64) -> Result<i64, SimError> {
        if amount <= 0 {
            return Err(SimError::Config(format!(
                "a withdrawal of {amount} must be positive"
            )));
        }
        self.move_cash(-amount)
    }

    fn move_cash(&self, delta: i64) -> Result<i64, SimError> {
        let (account, now) = {
            let mut exchange = lock(&self.shared.exchange);
            let now = exchange.now();
            let account = exchange
                .broker
                .change_balance(self.account_id(), delta)
                .map_err(|r| SimError::Refused {
                    code: r.code,
                    description: r.description,
                })?;
            (account, now)
        };
        let movement = ProtoOaExecutionEvent {
            ctid_trader_account_id: account.id,
            // DEPOSIT_WITHDRAW
            execution_type: 10,
            deposit_withdraw: Some(ProtoOaDepositWithdraw {
                // BALANCE_DEPOSIT or BALANCE_WITHDRAW
                operation_type: if delta > 0 { 0 } else { 1 },
                balance_history_id: account.balance_version,
                balance: account.balance,
                delta: delta.abs(),
                change_balance_timestamp: now.0,
                balance_version: Some(account.balance_version),
                money_digits: Some(account.money_digits),
                ..ProtoOaDepositWithdraw::default()
            }),
            is_server_event: Some(true),
            ..ProtoOaExecutionEvent::default()
        };
        self.push_to_account(vec![frame(movement), trader_updated(&account)]);
        Ok(account.balance)
    }

    /// Changes the digits of the account's money (0 to 8), rescaling the balance and the open
    /// positions' money; a `ProtoOATraderUpdatedEvent` carries the new `moneyDigits`.
    pub fn set_money_digits(&self, digits: u32) -> Result<(), SimError> {
        let account = lock(&self.shared.exchange)
            .broker
            .set_money_digits(self.account_id(), digits)
            .ok_or_else(|| SimError::Config(format!("money digits {digits} must be 0 to 8")))?;
        self.push_to_account(vec![trader_updated(&account)]);
        Ok(())
    }

    fn symbol_changed(&self, symbol_id: i64) {
        self.push_to_account(vec![frame(ProtoOaSymbolChangedEvent {
            ctid_trader_account_id: self.account_id(),
            symbol_id: vec![symbol_id],
            ..ProtoOaSymbolChangedEvent::default()
        })]);
    }

    /// Raises (or lowers) a symbol's minimum volume (0.01 units, a multiple of its step); a
    /// `ProtoOASymbolChangedEvent` names the symbol, and orders below it are refused from now on.
    pub fn set_symbol_min_volume(&self, symbol_id: i64, min_volume: i64) -> Result<(), SimError> {
        if !lock(&self.shared.exchange)
            .broker
            .set_min_volume(symbol_id, min_volume)
        {
            return Err(SimError::Config(format!(
                "minimum volume {min_volume} does not fit symbol {symbol_id} (unknown, not a multiple of its step, or above its maximum)"
            )));
        }
        self.symbol_changed(symbol_id);
        Ok(())
    }

    /// Suspends trading of a symbol (`tradingMode` DISABLED_WITHOUT_PENDINGS_EXECUTION): every
    /// order and close is refused with `TRADING_DISABLED`; a `ProtoOASymbolChangedEvent` says so.
    pub fn suspend_trading(&self, symbol_id: i64) -> Result<(), SimError> {
        self.set_trading_mode(symbol_id, 1)
    }

    /// Lets a symbol trade only closes (`tradingMode` CLOSE_ONLY_MODE).
    pub fn close_only(&self, symbol_id: i64) -> Result<(), SimError> {
        self.set_trading_mode(symbol_id, 3)
    }

    /// Lets a suspended symbol trade again (`tradingMode` ENABLED).
    pub fn resume_trading(&self, symbol_id: i64) -> Result<(), SimError> {
        self.set_trading_mode(symbol_id, 0)
    }

    fn set_trading_mode(&self, symbol_id: i64, mode: i32) -> Result<(), SimError> {
        if !lock(&self.shared.exchange)
            .broker
            .set_trading_mode(symbol_id, mode)
        {
            return Err(SimError::Config(format!("symbol {symbol_id} is unknown")));
        }
        self.symbol_changed(symbol_id);
        Ok(())
    }

    /// The account's margin level crossed `threshold` (at `level` percent):
    /// `ProtoOAMarginCallTriggerEvent`.
    pub fn trigger_margin_call(&self, threshold: MarginCallType, level: f64) {
        let now = self.sim_time();
        self.push_to_account(vec![frame(ProtoOaMarginCallTriggerEvent {
            ctid_trader_account_id: self.account_id(),
            margin_call: margin_call(threshold, level, now.0),
            ..ProtoOaMarginCallTriggerEvent::default()
        })]);
    }

    /// The account's `threshold` was set to `level` percent: `ProtoOAMarginCallUpdateEvent`.
    pub fn update_margin_call(&self, threshold: MarginCallType, level: f64) {
        let now = self.sim_time();
        self.push_to_account(vec![frame(ProtoOaMarginCallUpdateEvent {
            ctid_trader_account_id: self.account_id(),
            margin_call: margin_call(threshold, level, now.0),
            ..ProtoOaMarginCallUpdateEvent::default()
        })]);
    }

    /// Closes a position as the broker's stop-out does (a server event whose closing order has
    /// `isStopOut`); the account's connections get the execution events.
    pub fn stop_out(&self, position_id: i64) -> Result<(), SimError> {
        let reports = {
            let mut exchange = lock(&self.shared.exchange);
            let now = exchange.now();
            exchange
                .broker
                .stop_out(position_id, now)
                .map_err(|r| SimError::Refused {
                    code: r.code,
                    description: r.description,
                })?
        };
        self.shared.push(Push::Executions {
            reports,
            origin: None,
        });
        Ok(())
    }

    /// Logs the account out of every connection with `ProtoOAAccountDisconnectEvent`: its
    /// requests are refused until it is authorised again.
    pub fn disconnect_account(&self) {
        self.shared.push(Push::AccountDisconnect(self.account_id()));
    }
}

fn margin_call(threshold: MarginCallType, level: f64, at: i64) -> ProtoOaMarginCall {
    ProtoOaMarginCall {
        margin_call_type: threshold.code(),
        margin_level_threshold: level,
        utc_last_update_timestamp: Some(at),
    }
}

/// `ProtoOAAccountDisconnectEvent` for `account`.
pub(super) fn account_disconnected(account: i64) -> ProtoMessage {
    frame(ProtoOaAccountDisconnectEvent {
        ctid_trader_account_id: account,
        ..ProtoOaAccountDisconnectEvent::default()
    })
}

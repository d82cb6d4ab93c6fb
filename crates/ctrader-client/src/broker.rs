//! The boundary the bot trades through: the [`Broker`] trait, what an order returns, and the events
//! the broker sends unprompted.

use std::future::Future;

use domain::{
    AccountCurrency, Bar, BrokerPosition, BrokerSnapshot, ClientOrderId, ConversionChain, Fill,
    Money, OrderRequest, PendingOrder, PositionId, Price, Quote, Secret, SymbolId, SymbolSpec,
    Timeframe, Timestamp, Volume,
};
use tokio::sync::mpsc;

use crate::BrokerError;

/// How a market order (or a close) ended: filled, or refused by the broker. Either is definite;
/// an uncertain outcome is the error [`BrokerError::OrderOutcomeUnknown`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per order, moved once: boxing buys nothing
pub enum OrderOutcome {
    /// The broker executed it (possibly partially).
    Filled(OrderFill),
    /// The broker refused it; nothing was executed.
    Rejected(OrderRejection),
}

/// The execution of a market order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFill {
    /// The deal: price, volume, time, commission, and close details when it closed a position.
    pub fill: Fill,
    /// The position after the deal, as the broker reported it (absolute SL/TP set).
    pub position: Option<BrokerPosition>,
    /// True when the position is closed after this deal.
    pub position_closed: bool,
    /// True when only part of the volume filled so far; the rest arrives as execution events.
    pub partial: bool,
}

/// Why the broker refused an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRejection {
    /// The broker's error code name, e.g. `MARKET_CLOSED`, `NOT_ENOUGH_MONEY`, `TRADING_BAD_VOLUME`.
    pub code: String,
    /// The broker's explanation, if any.
    pub description: Option<String>,
}

/// New absolute stop-loss and take-profit for a position; `None` removes the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protection {
    /// Absolute stop-loss price.
    pub stop_loss: Option<Price>,
    /// Absolute take-profit price.
    pub take_profit: Option<Price>,
}

/// What the broker reports as open right now: the reconciliation truth without the deal history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenState {
    /// Open positions.
    pub positions: Vec<BrokerPosition>,
    /// Pending orders.
    pub orders: Vec<PendingOrder>,
}

/// The broker's own unrealized PnL of one open position (`ProtoOAPositionUnrealizedPnL`), in the
/// deposit currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionPnl {
    /// The position.
    pub position: PositionId,
    /// Price move × volume × rate.
    pub gross: Money,
    /// Gross plus the swap and commission already charged (not the closing commission).
    pub net: Money,
}

/// What kind of execution an [`ExecutionReport`] tells about (cTrader `ProtoOAExecutionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionKind {
    /// The order was accepted (not yet filled).
    Accepted,
    /// The order filled completely.
    Filled,
    /// Part of the order filled.
    PartialFill,
    /// The order (or a position's protection) was changed.
    Replaced,
    /// The order was cancelled.
    Cancelled,
    /// The order expired.
    Expired,
    /// The broker rejected the order.
    Rejected,
    /// A cancel request was refused.
    CancelRejected,
    /// Swap was charged on a position.
    Swap,
    /// Money was deposited or withdrawn.
    DepositWithdraw,
    /// A kind this client does not model; the raw number is kept for logs.
    Other(i32),
}

/// One execution event: an order's progress, a fill, or an unprompted change such as an SL/TP hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionReport {
    /// What happened.
    pub kind: ExecutionKind,
    /// The broker's order id, when an order is involved.
    pub order_id: Option<i64>,
    /// Our client order id, when the order carried one.
    pub client_order_id: Option<ClientOrderId>,
    /// The position as it is after the event.
    pub position: Option<BrokerPosition>,
    /// True when the position is closed after the event.
    pub position_closed: bool,
    /// The deal, when the event executed one (recording a deal twice is a no-op: unique by id). A
    /// closing deal's `close.close_reason` says stop-loss, take-profit or stop-out when the broker's
    /// closing order tells; `None` for ordinary closing orders (ours or manual).
    pub fill: Option<Fill>,
    /// The broker's error code on a rejection.
    pub error_code: Option<String>,
}

/// Whether a symbol trades now (cTrader `ProtoOATradingMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradingMode {
    /// Orders are accepted.
    Enabled,
    /// Only closing orders are accepted.
    CloseOnly,
    /// Trading is suspended (`DISABLED_WITH_PENDINGS_EXECUTION` or `..._WITHOUT_...`).
    Disabled,
}

impl TradingMode {
    /// The broker's name of the mode, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TradingMode::Enabled => "ENABLED",
            TradingMode::CloseOnly => "CLOSE_ONLY_MODE",
            TradingMode::Disabled => "DISABLED",
        }
    }
}

/// A symbol's details and whether it trades, as the broker says right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolState {
    /// The details (volume limits, schedule, commission).
    pub spec: SymbolSpec,
    /// Whether orders are accepted.
    pub mode: TradingMode,
}

/// Which margin call event the broker sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarginCallKind {
    /// A threshold's setting changed (`ProtoOAMarginCallUpdateEvent`).
    Update,
    /// The account's margin level crossed the threshold (`ProtoOAMarginCallTriggerEvent`).
    Trigger,
}

impl MarginCallKind {
    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            MarginCallKind::Update => "update",
            MarginCallKind::Trigger => "trigger",
        }
    }
}

/// Something the broker (or the link) tells the owner without being asked.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerEvent {
    /// A new best bid/ask; only sent once both sides of the symbol are known.
    Quote(Quote),
    /// An execution event (our orders' progress, SL/TP hits, stop-outs, trades made elsewhere);
    /// boxed so the frequent quote events stay small.
    Execution(Box<ExecutionReport>),
    /// The broker refused an order outside a request we are waiting for.
    OrderError {
        /// The order, when the broker named it.
        order_id: Option<i64>,
        /// The position, when the broker named it.
        position_id: Option<PositionId>,
        /// The error code name.
        code: String,
        /// The explanation, if any.
        description: Option<String>,
    },
    /// The link dropped; the client is reconnecting. Do not place orders until [`BrokerEvent::Reconnected`].
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The link is back (or the account was authorised again after a token or session event),
    /// authorised and resubscribed: reconcile now, fills may have been missed.
    Reconnected,
    /// The access token was refreshed: persist the new tokens (the old refresh token no longer works).
    TokenRefreshed {
        /// The new access token.
        access_token: Secret,
        /// The new refresh token.
        refresh_token: Secret,
        /// When the new access token expires, when the broker said.
        expires_at: Option<Timestamp>,
    },
    /// The access token is no longer valid and could not be refreshed: stop trading.
    TokenInvalidated {
        /// Why.
        reason: String,
    },
    /// The account changed (`ProtoOATraderUpdatedEvent`): a deposit or withdrawal, or new money
    /// digits. Money events after it use the new digits.
    AccountChanged {
        /// The balance now, in the account's (possibly new) money digits.
        balance: Money,
    },
    /// The broker changed these symbols' details or trading mode (`ProtoOASymbolChangedEvent`):
    /// read them again with [`Broker::symbol_state`].
    SymbolChanged {
        /// The symbols that changed.
        symbols: Vec<SymbolId>,
    },
    /// A margin call: the account's margin level crossed a threshold, or a threshold changed.
    MarginCall {
        /// Trigger or update.
        kind: MarginCallKind,
        /// The broker's threshold name, e.g. `MARGIN_LEVEL_THRESHOLD_1`.
        threshold: String,
        /// The margin level (equity / used margin, in percent) of the threshold.
        level: f64,
    },
    /// A position's used margin changed (`ProtoOAMarginChangedEvent`).
    MarginChanged {
        /// The position.
        position: PositionId,
        /// The margin it uses now, in the deposit currency.
        used_margin: Money,
    },
    /// The client stopped for good after a permanent failure; no more events follow.
    Stopped(BrokerError),
}

/// The receiving end of the broker's event stream. Drain it continuously: events queue without
/// bound rather than being dropped, because an execution event must never be lost.
#[derive(Debug)]
pub struct BrokerEvents(mpsc::UnboundedReceiver<BrokerEvent>);

impl BrokerEvents {
    /// Wraps a channel receiver.
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<BrokerEvent>) -> BrokerEvents {
        BrokerEvents(rx)
    }

    /// The next event; `None` once the broker client is gone.
    pub async fn next(&mut self) -> Option<BrokerEvent> {
        self.0.recv().await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<BrokerEvent> {
        self.0.try_recv().ok()
    }
}

/// The operations the bot trades through. Implemented by the cTrader client and by
/// `FakeBroker` (feature `test-util`). Futures are `Send`, so hold the broker generically (`B: Broker`, shared as
/// `Arc<B>`); the trait is not object-safe and is not meant to be used as `dyn Broker`.
pub trait Broker: Send + Sync {
    /// Finds the first candidate name (case-insensitive) that is an enabled symbol, and loads its
    /// specification with the trading schedule in UTC. A missing symbol is an error listing the names
    /// tried; there is never a default.
    fn resolve_symbol(
        &self,
        candidates: &[String],
    ) -> impl Future<Output = Result<SymbolSpec, BrokerError>> + Send;

    /// Starts the symbol's quotes: [`BrokerEvent::Quote`] on the event stream, also after reconnects.
    fn subscribe_quotes(
        &self,
        symbol: SymbolId,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Bars of the period starting in `[from, to)`, oldest first (broker bid bars), fetched in pages
    /// within the broker's span limits.
    fn trendbars(
        &self,
        symbol: SymbolId,
        timeframe: Timeframe,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Future<Output = Result<Vec<Bar>, BrokerError>> + Send;

    /// Sends a market order ONCE and waits for its fill or rejection. Never retried: when the answer
    /// is lost the error is [`BrokerError::OrderOutcomeUnknown`] and the owner must reconcile.
    fn place_order(
        &self,
        order: &OrderRequest,
    ) -> impl Future<Output = Result<OrderOutcome, BrokerError>> + Send;

    /// Closes `volume` of a position (all of it when `volume` is its whole volume). Sent once, like an order.
    fn close_position(
        &self,
        position: PositionId,
        volume: Volume,
    ) -> impl Future<Output = Result<OrderOutcome, BrokerError>> + Send;

    /// Sets a position's absolute stop-loss and take-profit.
    fn amend_protection(
        &self,
        position: PositionId,
        protection: Protection,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Open positions and pending orders, as the broker sees them now.
    fn open_state(&self) -> impl Future<Output = Result<OpenState, BrokerError>> + Send;

    /// The account's deposit currency (`ProtoOATrader.depositAssetId`, named by the asset list)
    /// and the digits of its money.
    fn account_currency(&self)
    -> impl Future<Output = Result<AccountCurrency, BrokerError>> + Send;

    /// The broker's chain of symbols converting `symbol`'s quote currency into the deposit
    /// currency (`ProtoOASymbolsForConversionReq`); empty when they are the same. Subscribe to the
    /// chain's symbols to price the rate.
    fn conversion_chain(
        &self,
        symbol: SymbolId,
    ) -> impl Future<Output = Result<ConversionChain, BrokerError>> + Send;

    /// The broker's own unrealized PnL of every open position, in the deposit currency.
    fn unrealized_pnl(&self) -> impl Future<Output = Result<Vec<PositionPnl>, BrokerError>> + Send;

    /// The account's balance (without unrealized PnL), in the account's money digits.
    fn balance(&self) -> impl Future<Output = Result<Money, BrokerError>> + Send;

    /// Deals executed in `[from, to)`, oldest first, with close details on closing deals and the
    /// client order id of the order that made each deal, when it carried one (how a restart ties a
    /// deal to an intent left in flight).
    fn deals(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Future<Output = Result<Vec<Fill>, BrokerError>> + Send;

    /// A symbol's details and trading mode as the broker gives them now (after a
    /// [`BrokerEvent::SymbolChanged`]); `name` is the symbol's name, which the details lack.
    fn symbol_state(
        &self,
        symbol: SymbolId,
        name: &str,
    ) -> impl Future<Output = Result<SymbolState, BrokerError>> + Send;

    /// The event stream; `None` after the first call (there is exactly one consumer).
    fn take_events(&self) -> Option<BrokerEvents>;

    /// Everything reconciliation needs: open positions, pending orders, and deals in `[deals_since, now)`.
    fn snapshot(
        &self,
        deals_since: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<BrokerSnapshot, BrokerError>> + Send {
        async move {
            let open = self.open_state().await?;
            let deals = self.deals(deals_since, now).await?;
            Ok(BrokerSnapshot {
                positions: open.positions,
                orders: open.orders,
                deals,
                taken_at: now,
            })
        }
    }
}

/// The checks made before an order leaves, by the cTrader client and the fake alike: a volume
/// that is not positive, a label over cTrader's 100 characters, a protection distance that is
/// not positive never reach the broker.
pub(crate) fn check_order(order: &OrderRequest) -> Result<(), BrokerError> {
    let id = &order.client_order_id;
    if !order.volume.is_positive() {
        return Err(BrokerError::InvalidRequest(format!(
            "order {id}: volume {} is not positive",
            order.volume
        )));
    }
    if order.label.chars().count() > 100 {
        return Err(BrokerError::InvalidRequest(format!(
            "order {id}: label longer than 100 characters"
        )));
    }
    for (what, distance) in [
        ("stop-loss", order.relative_stop_loss),
        ("take-profit", order.relative_take_profit),
    ] {
        if let Some(d) = distance.filter(|d| d.raw() <= 0) {
            return Err(BrokerError::InvalidRequest(format!(
                "order {id}: {what} distance {d} is not positive"
            )));
        }
    }
    Ok(())
}

/// The check made before a close leaves, by the cTrader client and the fake alike.
pub(crate) fn check_close(position: PositionId, volume: Volume) -> Result<(), BrokerError> {
    if volume.is_positive() {
        Ok(())
    } else {
        Err(BrokerError::InvalidRequest(format!(
            "close of position {position}: volume {volume} is not positive"
        )))
    }
}

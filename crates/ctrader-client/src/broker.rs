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

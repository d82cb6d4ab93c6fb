//! The broker's records: accounts, orders, positions, deals, and the execution reports and
//! rejections trading produces. Prices are in 1/100000, volumes in 0.01 unit, money in minor units.

use domain::{Side, Timestamp};

/// A trading account.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// `ctidTraderAccountId`.
    pub(crate) id: i64,
    /// The login a person sees in cTrader.
    pub(crate) trader_login: i64,
    /// Balance in minor units.
    pub(crate) balance: i64,
    /// Increases with every balance change.
    pub(crate) balance_version: i64,
    /// The asset the balance is held in (`depositAssetId`).
    pub(crate) deposit_asset_id: i64,
    /// Decimal digits of every money amount of this account.
    pub(crate) money_digits: u32,
    /// Account leverage × 100, as `leverageInCents` reports it.
    pub(crate) leverage_in_cents: u32,
    /// When the account was opened.
    pub(crate) registered: Timestamp,
    /// When the last position was closed, if ever.
    pub(crate) last_closing_deal: Option<Timestamp>,
    /// A limited-risk account (`isLimitedRisk`): every opening order needs a guaranteed stop loss.
    pub(crate) limited_risk: bool,
}

/// `ProtoOAOrderType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderKind {
    /// Fill now at the market.
    Market,
    /// Fill at the limit price or better.
    Limit,
    /// Becomes a market order when the stop price trades.
    Stop,
    /// A position's stop loss or take profit being executed.
    StopLossTakeProfit,
}

impl OrderKind {
    /// The protocol's enum value.
    pub(crate) fn code(self) -> i32 {
        match self {
            OrderKind::Market => 1,
            OrderKind::Limit => 2,
            OrderKind::Stop => 3,
            OrderKind::StopLossTakeProfit => 4,
        }
    }
}

/// `ProtoOAOrderStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderState {
    /// Working (pending orders) or about to fill.
    Accepted,
    /// Executed.
    Filled,
    /// Refused after acceptance.
    Rejected,
    /// Withdrawn by the trader.
    Cancelled,
}

impl OrderState {
    /// The protocol's enum value.
    pub(crate) fn code(self) -> i32 {
        match self {
            OrderState::Accepted => 1,
            OrderState::Filled => 2,
            OrderState::Rejected => 3,
            OrderState::Cancelled => 5,
        }
    }
}

/// An order, working or finished.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub(crate) id: i64,
    pub(crate) account: i64,
    pub(crate) symbol_id: i64,
    pub(crate) side: Side,
    pub(crate) volume: i64,
    pub(crate) kind: OrderKind,
    pub(crate) state: OrderState,
    pub(crate) label: Option<String>,
    pub(crate) comment: Option<String>,
    pub(crate) client_order_id: Option<String>,
    /// The position it opened or closes.
    pub(crate) position_id: Option<i64>,
    /// Limit and stop trigger prices (pending orders).
    pub(crate) limit_price: Option<i64>,
    pub(crate) stop_price: Option<i64>,
    /// Protection the resulting position gets, absolute.
    pub(crate) stop_loss: Option<i64>,
    pub(crate) take_profit: Option<i64>,
    /// Protection as distances from the fill.
    pub(crate) relative_stop_loss: Option<i64>,
    pub(crate) relative_take_profit: Option<i64>,
    pub(crate) execution_price: Option<i64>,
    pub(crate) executed_volume: i64,
    /// True when it closes (part of) a position.
    pub(crate) closing: bool,
    /// True when the broker closed the position because margin ran out (`isStopOut`).
    pub(crate) stop_out: bool,
    /// The stop loss it gives its position is guaranteed (`guaranteedStopLoss`).
    pub(crate) guaranteed_stop_loss: bool,
    pub(crate) time_in_force: i32,
    pub(crate) created: Timestamp,
    pub(crate) updated: Timestamp,
}

/// `ProtoOAPositionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PositionState {
    /// Being opened by an accepted market order.
    Created,
    /// Open.
    Open,
    /// Fully closed.
    Closed,
}

impl PositionState {
    /// The protocol's enum value.
    pub(crate) fn code(self) -> i32 {
        match self {
            PositionState::Open => 1,
            PositionState::Closed => 2,
            PositionState::Created => 3,
        }
    }
}

/// A position, open or closed.
#[derive(Debug, Clone)]
pub(crate) struct Position {
    pub(crate) id: i64,
    pub(crate) account: i64,
    pub(crate) symbol_id: i64,
    pub(crate) side: Side,
    /// Volume still open.
    pub(crate) volume: i64,
    /// Average entry price.
    pub(crate) open_price: i64,
    pub(crate) opened: Timestamp,
    pub(crate) stop_loss: Option<i64>,
    pub(crate) take_profit: Option<i64>,
    /// The stop loss is guaranteed: it closes at its price exactly, whatever the market does.
    pub(crate) guaranteed_stop_loss: bool,
    pub(crate) label: Option<String>,
    pub(crate) comment: Option<String>,
    /// Opening commission not yet realised (for the open volume), minor units, negative.
    pub(crate) commission: i64,
    /// Swap charged so far on the open volume, not yet realised, minor units.
    pub(crate) swap: i64,
    pub(crate) state: PositionState,
    pub(crate) updated: Timestamp,
    pub(crate) closed: Option<Timestamp>,
    pub(crate) used_margin: i64,
    pub(crate) money_digits: u32,
}

/// What closing (part of) a position realised.
#[derive(Debug, Clone)]
pub(crate) struct CloseDetail {
    pub(crate) entry_price: i64,
    pub(crate) gross_profit: i64,
    /// The closed volume's share of the position's swap.
    pub(crate) swap: i64,
    /// Opening and closing commission of the closed volume.
    pub(crate) commission: i64,
    /// Balance after the close.
    pub(crate) balance: i64,
    pub(crate) balance_version: i64,
    pub(crate) closed_volume: i64,
    /// Quote-currency to deposit-currency rate used for the profit.
    pub(crate) quote_to_deposit: f64,
    pub(crate) money_digits: u32,
}

/// One execution: the trade record.
#[derive(Debug, Clone)]
pub(crate) struct Deal {
    pub(crate) id: i64,
    pub(crate) order_id: i64,
    pub(crate) position_id: i64,
    pub(crate) account: i64,
    pub(crate) symbol_id: i64,
    pub(crate) side: Side,
    pub(crate) volume: i64,
    pub(crate) filled_volume: i64,
    pub(crate) execution_price: i64,
    pub(crate) created: Timestamp,
    pub(crate) executed: Timestamp,
    /// This deal's commission, minor units, negative.
    pub(crate) commission: i64,
    pub(crate) money_digits: u32,
    /// Set on deals that close (part of) a position.
    pub(crate) close: Option<CloseDetail>,
    /// True when the deal filled only part of its order (`PARTIALLY_FILLED`).
    pub(crate) partial: bool,
}

/// `ProtoOAExecutionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecutionKind {
    /// Order accepted.
    Accepted,
    /// Order filled.
    Filled,
    /// Part of the order filled; more deals (or a cancellation) follow.
    PartialFill,
    /// Order or position protection changed.
    Replaced,
    /// Order cancelled.
    Cancelled,
    /// Order rejected after acceptance.
    Rejected,
    /// Swap charged (or paid) to a position at the rollover.
    Swap,
}

impl ExecutionKind {
    /// The protocol's enum value.
    pub(crate) fn code(self) -> i32 {
        match self {
            ExecutionKind::Accepted => 2,
            ExecutionKind::Filled => 3,
            ExecutionKind::Replaced => 4,
            ExecutionKind::Cancelled => 5,
            ExecutionKind::Rejected => 7,
            ExecutionKind::Swap => 9,
            ExecutionKind::PartialFill => 11,
        }
    }
}

/// An execution report, as `ProtoOAExecutionEvent` carries it.
#[derive(Debug, Clone)]
pub(crate) struct Execution {
    pub(crate) account: i64,
    pub(crate) kind: ExecutionKind,
    pub(crate) position: Option<Position>,
    pub(crate) order: Option<Order>,
    pub(crate) deal: Option<Deal>,
    /// True when the server acted on its own (SL/TP hit), not on a trader's request.
    pub(crate) server_event: bool,
    /// Set on rejections after acceptance.
    pub(crate) error_code: Option<String>,
}

/// How a refusal reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectAs {
    /// `ProtoOAOrderErrorEvent`: a trading refusal.
    OrderError,
    /// `ProtoOAErrorRes`: a malformed or impossible request.
    ErrorRes,
}

/// A refused request, with cTrader's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// The error name (`NOT_ENOUGH_MONEY`, `MARKET_CLOSED`...).
    pub(crate) code: String,
    /// Human explanation.
    pub(crate) description: String,
    /// Which message carries it.
    pub(crate) reply: RejectAs,
    /// The order or position concerned, if any.
    pub(crate) order_id: Option<i64>,
    pub(crate) position_id: Option<i64>,
}

impl Rejection {
    /// A trading refusal (`ProtoOAOrderErrorEvent`).
    pub(crate) fn order_error(code: &str, description: impl Into<String>) -> Rejection {
        Rejection {
            code: code.to_owned(),
            description: description.into(),
            reply: RejectAs::OrderError,
            order_id: None,
            position_id: None,
        }
    }

    /// A request error (`ProtoOAErrorRes`).
    pub(crate) fn error_res(code: &str, description: impl Into<String>) -> Rejection {
        Rejection {
            reply: RejectAs::ErrorRes,
            ..Rejection::order_error(code, description)
        }
    }

    /// Names the position concerned.
    pub(crate) fn for_position(mut self, position_id: i64) -> Rejection {
        self.position_id = Some(position_id);
        self
    }
}

/// A new order as the wire layer hands it over, prices already in 1/100000.
#[derive(Debug, Clone)]
pub(crate) struct NewOrder {
    pub(crate) account: i64,
    pub(crate) symbol_id: i64,
    pub(crate) kind: OrderKind,
    pub(crate) side: Side,
    pub(crate) volume: i64,
    pub(crate) limit_price: Option<i64>,
    pub(crate) stop_price: Option<i64>,
    pub(crate) stop_loss: Option<i64>,
    pub(crate) take_profit: Option<i64>,
    pub(crate) relative_stop_loss: Option<i64>,
    pub(crate) relative_take_profit: Option<i64>,
    pub(crate) label: Option<String>,
    pub(crate) comment: Option<String>,
    pub(crate) client_order_id: Option<String>,
    pub(crate) position_id: Option<i64>,
    pub(crate) time_in_force: Option<i32>,
    pub(crate) guaranteed_stop_loss: bool,
}

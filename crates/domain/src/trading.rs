//! Orders, fills and positions: ours as stored, and the broker's as reported.

use std::fmt;
use std::str::FromStr;

use crate::{DomainError, Money, Price, Side, SymbolId, Timestamp, Volume};

/// Our idempotency handle for an order: unique per decision, sent as cTrader's `clientOrderId`
/// and inside the order's `label`, so a restart recognises the order and never sends it twice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientOrderId(String);

impl ClientOrderId {
    /// cTrader accepts at most 50 characters.
    pub const MAX_LEN: usize = 50;

    /// Validates an id: 1 to 50 ASCII letters, digits, `-` or `_`.
    pub fn new(id: impl Into<String>) -> Result<ClientOrderId, DomainError> {
        let id = id.into();
        let valid = !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(ClientOrderId(id))
        } else {
            Err(DomainError::InvalidClientOrderId(id))
        }
    }

    /// The id as sent to the broker.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ClientOrderId {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<ClientOrderId, DomainError> {
        ClientOrderId::new(s)
    }
}

/// The broker's id for a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PositionId(pub i64);

impl fmt::Display for PositionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A market order as the bot asks for it (stops are distances from the fill, as cTrader
/// requires on market orders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// Idempotency handle.
    pub client_order_id: ClientOrderId,
    /// Which symbol.
    pub symbol: SymbolId,
    /// Buy or sell.
    pub side: Side,
    /// How much.
    pub volume: Volume,
    /// Stop-loss distance from the fill price.
    pub relative_stop_loss: Option<Price>,
    /// Take-profit distance from the fill price.
    pub relative_take_profit: Option<Price>,
    /// The order's label, which marks the position as ours (contains the client order id).
    pub label: String,
    /// Set when the order closes (part of) an existing position.
    pub position_to_close: Option<PositionId>,
}

/// Lifecycle of an order intent: `Pending → Sent → Accepted → Filled | Rejected | Lost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntentStatus {
    /// Committed, not yet handed to the network.
    Pending,
    /// Handed to the network; the broker's answer is not known yet.
    Sent,
    /// The broker accepted it.
    Accepted,
    /// Filled: a position exists (or was closed) because of it.
    Filled,
    /// The broker refused it.
    Rejected,
    /// It never reached the broker (found out at reconciliation).
    Lost,
}

impl IntentStatus {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            IntentStatus::Pending => "pending",
            IntentStatus::Sent => "sent",
            IntentStatus::Accepted => "accepted",
            IntentStatus::Filled => "filled",
            IntentStatus::Rejected => "rejected",
            IntentStatus::Lost => "lost",
        }
    }

    /// True once nothing more can happen to the intent.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            IntentStatus::Filled | IntentStatus::Rejected | IntentStatus::Lost
        )
    }

    /// Whether moving from `self` to `next` is a legal step of the lifecycle.
    pub const fn may_become(self, next: IntentStatus) -> bool {
        use IntentStatus::*;
        matches!(
            (self, next),
            (Pending, Sent | Lost | Rejected)
                | (Sent, Accepted | Filled | Rejected | Lost)
                | (Accepted, Filled | Rejected | Lost)
        )
    }
}

impl FromStr for IntentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<IntentStatus, String> {
        [
            IntentStatus::Pending,
            IntentStatus::Sent,
            IntentStatus::Accepted,
            IntentStatus::Filled,
            IntentStatus::Rejected,
            IntentStatus::Lost,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| format!("unknown order intent status {s:?}"))
    }
}

/// A decision to trade, made durable before any order leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderIntent {
    /// The order it becomes.
    pub request: OrderRequest,
    /// Where it is in its lifecycle.
    pub status: IntentStatus,
    /// When the decision was made.
    pub created_at: Timestamp,
    /// Why the strategy decided it (readable).
    pub reason: String,
}

/// An execution at the broker (a cTrader deal): unique by `deal_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    /// The broker's deal id; recording the same deal twice is a no-op.
    pub deal_id: i64,
    /// The broker's order id.
    pub order_id: i64,
    /// The position it opened, changed or closed.
    pub position_id: PositionId,
    /// Our client order id, when the order was ours and the broker echoed it.
    pub client_order_id: Option<ClientOrderId>,
    /// Which symbol.
    pub symbol: SymbolId,
    /// Side of the deal.
    pub side: Side,
    /// Filled volume.
    pub volume: Volume,
    /// Execution price.
    pub price: Price,
    /// Execution time.
    pub time: Timestamp,
    /// Commission charged (negative is a cost).
    pub commission: Money,
    /// Set when the deal closed (part of) a position.
    pub close: Option<DealCloseDetail>,
}

/// What a closing deal reports about the position it closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealCloseDetail {
    /// The position's entry price.
    pub entry_price: Price,
    /// Gross profit of the closed volume.
    pub gross_profit: Money,
    /// Swap paid or earned.
    pub swap: Money,
    /// Commission of the close.
    pub commission: Money,
    /// Balance after the deal.
    pub balance: Money,
    /// Volume that was closed.
    pub closed_volume: Volume,
    /// Why the position closed, when the broker said so (e.g. the client saw the closing order's
    /// type `STOP_LOSS_TAKE_PROFIT` or its stop-out flag); `None` when a deal list gave no hint,
    /// and reconciliation then infers it from the position's stop levels.
    pub close_reason: Option<CloseReason>,
}

/// Why a position closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The strategy closed it.
    Strategy,
    /// Its stop-loss triggered.
    StopLoss,
    /// Its take-profit triggered.
    TakeProfit,
    /// The broker closed it for lack of margin.
    StopOut,
    /// Someone closed it outside the bot (e.g. in the cTrader app).
    Manual,
    /// Closed by the kill switch or on an operator's request.
    RiskLimit,
}

impl CloseReason {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseReason::Strategy => "strategy",
            CloseReason::StopLoss => "stop_loss",
            CloseReason::TakeProfit => "take_profit",
            CloseReason::StopOut => "stop_out",
            CloseReason::Manual => "manual",
            CloseReason::RiskLimit => "risk_limit",
        }
    }
}

impl FromStr for CloseReason {
    type Err = String;
    fn from_str(s: &str) -> Result<CloseReason, String> {
        [
            CloseReason::Strategy,
            CloseReason::StopLoss,
            CloseReason::TakeProfit,
            CloseReason::StopOut,
            CloseReason::Manual,
            CloseReason::RiskLimit,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| format!("unknown close reason {s:?}"))
    }
}

/// Whether a stored position is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PositionStatus {
    /// Open at the broker (as far as we know).
    Open,
    /// Closed; exit fields are set.
    Closed,
}

impl PositionStatus {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            PositionStatus::Open => "open",
            PositionStatus::Closed => "closed",
        }
    }
}

/// A position as the bot records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The broker's id.
    pub id: PositionId,
    /// Which symbol.
    pub symbol: SymbolId,
    /// Long or short.
    pub side: Side,
    /// Open volume.
    pub volume: Volume,
    /// Entry price.
    pub entry_price: Price,
    /// When it opened.
    pub entry_time: Timestamp,
    /// Absolute stop-loss, if any.
    pub stop_loss: Option<Price>,
    /// Absolute take-profit, if any.
    pub take_profit: Option<Price>,
    /// The label it carries (ours start with the bot's label prefix).
    pub label: Option<String>,
    /// The client order id of the order that opened it, when ours.
    pub client_order_id: Option<ClientOrderId>,
    /// Open or closed.
    pub status: PositionStatus,
    /// Exit price, once closed.
    pub exit_price: Option<Price>,
    /// Exit time, once closed.
    pub exit_time: Option<Timestamp>,
    /// Realised net PnL, once closed.
    pub pnl: Option<Money>,
    /// Why it closed.
    pub close_reason: Option<CloseReason>,
}

/// A position as the broker reports it at reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerPosition {
    /// The broker's id.
    pub id: PositionId,
    /// Which symbol.
    pub symbol: SymbolId,
    /// Long or short.
    pub side: Side,
    /// Open volume.
    pub volume: Volume,
    /// Average entry price.
    pub entry_price: Price,
    /// When it opened.
    pub open_time: Timestamp,
    /// Absolute stop-loss.
    pub stop_loss: Option<Price>,
    /// Absolute take-profit.
    pub take_profit: Option<Price>,
    /// Its label, which tells ours from someone else's.
    pub label: Option<String>,
    /// The client order id the broker kept for the opening order, if any.
    pub client_order_id: Option<ClientOrderId>,
    /// Swap so far.
    pub swap: Money,
    /// Commission so far.
    pub commission: Money,
}

/// A pending (not yet filled) order as the broker reports it at reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOrder {
    /// The broker's order id.
    pub order_id: i64,
    /// Which symbol.
    pub symbol: SymbolId,
    /// Buy or sell.
    pub side: Side,
    /// Volume.
    pub volume: Volume,
    /// Its client order id, if any.
    pub client_order_id: Option<ClientOrderId>,
    /// Its label, if any.
    pub label: Option<String>,
}

/// A deal from the broker's deal list (history), used to learn how positions closed.
pub type BrokerDeal = Fill;

/// Everything the broker says is open, and the deals since a given time: the truth reconciliation
/// compares the store against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BrokerSnapshot {
    /// Open positions.
    pub positions: Vec<BrokerPosition>,
    /// Pending orders.
    pub orders: Vec<PendingOrder>,
    /// Deals executed since the last time the store knew about.
    pub deals: Vec<BrokerDeal>,
    /// When the snapshot was taken (broker or local clock).
    pub taken_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_order_id_is_validated() {
        assert!(ClientOrderId::new("pob-000042").is_ok());
        assert!(ClientOrderId::new("").is_err());
        assert!(ClientOrderId::new("a".repeat(51)).is_err());
        assert!(ClientOrderId::new("has space").is_err());
    }

    #[test]
    fn intent_lifecycle_forbids_going_back() {
        assert!(IntentStatus::Pending.may_become(IntentStatus::Sent));
        assert!(IntentStatus::Sent.may_become(IntentStatus::Lost));
        assert!(!IntentStatus::Filled.may_become(IntentStatus::Sent));
        assert!(!IntentStatus::Lost.may_become(IntentStatus::Filled));
        assert!(IntentStatus::Filled.is_final());
        assert_eq!("lost".parse::<IntentStatus>(), Ok(IntentStatus::Lost));
    }
}

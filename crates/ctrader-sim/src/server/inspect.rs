//! Read-only views of the simulated broker's books for tests that check a client end to end:
//! every new-order request received (even refused ones), every deal, the open positions with their
//! swap, commission and unrealised profit, and the conversion rate into the deposit currency.

use domain::Timestamp;

use super::{SimHandle, lock};
use crate::AccountCurrency;

/// One `ProtoOANewOrderReq` as the simulator received it, before any check could refuse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedOrder {
    /// The request's `clientOrderId`, if it carried one.
    pub client_order_id: Option<String>,
    /// The request's label, if any.
    pub label: Option<String>,
    /// The position the order closes, when it names one.
    pub position_id: Option<i64>,
    /// Requested volume in 0.01 unit.
    pub volume: i64,
    /// Simulated time of arrival.
    pub received_at: Timestamp,
}

/// One historical request as the simulator received it (trendbars, tick data, deal or order list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoricalRequest {
    /// The message's schema name, e.g. `ProtoOAGetTrendbarsReq`.
    pub name: &'static str,
    /// When it arrived, on this machine's monotonic clock.
    pub received: std::time::Instant,
    /// The connection it came on.
    pub connection: u64,
    /// True when it was refused for exceeding a rate limit (`BLOCKED_PAYLOAD_TYPE`).
    pub refused: bool,
}

/// One deal (an execution) in the broker's books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealRecord {
    /// The deal id.
    pub deal_id: i64,
    /// The order that produced it.
    pub order_id: i64,
    /// The position it opened, changed or closed.
    pub position_id: i64,
    /// The `clientOrderId` of its order; `None` for stop-loss, take-profit and external closes.
    pub client_order_id: Option<String>,
    /// Filled volume in 0.01 unit.
    pub volume: i64,
    /// Execution price in 1/100000.
    pub price: i64,
    /// Simulated execution time.
    pub executed: Timestamp,
    /// True when it closed (part of) a position.
    pub closing: bool,
    /// A closing deal's net profit, `grossProfit + swap + commission` of its closePositionDetail,
    /// minor units of the deposit currency; `None` for an opening deal.
    pub net_pnl: Option<i64>,
    /// The account's balance after a closing deal, minor units; `None` for an opening deal.
    pub balance_after: Option<i64>,
}

/// One open position in the broker's books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPositionRecord {
    /// The position id.
    pub id: i64,
    /// Open volume in 0.01 unit.
    pub volume: i64,
    /// Absolute stop loss, 1/100000.
    pub stop_loss: Option<i64>,
    /// Absolute take profit, 1/100000.
    pub take_profit: Option<i64>,
    /// Label of the order that opened it.
    pub label: Option<String>,
    /// Swap charged so far, minor units of the deposit currency (negative: paid).
    pub swap: i64,
    /// Opening commission charged so far, minor units of the deposit currency (negative).
    pub commission: i64,
    /// Unrealised profit at the latest quotes as `ProtoOAGetPositionUnrealizedPnLRes` reports it:
    /// `(gross, net)`, minor units; `None` without a quote or a conversion rate.
    pub unrealized: Option<(i64, i64)>,
    /// Its stop loss is guaranteed (closes at its own price).
    pub guaranteed_stop_loss: bool,
}

impl SimHandle {
    /// Every new-order request received since start, in arrival order (for duplicate checks).
    pub fn received_orders(&self) -> Vec<ReceivedOrder> {
        lock(&self.shared.received_orders).clone()
    }

    /// Every historical request received since start, in arrival order, refused ones included.
    pub fn historical_requests(&self) -> Vec<HistoricalRequest> {
        lock(&self.shared.historical_requests).clone()
    }

    /// Every deal of every account since start, oldest first.
    pub fn deals(&self) -> Vec<DealRecord> {
        let exchange = lock(&self.shared.exchange);
        let broker = &exchange.broker;
        broker
            .all_deals()
            .iter()
            .map(|d| DealRecord {
                deal_id: d.id,
                order_id: d.order_id,
                position_id: d.position_id,
                client_order_id: broker
                    .order(d.order_id)
                    .and_then(|o| o.client_order_id.clone()),
                volume: d.filled_volume,
                price: d.execution_price,
                executed: d.executed,
                closing: d.close.is_some(),
                net_pnl: d
                    .close
                    .as_ref()
                    .map(|c| c.gross_profit + c.swap + c.commission),
                balance_after: d.close.as_ref().map(|c| c.balance),
            })
            .collect()
    }

    /// Every open position, oldest first.
    pub fn open_positions(&self) -> Vec<OpenPositionRecord> {
        let exchange = lock(&self.shared.exchange);
        let broker = &exchange.broker;
        broker
            .open_position_ids()
            .into_iter()
            .filter_map(|id| broker.open_position(id))
            .map(|p| OpenPositionRecord {
                id: p.id,
                volume: p.volume,
                stop_loss: p.stop_loss,
                take_profit: p.take_profit,
                label: p.label.clone(),
                swap: p.swap,
                commission: p.commission,
                unrealized: broker
                    .unrealized(p.account)
                    .into_iter()
                    .find(|u| u.position_id == p.id)
                    .map(|u| (u.gross, u.net)),
                guaranteed_stop_loss: p.guaranteed_stop_loss,
            })
            .collect()
    }

    /// The configured account's deposit currency.
    pub fn account_currency(&self) -> AccountCurrency {
        self.shared.config.account_currency
    }

    /// How many deposit-currency units one unit of `symbol_id`'s quote currency is worth now for the
    /// configured account (1.0 when it is quoted in the deposit currency; the mids of the
    /// conversion chain otherwise); `None` for an unknown symbol or a chain symbol without a quote.
    pub fn quote_to_deposit_rate(&self, symbol_id: i64) -> Option<f64> {
        let account = self.shared.config.credentials.account_id;
        let exchange = lock(&self.shared.exchange);
        let symbol = exchange.broker.symbol(symbol_id)?;
        exchange
            .broker
            .quote_to_deposit(symbol, account)
            .map(|rate| rate.to_f64())
    }
}

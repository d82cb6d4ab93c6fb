//! Builders shared by the integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use domain::{
    BrokerPosition, BrokerSnapshot, ClientOrderId, CloseReason, DealCloseDetail, Fill,
    IntentStatus, LabelPrefix, Money, OrderIntent, OrderRequest, PendingOrder, Position,
    PositionId, PositionStatus, Price, Side, SymbolId, Timestamp, Volume,
};
use persistence::{MemoryTradeStore, SqliteTradeStore, TradeStore};

pub static PREFIX: LazyLock<LabelPrefix> =
    LazyLock::new(|| LabelPrefix::new("pob").expect("a valid prefix"));
pub const SYMBOL: SymbolId = SymbolId(41);

pub fn coid(s: &str) -> ClientOrderId {
    ClientOrderId::new(s).unwrap()
}

pub fn price(units: i64) -> Price {
    Price(units * 100_000)
}

pub fn intent(id: &str, at: i64) -> OrderIntent {
    let client_order_id = coid(id);
    OrderIntent {
        request: OrderRequest {
            label: client_order_id.to_string(),
            client_order_id,
            symbol: SYMBOL,
            side: Side::Buy,
            volume: Volume(100),
            relative_stop_loss: Some(price(20)),
            relative_take_profit: Some(price(40)),
            position_to_close: None,
        },
        status: IntentStatus::Pending,
        created_at: Timestamp(at),
        reason: "rsi below 30".to_owned(),
    }
}

pub fn open_position(id: i64, client_order_id: Option<&str>, at: i64) -> Position {
    Position {
        id: PositionId(id),
        symbol: SYMBOL,
        side: Side::Buy,
        volume: Volume(100),
        entry_price: price(4000),
        entry_time: Timestamp(at),
        stop_loss: Some(price(3980)),
        take_profit: Some(price(4040)),
        label: client_order_id.map(|c| c.to_owned()),
        client_order_id: client_order_id.map(coid),
        status: PositionStatus::Open,
        exit_price: None,
        exit_time: None,
        pnl: None,
        close_reason: None,
    }
}

pub fn opening_fill(deal_id: i64, position: i64, client_order_id: Option<&str>, at: i64) -> Fill {
    Fill {
        deal_id,
        order_id: deal_id + 1_000,
        position_id: PositionId(position),
        client_order_id: client_order_id.map(coid),
        symbol: SYMBOL,
        side: Side::Buy,
        volume: Volume(100),
        price: price(4000),
        time: Timestamp(at),
        commission: Money::new(-150, 2),
        close: None,
    }
}

/// A deal closing `position` (a long of volume 100 entered at 4000) at `exit`.
pub fn closing_fill(
    deal_id: i64,
    position: i64,
    exit: Price,
    at: i64,
    reason: Option<CloseReason>,
) -> Fill {
    let gross = (exit.0 - price(4000).0) / 1000; // 1.00 unit: price delta in cents
    Fill {
        deal_id,
        order_id: deal_id + 1_000,
        position_id: PositionId(position),
        client_order_id: None,
        symbol: SYMBOL,
        side: Side::Sell,
        volume: Volume(100),
        price: exit,
        time: Timestamp(at),
        commission: Money::new(-150, 2),
        close: Some(DealCloseDetail {
            entry_price: price(4000),
            gross_profit: Money::new(gross, 2),
            swap: Money::new(-10, 2),
            commission: Money::new(-300, 2),
            balance: Money::new(1_000_000, 2),
            closed_volume: Volume(100),
            close_reason: reason,
        }),
    }
}

pub fn broker_position(
    id: i64,
    label: Option<&str>,
    client_order_id: Option<&str>,
) -> BrokerPosition {
    BrokerPosition {
        id: PositionId(id),
        symbol: SYMBOL,
        side: Side::Buy,
        volume: Volume(100),
        entry_price: price(4000),
        open_time: Timestamp(1_000),
        stop_loss: Some(price(3980)),
        take_profit: Some(price(4040)),
        label: label.map(str::to_owned),
        client_order_id: client_order_id.map(coid),
        swap: Money::new(0, 2),
        commission: Money::new(-150, 2),
    }
}

/// The broker's view of a stored position: identical levels.
pub fn broker_of(p: &Position) -> BrokerPosition {
    BrokerPosition {
        id: p.id,
        symbol: p.symbol,
        side: p.side,
        volume: p.volume,
        entry_price: p.entry_price,
        open_time: p.entry_time,
        stop_loss: p.stop_loss,
        take_profit: p.take_profit,
        label: p.label.clone(),
        client_order_id: p.client_order_id.clone(),
        swap: Money::new(0, 2),
        commission: Money::new(0, 2),
    }
}

pub fn pending_order(order_id: i64, client_order_id: &str) -> PendingOrder {
    PendingOrder {
        order_id,
        symbol: SYMBOL,
        side: Side::Buy,
        volume: Volume(100),
        client_order_id: Some(coid(client_order_id)),
        label: Some(client_order_id.to_owned()),
    }
}

pub fn snapshot(
    positions: Vec<BrokerPosition>,
    orders: Vec<PendingOrder>,
    deals: Vec<Fill>,
    taken_at: i64,
) -> BrokerSnapshot {
    BrokerSnapshot {
        positions,
        orders,
        deals,
        taken_at: Timestamp(taken_at),
    }
}

pub fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("bot.db");
    (dir, path)
}

/// An empty SQLite store in memory.
pub async fn scratch_store() -> Arc<dyn TradeStore> {
    Arc::new(SqliteTradeStore::open_scratch().await.unwrap())
}

pub fn memory_store() -> Arc<dyn TradeStore> {
    Arc::new(MemoryTradeStore::new())
}

pub async fn sqlite_store(path: &std::path::Path) -> Arc<dyn TradeStore> {
    Arc::new(SqliteTradeStore::open_path(path).await.unwrap())
}

/// Runs `store` work under a deadline so a hang fails the test instead of blocking CI.
pub async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(60), fut)
        .await
        .expect("test step timed out")
}

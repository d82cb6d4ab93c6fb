//! A finding to check by hand met by a running engine (at a reconnect) pauses trading until an
//! operator acknowledges it, then trading resumes on its own: no restart, no order meanwhile.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/engine_harness.rs"]
mod engine_harness;

use domain::{Fill, Money, PositionStatus, Timestamp};
use engine_harness::*;
use persistence::{Acknowledge, TradeStore};

#[tokio::test]
async fn a_finding_at_a_reconnect_pauses_trading_until_it_is_acknowledged() {
    let mut h = Harness::new();
    h.run().await;
    // While the link is down, a position the store holds as open disappears at the broker
    // without any closing deal (say, another tool or account mixed in): the store cannot
    // account for how it ended.
    let id = decision_id(-5, 'L');
    let b = our_position(88, &id);
    let position = domain::Position {
        id: b.id,
        symbol: b.symbol,
        side: b.side,
        volume: b.volume,
        entry_price: b.entry_price,
        entry_time: b.open_time,
        stop_loss: b.stop_loss,
        take_profit: b.take_profit,
        label: b.label.clone(),
        client_order_id: b.client_order_id.clone(),
        status: PositionStatus::Open,
        exit_price: None,
        exit_time: None,
        pnl: None,
        close_reason: None,
    };
    let fill = Fill {
        deal_id: 5_000,
        order_id: 6_000,
        position_id: position.id,
        client_order_id: Some(id.clone()),
        symbol: PALM,
        side: position.side,
        volume: position.volume,
        price: position.entry_price,
        time: Timestamp(T0 - 3 * MIN),
        commission: Money::zero(2),
        close: None,
    };
    h.store.record_fill(&fill, &position).await.unwrap();
    h.broker.set_connected(false);
    h.bar(0, 4_150).await;
    h.broker.set_connected(true);
    h.settle().await;

    let waiting = h.store.open_findings().await.unwrap();
    assert_eq!(waiting.len(), 1, "{:?}", h.events());
    assert_eq!(waiting[0].kind, "close_unexplained");
    assert!(!h.obs.status.live().reconciled, "{:?}", h.events());
    // Decisions meanwhile are not executed.
    h.bar(1, 4_100).await;
    h.bar(2, 4_100).await;
    assert!(h.broker.orders_sent().is_empty(), "{:?}", h.events());
    assert!(
        h.has_event("not executed: trading paused"),
        "{:?}",
        h.events()
    );

    // The operator checks it and acknowledges it (`palm-oil-bot acknowledge --all`, beside the
    // running bot): the next retry reconciles and trading resumes by itself.
    let done = h
        .store
        .acknowledge(Acknowledge::All, Timestamp(T0 + 3 * MIN))
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    let status = h.obs.status.clone();
    wait_until("trading to resume", || status.live().reconciled).await;
    h.stop().await;
}

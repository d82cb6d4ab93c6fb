//! An order interrupted by a crash at each point of the protocol ends, after a restart and a
//! reconciliation, in exactly one of: lost (it never reached the broker) or filled with its
//! position recorded; and the decision can never become a second order.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use domain::{BrokerSnapshot, CloseReason, IntentStatus, PositionId, PositionStatus, Timestamp};
use persistence::{
    FillRecorded, OrderAnswer, ReconcilePlan, SqliteTradeStore, StoreError, TradeStore, plan,
};

const ID: &str = "pob-41-29399166-L";

/// Restarts on the file and reconciles against `snap`, as the bot does at start.
async fn restart_and_reconcile(
    path: &Path,
    snap: &BrokerSnapshot,
) -> (SqliteTradeStore, ReconcilePlan) {
    let store = within(SqliteTradeStore::open_path(path)).await.unwrap();
    let open = store.open_positions().await.unwrap();
    let in_flight = store.intents_in_flight().await.unwrap();
    let the_plan = plan(&open, &in_flight, snap, &PREFIX).unwrap();
    store.apply(&the_plan, snap.taken_at).await.unwrap();
    (store, the_plan)
}

/// After recovery: the intent is final, nothing is left to send, and deciding the same thing
/// again is refused by the store.
async fn assert_settled(store: &SqliteTradeStore, expected: IntentStatus) {
    let i = store.intent(&coid(ID)).await.unwrap().unwrap();
    assert_eq!(i.status(), expected);
    assert!(store.intents_in_flight().await.unwrap().is_empty());
    let again = store.commit_intent(&intent(ID, 9_000)).await.unwrap_err();
    assert!(matches!(again, StoreError::DuplicateIntent(_)), "{again}");
}

/// A second reconciliation with a later snapshot of the same broker state changes nothing.
async fn assert_converged(store: &SqliteTradeStore, snap: &BrokerSnapshot) {
    let mut later = snap.clone();
    later.taken_at = Timestamp(snap.taken_at.0 + 1_000);
    let open = store.open_positions().await.unwrap();
    let in_flight = store.intents_in_flight().await.unwrap();
    let again = plan(&open, &in_flight, &later, &PREFIX).unwrap();
    assert!(again.corrections.is_empty(), "{:?}", again.corrections);
}

async fn decide(path: &Path) -> SqliteTradeStore {
    let store = SqliteTradeStore::open_path(path).await.unwrap();
    store.commit_intent(&intent(ID, 1_000)).await.unwrap();
    store
}

fn filled_at_broker(position: i64) -> (domain::BrokerPosition, domain::Fill) {
    (
        broker_position(position, Some(ID), Some(ID)),
        opening_fill(position * 10, position, Some(ID), 1_200),
    )
}

#[tokio::test]
async fn crash_after_commit_before_send_ends_lost() {
    let (_dir, path) = temp_db();
    drop(decide(&path).await); // crash: the intent is pending, nothing left the process
    let snap = snapshot(vec![], vec![], vec![], 5_000);
    let (store, the_plan) = restart_and_reconcile(&path, &snap).await;
    assert_eq!(the_plan.corrections.len(), 1);
    assert_settled(&store, IntentStatus::Lost).await;
    assert!(store.open_positions().await.unwrap().is_empty());
    assert_converged(&store, &snap).await;
}

#[tokio::test]
async fn crash_after_marking_sent_but_before_the_broker_got_it_ends_lost() {
    let (_dir, path) = temp_db();
    let store = decide(&path).await;
    store.mark_sent(&coid(ID), Timestamp(1_100)).await.unwrap();
    drop(store); // crash before the bytes left
    let snap = snapshot(vec![], vec![], vec![], 5_000);
    let (store, _) = restart_and_reconcile(&path, &snap).await;
    assert_settled(&store, IntentStatus::Lost).await;
    let audit = store.audit_log(10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].before.as_str(), audit[0].after.as_str()),
        ("sent", "lost")
    );
    assert_converged(&store, &snap).await;
}

#[tokio::test]
async fn crash_after_the_fill_but_before_recording_it_recovers_the_position() {
    let (_dir, path) = temp_db();
    let store = decide(&path).await;
    store.mark_sent(&coid(ID), Timestamp(1_100)).await.unwrap();
    drop(store); // the broker filled it, the execution event was never recorded
    let (position, deal) = filled_at_broker(77);
    let snap = snapshot(vec![position.clone()], vec![], vec![deal.clone()], 5_000);
    let (store, _) = restart_and_reconcile(&path, &snap).await;
    assert_settled(&store, IntentStatus::Filled).await;
    let stored = store.position(PositionId(77)).await.unwrap().unwrap();
    assert_eq!(stored.status, PositionStatus::Open);
    assert_eq!(stored.client_order_id, Some(coid(ID)));
    assert_eq!(stored.entry_price, position.entry_price);
    assert_eq!(
        store.intent(&coid(ID)).await.unwrap().unwrap().position_id,
        Some(PositionId(77))
    );
    assert_eq!(store.fills(10).await.unwrap(), vec![deal.clone()]);

    // The execution event arrives late after the reconnect: recorded once, no error.
    let late = OrderAnswer::Filled {
        client_order_id: coid(ID),
        fill: deal,
        position: open_position(77, Some(ID), 1_200),
    };
    let out = store.record_answer(&late, Timestamp(5_500)).await.unwrap();
    assert_eq!(
        (out.status, out.fill),
        (IntentStatus::Filled, Some(FillRecorded::AlreadyRecorded))
    );
    assert_converged(&store, &snap).await;
}

#[tokio::test]
async fn crash_after_the_fill_was_recorded_needs_no_correction() {
    let (_dir, path) = temp_db();
    let store = decide(&path).await;
    store.mark_sent(&coid(ID), Timestamp(1_100)).await.unwrap();
    let (position, deal) = filled_at_broker(78);
    let answer = OrderAnswer::Filled {
        client_order_id: coid(ID),
        fill: deal.clone(),
        position: open_position(78, Some(ID), 1_000),
    };
    store
        .record_answer(&answer, Timestamp(1_200))
        .await
        .unwrap();
    drop(store);
    let snap = snapshot(vec![position], vec![], vec![deal], 5_000);
    let (store, the_plan) = restart_and_reconcile(&path, &snap).await;
    assert!(
        the_plan.corrections.is_empty(),
        "{:?}",
        the_plan.corrections
    );
    assert_eq!(the_plan.in_sync, 1);
    assert_settled(&store, IntentStatus::Filled).await;
}

#[tokio::test]
async fn crash_while_the_order_waits_at_the_broker_keeps_it_accepted_not_resent() {
    let (_dir, path) = temp_db();
    let store = decide(&path).await;
    store.mark_sent(&coid(ID), Timestamp(1_100)).await.unwrap();
    drop(store);
    let snap = snapshot(vec![], vec![pending_order(555, ID)], vec![], 5_000);
    let (store, _) = restart_and_reconcile(&path, &snap).await;
    let i = store.intent(&coid(ID)).await.unwrap().unwrap();
    assert_eq!(
        (i.status(), i.broker_order_id),
        (IntentStatus::Accepted, Some(555))
    );
    // It stays in flight (the broker holds it), and the same decision cannot be committed again.
    assert!(matches!(
        store.commit_intent(&intent(ID, 9_000)).await,
        Err(StoreError::DuplicateIntent(_))
    ));
    // When it fills, the answer is recorded as usual.
    let (_, deal) = filled_at_broker(79);
    let fill = OrderAnswer::Filled {
        client_order_id: coid(ID),
        fill: deal,
        position: open_position(79, Some(ID), 6_000),
    };
    assert_eq!(
        store
            .record_answer(&fill, Timestamp(6_000))
            .await
            .unwrap()
            .status,
        IntentStatus::Filled
    );
    assert!(store.intents_in_flight().await.unwrap().is_empty());
}

#[tokio::test]
async fn crash_then_filled_and_stopped_out_while_away_records_the_closed_position() {
    let (_dir, path) = temp_db();
    let store = decide(&path).await;
    store.mark_sent(&coid(ID), Timestamp(1_100)).await.unwrap();
    drop(store);
    let (_, open_deal) = filled_at_broker(80);
    let close_deal = closing_fill(801, 80, price(3900), 3_000, Some(CloseReason::StopOut));
    let snap = snapshot(vec![], vec![], vec![open_deal, close_deal], 5_000);
    let (store, _) = restart_and_reconcile(&path, &snap).await;
    assert_settled(&store, IntentStatus::Filled).await;
    let stored = store.position(PositionId(80)).await.unwrap().unwrap();
    assert_eq!(stored.status, PositionStatus::Closed);
    assert_eq!(stored.close_reason, Some(CloseReason::StopOut));
    assert_eq!(stored.exit_price, Some(price(3900)));
    assert_eq!(stored.exit_time, Some(Timestamp(3_000)));
    assert_eq!(store.fills(10).await.unwrap().len(), 2);
    assert_converged(&store, &snap).await;
}

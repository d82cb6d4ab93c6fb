//! The trading engine end to end over the in-memory broker and store: start-up (symbol,
//! reconciliation, kill switch), a decision becoming exactly one durable intent and one order,
//! restarts, rejections, unknown outcomes, broker-side stop-loss and take-profit, disconnects and
//! dry runs. Time is a `FixedClock` the test moves; every quote carries an explicit timestamp,
//! and every wait is bounded.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/engine_harness.rs"]
mod engine_harness;

use std::sync::Arc;
use std::time::Duration;

use bot::engine::EngineError;
use ctrader_client::{BrokerError, BrokerEvent, FakeBroker, FakeOrderScript};
use domain::{
    ClientOrderId, CloseReason, IntentStatus, KillSwitchState, Money, OrderIntent, OrderRequest,
    PositionId, PositionStatus, Side, Timestamp, Volume,
};
use engine_harness::*;
use persistence::TradeStore;

#[tokio::test]
async fn a_missing_symbol_refuses_to_trade() {
    let mut h = Harness::new();
    h.broker = Arc::new(FakeBroker::new(h.clock.clone(), Money::new(1_000_000, 2)));
    let mut other = spec();
    other.name = "GOLD".into();
    h.broker.add_symbol(other);

    let err = h.start().await.unwrap_err();
    match &err {
        EngineError::Broker(BrokerError::SymbolNotFound { tried, listed }) => {
            assert_eq!(tried, &["FCPO".to_owned(), "PALMOIL".to_owned()]);
            assert_eq!(*listed, 1);
        }
        other => panic!("expected a missing symbol, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("PALMOIL") && text.contains("FCPO"), "{text}");
    assert!(h.broker.orders_sent().is_empty());
    assert!(h.store.intents_in_flight().await.unwrap().is_empty());
}

#[tokio::test]
async fn start_up_adopts_our_position_left_at_the_broker_and_ignores_a_foreign_one() {
    let mut h = Harness::new();
    let ours = decision_id(-3, 'L');
    h.broker.add_position(our_position(41, &ours));
    let mut foreign = our_position(42, &ours);
    foreign.label = Some("manual hedge".into());
    foreign.client_order_id = None;
    foreign.side = Side::Sell;
    h.broker.add_position(foreign);

    h.run().await;

    let open = h.store.open_positions().await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    let adopted = &open[0];
    assert_eq!(adopted.id, PositionId(41));
    assert_eq!(adopted.side, Side::Buy);
    assert_eq!(adopted.volume, Volume(100));
    assert_eq!(adopted.entry_price, myr(4_150));
    assert_eq!(adopted.stop_loss, Some(myr(4_000)));
    assert!(h.store.position(PositionId(42)).await.unwrap().is_none());
    let audit = h.store.audit_log(10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.kind == "adopt_position" && a.subject.contains("41")),
        "{audit:?}"
    );
    let live = h.obs.status.live();
    assert!(live.reconciled);
    assert_eq!(live.position.map(|p| p.position_id), Some(41));
    // The foreign position is left alone at the broker.
    assert_eq!(h.broker.positions().len(), 2);
    assert!(h.broker.orders_sent().is_empty());
    h.stop().await;
}

/// An intent left by a crash: committed (and, when `sent`, marked sent) before T0.
async fn leave_in_flight(h: &Harness, id: &ClientOrderId, sent: bool) {
    let intent = OrderIntent {
        request: OrderRequest {
            client_order_id: id.clone(),
            symbol: PALM,
            side: Side::Buy,
            volume: Volume(100),
            relative_stop_loss: Some(myr(40)),
            relative_take_profit: Some(myr(80)),
            label: id.to_string(),
            position_to_close: None,
        },
        status: IntentStatus::Pending,
        created_at: Timestamp(T0 - 2 * MIN),
        reason: "before the crash".into(),
    };
    h.store.commit_intent(&intent).await.unwrap();
    if sent {
        h.store
            .mark_sent(id, Timestamp(T0 - 2 * MIN))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn start_up_resolves_intents_left_in_flight_and_resends_none() {
    let mut h = Harness::new();
    let never_left = decision_id(-4, 'L');
    leave_in_flight(&h, &never_left, false).await;
    let filled_while_down = decision_id(-2, 'L');
    leave_in_flight(&h, &filled_while_down, true).await;
    h.broker.add_position(our_position(55, &filled_while_down));

    h.run().await;

    let lost = h.store.intent(&never_left).await.unwrap().unwrap();
    assert_eq!(lost.status(), IntentStatus::Lost);
    let filled = h.store.intent(&filled_while_down).await.unwrap().unwrap();
    assert_eq!(filled.status(), IntentStatus::Filled);
    assert_eq!(filled.position_id, Some(PositionId(55)));
    let open = h.store.open_positions().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, PositionId(55));
    assert!(h.store.intents_in_flight().await.unwrap().is_empty());
    assert!(h.broker.orders_sent().is_empty(), "nothing is resent");
    h.stop().await;
}

#[tokio::test]
async fn an_ambiguous_broker_state_refuses_to_start() {
    let h = Harness::new();
    let id = decision_id(-2, 'L');
    leave_in_flight(&h, &id, true).await;
    // Two positions carry the same client order id: the store cannot be matched safely.
    h.broker.add_position(our_position(61, &id));
    h.broker.add_position(our_position(62, &id));

    let err = h.start().await.unwrap_err();
    assert!(matches!(err, EngineError::Reconcile(_)), "{err:?}");
    assert!(err.to_string().contains("reconciliation failed"), "{err}");
    assert_eq!(
        h.store.intent(&id).await.unwrap().unwrap().status(),
        IntentStatus::Sent,
        "nothing is written"
    );
    assert!(h.store.open_positions().await.unwrap().is_empty());
    assert!(h.broker.orders_sent().is_empty());
    assert!(!h.obs.status.live().reconciled);
}

#[tokio::test]
async fn a_kill_switch_restored_from_the_store_blocks_entries() {
    let mut h = Harness::new();
    let mut kill = KillSwitchState::default();
    kill.engage("drawdown 21% reached the limit 20%", Timestamp(T0 - MIN));
    h.store.save_kill_switch(&kill).await.unwrap();

    h.run().await;
    assert!(h.obs.status.live().kill_switch.engaged);
    assert_eq!(
        metric(&h.metrics(), "palm_oil_bot_kill_switch_engaged"),
        Some(1.0)
    );
    h.cross_down().await;

    let decisions = h.obs.status.snapshot().decisions;
    assert!(
        decisions.iter().any(|d| d.action == "open_buy"),
        "{decisions:?}"
    );
    assert!(h.broker.orders_sent().is_empty());
    assert!(
        h.store
            .intent(&decision_id(0, 'L'))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        h.has_event("entry not taken: kill switch engaged"),
        "{:?}",
        h.events()
    );
    assert!(h.store.kill_switch().await.unwrap().engaged);
    h.stop().await;
}

#[tokio::test]
async fn an_operator_reset_releases_the_restored_kill_switch() {
    let mut h = Harness::new();
    let mut kill = KillSwitchState::default();
    kill.engage("daily loss 6% reached the limit 5%", Timestamp(T0 - MIN));
    h.store.save_kill_switch(&kill).await.unwrap();
    h.reset_kill_switch = true;

    h.run().await;
    assert!(!h.obs.status.live().kill_switch.engaged);
    assert!(
        !h.store.kill_switch().await.unwrap().engaged,
        "the reset is durable"
    );
    h.cross_down().await;
    assert_eq!(h.broker.orders_sent().len(), 1, "entries are taken again");
    h.stop().await;
}

#[tokio::test]
async fn an_rsi_crossing_becomes_one_durable_intent_one_order_and_an_open_position() {
    let mut h = Harness::new();
    h.run().await;
    h.bar(0, 4_100).await;
    assert!(h.broker.orders_sent().is_empty(), "bar 0 is still open");
    h.bar(1, 4_100).await;

    let id = decision_id(0, 'L');
    let sent = h.broker.orders_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let order = &sent[0];
    assert_eq!(order.client_order_id, id);
    assert_eq!(order.label, order.client_order_id.as_str());
    assert_eq!(order.side, Side::Buy);
    assert_eq!(order.volume, Volume(100));
    assert_eq!(order.relative_stop_loss, Some(myr(40)));
    assert_eq!(order.relative_take_profit, Some(myr(80)));
    assert_eq!(order.position_to_close, None);

    let intent = h
        .store
        .intent(&id)
        .await
        .unwrap()
        .expect("the intent is stored");
    assert_eq!(intent.status(), IntentStatus::Filled);
    let broker_positions = h.broker.positions();
    assert_eq!(broker_positions.len(), 1);
    let at_broker = &broker_positions[0];
    assert_eq!(intent.position_id, Some(at_broker.id));

    let fills = h.store.fills(10).await.unwrap();
    assert_eq!(fills.len(), 1, "{fills:?}");
    assert_eq!(fills[0].client_order_id.as_ref(), Some(&id));
    assert_eq!(fills[0].position_id, at_broker.id);
    assert_eq!(fills[0].price, myr(4_101), "a buy fills at the ask");

    let open = h.store.open_positions().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, at_broker.id);
    assert_eq!(open[0].status, PositionStatus::Open);
    assert_eq!(open[0].stop_loss, Some(myr(4_061)));
    assert_eq!(open[0].take_profit, Some(myr(4_181)));
    assert_eq!(open[0].client_order_id.as_ref(), Some(&id));
    assert_eq!(
        h.obs.status.live().position.map(|p| p.position_id),
        Some(at_broker.id.0)
    );
    let metrics = h.metrics();
    assert_eq!(
        metric(&metrics, "palm_oil_bot_orders_total{outcome=\"filled\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "palm_oil_bot_position_volume_units"),
        Some(1.0)
    );

    // The next bars hold: still one order.
    h.bar(2, 4_110).await;
    h.bar(3, 4_110).await;
    assert_eq!(h.broker.orders_sent().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn the_same_decision_after_a_restart_sends_no_second_order() {
    let mut h = Harness::new();
    h.run().await;
    h.bar(0, 4_100).await;
    // No quote after bar 0: the engine's clock tick closes it, and the entry is decided on it.
    h.clock.set(Timestamp(T0 + MIN + 500));
    let broker = h.broker.clone();
    wait_until("the entry on bar 0", || broker.orders_sent().len() == 1).await;
    let id = decision_id(0, 'L');
    let store = h.store.clone();
    let filled = async {
        loop {
            let done = store
                .intent(&id)
                .await
                .unwrap()
                .is_some_and(|i| i.status() == IntentStatus::Filled);
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(WAIT, filled)
        .await
        .expect("the fill is recorded");
    let position = h.broker.positions()[0].id;
    // Closed outside the bot, so after the restart nothing open holds the strategy back.
    h.broker.close_externally(position).unwrap();
    let store = h.store.clone();
    let closed = async {
        while !store.open_positions().await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(WAIT, closed)
        .await
        .expect("the close is recorded");

    // Restarted in the same minute: the broker's latest quote (sent on subscribing) is still in
    // bar 0, so the new engine builds bar 0 again, its tick closes it, and the same entry is
    // decided with the same client order id.
    h.clock.set(Timestamp(T0 + MIN + 600));
    h.restart().await;
    let status = h.obs.status.clone();
    wait_until("the same decision after the restart", || {
        status
            .snapshot()
            .decisions
            .iter()
            .any(|d| d.action == "open_buy" && d.at_ms == T0 + MIN)
    })
    .await;
    h.last = Some((myr(4_099), myr(4_101)));
    h.settle().await;

    assert_eq!(h.broker.orders_sent().len(), 1, "no second order");
    assert!(
        h.has_event(&format!("order {id} was already decided once")),
        "{:?}",
        h.events()
    );
    let intent = h.store.intent(&id).await.unwrap().unwrap();
    assert_eq!(intent.status(), IntentStatus::Filled);
    assert!(h.broker.positions().is_empty());
    assert_eq!(h.store.fills(10).await.unwrap().len(), 2, "open and close");
    h.stop().await;
}

#[tokio::test]
async fn a_rejected_order_leaves_no_position_and_is_counted() {
    let mut h = Harness::new();
    h.run().await;
    h.broker
        .script_next_order(FakeOrderScript::Reject("NOT_ENOUGH_MONEY".into()));
    h.cross_down().await;

    assert_eq!(h.broker.orders_sent().len(), 1);
    let intent = h.store.intent(&decision_id(0, 'L')).await.unwrap().unwrap();
    assert_eq!(intent.status(), IntentStatus::Rejected);
    assert!(
        intent
            .note
            .as_deref()
            .is_some_and(|n| n.contains("NOT_ENOUGH_MONEY")),
        "{intent:?}"
    );
    assert!(h.broker.positions().is_empty());
    assert!(h.all_positions().await.is_empty());
    assert!(h.obs.status.live().position.is_none());
    let metrics = h.metrics();
    assert_eq!(
        metric(
            &metrics,
            "palm_oil_bot_order_rejections_total{code=\"NOT_ENOUGH_MONEY\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "palm_oil_bot_orders_total{outcome=\"rejected\"}"),
        Some(1.0)
    );
    assert!(h.has_event("rejected by the broker: NOT_ENOUGH_MONEY"));

    // The RSI stays below 30 without a new crossing: the rejected decision is not retried.
    h.bar(2, 4_095).await;
    h.bar(3, 4_095).await;
    assert_eq!(h.broker.orders_sent().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn an_unknown_outcome_is_resolved_as_filled_by_reconciliation_without_a_resend() {
    let mut h = Harness::new();
    h.run().await;
    h.broker
        .script_next_order(FakeOrderScript::ExecuteThenLoseAnswer);
    h.cross_down().await;

    let id = decision_id(0, 'L');
    assert_eq!(h.broker.orders_sent().len(), 1, "never resent");
    let intent = h.store.intent(&id).await.unwrap().unwrap();
    assert_eq!(intent.status(), IntentStatus::Filled);
    let at_broker = h.broker.positions();
    assert_eq!(at_broker.len(), 1);
    assert_eq!(intent.position_id, Some(at_broker[0].id));
    let open = h.store.open_positions().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, at_broker[0].id);
    assert_eq!(open[0].volume, at_broker[0].volume);
    // The fill arrives twice (reconciliation's deal list and the execution event): stored once.
    let fills = h.store.fills(10).await.unwrap();
    assert_eq!(fills.len(), 1, "{fills:?}");
    let live = h.obs.status.live();
    assert!(live.reconciled);
    assert_eq!(
        live.position.map(|p| p.position_id),
        Some(at_broker[0].id.0)
    );
    assert_eq!(
        metric(
            &h.metrics(),
            "palm_oil_bot_orders_total{outcome=\"timed_out\"}"
        ),
        Some(1.0)
    );

    // Trading resumed: the exit on the next crossing above 70 is sent.
    h.bar(2, 4_170).await;
    h.bar(3, 4_170).await;
    let sent = h.broker.orders_sent();
    assert_eq!(
        sent.len(),
        2,
        "{sent:?} {:?} {:?}",
        h.events(),
        h.obs.status.snapshot().decisions
    );
    assert_eq!(sent[1].position_to_close, Some(at_broker[0].id));
    h.stop().await;
}

#[tokio::test]
async fn an_order_that_never_left_is_resolved_as_lost_without_a_resend() {
    let mut h = Harness::new();
    h.run().await;
    h.broker
        .script_next_order(FakeOrderScript::Fail(BrokerError::OrderOutcomeUnknown {
            what: "order".into(),
            client_order_id: Some(decision_id(0, 'L')),
            reason: "link dropped while sending".into(),
        }));
    h.cross_down().await;

    let intent = h.store.intent(&decision_id(0, 'L')).await.unwrap().unwrap();
    assert_eq!(intent.status(), IntentStatus::Lost);
    assert!(h.broker.orders_sent().is_empty());
    assert!(h.broker.positions().is_empty());
    assert!(h.all_positions().await.is_empty());
    assert!(h.store.intents_in_flight().await.unwrap().is_empty());
    assert!(h.obs.status.live().reconciled, "trading resumes");
    h.bar(2, 4_095).await;
    h.bar(3, 4_095).await;
    assert!(
        h.broker.orders_sent().is_empty(),
        "a lost order is not resent"
    );
    h.stop().await;
}

/// Opens a long at 4101 (SL 4061, TP 4181), then moves the bid through one of them inside bar 1.
async fn protection_hit(bid_mid: i64, reason: CloseReason) {
    let mut h = Harness::new();
    h.run().await;
    h.cross_down().await;
    let position = h.broker.positions()[0].id;

    h.quote_at(MIN + 20_000, bid_mid).await;

    assert!(h.broker.positions().is_empty(), "the broker closed it");
    let stored = h.store.position(position).await.unwrap().unwrap();
    assert_eq!(stored.status, PositionStatus::Closed);
    assert_eq!(stored.close_reason, Some(reason));
    assert_eq!(
        stored.exit_price,
        Some(myr(bid_mid - 1)),
        "a long exits at the bid"
    );
    let expected_pnl = Money::new((bid_mid - 1 - 4_101) * 100, 2);
    assert_eq!(stored.pnl, Some(expected_pnl));
    assert!(h.obs.status.live().position.is_none());
    assert_eq!(h.store.fills(10).await.unwrap().len(), 2);
    // The bid jumped from 4101 past the 4061 stop to 4049: the operator hears the stop slipped,
    // because the loss is larger than the position was sized for. A take-profit is no news.
    let slipped = h
        .events()
        .iter()
        .any(|e| e.contains("past its stop-loss (the price jumped through it)"));
    assert_eq!(slipped, reason == CloseReason::StopLoss, "{:?}", h.events());
    let outcome = if reason == CloseReason::TakeProfit {
        "win"
    } else {
        "loss"
    };
    let series = format!("palm_oil_bot_trades_total{{outcome=\"{outcome}\"}}");
    assert_eq!(metric(&h.metrics(), &series), Some(1.0));

    // The broker repeats the closing execution (e.g. after a resubscribe): recorded once.
    let closing = h.broker.executions().last().cloned().unwrap();
    assert!(closing.position_closed);
    h.broker
        .inject_event(BrokerEvent::Execution(Box::new(closing)));
    h.settle().await;
    assert_eq!(h.store.fills(10).await.unwrap().len(), 2);
    assert_eq!(h.store.position(position).await.unwrap().unwrap(), stored);
    assert_eq!(metric(&h.metrics(), &series), Some(1.0));
    assert_eq!(h.broker.orders_sent().len(), 1, "the bot sent no close");
    h.stop().await;
}

/// Found by the year soak: an opening order filled in parts, and the stop-loss closed the whole
/// position before the later parts' events were read (the engine lagged behind its queue). A late
/// deal of a position already closed here is stored once, not dropped.
#[tokio::test]
async fn a_late_opening_part_of_a_position_already_closed_is_stored_once() {
    let mut h = Harness::new();
    h.run().await;
    h.cross_down().await;
    let position = h.broker.positions()[0].id;
    h.quote_at(MIN + 20_000, 4_050).await;
    let closed = h.store.position(position).await.unwrap().unwrap();
    assert_eq!(closed.status, PositionStatus::Closed);
    assert_eq!(h.store.fills(10).await.unwrap().len(), 2);

    let mut fill = h
        .store
        .fills(10)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.close.is_none())
        .unwrap();
    fill.deal_id += 1_000;
    let late_id = fill.deal_id;
    let late = ctrader_client::ExecutionReport {
        kind: ctrader_client::ExecutionKind::PartialFill,
        order_id: Some(fill.order_id),
        client_order_id: fill.client_order_id.clone(),
        position: None,
        position_closed: false,
        fill: Some(fill),
        error_code: None,
    };
    for _ in 0..2 {
        h.broker
            .inject_event(BrokerEvent::Execution(Box::new(late.clone())));
        h.settle().await;
    }
    let fills = h.store.fills(10).await.unwrap();
    assert_eq!(fills.len(), 3, "{fills:?}");
    assert_eq!(fills.iter().filter(|f| f.deal_id == late_id).count(), 1);
    assert_eq!(
        h.store.position(position).await.unwrap().unwrap(),
        closed,
        "the closed position is left as it was"
    );
    assert_eq!(h.broker.orders_sent().len(), 1, "nothing is sent for it");
    h.stop().await;
}

#[tokio::test]
async fn a_stop_loss_hit_at_the_broker_closes_the_stored_position_once() {
    protection_hit(4_050, CloseReason::StopLoss).await;
}

#[tokio::test]
async fn a_take_profit_hit_at_the_broker_closes_the_stored_position_once() {
    protection_hit(4_190, CloseReason::TakeProfit).await;
}

#[tokio::test]
async fn while_disconnected_nothing_is_sent_and_a_reconnect_reconciles_before_trading() {
    let mut h = Harness::new();
    h.run().await;
    h.broker.set_connected(false);
    h.bar(0, 4_100).await;
    assert!(!h.obs.status.live().reconciled);
    h.bar(1, 4_100).await;

    assert!(h.broker.orders_sent().is_empty());
    assert!(
        h.store
            .intent(&decision_id(0, 'L'))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        h.has_event("decision open_buy not executed: trading paused"),
        "{:?}",
        h.events()
    );

    // While the link was down a position of ours was opened (an answer we never got).
    let missed = decision_id(-1, 'L');
    h.broker.add_position(our_position(77, &missed));
    h.broker.set_connected(true);
    h.settle().await;

    let open = h.store.open_positions().await.unwrap();
    assert_eq!(
        open.len(),
        1,
        "reconciled on reconnect: {open:?} {:?}",
        h.events()
    );
    assert_eq!(open[0].id, PositionId(77));
    assert!(h.obs.status.live().reconciled);
    assert_eq!(
        metric(&h.metrics(), "palm_oil_bot_broker_reconnects_total"),
        Some(1.0)
    );

    // Trading resumed: the RSI crossing above 70 closes the adopted long.
    h.bar(2, 4_170).await;
    h.bar(3, 4_170).await;
    let sent = h.broker.orders_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].position_to_close, Some(PositionId(77)));
    assert_eq!(sent[0].side, Side::Sell);
    let closed = h.store.position(PositionId(77)).await.unwrap().unwrap();
    assert_eq!(closed.status, PositionStatus::Closed);
    assert_eq!(closed.close_reason, Some(CloseReason::Strategy));
    assert!(h.broker.positions().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn a_dry_run_decides_and_records_but_sends_nothing() {
    let mut h = Harness::new();
    h.dry_run = true;
    h.run().await;
    h.cross_down().await;

    assert!(h.broker.orders_sent().is_empty());
    assert!(h.broker.positions().is_empty());
    // A dry run's ids have their own prefix: a real run on the same bar is not refused as a repeat.
    assert!(
        h.store
            .intent(&decision_id(0, 'L'))
            .await
            .unwrap()
            .is_none()
    );
    let intent = h
        .store
        .intent(&dry_run_decision_id(0, 'L'))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(intent.status(), IntentStatus::Filled);
    assert!(intent.status().is_final(), "{intent:?}");
    assert!(h.all_positions().await.is_empty());
    let snapshot = h.obs.status.snapshot();
    let decision = snapshot
        .decisions
        .iter()
        .find(|d| d.action == "open_buy")
        .expect("the decision is in the status");
    assert_eq!(decision.at_ms, T0 + MIN, "decided at bar 0's close");
    assert!(decision.reason.contains("RSI"), "{decision:?}");
    assert!(h.has_event("dry run: would buy"), "{:?}", h.events());
    assert!(h.has_event("dry run: no orders are sent"));
    h.stop().await;
}

#[tokio::test]
async fn an_open_market_without_a_quote_is_not_ready_until_quotes_flow() {
    let mut h = Harness::new();
    h.run().await;
    // The engine's tick reads the schedule (always open here) before any quote arrived.
    let status = h.obs.status.clone();
    wait_until("the tick to mark the market open", || {
        status.live().market_open
    })
    .await;
    let readiness = h.obs.status.readiness();
    assert!(!readiness.ready, "{readiness:?}");
    let quotes = readiness
        .checks
        .iter()
        .find(|c| c.name == "quotes_fresh")
        .unwrap();
    assert!(!quotes.ok, "{quotes:?}");
    // The first quote makes it ready.
    h.quote_at(1_000, 4_100).await;
    let readiness = h.obs.status.readiness();
    assert!(readiness.ready, "{readiness:?}");
    h.stop().await;
}

//! Reconciliation: each case of the plan, applied to both stores, and the report.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use domain::{
    CloseReason, IntentStatus, Money, PositionId, PositionStatus, Price, Side, Timestamp, Volume,
};
use persistence::{
    Correction, IntentResolution, MemoryTradeStore, ReasonBasis, ReconcileError, ReconcileReport,
    SqliteTradeStore, StoredIntent, TradeStore, deal_history_start, plan, resolve_in_flight,
};

/// Both stores, so every applied case runs on each.
async fn stores() -> (tempfile::TempDir, Vec<Arc<dyn TradeStore>>) {
    let (dir, path) = temp_db();
    let sqlite: Arc<dyn TradeStore> = Arc::new(SqliteTradeStore::open_path(&path).await.unwrap());
    (dir, vec![sqlite, Arc::new(MemoryTradeStore::new())])
}

async fn store_open(store: &dyn TradeStore, p: &domain::Position) {
    let fill = opening_fill(
        p.id.0 * 100,
        p.id.0,
        p.client_order_id.as_ref().map(|c| c.as_str()),
        p.entry_time.0,
    );
    store.record_fill(&fill, p).await.unwrap();
}

async fn plan_for(
    store: &dyn TradeStore,
    snap: &domain::BrokerSnapshot,
) -> persistence::ReconcilePlan {
    let open = store.open_positions().await.unwrap();
    let in_flight = store.intents_in_flight().await.unwrap();
    plan(&open, &in_flight, snap, &PREFIX).unwrap()
}

#[tokio::test]
async fn open_here_and_there_in_sync_changes_nothing() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let p = open_position(1, Some("pob-1"), 1_000);
        store_open(&*store, &p).await;
        let snap = snapshot(vec![broker_of(&p)], vec![], vec![], 5_000);
        let the_plan = plan_for(&*store, &snap).await;
        assert!(the_plan.is_clean(), "{the_plan:?}");
        assert_eq!(the_plan.in_sync, 1);
        assert_eq!(store.apply(&the_plan, Timestamp(5_001)).await.unwrap(), 0);
        assert!(store.audit_log(10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn open_here_and_there_syncs_volume_and_stops_from_the_broker() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let p = open_position(2, Some("pob-2"), 1_000);
        store_open(&*store, &p).await;
        let mut b = broker_of(&p);
        b.volume = Volume(40);
        b.stop_loss = Some(price(3990));
        b.take_profit = None;
        let snap = snapshot(vec![b], vec![], vec![], 5_000);
        let the_plan = plan_for(&*store, &snap).await;
        assert_eq!(the_plan.corrections.len(), 1);
        assert!(matches!(
            the_plan.corrections[0],
            Correction::SyncPosition {
                id: PositionId(2),
                ..
            }
        ));
        store.apply(&the_plan, Timestamp(5_001)).await.unwrap();
        let stored = store.position(PositionId(2)).await.unwrap().unwrap();
        assert_eq!(
            (stored.volume, stored.stop_loss, stored.take_profit),
            (Volume(40), Some(price(3990)), None)
        );
        let audit = store.audit_log(10).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert!(
            audit[0].before.contains("sl 3980") && audit[0].after.contains("sl 3990"),
            "{audit:?}"
        );
        // Applying brings the store in line: the next plan is clean.
        assert!(plan_for(&*store, &snap).await.is_clean());
    }
}

#[tokio::test]
async fn a_partial_close_while_away_syncs_the_volume_and_records_the_deal() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let p = open_position(12, Some("pob-12"), 1_000);
        store_open(&*store, &p).await;
        let mut partial = closing_fill(121, 12, price(4010), 2_000, None);
        partial.volume = Volume(40);
        if let Some(c) = partial.close.as_mut() {
            c.closed_volume = Volume(40);
        }
        let mut b = broker_of(&p);
        b.volume = Volume(60);
        let snap = snapshot(vec![b], vec![], vec![partial.clone()], 5_000);
        let the_plan = plan_for(&*store, &snap).await;
        assert_eq!(the_plan.corrections.len(), 1);
        assert!(
            the_plan.corrections[0].why().contains("partly closed"),
            "{:?}",
            the_plan.corrections
        );
        store.apply(&the_plan, Timestamp(5_001)).await.unwrap();
        assert_eq!(
            store
                .position(PositionId(12))
                .await
                .unwrap()
                .unwrap()
                .volume,
            Volume(60)
        );
        assert!(store.fills(10).await.unwrap().contains(&partial));
        assert!(plan_for(&*store, &snap).await.is_clean());
    }
}

#[tokio::test]
async fn closed_while_away_records_exit_pnl_and_inferred_reason() {
    // exit, broker's reason, expected reason, expected basis
    let cases = [
        (
            price(3975),
            None,
            CloseReason::StopLoss,
            ReasonBasis::StopLevel,
        ),
        (
            price(4045),
            None,
            CloseReason::TakeProfit,
            ReasonBasis::StopLevel,
        ),
        (
            price(4010),
            None,
            CloseReason::Manual,
            ReasonBasis::NoOtherExplanation,
        ),
        (
            price(3900),
            Some(CloseReason::StopOut),
            CloseReason::StopOut,
            ReasonBasis::Broker,
        ),
    ];
    for (exit, said, reason, basis) in cases {
        let (_dir, stores) = stores().await;
        for store in stores {
            let p = open_position(3, Some("pob-3"), 1_000);
            store_open(&*store, &p).await;
            let close = closing_fill(31, 3, exit, 4_000, said);
            let snap = snapshot(vec![], vec![], vec![close.clone()], 5_000);
            let the_plan = plan_for(&*store, &snap).await;
            let [
                Correction::ClosePosition {
                    exit: record,
                    deals,
                    ..
                },
            ] = the_plan.corrections.as_slice()
            else {
                panic!("expected one close, got {:?}", the_plan.corrections);
            };
            assert_eq!(
                (record.reason, record.basis),
                (reason, basis),
                "exit {exit}"
            );
            assert_eq!(record.price, exit);
            assert_eq!(record.time, Timestamp(4_000));
            let gross = (exit.0 - price(4000).0) / 1000;
            assert_eq!(record.pnl, Money::new(gross - 10 - 300, 2));
            assert_eq!(deals, &vec![close.clone()]);
            // Known up to the snapshot's moment, past the newest deal.
            assert_eq!(the_plan.deals_until, Some(Timestamp(5_000)));

            store.apply(&the_plan, Timestamp(5_001)).await.unwrap();
            let stored = store.position(PositionId(3)).await.unwrap().unwrap();
            assert_eq!(stored.status, PositionStatus::Closed);
            assert_eq!(stored.exit_price, Some(exit));
            assert_eq!(stored.exit_time, Some(Timestamp(4_000)));
            assert_eq!(stored.pnl, Some(Money::new(gross - 310, 2)));
            assert_eq!(stored.close_reason, Some(reason));
            assert!(store.fills(10).await.unwrap().contains(&close));
            assert_eq!(
                store.reconciled_until().await.unwrap(),
                Some(Timestamp(5_000))
            );
            assert!(plan_for(&*store, &snap).await.is_clean());
        }
    }
}

#[tokio::test]
async fn partial_closes_weight_the_exit_and_sum_the_pnl() {
    let store = MemoryTradeStore::new();
    let p = open_position(4, Some("pob-4"), 1_000);
    store_open(&store, &p).await;
    let mut first = closing_fill(41, 4, price(4010), 2_000, None);
    let mut second = closing_fill(42, 4, price(4040), 3_000, Some(CloseReason::TakeProfit));
    for (d, v) in [(&mut first, 25), (&mut second, 75)] {
        d.volume = Volume(v);
        if let Some(c) = d.close.as_mut() {
            c.closed_volume = Volume(v);
        }
    }
    let snap = snapshot(vec![], vec![], vec![second.clone(), first.clone()], 5_000);
    let the_plan = plan_for(&store, &snap).await;
    let [Correction::ClosePosition { exit, deals, .. }] = the_plan.corrections.as_slice() else {
        panic!("{:?}", the_plan.corrections);
    };
    // (4010 * 25 + 4040 * 75) / 100 = 4032.5
    assert_eq!(exit.price, Price(403_250_000));
    assert_eq!(exit.reason, CloseReason::TakeProfit);
    assert_eq!(exit.time, Timestamp(3_000));
    assert_eq!(exit.pnl, Money::new((1_000 - 310) + (4_000 - 310), 2));
    assert_eq!(
        deals.iter().map(|d| d.deal_id).collect::<Vec<_>>(),
        vec![41, 42]
    );
}

#[tokio::test]
async fn gone_without_a_closing_deal_is_closed_unexplained_and_flagged() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let p = open_position(5, Some("pob-5"), 1_000);
        store_open(&*store, &p).await;
        let snap = snapshot(vec![], vec![], vec![], 5_000);
        let the_plan = plan_for(&*store, &snap).await;
        assert!(matches!(
            the_plan.corrections.as_slice(),
            [Correction::CloseUnexplained {
                id: PositionId(5),
                ..
            }]
        ));
        assert_eq!(the_plan.flagged(), 1);
        let report = ReconcileReport::new(&the_plan, false);
        assert_eq!(report.flagged, 1);
        assert!(report.to_string().contains("reason unknown"), "{report}");

        store.apply(&the_plan, Timestamp(5_001)).await.unwrap();
        let stored = store.position(PositionId(5)).await.unwrap().unwrap();
        assert_eq!(stored.status, PositionStatus::Closed);
        assert_eq!(stored.close_reason, None);
        let audit = store.audit_log(1).await.unwrap();
        assert!(audit[0].flagged);
        assert_eq!(audit[0].kind, "close_unexplained");
    }
}

#[tokio::test]
async fn ours_at_the_broker_but_unknown_here_is_adopted() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let b = broker_position(6, Some("pob-41-29399166-L"), None);
        let opening = opening_fill(61, 6, None, 1_000);
        let snap = snapshot(vec![b.clone()], vec![], vec![opening.clone()], 5_000);
        let the_plan = plan_for(&*store, &snap).await;
        let [
            Correction::AdoptPosition {
                position, deals, ..
            },
        ] = the_plan.corrections.as_slice()
        else {
            panic!("{:?}", the_plan.corrections);
        };
        assert_eq!(position.client_order_id, Some(coid("pob-41-29399166-L")));
        assert_eq!(deals, &vec![opening.clone()]);
        store.apply(&the_plan, Timestamp(5_001)).await.unwrap();
        let stored = store.position(PositionId(6)).await.unwrap().unwrap();
        assert_eq!(stored.status, PositionStatus::Open);
        assert_eq!(stored.entry_price, b.entry_price);
        assert_eq!(stored.stop_loss, b.stop_loss);
        assert_eq!(store.fills(10).await.unwrap(), vec![opening]);
        assert!(plan_for(&*store, &snap).await.is_clean());
    }
}

#[tokio::test]
async fn someone_elses_positions_are_reported_as_exposure_and_never_touched() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let manual = broker_position(7, None, None);
        let mut other_bot = broker_position(8, Some("pobx-1"), None);
        other_bot.side = Side::Sell;
        let mut manual2 = broker_position(9, Some("my hedge"), None);
        manual2.volume = Volume(250);
        let snap = snapshot(vec![manual, other_bot, manual2], vec![], vec![], 5_000);
        let the_plan = plan_for(&*store, &snap).await;
        assert!(the_plan.corrections.is_empty());
        assert_eq!(the_plan.foreign.len(), 3);
        let exposure = the_plan.foreign_exposure();
        assert_eq!(exposure.len(), 2);
        assert_eq!(
            (exposure[0].side, exposure[0].volume, exposure[0].positions),
            (Side::Buy, Volume(350), 2)
        );
        assert_eq!(
            (exposure[1].side, exposure[1].volume, exposure[1].positions),
            (Side::Sell, Volume(100), 1)
        );
        store.apply(&the_plan, Timestamp(5_001)).await.unwrap();
        for id in [7, 8, 9] {
            assert!(store.position(PositionId(id)).await.unwrap().is_none());
        }
        let report = ReconcileReport::new(&the_plan, true);
        let text = report.to_string();
        assert!(
            text.contains("Not ours") && text.contains("my hedge") && text.contains("3.5"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["foreign_positions"].as_array().unwrap().len(), 3);
        assert_eq!(json["foreign_exposure"][0]["volume"], "3.5");
    }
}

async fn in_flight(store: &dyn TradeStore, id: &str, status: IntentStatus) {
    store.commit_intent(&intent(id, 1_000)).await.unwrap();
    if status != IntentStatus::Pending {
        store.mark_sent(&coid(id), Timestamp(1_100)).await.unwrap();
    }
    if status == IntentStatus::Accepted {
        let a = persistence::OrderAnswer::Accepted {
            client_order_id: coid(id),
            broker_order_id: 5,
        };
        store.record_answer(&a, Timestamp(1_200)).await.unwrap();
    }
}

fn resolution(the_plan: &persistence::ReconcilePlan) -> Vec<(String, IntentStatus, IntentStatus)> {
    the_plan
        .corrections
        .iter()
        .filter_map(|c| match c {
            Correction::ResolveIntent {
                client_order_id,
                from,
                to,
                ..
            } => Some((client_order_id.to_string(), *from, *to)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn intents_in_flight_are_resolved_from_the_broker_evidence() {
    let (_dir, stores) = stores().await;
    for store in stores {
        in_flight(&*store, "pob-a", IntentStatus::Pending).await; // nothing anywhere
        in_flight(&*store, "pob-b", IntentStatus::Sent).await; // position at the broker
        in_flight(&*store, "pob-c", IntentStatus::Sent).await; // pending order at the broker
        in_flight(&*store, "pob-d", IntentStatus::Accepted).await; // vanished
        in_flight(&*store, "pob-e", IntentStatus::Accepted).await; // still a pending order
        let snap = snapshot(
            vec![broker_position(10, Some("pob-b"), Some("pob-b"))],
            vec![pending_order(300, "pob-c"), pending_order(5, "pob-e")],
            vec![opening_fill(101, 10, Some("pob-b"), 1_150)],
            5_000,
        );
        let the_plan = plan_for(&*store, &snap).await;
        assert_eq!(
            resolution(&the_plan),
            vec![
                (
                    "pob-a".to_owned(),
                    IntentStatus::Pending,
                    IntentStatus::Lost
                ),
                ("pob-b".to_owned(), IntentStatus::Sent, IntentStatus::Filled),
                (
                    "pob-c".to_owned(),
                    IntentStatus::Sent,
                    IntentStatus::Accepted
                ),
                (
                    "pob-d".to_owned(),
                    IntentStatus::Accepted,
                    IntentStatus::Lost
                ),
            ]
        );
        assert!(the_plan.warnings.is_empty(), "{:?}", the_plan.warnings);
        assert!(the_plan.corrections.iter().any(|c| matches!(c, Correction::AdoptPosition { position, .. } if position.id == PositionId(10))));
        store.apply(&the_plan, Timestamp(5_001)).await.unwrap();

        let b = store.intent(&coid("pob-b")).await.unwrap().unwrap();
        assert_eq!(
            (b.status(), b.position_id, b.broker_order_id),
            (IntentStatus::Filled, Some(PositionId(10)), Some(1_101))
        );
        assert_eq!(
            store
                .intent(&coid("pob-c"))
                .await
                .unwrap()
                .unwrap()
                .broker_order_id,
            Some(300)
        );
        assert_eq!(
            store
                .intent(&coid("pob-a"))
                .await
                .unwrap()
                .unwrap()
                .status(),
            IntentStatus::Lost
        );
        assert!(
            store
                .intent(&coid("pob-d"))
                .await
                .unwrap()
                .unwrap()
                .note
                .unwrap()
                .contains("never arrived")
        );
        let left: Vec<String> = store
            .intents_in_flight()
            .await
            .unwrap()
            .iter()
            .map(|i| i.id().to_string())
            .collect();
        assert_eq!(left, vec!["pob-c", "pob-e"]);
        // The same snapshot is now older than the intents it resolved: refused, not guessed.
        let open = store.open_positions().await.unwrap();
        let flight = store.intents_in_flight().await.unwrap();
        assert!(matches!(
            plan(&open, &flight, &snap, &PREFIX),
            Err(ReconcileError::StaleSnapshot { .. })
        ));
        let mut later = snap.clone();
        later.taken_at = Timestamp(6_000);
        assert!(plan_for(&*store, &later).await.is_clean());
    }
}

#[tokio::test]
async fn our_own_closing_order_explains_a_close() {
    let store = MemoryTradeStore::new();
    let p = open_position(11, Some("pob-open"), 1_000);
    store_open(&store, &p).await;
    let mut close_intent = intent("pob-close", 2_000);
    close_intent.request.side = Side::Sell;
    close_intent.request.position_to_close = Some(PositionId(11));
    store.commit_intent(&close_intent).await.unwrap();
    store
        .mark_sent(&coid("pob-close"), Timestamp(2_001))
        .await
        .unwrap();
    let mut close = closing_fill(111, 11, price(4010), 2_002, None);
    close.client_order_id = Some(coid("pob-close"));
    let snap = snapshot(vec![], vec![], vec![close], 5_000);
    let the_plan = plan_for(&store, &snap).await;
    let exit = the_plan.corrections.iter().find_map(|c| match c {
        Correction::ClosePosition { exit, .. } => Some(*exit),
        _ => None,
    });
    assert_eq!(
        exit.map(|e| (e.reason, e.basis)),
        Some((CloseReason::Strategy, ReasonBasis::OwnOrder))
    );
    assert_eq!(
        resolution(&the_plan),
        vec![(
            "pob-close".to_owned(),
            IntentStatus::Sent,
            IntentStatus::Filled
        )]
    );
    // The closed position is not re-adopted from its own deals.
    assert!(
        !the_plan
            .corrections
            .iter()
            .any(|c| matches!(c, Correction::AdoptPosition { .. }))
    );
}

#[tokio::test]
async fn an_unexplained_pending_order_of_ours_is_a_warning() {
    let store = MemoryTradeStore::new();
    let snap = snapshot(vec![], vec![pending_order(9, "pob-ghost")], vec![], 5_000);
    let the_plan = plan_for(&store, &snap).await;
    assert!(the_plan.corrections.is_empty());
    assert_eq!(the_plan.warnings.len(), 1);
    assert!(
        ReconcileReport::new(&the_plan, false)
            .to_string()
            .contains("warning: pending order 9")
    );
}

fn stored_intent(id: &str, status: IntentStatus, updated_at: i64) -> StoredIntent {
    let mut i = intent(id, 1_000);
    i.status = status;
    StoredIntent {
        intent: i,
        updated_at: Timestamp(updated_at),
        broker_order_id: None,
        position_id: None,
        note: None,
    }
}

#[test]
fn unsafe_inputs_fail_closed() {
    let p = open_position(1, Some("pob-1"), 1_000);

    let twice = snapshot(vec![broker_of(&p), broker_of(&p)], vec![], vec![], 5_000);
    assert_eq!(
        plan(&[], &[], &twice, &PREFIX),
        Err(ReconcileError::DuplicateBrokerPosition(PositionId(1)))
    );

    let mut flipped = broker_of(&p);
    flipped.side = Side::Sell;
    let snap = snapshot(vec![flipped], vec![], vec![], 5_000);
    assert!(matches!(
        plan(std::slice::from_ref(&p), &[], &snap, &PREFIX),
        Err(ReconcileError::Contradiction { .. })
    ));

    let i = stored_intent("pob-x", IntentStatus::Sent, 1_100);
    let two = snapshot(
        vec![
            broker_position(1, Some("pob-x"), None),
            broker_position(2, Some("pob-x"), None),
        ],
        vec![],
        vec![],
        5_000,
    );
    assert!(matches!(
        plan(&[], std::slice::from_ref(&i), &two, &PREFIX),
        Err(ReconcileError::AmbiguousIntent { .. })
    ));

    let stale = snapshot(vec![], vec![], vec![], 1_000);
    let err = plan(&[], &[i], &stale, &PREFIX).unwrap_err();
    assert!(matches!(err, ReconcileError::StaleSnapshot { .. }) && err.is_transient());

    let a = closing_fill(1, 1, price(4000), 10, None);
    let mut b = a.clone();
    b.price = price(4001);
    let conflicting = snapshot(vec![], vec![], vec![a.clone(), b], 5_000);
    assert_eq!(
        plan(std::slice::from_ref(&p), &[], &conflicting, &PREFIX),
        Err(ReconcileError::ConflictingDeal(1))
    );
    // The same deal listed twice is harmless.
    let same = snapshot(vec![], vec![], vec![a.clone(), a], 5_000);
    assert_eq!(
        plan(&[p], &[], &same, &PREFIX).unwrap().corrections.len(),
        1
    );
}

/// Found by the year soak: the watermark was the newest deal's time, so with no deal for weeks
/// (the kill switch waiting for a person) every start read those weeks again, two requests a
/// week at five a second, and a start took 38 s by the end of the year.
#[tokio::test]
async fn a_reconciliation_without_new_deals_still_moves_the_watermark_to_its_snapshot() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let close = closing_fill(31, 3, price(4100), 4_000, None);
        let first = snapshot(vec![], vec![], vec![close.clone()], 5_000);
        let the_plan = plan_for(&*store, &first).await;
        store.apply(&the_plan, Timestamp(5_001)).await.unwrap();
        assert_eq!(
            store.reconciled_until().await.unwrap(),
            Some(Timestamp(5_000))
        );
        // Weeks later, nothing new: the next start reads from here, not from the last deal.
        let quiet = snapshot(vec![], vec![], vec![close], 900_000);
        let the_plan = plan_for(&*store, &quiet).await;
        assert_eq!(the_plan.deals_until, Some(Timestamp(900_000)));
        store.apply(&the_plan, Timestamp(900_001)).await.unwrap();
        let watermark = store.reconciled_until().await.unwrap();
        assert_eq!(watermark, Some(Timestamp(900_000)));
        assert_eq!(
            deal_history_start(watermark, &[], &[]),
            Some(Timestamp(900_000))
        );
        // A snapshot older than the watermark never moves it back.
        let stale = snapshot(vec![], vec![], vec![], 6_000);
        let the_plan = plan_for(&*store, &stale).await;
        store.apply(&the_plan, Timestamp(6_001)).await.unwrap();
        assert_eq!(
            store.reconciled_until().await.unwrap(),
            Some(Timestamp(900_000))
        );
    }
}

#[test]
fn deal_history_starts_early_enough_for_every_open_question() {
    let open = [open_position(1, None, 500)];
    let flight = [stored_intent("pob-1", IntentStatus::Sent, 1_100)];
    assert_eq!(deal_history_start(None, &[], &[]), None);
    assert_eq!(deal_history_start(None, &[], &open), Some(Timestamp(500)));
    assert_eq!(
        deal_history_start(Some(Timestamp(2_000)), &flight, &open),
        Some(Timestamp(1_000))
    );
    assert_eq!(
        deal_history_start(Some(Timestamp(800)), &flight, &open),
        Some(Timestamp(800))
    );
}

#[test]
fn the_recovery_rule_for_one_intent() {
    let sent = stored_intent("pob-r", IntentStatus::Sent, 1_100);
    let nothing = snapshot(vec![], vec![], vec![], 5_000);
    assert!(matches!(
        resolve_in_flight(&sent, &nothing, &PREFIX).unwrap(),
        IntentResolution::Lost { .. }
    ));
    // Found by label alone (the broker did not echo the client order id).
    let by_label = snapshot(
        vec![broker_position(3, Some("pob-r"), None)],
        vec![],
        vec![],
        5_000,
    );
    assert!(matches!(
        resolve_in_flight(&sent, &by_label, &PREFIX).unwrap(),
        IntentResolution::Filled {
            position: Some(PositionId(3)),
            ..
        }
    ));
    let waiting = snapshot(vec![], vec![pending_order(12, "pob-r")], vec![], 5_000);
    assert_eq!(
        resolve_in_flight(&sent, &waiting, &PREFIX).unwrap(),
        IntentResolution::Accepted {
            broker_order_id: 12,
            evidence: "pending order 12 at the broker carries this order's id".to_owned()
        }
    );
    let by_deal = snapshot(
        vec![],
        vec![],
        vec![opening_fill(5, 4, Some("pob-r"), 1_200)],
        5_000,
    );
    assert!(matches!(
        resolve_in_flight(&sent, &by_deal, &PREFIX).unwrap(),
        IntentResolution::Filled {
            position: Some(PositionId(4)),
            broker_order_id: Some(1_005),
            ..
        }
    ));
    // Someone else's order with a similar label is not evidence.
    let other = snapshot(
        vec![broker_position(6, Some("pobx-r"), None)],
        vec![],
        vec![],
        5_000,
    );
    assert!(matches!(
        resolve_in_flight(&sent, &other, &PREFIX).unwrap(),
        IntentResolution::Lost { .. }
    ));
    let stale = snapshot(vec![], vec![], vec![], 1_000);
    assert!(matches!(
        resolve_in_flight(&sent, &stale, &PREFIX),
        Err(ReconcileError::StaleSnapshot { .. })
    ));
}

/// Found by the year soak: an opening order filled in three parts; the bot stored the first
/// (the order's answer), the stop-loss closed the whole position before the other two parts'
/// events were read, and reconciliation stored only the closing deal. Every deal of a position
/// closed while away is stored, and its volume is the volume the broker closed.
#[tokio::test]
async fn a_close_while_away_also_stores_the_opening_parts_we_missed() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let mut p = open_position(7, Some("pob-7"), 1_000);
        p.volume = Volume(30);
        let part = |deal_id| {
            let mut f = opening_fill(deal_id, 7, Some("pob-7"), 1_000);
            f.order_id = 1_070;
            f.volume = Volume(30);
            f
        };
        store.record_fill(&part(70), &p).await.unwrap();
        let mut close = closing_fill(73, 7, price(3975), 4_000, None);
        close.volume = Volume(90);
        if let Some(c) = close.close.as_mut() {
            c.closed_volume = Volume(90);
        }
        let snap = snapshot(
            vec![],
            vec![],
            vec![part(70), part(71), part(72), close.clone()],
            5_000,
        );
        let the_plan = plan_for(&*store, &snap).await;
        let [Correction::ClosePosition { exit, deals, .. }] = the_plan.corrections.as_slice()
        else {
            panic!("expected one close, got {:?}", the_plan.corrections);
        };
        assert_eq!(exit.volume, Volume(90));
        assert_eq!(
            deals.iter().map(|d| d.deal_id).collect::<Vec<_>>(),
            vec![70, 71, 72, 73]
        );
        store.apply(&the_plan, Timestamp(5_001)).await.unwrap();
        let mut stored: Vec<i64> = store
            .fills(10)
            .await
            .unwrap()
            .iter()
            .map(|f| f.deal_id)
            .collect();
        stored.sort_unstable();
        assert_eq!(stored, vec![70, 71, 72, 73], "each deal stored once");
        let position = store.position(PositionId(7)).await.unwrap().unwrap();
        assert_eq!(
            (position.status, position.volume),
            (PositionStatus::Closed, Volume(90))
        );
        assert!(plan_for(&*store, &snap).await.is_clean());
    }
}

/// An intent concluded lost whose order reached the broker after all (a late fill, opened and
/// closed since): planned with it in flight again, the position is rebuilt from its deals, the
/// deals are stored, and the intent becomes filled, flagged for a look. Without the broker's
/// evidence a lost intent stays lost.
#[tokio::test]
async fn a_lost_verdict_the_broker_contradicts_gives_way_to_the_broker() {
    let (_dir, stores) = stores().await;
    for store in stores {
        in_flight(&*store, "pob-late", IntentStatus::Sent).await;
        let nothing = snapshot(vec![], vec![], vec![], 2_000);
        let first = plan_for(&*store, &nothing).await;
        store.apply(&first, Timestamp(2_001)).await.unwrap();
        let lost = store.intent(&coid("pob-late")).await.unwrap().unwrap();
        assert_eq!(lost.status(), IntentStatus::Lost);
        let mut still_nothing = nothing.clone();
        still_nothing.taken_at = Timestamp(3_000);
        assert!(
            plan(&[], std::slice::from_ref(&lost), &still_nothing, &PREFIX)
                .unwrap()
                .is_clean()
        );

        let opened = opening_fill(80, 8, Some("pob-late"), 2_500);
        let closed = closing_fill(81, 8, price(3975), 3_000, None);
        let snap = snapshot(vec![], vec![], vec![opened.clone(), closed.clone()], 5_000);
        let the_plan = plan(&[], &[lost], &snap, &PREFIX).unwrap();
        assert_eq!(
            resolution(&the_plan),
            vec![(
                "pob-late".to_owned(),
                IntentStatus::Lost,
                IntentStatus::Filled
            )]
        );
        let resolve = the_plan
            .corrections
            .iter()
            .find(|c| matches!(c, Correction::ResolveIntent { .. }))
            .unwrap();
        assert!(resolve.flagged() && !resolve.check_by_hand(), "{resolve:?}");
        assert!(
            resolve.why().contains("concluded lost earlier"),
            "{}",
            resolve.why()
        );
        store.apply(&the_plan, Timestamp(5_001)).await.unwrap();
        let intent = store.intent(&coid("pob-late")).await.unwrap().unwrap();
        assert_eq!(
            (intent.status(), intent.position_id),
            (IntentStatus::Filled, Some(PositionId(8)))
        );
        let position = store.position(PositionId(8)).await.unwrap().unwrap();
        assert_eq!(position.status, PositionStatus::Closed);
        assert_eq!(position.exit_price, Some(price(3975)));
        let fills = store.fills(10).await.unwrap();
        assert!(
            fills.contains(&opened) && fills.contains(&closed),
            "{fills:?}"
        );
    }
}

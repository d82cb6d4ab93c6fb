//! One suite, three stores: the SQLite store on a file, the same in memory (`open_scratch`, what
//! `reconcile --dry-run` plans against before a first run) and the in-memory fake must behave the
//! same.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use domain::{
    CloseReason, IntentStatus, KillSwitchState, Money, PositionId, PositionStatus,
    SentimentReading, Timestamp, Volume,
};
use persistence::{
    Correction, FillRecorded, OrderAnswer, PositionLevels, PositionQuery, ReconcilePlan,
    SealedTokens, StoreError, TradeStore,
};

/// Declares `$name` three times: on a fresh SQLite file, on a scratch SQLite store in memory, and
/// on the in-memory store.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (_dir, path) = super::temp_db();
                    let store = super::sqlite_store(&path).await;
                    super::within(super::$name(store)).await;
                }
            )*
        }
        mod on_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::within(super::$name(super::memory_store())).await;
                }
            )*
        }
        mod on_scratch {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::within(super::$name(super::scratch_store().await)).await;
                }
            )*
        }
    };
}

conformance!(
    intent_goes_through_its_lifecycle,
    a_decision_is_committed_once,
    illegal_steps_are_refused_and_change_nothing,
    a_duplicate_fill_is_a_reported_no_op,
    an_unprompted_close_updates_the_position,
    a_position_closed_in_several_deals_made_their_sum,
    inconsistent_records_are_refused,
    a_rejection_is_final,
    kill_switch_survives,
    sentiment_replays_what_was_knowable,
    positions_are_listed_newest_first,
    apply_is_all_or_nothing_and_audited,
    the_newest_token_pair_replaces_the_old_one,
);

async fn intent_goes_through_its_lifecycle(store: Arc<dyn TradeStore>) {
    let i = intent("pob-1", 1_000);
    let id = i.request.client_order_id.clone();
    store.commit_intent(&i).await.unwrap();
    assert_eq!(
        store.intent(&id).await.unwrap().unwrap().status(),
        IntentStatus::Pending
    );
    assert_eq!(store.intents_in_flight().await.unwrap().len(), 1);

    store.mark_sent(&id, Timestamp(1_010)).await.unwrap();
    let accepted = OrderAnswer::Accepted {
        client_order_id: id.clone(),
        broker_order_id: 77,
    };
    let out = store
        .record_answer(&accepted, Timestamp(1_020))
        .await
        .unwrap();
    assert_eq!(out.status, IntentStatus::Accepted);
    assert_eq!(out.fill, None);

    let filled = OrderAnswer::Filled {
        client_order_id: id.clone(),
        fill: opening_fill(500, 9, Some("pob-1"), 1_030),
        position: open_position(9, Some("pob-1"), 1_030),
    };
    let out = store
        .record_answer(&filled, Timestamp(1_030))
        .await
        .unwrap();
    assert_eq!(out.status, IntentStatus::Filled);
    assert_eq!(out.fill, Some(FillRecorded::New));

    let stored = store.intent(&id).await.unwrap().unwrap();
    assert_eq!(stored.status(), IntentStatus::Filled);
    assert_eq!(stored.position_id, Some(PositionId(9)));
    assert_eq!(stored.broker_order_id, Some(1_500));
    assert_eq!(stored.updated_at, Timestamp(1_030));
    assert_eq!(stored.intent.request, i.request);
    assert!(store.intents_in_flight().await.unwrap().is_empty());
    assert_eq!(
        store.position(PositionId(9)).await.unwrap(),
        Some(open_position(9, Some("pob-1"), 1_030))
    );
    assert_eq!(
        store.fills(10).await.unwrap(),
        vec![opening_fill(500, 9, Some("pob-1"), 1_030)]
    );
}

async fn a_decision_is_committed_once(store: Arc<dyn TradeStore>) {
    store.commit_intent(&intent("pob-2", 1)).await.unwrap();
    let mut again = intent("pob-2", 2);
    again.reason = "a second decision reusing the id".to_owned();
    let err = store.commit_intent(&again).await.unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateIntent(ref c) if c.as_str() == "pob-2"),
        "{err}"
    );
    // The first decision is kept as it was.
    let stored = store.intent(&coid("pob-2")).await.unwrap().unwrap();
    assert_eq!(stored.intent.reason, "rsi below 30");

    let mut sent = intent("pob-3", 3);
    sent.status = IntentStatus::Sent;
    assert!(matches!(
        store.commit_intent(&sent).await,
        Err(StoreError::InvalidRecord(_))
    ));
    assert!(store.intent(&coid("pob-3")).await.unwrap().is_none());
}

async fn illegal_steps_are_refused_and_change_nothing(store: Arc<dyn TradeStore>) {
    let id = coid("pob-4");
    store.commit_intent(&intent("pob-4", 10)).await.unwrap();
    // A fill before the intent was marked sent breaks the protocol: refused, nothing written.
    let filled = OrderAnswer::Filled {
        client_order_id: id.clone(),
        fill: opening_fill(600, 11, Some("pob-4"), 20),
        position: open_position(11, Some("pob-4"), 20),
    };
    let err = store
        .record_answer(&filled, Timestamp(20))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IllegalTransition {
                from: "pending",
                to: "filled",
                ..
            }
        ),
        "{err}"
    );
    assert!(store.position(PositionId(11)).await.unwrap().is_none());
    assert!(store.fills(10).await.unwrap().is_empty());

    store.mark_sent(&id, Timestamp(15)).await.unwrap();
    let err = store.mark_sent(&id, Timestamp(16)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IllegalTransition {
                from: "sent",
                to: "sent",
                ..
            }
        ),
        "{err}"
    );

    store.record_answer(&filled, Timestamp(20)).await.unwrap();
    let rejected = OrderAnswer::Rejected {
        client_order_id: id.clone(),
        reason: "late".into(),
    };
    let err = store
        .record_answer(&rejected, Timestamp(30))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IllegalTransition {
                from: "filled",
                to: "rejected",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        store.intent(&id).await.unwrap().unwrap().status(),
        IntentStatus::Filled
    );

    let unknown = coid("pob-nope");
    assert!(matches!(
        store.mark_sent(&unknown, Timestamp(1)).await,
        Err(StoreError::UnknownIntent(_))
    ));
}

async fn a_duplicate_fill_is_a_reported_no_op(store: Arc<dyn TradeStore>) {
    let id = coid("pob-5");
    store.commit_intent(&intent("pob-5", 1)).await.unwrap();
    store.mark_sent(&id, Timestamp(2)).await.unwrap();
    let filled = OrderAnswer::Filled {
        client_order_id: id.clone(),
        fill: opening_fill(700, 12, Some("pob-5"), 3),
        position: open_position(12, Some("pob-5"), 3),
    };
    assert_eq!(
        store
            .record_answer(&filled, Timestamp(3))
            .await
            .unwrap()
            .fill,
        Some(FillRecorded::New)
    );
    // The same execution event replayed after a reconnect.
    let again = store.record_answer(&filled, Timestamp(9)).await.unwrap();
    assert_eq!(again.fill, Some(FillRecorded::AlreadyRecorded));
    assert_eq!(again.status, IntentStatus::Filled);
    assert_eq!(
        store.intent(&id).await.unwrap().unwrap().updated_at,
        Timestamp(3)
    );

    // A replayed deal carrying an outdated position state must not overwrite the stored one.
    let mut stale = open_position(12, Some("pob-5"), 3);
    stale.volume = Volume(1);
    assert_eq!(
        store
            .record_fill(&opening_fill(700, 12, Some("pob-5"), 3), &stale)
            .await
            .unwrap(),
        FillRecorded::AlreadyRecorded
    );
    assert_eq!(
        store
            .position(PositionId(12))
            .await
            .unwrap()
            .unwrap()
            .volume,
        Volume(100)
    );
    assert_eq!(store.fills(10).await.unwrap().len(), 1);
}

/// The report: a position closed in two deals stored the last deal's net only. The store
/// settles a closed position from every closing deal, whatever the caller computed.
async fn a_position_closed_in_several_deals_made_their_sum(store: Arc<dyn TradeStore>) {
    let mut position = open_position(21, Some("pob-21"), 100);
    position.volume = Volume(200);
    let mut first_half = opening_fill(900, 21, Some("pob-21"), 100);
    first_half.volume = Volume(100);
    let mut second_half = opening_fill(901, 21, Some("pob-21"), 100);
    second_half.volume = Volume(100);
    position.volume = Volume(100);
    store.record_fill(&first_half, &position).await.unwrap();
    position.volume = Volume(200);
    store.record_fill(&second_half, &position).await.unwrap();
    // Two closing deals: +30.00 and +50.00 gross, each -0.10 swap and -3.00 commission.
    let first_close = closing_fill(902, 21, price(4030), 200, None);
    position.volume = Volume(100);
    store.record_fill(&first_close, &position).await.unwrap();
    let last_close = closing_fill(903, 21, price(4050), 300, None);
    let mut closed = position.clone();
    closed.status = PositionStatus::Closed;
    closed.exit_price = Some(price(4050));
    closed.exit_time = Some(Timestamp(300));
    // What a caller that only knows the last deal computes.
    closed.pnl = Some(Money::new(5_000 - 10 - 300, 2));
    closed.close_reason = Some(CloseReason::Strategy);
    store.record_fill(&last_close, &closed).await.unwrap();
    let stored = store.position(PositionId(21)).await.unwrap().unwrap();
    assert_eq!(stored.status, PositionStatus::Closed);
    assert_eq!(
        stored.pnl,
        Some(Money::new(3_000 - 10 - 300 + 5_000 - 10 - 300, 2)),
        "the sum of both closing deals' gross + swap + commission"
    );
    assert_eq!(stored.exit_price, Some(price(4040)), "volume-weighted exit");
    assert_eq!(stored.exit_time, Some(Timestamp(300)));
    // A replay of the last deal changes nothing.
    assert_eq!(
        store.record_fill(&last_close, &closed).await.unwrap(),
        FillRecorded::AlreadyRecorded
    );
    assert_eq!(store.position(PositionId(21)).await.unwrap(), Some(stored));
}

async fn an_unprompted_close_updates_the_position(store: Arc<dyn TradeStore>) {
    let open = open_position(13, Some("pob-6"), 100);
    assert_eq!(
        store
            .record_fill(&opening_fill(800, 13, Some("pob-6"), 100), &open)
            .await
            .unwrap(),
        FillRecorded::New
    );
    let mut closed = open.clone();
    closed.status = PositionStatus::Closed;
    closed.exit_price = Some(price(3980));
    closed.exit_time = Some(Timestamp(200));
    closed.pnl = Some(Money::new(-2_310, 2));
    closed.close_reason = Some(CloseReason::StopLoss);
    let close = closing_fill(801, 13, price(3980), 200, Some(CloseReason::StopLoss));
    assert_eq!(
        store.record_fill(&close, &closed).await.unwrap(),
        FillRecorded::New
    );
    assert_eq!(store.position(PositionId(13)).await.unwrap(), Some(closed));
    assert!(store.open_positions().await.unwrap().is_empty());
    let fills = store.fills(10).await.unwrap();
    assert_eq!(
        fills.iter().map(|f| f.deal_id).collect::<Vec<_>>(),
        vec![801, 800]
    );
    assert_eq!(fills[0], close);
    assert_eq!(store.fills(1).await.unwrap().len(), 1);
}

async fn inconsistent_records_are_refused(store: Arc<dyn TradeStore>) {
    let err = store
        .record_fill(&opening_fill(900, 14, None, 1), &open_position(15, None, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRecord(_)), "{err}");
    let mut closed = open_position(14, None, 1);
    closed.status = PositionStatus::Closed;
    let err = store
        .record_fill(&opening_fill(900, 14, None, 1), &closed)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRecord(_)), "{err}");
    assert!(store.position(PositionId(14)).await.unwrap().is_none());

    // A fill naming another intent's order.
    store.commit_intent(&intent("pob-7", 1)).await.unwrap();
    store.mark_sent(&coid("pob-7"), Timestamp(2)).await.unwrap();
    let wrong = OrderAnswer::Filled {
        client_order_id: coid("pob-7"),
        fill: opening_fill(901, 16, Some("pob-other"), 3),
        position: open_position(16, Some("pob-7"), 3),
    };
    assert!(matches!(
        store.record_answer(&wrong, Timestamp(3)).await,
        Err(StoreError::InvalidRecord(_))
    ));
    assert_eq!(
        store
            .intent(&coid("pob-7"))
            .await
            .unwrap()
            .unwrap()
            .status(),
        IntentStatus::Sent
    );
}

async fn a_rejection_is_final(store: Arc<dyn TradeStore>) {
    let id = coid("pob-8");
    store.commit_intent(&intent("pob-8", 1)).await.unwrap();
    store.mark_sent(&id, Timestamp(2)).await.unwrap();
    let rejected = OrderAnswer::Rejected {
        client_order_id: id.clone(),
        reason: "NOT_ENOUGH_MONEY".to_owned(),
    };
    assert_eq!(
        store
            .record_answer(&rejected, Timestamp(3))
            .await
            .unwrap()
            .status,
        IntentStatus::Rejected
    );
    let stored = store.intent(&id).await.unwrap().unwrap();
    assert_eq!(stored.note.as_deref(), Some("NOT_ENOUGH_MONEY"));
    assert!(store.intents_in_flight().await.unwrap().is_empty());
    let accepted = OrderAnswer::Accepted {
        client_order_id: id,
        broker_order_id: 1,
    };
    assert!(matches!(
        store.record_answer(&accepted, Timestamp(4)).await,
        Err(StoreError::IllegalTransition { .. })
    ));
}

async fn kill_switch_survives(store: Arc<dyn TradeStore>) {
    assert_eq!(
        store.kill_switch().await.unwrap(),
        KillSwitchState::default()
    );
    let mut state = KillSwitchState {
        equity_peak: Some(Money::new(1_234_567, 2)),
        day_start_equity: Some(Money::new(1_200_000, 2)),
        day: Some(20_415),
        currency: Some("USD".into()),
        ..KillSwitchState::default()
    };
    state.engage("daily loss limit of 3% reached", Timestamp(5_000));
    store.save_kill_switch(&state).await.unwrap();
    assert_eq!(store.kill_switch().await.unwrap(), state);
    state.reset();
    store.save_kill_switch(&state).await.unwrap();
    assert_eq!(store.kill_switch().await.unwrap(), state);
}

fn reading(source: &str, at: i64, score: f64) -> SentimentReading {
    SentimentReading {
        score,
        confidence: 0.5,
        source: source.to_owned(),
        known_at: Timestamp(at),
        item_count: 3,
        summary: format!("{source} at {at}"),
    }
}

async fn sentiment_replays_what_was_knowable(store: Arc<dyn TradeStore>) {
    for r in [
        reading("perplexity", 100, 0.2),
        reading("nitter", 150, -0.4),
        reading("perplexity", 200, 0.6),
        reading("perplexity", 200, 0.7),
    ] {
        store.record_sentiment(&r).await.unwrap();
    }
    assert_eq!(store.sentiment_at(Timestamp(99), None).await.unwrap(), None);
    assert_eq!(
        store.sentiment_at(Timestamp(100), None).await.unwrap(),
        Some(reading("perplexity", 100, 0.2))
    );
    assert_eq!(
        store.sentiment_at(Timestamp(199), None).await.unwrap(),
        Some(reading("nitter", 150, -0.4))
    );
    assert_eq!(
        store
            .sentiment_at(Timestamp(199), Some("perplexity"))
            .await
            .unwrap(),
        Some(reading("perplexity", 100, 0.2))
    );
    // Two readings known at the same instant: the one stored last.
    assert_eq!(
        store.sentiment_at(Timestamp(10_000), None).await.unwrap(),
        Some(reading("perplexity", 200, 0.7))
    );
    assert_eq!(
        store
            .sentiment_at(Timestamp(10_000), Some("x"))
            .await
            .unwrap(),
        None
    );

    let invalid = reading("perplexity", 300, 1.5);
    assert!(matches!(
        store.record_sentiment(&invalid).await,
        Err(StoreError::InvalidRecord(_))
    ));
    let nan = reading("perplexity", 300, f64::NAN);
    assert!(matches!(
        store.record_sentiment(&nan).await,
        Err(StoreError::InvalidRecord(_))
    ));
}

async fn positions_are_listed_newest_first(store: Arc<dyn TradeStore>) {
    for (id, at) in [(1, 10), (2, 30), (3, 20)] {
        store
            .record_fill(
                &opening_fill(id * 10, id, None, at),
                &open_position(id, None, at),
            )
            .await
            .unwrap();
    }
    let mut closed = open_position(3, None, 20);
    closed.status = PositionStatus::Closed;
    closed.exit_price = Some(price(4010));
    closed.exit_time = Some(Timestamp(40));
    // The net of its closing deal: gross 10.00, swap -0.10, commission -3.00.
    closed.pnl = Some(Money::new(690, 2));
    closed.close_reason = Some(CloseReason::Strategy);
    store
        .record_fill(&closing_fill(31, 3, price(4010), 40, None), &closed)
        .await
        .unwrap();

    let all = store
        .positions(PositionQuery {
            status: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|p| p.id.0).collect::<Vec<_>>(),
        vec![2, 3, 1]
    );
    let open = store
        .positions(PositionQuery {
            status: Some(PositionStatus::Open),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(open.iter().map(|p| p.id.0).collect::<Vec<_>>(), vec![2, 1]);
    let closed_only = store
        .positions(PositionQuery {
            status: Some(PositionStatus::Closed),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(closed_only, vec![closed]);
    assert_eq!(
        store
            .positions(PositionQuery {
                status: None,
                limit: 1
            })
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .open_positions()
            .await
            .unwrap()
            .iter()
            .map(|p| p.id.0)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
}

async fn apply_is_all_or_nothing_and_audited(store: Arc<dyn TradeStore>) {
    let p = open_position(20, Some("pob-9"), 1);
    store
        .record_fill(&opening_fill(2_000, 20, Some("pob-9"), 1), &p)
        .await
        .unwrap();
    let before = PositionLevels {
        volume: Volume(100),
        stop_loss: p.stop_loss,
        take_profit: p.take_profit,
    };
    let after = PositionLevels {
        volume: Volume(50),
        ..before
    };
    let sync = Correction::SyncPosition {
        id: PositionId(20),
        before,
        after,
        deals: Vec::new(),
    };
    // The second correction names a position that is not open: the whole plan must fail.
    let stale = Correction::CloseUnexplained {
        id: PositionId(21),
        before,
        noticed_at: Timestamp(5),
    };
    let bad_plan = ReconcilePlan {
        taken_at: Timestamp(5),
        corrections: vec![sync.clone(), stale],
        deals_until: Some(Timestamp(4)),
        ..ReconcilePlan::default()
    };
    let err = store.apply(&bad_plan, Timestamp(6)).await.unwrap_err();
    assert!(matches!(err, StoreError::StalePlan(_)), "{err}");
    assert_eq!(
        store
            .position(PositionId(20))
            .await
            .unwrap()
            .unwrap()
            .volume,
        Volume(100)
    );
    assert!(store.audit_log(10).await.unwrap().is_empty());
    assert_eq!(store.reconciled_until().await.unwrap(), None);

    let plan = ReconcilePlan {
        taken_at: Timestamp(5),
        corrections: vec![sync],
        deals_until: Some(Timestamp(4)),
        ..ReconcilePlan::default()
    };
    assert_eq!(store.apply(&plan, Timestamp(7)).await.unwrap(), 1);
    assert_eq!(
        store
            .position(PositionId(20))
            .await
            .unwrap()
            .unwrap()
            .volume,
        Volume(50)
    );
    let audit = store.audit_log(10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].kind, "sync_position");
    assert_eq!(audit[0].subject, "position 20");
    assert_eq!(audit[0].at, Timestamp(7));
    assert!(
        audit[0].before.contains("open vol 1 ") && audit[0].after.contains("open vol 0.5"),
        "{:?}",
        audit[0]
    );
    assert!(!audit[0].flagged);
    assert_eq!(store.reconciled_until().await.unwrap(), Some(Timestamp(4)));

    // The watermark never moves back.
    let older = ReconcilePlan {
        deals_until: Some(Timestamp(2)),
        ..ReconcilePlan::default()
    };
    assert_eq!(store.apply(&older, Timestamp(8)).await.unwrap(), 0);
    assert_eq!(store.reconciled_until().await.unwrap(), Some(Timestamp(4)));
}

async fn the_newest_token_pair_replaces_the_old_one(store: Arc<dyn TradeStore>) {
    assert_eq!(store.tokens(44).await.unwrap(), None);
    let first = SealedTokens {
        account_id: 44,
        sealed: vec![1, 2, 3],
        source_fingerprint: "fp-env-1".into(),
        issued_at: Timestamp(1_000),
        expires_at: Some(Timestamp(9_000)),
        stored_at: Timestamp(1_001),
    };
    store.save_tokens(&first).await.unwrap();
    assert_eq!(store.tokens(44).await.unwrap(), Some(first.clone()));
    let second = SealedTokens {
        sealed: vec![9; 60],
        issued_at: Timestamp(2_000),
        expires_at: None,
        stored_at: Timestamp(2_001),
        ..first.clone()
    };
    store.save_tokens(&second).await.unwrap();
    assert_eq!(store.tokens(44).await.unwrap(), Some(second.clone()));
    assert_eq!(store.tokens(45).await.unwrap(), None, "kept per account");
    assert!(
        !format!("{second:?}").contains("9, 9"),
        "the sealed bytes are not printed"
    );
}

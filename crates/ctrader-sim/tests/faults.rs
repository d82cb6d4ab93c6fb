//! Each injected fault, seen from a client over real TLS.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestSim, market_buy, place};
use ctrader_proto::openapi::{ProtoOaReconcileReq, ProtoOaSubscribeSpotsReq, ProtoOaTraderReq};
use ctrader_proto::{Payload, ProtoError};
use ctrader_sim::{FaultPlan, SimError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_after_n_messages_the_order_still_executes() {
    let sim = TestSim::start(|_| {}).await;
    let account = sim.account();
    let mut client = sim.authorised().await;
    // Two messages so far (the auths): the third, an order, is carried out but never answered.
    sim.handle.faults().drop_after_messages(Some(3)).unwrap();
    client.send(market_buy(account, 100, None, None)).await;
    assert!(
        client.closed_within(Duration::from_secs(3)).await,
        "connection cut"
    );
    sim.handle.faults().drop_after_messages(None).unwrap();
    let mut client = sim.authorised().await;
    let reply = client
        .request(ProtoOaReconcileReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let Payload::ReconcileRes(res) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(res.position.len(), 1, "the lost order did execute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_every_interval() {
    let sim = TestSim::start(|c| {
        c.faults = FaultPlan {
            drop_every: Some(Duration::from_millis(400)),
            ..FaultPlan::default()
        };
    })
    .await;
    let started = Instant::now();
    let mut client = sim.connect().await;
    assert!(client.closed_within(Duration::from_secs(3)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "not before its time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_delayed() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    sim.handle
        .faults()
        .delay_replies(Some(Duration::from_millis(400)))
        .unwrap();
    let started = Instant::now();
    let reply = client
        .request(ProtoOaTraderReq {
            ctid_trader_account_id: sim.account(),
            ..Default::default()
        })
        .await;
    assert!(matches!(reply, Payload::TraderRes(_)));
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    sim.handle.faults().delay_replies(None).unwrap();
    let started = Instant::now();
    client
        .request(ProtoOaTraderReq {
            ctid_trader_account_id: sim.account(),
            ..Default::default()
        })
        .await;
    assert!(started.elapsed() < Duration::from_millis(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spots_keep_flowing_while_an_order_answer_is_held() {
    // A real server streams quotes while it works an order: the held answer must not stall them.
    let sim = TestSim::start(|c| c.speed = 600.0).await;
    let account = sim.account();
    let mut client = sim.authorised().await;
    client
        .request(ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: account,
            symbol_id: vec![common::PALM],
            ..Default::default()
        })
        .await;
    sim.handle
        .faults()
        .delay_replies(Some(Duration::from_millis(1_500)))
        .unwrap();
    let order = client.send(market_buy(account, 100, None, None)).await;
    let mut spots_before_answer = 0;
    for _ in 0..5_000 {
        let (id, payload) = client.next().await;
        if id.as_deref() == Some(order.as_str()) {
            break;
        }
        spots_before_answer += usize::from(matches!(payload, Payload::SpotEvent(_)));
    }
    assert!(
        spots_before_answer >= 5,
        "only {spots_before_answer} spots arrived while the answer was held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_answer_can_be_held_while_every_other_request_is_answered_at_once() {
    let sim = TestSim::start(|_| {}).await;
    let account = sim.account();
    let mut client = sim.authorised().await;
    sim.handle
        .faults()
        .delay_order_replies(Some(Duration::from_millis(800)))
        .unwrap();
    let started = Instant::now();
    let order = client.send(market_buy(account, 100, None, None)).await;
    let trader = client
        .send(ProtoOaTraderReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let mut answered = Vec::new();
    let mut open_when_trader_answered = None;
    for _ in 0..5_000 {
        let (id, _) = client.next().await;
        if let Some(id) = id
            && (id == order || id == trader)
        {
            if id == trader {
                open_when_trader_answered = Some(sim.handle.open_positions().len());
            }
            answered.push((id == order, started.elapsed()));
            if answered.iter().any(|(is_order, _)| *is_order) {
                break;
            }
        }
    }
    let trader_at = answered.iter().find(|(o, _)| !o).map(|(_, t)| *t);
    let order_at = answered.iter().find(|(o, _)| *o).map(|(_, t)| *t);
    let (Some(trader_at), Some(order_at)) = (trader_at, order_at) else {
        panic!("answers: {answered:?}")
    };
    assert!(trader_at < Duration::from_millis(800), "{trader_at:?}");
    assert!(order_at >= Duration::from_millis(800), "{order_at:?}");
    assert_eq!(
        open_when_trader_answered,
        Some(1),
        "the order was worked at once; only its answer waited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_order_is_rejected_once() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    assert!(sim.handle.faults().reject_next_order("not a code").is_err());
    sim.handle
        .faults()
        .reject_next_order("NOT_ENOUGH_MONEY")
        .unwrap();
    let reply = client
        .request(market_buy(sim.account(), 100, None, None))
        .await;
    let Payload::OrderErrorEvent(error) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(error.error_code, "NOT_ENOUGH_MONEY");
    assert!(sim.handle.open_position_ids().is_empty());
    let events = place(&mut client, market_buy(sim.account(), 100, None, None)).await;
    assert_eq!(events.len(), 2, "only the next order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_events_twice() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    sim.handle
        .faults()
        .duplicate_execution_events(true)
        .unwrap();
    let id = client
        .send(market_buy(sim.account(), 100, None, None))
        .await;
    let mut types = Vec::new();
    for _ in 0..4 {
        let (reply_id, payload) = client
            .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(_)))
            .await;
        assert_eq!(reply_id.as_deref(), Some(id.as_str()));
        let Payload::ExecutionEvent(event) = payload else {
            unreachable!()
        };
        types.push(event.execution_type);
    }
    assert_eq!(types, vec![2, 2, 3, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_closed_in_the_ctrader_app() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let events = place(&mut client, market_buy(sim.account(), 100, None, None)).await;
    let position_id = events[1].position.as_ref().unwrap().position_id;
    sim.handle
        .faults()
        .close_position_externally(position_id)
        .unwrap();
    let (id, accepted) = client
        .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(_)))
        .await;
    assert_eq!(id, None, "unsolicited");
    assert!(matches!(accepted, Payload::ExecutionEvent(e) if e.execution_type == 2));
    let (_, filled) = client
        .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(_)))
        .await;
    let Payload::ExecutionEvent(filled) = filled else {
        unreachable!()
    };
    assert_eq!(filled.execution_type, 3);
    assert_eq!(
        filled.is_server_event, None,
        "a person did it, not the server"
    );
    assert_eq!(filled.position.as_ref().unwrap().position_status, 2);
    assert!(filled.deal.unwrap().close_position_detail.is_some());
    assert!(sim.handle.open_position_ids().is_empty());
    assert!(matches!(
        sim.handle.faults().close_position_externally(position_id),
        Err(SimError::PositionNotOpen(id)) if id == position_id
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_closed_externally_on_a_timer() {
    let sim = TestSim::start(|c| {
        c.faults = FaultPlan {
            external_close_every: Some(Duration::from_millis(300)),
            ..FaultPlan::default()
        };
    })
    .await;
    let mut client = sim.authorised().await;
    place(&mut client, market_buy(sim.account(), 100, None, None)).await;
    let (_, filled) = client
        .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(e) if e.execution_type == 3 && e.deal.as_ref().is_some_and(|d| d.close_position_detail.is_some())))
        .await;
    assert!(matches!(filled, Payload::ExecutionEvent(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_can_be_silenced() {
    let sim = TestSim::start(|c| c.heartbeat_interval = Duration::from_millis(100)).await;
    let mut client = sim.connect().await;
    let (_, first) = client.next().await;
    assert!(matches!(first, Payload::HeartbeatEvent(_)));
    sim.handle.faults().silence_heartbeats(true).unwrap();
    // Let a heartbeat already on its way arrive, then expect silence.
    let _ = client.next_frame_within(Duration::from_millis(150)).await;
    assert!(
        client
            .next_frame_within(Duration::from_millis(600))
            .await
            .is_err(),
        "silence"
    );
    sim.handle.faults().silence_heartbeats(false).unwrap();
    let (_, again) = client.next().await;
    assert!(matches!(again, Payload::HeartbeatEvent(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_on_command() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    sim.handle.faults().send_oversized_frame();
    loop {
        match client.next_frame().await {
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                assert!(matches!(error, ProtoError::FrameTooLarge { .. }), "{error}");
                break;
            }
            None => panic!("closed before the oversized frame"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frame_on_command() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    sim.handle.faults().send_malformed_frame();
    loop {
        match client.next_frame().await {
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                assert!(matches!(error, ProtoError::MalformedEnvelope(_)), "{error}");
                break;
            }
            None => panic!("closed instead of a malformed frame"),
        }
    }
}

/// Authorises the application on a fresh connection and returns the frame after the reply.
async fn frame_after_first_reply(
    sim: &TestSim,
) -> Option<Result<ctrader_proto::ProtoMessage, ProtoError>> {
    let mut client = sim.connect().await;
    let auth = ctrader_proto::openapi::ProtoOaApplicationAuthReq {
        client_id: "palm-oil-sim".into(),
        client_secret: "palm-oil-sim-secret".into(),
        ..Default::default()
    };
    let id = client.send(auth).await;
    let (reply_id, reply) = client.next().await;
    assert_eq!(reply_id.as_deref(), Some(id.as_str()));
    assert!(matches!(reply, Payload::ApplicationAuthRes(_)));
    client.next_frame().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frame_after_n_messages_from_the_plan() {
    let sim = TestSim::start(|c| {
        c.faults = FaultPlan {
            malformed_frame_after_messages: Some(1),
            ..FaultPlan::default()
        };
    })
    .await;
    let bad = frame_after_first_reply(&sim).await.expect("a frame");
    assert!(matches!(bad, Err(ProtoError::MalformedEnvelope(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_after_n_messages_from_the_plan() {
    let sim = TestSim::start(|c| {
        c.faults = FaultPlan {
            oversized_frame_after_messages: Some(1),
            ..FaultPlan::default()
        };
    })
    .await;
    let bad = frame_after_first_reply(&sim).await.expect("a frame");
    assert!(matches!(bad, Err(ProtoError::FrameTooLarge { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_or_disconnected_on_command() {
    let sim = TestSim::start(|_| {}).await;
    let mut quiet = sim.authorised().await;
    let mut told = sim.authorised().await;
    sim.handle.faults().drop_connections();
    assert!(quiet.closed_within(Duration::from_secs(3)).await);
    assert!(told.closed_within(Duration::from_secs(3)).await);

    let mut client = sim.authorised().await;
    sim.handle.faults().disconnect_clients("maintenance");
    let (_, event) = client
        .wait_for(|_, p| matches!(p, Payload::ClientDisconnectEvent(_)))
        .await;
    assert!(
        matches!(event, Payload::ClientDisconnectEvent(e) if e.reason.as_deref() == Some("maintenance"))
    );
    assert!(client.closed_within(Duration::from_secs(3)).await);
    // The broker is still there for the next client.
    let mut client = sim.authorised().await;
    let reply = client
        .request(ProtoOaTraderReq {
            ctid_trader_account_id: sim.account(),
            ..Default::default()
        })
        .await;
    assert!(matches!(reply, Payload::TraderRes(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_can_be_read_and_replaced() {
    let sim = TestSim::start(|_| {}).await;
    let faults = sim.handle.faults();
    assert_eq!(faults.plan(), FaultPlan::default());
    let plan = FaultPlan {
        silence_heartbeats: true,
        reply_delay: Some(Duration::from_millis(5)),
        ..FaultPlan::default()
    };
    faults.set_plan(plan.clone()).unwrap();
    assert_eq!(faults.plan(), plan);
    assert!(
        faults
            .set_plan(FaultPlan {
                drop_after_messages: Some(0),
                ..FaultPlan::default()
            })
            .is_err()
    );
    assert_eq!(faults.plan(), plan, "a bad plan changes nothing");
}

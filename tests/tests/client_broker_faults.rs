//! The real client against the simulator's routing, frequency, order-error and oversized-frame
//! behaviours: reads are retried on `CANT_ROUTE_REQUEST` with backoff (a bounded number of
//! times), an order never is (its outcome is reported uncertain), `REQUEST_FREQUENCY_EXCEEDED`
//! waits out `retryAfter`, an order error without `clientMsgId` still answers its order (matched
//! by the order id the acceptance named), and frames over the size cap end in a named error
//! after a bounded number of reconnections. Every wait is bounded.

// Test helpers panic on purpose: a failed set-up is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::within;
use ctrader_client::{Broker, BrokerError, BrokerEvent, OrderOutcome};
use ctrader_sim::{
    CertificateSource, MarketHours, PALM_OIL_SYMBOL_ID, SimConfig, SimHandle, Simulator,
};
use domain::{ClientOrderId, OrderRequest, Side, SymbolId, Volume};
use tempfile::TempDir;

async fn sim() -> (SimHandle, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = SimConfig {
        certificates: CertificateSource::Directory(dir.path().join("certs")),
        market_hours: MarketHours::AlwaysOpen,
        history: Duration::from_secs(3_600),
        tick_interval: Duration::from_millis(20),
        ..SimConfig::default()
    };
    let sim = within("simulator start", Simulator::start(config))
        .await
        .unwrap();
    (sim, dir)
}

fn buy(id: &str) -> OrderRequest {
    OrderRequest {
        client_order_id: ClientOrderId::new(id).unwrap(),
        symbol: SymbolId(PALM_OIL_SYMBOL_ID),
        side: Side::Buy,
        volume: Volume(100),
        relative_stop_loss: None,
        relative_take_profit: None,
        label: id.to_owned(),
        position_to_close: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_retried_when_the_broker_cannot_route_them_and_orders_are_not() {
    let (sim, _dir) = sim().await;
    let client = common::connect(&sim).await;
    // Two refusals, then an answer: the read succeeds.
    sim.faults().cant_route_next(2).unwrap();
    within("open state", client.open_state()).await.unwrap();
    assert_eq!(sim.faults().plan().cant_route_requests, 0);
    // More refusals than the client tries: a named refusal after five attempts, no more.
    sim.faults().cant_route_next(10).unwrap();
    let err = within("open state", client.open_state()).await.unwrap_err();
    assert!(
        matches!(&err, BrokerError::Refused { code, .. } if code == "CANT_ROUTE_REQUEST"),
        "{err:?}"
    );
    assert_eq!(sim.faults().plan().cant_route_requests, 5);
    sim.faults().cant_route_next(0).unwrap();
    // An order the broker could not route is sent once and reported uncertain.
    sim.faults().cant_route_next(1).unwrap();
    let err = within("order", client.place_order(&buy("rt-1")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::OrderOutcomeUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(sim.faults().plan().cant_route_requests, 0, "sent once");
    // REQUEST_FREQUENCY_EXCEEDED with retryAfter: waited out, then answered.
    sim.faults().frequency_exceeded_next(1).unwrap();
    within("open state", client.open_state()).await.unwrap();
    assert_eq!(sim.faults().plan().frequency_exceeded_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_error_without_client_msg_id_answers_its_order() {
    let (sim, _dir) = sim().await;
    let client = common::connect(&sim).await;
    sim.faults()
        .order_error_without_msg_id("NOT_ENOUGH_MONEY")
        .unwrap();
    let outcome = within("order", client.place_order(&buy("oe-1")))
        .await
        .unwrap();
    let OrderOutcome::Rejected(rejection) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(rejection.code, "NOT_ENOUGH_MONEY");
    // The next order trades normally.
    let outcome = within("order", client.place_order(&buy("oe-2")))
        .await
        .unwrap();
    assert!(matches!(outcome, OrderOutcome::Filled(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_the_cap_end_in_a_named_error_not_a_reconnection_loop() {
    let (sim, _dir) = sim().await;
    let client = common::connect(&sim).await;
    let mut events = client.take_events().unwrap();
    let mut reconnects = 0;
    let stopped = within("the client gives up", async {
        loop {
            sim.faults().send_oversized_frame();
            loop {
                match events.next().await {
                    Some(BrokerEvent::Reconnected) => {
                        reconnects += 1;
                        break;
                    }
                    Some(BrokerEvent::Stopped(e)) => return e,
                    Some(_) => {}
                    None => panic!("the stream ended without a stop"),
                }
            }
        }
    })
    .await;
    assert!(
        matches!(stopped, BrokerError::OversizedFrames { losses: 3, .. }),
        "{stopped:?}"
    );
    assert_eq!(
        reconnects, 2,
        "reconnected after the first two, not the third"
    );
    assert!(stopped.to_string().contains("size cap"), "{stopped}");
}

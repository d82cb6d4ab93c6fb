//! The read-only inspection views tests use to check a client end to end: every order request
//! received (refused ones too), every deal with its order's client id, and the open positions.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestSim, market_buy, place};
use ctrader_proto::Payload;
use ctrader_proto::openapi::ProtoOaNewOrderReq;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_deals_and_positions_are_visible_to_tests() {
    let sim = TestSim::start(|_| {}).await;
    let account = sim.account();
    let mut client = sim.authorised().await;
    assert!(sim.handle.received_orders().is_empty());
    assert!(sim.handle.deals().is_empty());

    let opened = place(&mut client, market_buy(account, 200, Some(500_000), None)).await;
    let position_id = opened
        .last()
        .and_then(|e| e.position.as_ref())
        .map(|p| p.position_id)
        .unwrap();
    let open = sim.handle.open_positions();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, position_id);
    assert_eq!(open[0].volume, 200);
    assert!(open[0].stop_loss.is_some());
    assert_eq!(open[0].label.as_deref(), Some("pob"));

    // A refused request is still recorded as received.
    sim.handle
        .faults()
        .reject_next_order("NOT_ENOUGH_MONEY")
        .unwrap();
    let mut refused = market_buy(account, 100, None, None);
    refused.client_order_id = Some("pob-test-refused".to_owned());
    let reply = client.request(refused).await;
    assert!(matches!(reply, Payload::OrderErrorEvent(_)), "{reply:?}");

    // Closing by an opposite order naming the position.
    let close = ProtoOaNewOrderReq {
        trade_side: 2,
        position_id: Some(position_id),
        client_order_id: Some("pob-test-close".to_owned()),
        ..market_buy(account, 200, None, None)
    };
    place(&mut client, close).await;
    assert!(sim.handle.open_positions().is_empty());

    let received: Vec<Option<String>> = sim
        .handle
        .received_orders()
        .into_iter()
        .map(|o| o.client_order_id)
        .collect();
    assert_eq!(
        received,
        vec![
            Some("pob-test-1".to_owned()),
            Some("pob-test-refused".to_owned()),
            Some("pob-test-close".to_owned()),
        ]
    );
    assert_eq!(
        sim.handle.received_orders()[2].position_id,
        Some(position_id)
    );

    let deals = sim.handle.deals();
    assert_eq!(deals.len(), 2, "{deals:?}");
    assert!(
        deals
            .iter()
            .all(|d| d.position_id == position_id && d.volume == 200)
    );
    assert_eq!(deals[0].client_order_id.as_deref(), Some("pob-test-1"));
    assert!(!deals[0].closing);
    assert_eq!(deals[1].client_order_id.as_deref(), Some("pob-test-close"));
    assert!(deals[1].closing);
    assert!(deals[0].deal_id < deals[1].deal_id);

    // An external close leaves a deal without a client order id.
    let again = place(&mut client, market_buy(account, 100, None, None)).await;
    let second = again
        .last()
        .and_then(|e| e.position.as_ref())
        .map(|p| p.position_id)
        .unwrap();
    sim.handle
        .faults()
        .close_position_externally(second)
        .unwrap();
    let last = sim.handle.deals().pop().unwrap();
    assert_eq!(last.position_id, second);
    assert!(last.closing);
    assert_eq!(last.client_order_id, None);
}

//! Drives the simulator with the frames the official SDK encoded (`testdata/ctrader-golden-frames.json`),
//! sent byte for byte, and checks the replies against the golden replies.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{SATURDAY_NOON, TestSim, decode};
use ctrader_proto::openapi::{ProtoOaSymbolsListReq, ProtoOaSymbolsListRes};
use ctrader_proto::{Payload, ProtoMessage};
use ctrader_sim::{MarketHours, SimConfig, SimCredentials};
use domain::Secret;
use prost::Message as _;

const GOLDEN: &str = include_str!("../../../testdata/ctrader-golden-frames.json");

/// The golden frame called `name`, as bytes on the wire.
fn golden_bytes(name: &str) -> Vec<u8> {
    let frames: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    let frame = frames
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no golden frame {name}"));
    hex::decode(frame["frame_hex"].as_str().unwrap()).unwrap()
}

/// The golden frame called `name`, decoded.
fn golden(name: &str) -> (Option<String>, Payload) {
    let bytes = golden_bytes(name);
    decode(ProtoMessage::decode(&bytes[4..]).unwrap())
}

/// The credentials the golden requests carry.
fn golden_credentials(config: &mut SimConfig) {
    config.credentials = SimCredentials {
        client_id: "1234_abcDEF".into(),
        client_secret: Secret::new("s3cr3t"),
        access_token: Secret::new("tok-XYZ"),
        refresh_token: Secret::new("refresh-XYZ"),
        account_id: 44_556_677,
    };
}

/// Sends the golden application and account authorisations and checks their replies.
async fn golden_login(client: &mut common::TestClient) {
    client.send_raw(&golden_bytes("heartbeat")).await;
    client.send_raw(&golden_bytes("application_auth_req")).await;
    let reply = client.next_frame().await.unwrap().unwrap();
    // Byte for byte what the official server sent.
    assert_eq!(
        reply.encode_to_vec(),
        golden_bytes("application_auth_res")[4..]
    );
    client.send_raw(&golden_bytes("account_auth_req")).await;
    let (id, reply) = client.next().await;
    assert_eq!(id.as_deref(), Some("c-2"));
    let Payload::AccountAuthRes(res) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(res.ctid_trader_account_id, 44_556_677);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_conversation() {
    let sim = TestSim::start(golden_credentials).await;
    let mut client = sim.connect().await;
    golden_login(&mut client).await;

    // The light symbol list describes the palm oil CFD exactly as the golden reply does.
    let reply = client
        .request(ProtoOaSymbolsListReq {
            ctid_trader_account_id: 44_556_677,
            ..Default::default()
        })
        .await;
    let Payload::SymbolsListRes(ours) = reply else {
        panic!("{reply:?}")
    };
    let (_, Payload::SymbolsListRes(theirs)) = golden("symbols_list_res") else {
        panic!()
    };
    let palm = |list: &ProtoOaSymbolsListRes| {
        list.symbol
            .iter()
            .find(|s| s.symbol_id == 310)
            .cloned()
            .unwrap()
    };
    assert_eq!(palm(&ours), palm(&theirs));
    assert_eq!(ours.ctid_trader_account_id, theirs.ctid_trader_account_id);

    client.send_raw(&golden_bytes("subscribe_spots_req")).await;
    let (id, reply) = client.next().await;
    assert_eq!(id.as_deref(), Some("c-4"));
    assert!(matches!(reply, Payload::SubscribeSpotsRes(_)), "{reply:?}");
    let (_, Payload::SpotEvent(golden_spot)) = golden("spot_event_bid_ask") else {
        panic!()
    };
    let (_, spot) = client.next().await;
    let Payload::SpotEvent(spot) = spot else {
        panic!("{spot:?}")
    };
    assert_eq!(
        (spot.ctid_trader_account_id, spot.symbol_id),
        (golden_spot.ctid_trader_account_id, golden_spot.symbol_id)
    );
    assert!(spot.bid.is_some() && spot.ask.is_some() && spot.timestamp.is_some());

    client.send_raw(&golden_bytes("new_order_req_market")).await;
    let (id, accepted) = client
        .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(_)))
        .await;
    assert_eq!(id.as_deref(), Some("c-5"));
    assert!(matches!(accepted, Payload::ExecutionEvent(e) if e.execution_type == 2));
    let (id, filled) = client
        .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(_)))
        .await;
    let (golden_id, Payload::ExecutionEvent(expected)) = golden("execution_event_filled") else {
        panic!()
    };
    assert_eq!(id, golden_id);
    let Payload::ExecutionEvent(filled) = filled else {
        unreachable!()
    };
    assert_eq!(filled.execution_type, expected.execution_type);
    assert_eq!(
        filled.ctid_trader_account_id,
        expected.ctid_trader_account_id
    );
    let (position, golden_position) = (filled.position.unwrap(), expected.position.unwrap());
    let trade = &position.trade_data;
    let golden_trade = &golden_position.trade_data;
    assert_eq!(
        (
            trade.symbol_id,
            trade.volume,
            trade.trade_side,
            &trade.label
        ),
        (
            golden_trade.symbol_id,
            golden_trade.volume,
            golden_trade.trade_side,
            &golden_trade.label
        )
    );
    assert_eq!(position.position_status, golden_position.position_status);
    let distance = |p: &ctrader_proto::openapi::ProtoOaPosition| {
        (
            p.price.unwrap() - p.stop_loss.unwrap(),
            p.take_profit.unwrap() - p.price.unwrap(),
        )
    };
    assert_eq!(
        distance(&position),
        distance(&golden_position),
        "SL 40 and TP 80 from the fill"
    );
    let (order, golden_order) = (filled.order.unwrap(), expected.order.unwrap());
    assert_eq!(order.client_order_id, golden_order.client_order_id);
    assert_eq!(
        (order.order_type, order.order_status),
        (golden_order.order_type, golden_order.order_status)
    );
    let (deal, golden_deal) = (filled.deal.unwrap(), expected.deal.unwrap());
    assert_eq!(
        (deal.volume, deal.filled_volume, deal.deal_status),
        (
            golden_deal.volume,
            golden_deal.filled_volume,
            golden_deal.deal_status
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_order_on_a_closed_market() {
    let sim = TestSim::start(|c| {
        golden_credentials(c);
        c.market_hours = MarketHours::Realistic;
        c.start_time = Some(SATURDAY_NOON);
        c.history = Duration::from_secs(3600);
    })
    .await;
    let mut client = sim.connect().await;
    golden_login(&mut client).await;
    client.send_raw(&golden_bytes("new_order_req_market")).await;
    let (id, reply) = client.next().await;
    assert_eq!(id.as_deref(), Some("c-5"));
    let Payload::OrderErrorEvent(ours) = reply else {
        panic!("{reply:?}")
    };
    let (_, Payload::OrderErrorEvent(theirs)) = golden("order_error_event") else {
        panic!()
    };
    assert_eq!(ours, theirs);
}

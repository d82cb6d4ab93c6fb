//! The partial-fill report, end to end: `palm-oil-bot run` against a simulator that fills
//! every market order in two deals (opening and closing alike). A position opened and closed in
//! two deals each way must store, as its net PnL, the sum of its closing deals' gross profit,
//! swap and commission (the broker's own balance changes), never the last deal's alone; every
//! deal is recorded once with the position's volume following it; and the balance the bot shows
//! follows the broker's. Every wait is bounded.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/http.rs"]
mod http;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::World;
use ctrader_sim::{FaultPlan, PartialFills};
use domain::PositionStatus;
use http::{free_port, get};
use persistence::TradeStore;

#[test]
fn a_position_filled_and_closed_in_parts_stores_the_sum_of_its_closing_deals() {
    let world = World::start(
        60.0,
        15,
        FaultPlan {
            partial_fills: PartialFills::Deals(2),
            ..FaultPlan::default()
        },
    );
    let port = free_port();
    let port_text = port.to_string();
    // Two units (two volume steps) per order, protection far away: the strategy's own closing
    // orders end the positions, and those fill in two deals too.
    let mut bot = world.spawn_bot(&[
        ("ORDER_VOLUME", "2"),
        ("STOP_LOSS", "400"),
        ("TAKE_PROFIT", "800"),
        ("PORT", &port_text),
    ]);
    let deadline = Instant::now() + Duration::from_secs(150);
    // A position of ours the broker opened in two deals and closed in two deals.
    let position = loop {
        assert!(
            Instant::now() < deadline,
            "no position opened and closed in two deals each way within the limit\n{}",
            bot.transcript()
        );
        let deals = world.sim.deals();
        let mut by_position: BTreeMap<i64, (usize, usize)> = BTreeMap::new();
        for d in &deals {
            let entry = by_position.entry(d.position_id).or_default();
            if d.closing {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
        }
        let open: Vec<i64> = world.sim.open_position_ids();
        if let Some((&id, _)) = by_position
            .iter()
            .find(|(id, (o, c))| *o == 2 && *c == 2 && !open.contains(id))
        {
            break id;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let deals: Vec<_> = world
        .sim
        .deals()
        .into_iter()
        .filter(|d| d.position_id == position)
        .collect();
    let broker_net: i64 = deals.iter().filter_map(|d| d.net_pnl).sum();
    let last_net = deals.iter().rev().find_map(|d| d.net_pnl).unwrap();
    assert_ne!(
        broker_net, last_net,
        "two closing deals with results of their own"
    );
    // The store catches up with the broker: both closing deals recorded, the position settled.
    world.assert_store_matches_broker(Duration::from_secs(30), "after the partial fills", &bot);
    let stored = world
        .read_store(async |store| store.position(domain::PositionId(position)).await)
        .unwrap()
        .unwrap()
        .expect("the position is stored");
    assert_eq!(stored.status, PositionStatus::Closed);
    let pnl = stored.pnl.expect("a closed position has its net PnL");
    assert_eq!(
        pnl.rescale(2).unwrap().minor,
        broker_net,
        "net PnL is the sum of every closing deal's gross + swap + commission"
    );
    let fills = world
        .read_store(async |store| store.fills(usize::MAX).await)
        .unwrap()
        .unwrap();
    let ours: Vec<_> = fills
        .iter()
        .filter(|f| f.position_id.0 == position)
        .collect();
    assert_eq!(ours.len(), 4, "every deal recorded once: {ours:?}");
    let closing_volume: i64 = ours
        .iter()
        .filter_map(|f| f.close.as_ref().map(|c| c.closed_volume.raw()))
        .sum();
    assert_eq!(closing_volume, 200);

    // The balance shown follows the broker's, once nothing moves.
    world.sim.freeze_prices();
    let balance = loop {
        assert!(
            Instant::now() < deadline + Duration::from_secs(30),
            "the status balance never matched the broker's\n{}",
            bot.transcript()
        );
        let broker = world.sim.balance().unwrap();
        let shown = get(port, "/api/status").and_then(|(code, body)| {
            (code == 200).then(|| serde_json::from_str::<serde_json::Value>(&body).ok())?
        });
        let shown = shown.and_then(|s| s["live"]["account"]["balance"].as_f64());
        if shown.is_some_and(|b| (b - broker as f64 / 100.0).abs() < 0.005) {
            break broker;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(balance, 1_000_000, "the balance moved with the closes");
    // The closed trade's log line names the summed PnL.
    assert!(
        bot.lines().iter().any(|l| l
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with(&format!("position {position} closed")))),
        "{}",
        bot.transcript()
    );
    bot.terminate(Duration::from_secs(20));
}

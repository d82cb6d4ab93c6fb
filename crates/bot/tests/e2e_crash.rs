//! Crash test: `palm-oil-bot run` is killed with SIGKILL at seeded random moments while it trades
//! against a simulated broker (some kills land right after an order left), and restarted on the
//! same database each time. After every restart, once it has reconciled, the store must match the
//! broker: the same open positions (ids and volumes), every deal recorded exactly once, every
//! order preceded by a durable intent, no client order id sent twice, no decision ordered twice.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{ORDER_SENT, RECONCILED, Rng, World};
use ctrader_sim::FaultPlan;
use domain::IntentStatus;

const CYCLES: usize = 22;
const SEED: u64 = 0x00C0_FFEE_2026;
/// Stops far enough that positions close by the strategy's own orders, not while the bot is
/// down: a position opened by an in-flight order and closed by its stop before the restart is
/// the subject of its own test (its deals carry no client order id).
const PROTECTION: &[(&str, &str)] = &[("STOP_LOSS", "150"), ("TAKE_PROFIT", "300")];

#[test]
fn sigkill_at_random_moments_never_loses_or_duplicates_a_trade() {
    let started = Instant::now();
    let world = World::start(240.0, 11, FaultPlan::default());
    let mut rng = Rng::new(SEED);
    let mut kills_in_flight = 0;
    for cycle in 0..CYCLES {
        let mut bot = world.spawn_bot(PROTECTION);
        bot.expect_message(0, RECONCILED, Duration::from_secs(30));
        let context = format!("cycle {cycle} (seed {SEED:#x})");
        world.assert_store_matches_broker(Duration::from_secs(8), &context, &bot);
        world.assert_no_duplicate_orders();

        // Every third cycle kills right after an order left, while the broker holds its answer:
        // the order executes, the bot never hears of it.
        let mut in_flight = None;
        if cycle % 3 == 2 {
            world
                .sim
                .faults()
                .delay_replies(Some(Duration::from_millis(1_500)))
                .unwrap();
            let from = bot.line_count();
            if let Some(at) = bot.wait_for_message(from, ORDER_SENT, Duration::from_secs(8)) {
                std::thread::sleep(rng.millis(0, 15));
                in_flight = bot.lines()[at].field("client_order_id");
            }
        } else {
            std::thread::sleep(rng.millis(300, 4_000));
        }
        bot.kill();
        world.sim.faults().delay_replies(None).unwrap();
        if let Some(id) = in_flight {
            let status = world.intent_status(&id);
            if status == Some(IntentStatus::Sent) {
                kills_in_flight += 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "{context}: the crash test overran its time budget"
        );
    }

    // A last start after the last kill: the books must match once more, and trading happened.
    let mut bot = world.spawn_bot(PROTECTION);
    bot.expect_message(0, RECONCILED, Duration::from_secs(30));
    world.assert_store_matches_broker(Duration::from_secs(8), "after the last restart", &bot);
    let orders = world.assert_no_duplicate_orders();
    let status = bot.terminate(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", bot.transcript());
    assert!(
        orders >= CYCLES / 2,
        "the bot traded too little to test anything: {orders} orders"
    );
    assert!(
        kills_in_flight >= 3,
        "only {kills_in_flight} kills landed while an order was in flight"
    );
    let deals = world.sim.deals();
    let closes = deals.iter().filter(|d| d.closing).count();
    assert!(closes >= 3, "only {closes} positions were closed");
    eprintln!(
        "{CYCLES} kills ({kills_in_flight} with an order in flight), {orders} orders, {} deals, {closes} closes",
        deals.len()
    );
}

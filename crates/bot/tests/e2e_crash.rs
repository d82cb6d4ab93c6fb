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
    let mut kills_after_order = 0;
    for cycle in 0..CYCLES {
        let mut bot = world.spawn_bot(PROTECTION);
        bot.expect_message(0, RECONCILED, Duration::from_secs(30));
        let context = format!("cycle {cycle} (seed {SEED:#x})");
        world.assert_store_matches_broker(Duration::from_secs(8), &context, &bot);
        world.assert_no_duplicate_orders();

        // Every third cycle kills right after an order leaves, while its answer is in flight.
        if cycle % 3 == 2 {
            let from = bot.line_count();
            if bot
                .wait_for_message(from, ORDER_SENT, Duration::from_secs(6))
                .is_some()
            {
                std::thread::sleep(rng.millis(0, 15));
                kills_after_order += 1;
            }
        } else {
            std::thread::sleep(rng.millis(300, 4_000));
        }
        bot.kill();
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
        kills_after_order >= 3,
        "only {kills_after_order} kills landed right after an order"
    );
    let deals = world.sim.deals();
    let closes = deals.iter().filter(|d| d.closing).count();
    assert!(closes >= 3, "only {closes} positions were closed");
    eprintln!(
        "{CYCLES} kills ({kills_after_order} right after an order), {orders} orders, {} deals, {closes} closes",
        deals.len()
    );
}

//! A broker whose clock runs ahead of the bot's (an accelerated simulator, as `demo` uses, or a
//! server clock a little ahead of this machine's): a restart after a crash with an order in
//! flight must still reconcile and trade, not refuse for good.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ORDER_SENT, RECONCILED, World};
use ctrader_sim::FaultPlan;

#[test]
fn a_crash_with_an_order_in_flight_is_recovered_when_the_broker_clock_is_ahead() {
    let world = World::start_at(240.0, 51, FaultPlan::default(), None);
    let wide = [("STOP_LOSS", "150"), ("TAKE_PROFIT", "300")];
    let mut bot = world.spawn_bot(&wide);
    bot.expect_message(0, RECONCILED, Duration::from_secs(30));
    world
        .sim
        .faults()
        .delay_replies(Some(Duration::from_secs(2)))
        .unwrap();
    bot.expect_message(0, ORDER_SENT, Duration::from_secs(30));
    bot.kill();
    world.sim.faults().delay_replies(None).unwrap();

    let mut bot = world.spawn_bot(&wide);
    if bot
        .wait_for_message(0, RECONCILED, Duration::from_secs(30))
        .is_none()
    {
        let status = bot.wait_exit(Duration::from_secs(5));
        panic!(
            "the restart did not reconcile (exit {:?}):\n{}",
            status.code(),
            bot.transcript()
        );
    }
    world.assert_store_matches_broker(Duration::from_secs(8), "restart, clock ahead", &bot);
    assert_eq!(bot.terminate(Duration::from_secs(20)).code(), Some(0));
}

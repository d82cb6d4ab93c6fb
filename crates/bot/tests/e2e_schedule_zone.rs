//! A broker whose schedule time zone has daylight saving (Europe/London): the bot converts its
//! hours with the time-zone database and trades, instead of refusing the symbol and exiting 3.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ORDER_SENT, RECONCILED, World};
use ctrader_sim::FaultPlan;
use domain::{Clock, SystemClock, Timestamp};

#[test]
fn a_broker_reporting_london_time_is_traded_not_refused() {
    let behind = Timestamp(SystemClock.now().millis() - Timestamp::DAY_MS);
    let world = World::start_configured(240.0, 61, FaultPlan::default(), Some(behind), |c| {
        c.schedule_time_zone = "Europe/London".to_owned();
    });
    let mut bot = world.spawn_bot(&[]);
    if bot
        .wait_for_message(0, RECONCILED, Duration::from_secs(30))
        .is_none()
    {
        let status = bot.wait_exit(Duration::from_secs(5));
        panic!(
            "the bot did not start trading against a broker in London time (exit {:?}):\n{}",
            status.code(),
            bot.transcript()
        );
    }
    bot.expect_message(0, ORDER_SENT, Duration::from_secs(60));
    world.assert_store_matches_broker(Duration::from_secs(8), "London schedule", &bot);
    assert_eq!(bot.terminate(Duration::from_secs(20)).code(), Some(0));
}

//! A closed market is announced with when it opens next, instead of a silent wait (issue 14,
//! report 10: `run` against a simulator on realistic hours traded nothing and said nothing).

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/engine_harness.rs"]
mod harness;

use std::sync::Arc;

use ctrader_client::FakeBroker;
use domain::{Money, Timestamp, TradingSchedule, WeeklySession};
use harness::{Harness, history, spec, wait_until};

#[tokio::test]
async fn a_closed_market_says_when_it_opens_next() {
    let mut h = Harness::new();
    let now = Timestamp(harness::T0);
    // One weekly session, starting two hours from now and lasting one.
    let start = u32::try_from((now.second_of_week() + 7_200) % (7 * 86_400)).unwrap();
    let mut closed = spec();
    closed.schedule = TradingSchedule {
        sessions: vec![WeeklySession {
            start_second: start,
            end_second: start + 3_600,
        }],
        holidays: Vec::new(),
        changes: Vec::new(),
    };
    let broker = Arc::new(FakeBroker::new(h.clock.clone(), Money::new(1_000_000, 2)));
    broker.add_symbol(closed);
    broker.add_bars(history());
    h.broker = broker;
    h.run().await;
    let opens = now.plus_millis(2 * Timestamp::HOUR_MS);
    let expected = format!("market closed: PALMOIL opens next at {opens} (in 2.0 h");
    wait_until("the closed market is announced", || h.has_event(&expected)).await;
    // Said once, not at every tick.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let said = h
        .events()
        .iter()
        .filter(|e| e.starts_with("market closed"))
        .count();
    assert_eq!(said, 1, "{:?}", h.events());
    h.stop().await;
}

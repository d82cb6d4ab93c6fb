//! The engine with no sentiment publisher (what `run` and `demo` do when no sentiment service
//! could be built): its clock tick must still close bars and retry reconciliation.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/engine_harness.rs"]
mod engine_harness;

use domain::Timestamp;
use engine_harness::*;

#[tokio::test]
async fn without_a_sentiment_publisher_the_tick_still_closes_bars() {
    let mut h = Harness::new();
    h.sentiment = None;
    h.run().await;
    h.bar(0, 4_100).await;
    // No quote after bar 0: only the engine's one-second tick can close it.
    h.clock.set(Timestamp(T0 + MIN + 500));
    let broker = h.broker.clone();
    wait_until("the tick to close bar 0 and the entry to be sent", || {
        broker.orders_sent().len() == 1
    })
    .await;
    h.stop().await;
}

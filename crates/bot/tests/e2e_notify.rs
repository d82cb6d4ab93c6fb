//! `palm-oil-bot run` against the simulator tells a local webhook (a mock on loopback) that it
//! started and that it stopped cleanly, with the bearer token from the environment, and never
//! writes the webhook's URL or token into its log.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{RECONCILED, World};
use ctrader_sim::FaultPlan;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[test]
fn run_notifies_its_start_and_clean_stop_without_logging_the_secrets() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hooks/secret-path-123"))
            .and(header("authorization", "Bearer hook-token-456"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        server
    });
    let url = format!("{}/hooks/secret-path-123", server.uri());
    let world = World::start(60.0, 5, FaultPlan::default());
    let mut bot = world.spawn_bot(&[
        ("NOTIFY_WEBHOOK_URL", url.as_str()),
        ("NOTIFY_WEBHOOK_TOKEN", "hook-token-456"),
        ("NOTIFY_EVENTS_OFF", "order_filled,position_closed"),
    ]);
    bot.expect_message(0, RECONCILED, Duration::from_secs(30));
    let status = bot.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", bot.transcript());
    let bodies: Vec<serde_json::Value> = rt
        .block_on(server.received_requests())
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let kinds: Vec<&str> = bodies.iter().filter_map(|b| b["kind"].as_str()).collect();
    assert_eq!(
        kinds.first(),
        Some(&"started"),
        "{kinds:?}\n{}",
        bot.transcript()
    );
    assert_eq!(
        kinds.last(),
        Some(&"stopped"),
        "{kinds:?}\n{}",
        bot.transcript()
    );
    assert!(!kinds.contains(&"order_filled"), "switched off: {kinds:?}");
    let stopped = bodies.last().unwrap();
    assert_eq!(stopped["severity"], "info");
    assert_eq!(stopped["title"], "stopped cleanly");
    let log = bot.transcript();
    assert!(log.contains("operator notifications on"), "{log}");
    for secret in ["secret-path-123", "hook-token-456"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

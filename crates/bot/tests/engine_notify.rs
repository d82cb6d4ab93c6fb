//! Operator notifications from the running engine, delivered to local mocks on loopback: a fill
//! and a close carrying its PnL in the account's currency, a storm of short disconnects that
//! says nothing while one long outage says one thing (and its recovery one more), and a hanging
//! endpoint that does not hold up trading. Waits go through a recording sleeper; every wait in
//! the test is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/engine_harness.rs"]
mod engine_harness;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{Clock, Secret};
use engine_harness::*;
use notify::{DeliveryConfig, Destination, Notifier};
use persistence::TradeStore;
use scraper::{HttpClient, HttpPolicy, RecordingSleeper};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn notifier(h: &Harness, url: String, timeout: Duration) -> Notifier {
    let client = HttpClient::new(HttpPolicy {
        allowed_hosts: vec!["127.0.0.1".to_owned()],
        allow_plain_http_loopback: true,
        request_timeout: timeout,
        ..HttpPolicy::default()
    })
    .unwrap();
    let clock: Arc<dyn Clock> = h.clock.clone();
    Notifier::start(
        vec![Destination::Webhook {
            url: Secret::new(url),
            bearer: None,
        }],
        client,
        DeliveryConfig::default(),
        BTreeSet::new(),
        clock,
        Arc::new(RecordingSleeper::new()),
        None,
    )
}

/// A harness whose notifier posts to `url`, giving up on a message after `timeout`.
fn notifying(url: String, timeout: Duration) -> Harness {
    let mut h = Harness::new();
    h.obs.notifier = notifier(&h, url, timeout);
    h
}

/// A harness whose notifier posts to a mock webhook that accepts everything.
async fn with_webhook() -> (MockServer, Harness) {
    let server = webhook().await;
    let h = notifying(format!("{}/hook", server.uri()), Duration::from_secs(10));
    (server, h)
}

/// Stops the engine and waits (bounded) until every message has been delivered.
async fn stop_and_flush(h: &mut Harness) {
    h.stop().await;
    assert!(h.obs.notifier.flush(WAIT).await);
}

/// The first message of `kind` among `bodies`.
fn first_of<'a>(bodies: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    bodies.iter().find(|b| b["kind"] == kind).unwrap()
}

async fn webhook() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    server
}

async fn received(server: &MockServer) -> Vec<serde_json::Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

async fn kinds(server: &MockServer) -> Vec<String> {
    received(server)
        .await
        .iter()
        .map(|b| b["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits (bounded) until the mock has received a message of `kind`.
async fn wait_for_kind(server: &MockServer, kind: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !kinds(server).await.iter().any(|k| k == kind) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {kind} notification; got {:?}",
            kinds(server).await
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_fill_and_a_close_with_its_pnl_reach_the_operator() {
    let (server, mut h) = with_webhook().await;
    h.run().await;
    wait_for_kind(&server, "started").await;
    h.cross_down().await;
    wait_for_kind(&server, "order_filled").await;
    let position = h.broker.positions()[0].id;
    h.quote_at(MIN + 30_000, 4_150).await;
    h.broker.close_externally(position).unwrap();
    let store = h.store.clone();
    let closed = async {
        while !store.open_positions().await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(WAIT, closed)
        .await
        .expect("the close is recorded");
    wait_for_kind(&server, "position_closed").await;
    stop_and_flush(&mut h).await;

    let bodies = received(&server).await;
    let close = first_of(&bodies, "position_closed");
    let stored = h.store.position(position).await.unwrap().unwrap();
    let pnl = stored.pnl.expect("the close has its PnL");
    assert_eq!(close["fields"]["pnl"], pnl.to_f64(), "{close}");
    let currency = h.obs.status.live().account.unwrap().currency;
    assert_eq!(close["fields"]["currency"], currency.as_str());
    assert!(
        close["title"]
            .as_str()
            .unwrap()
            .contains(&format!("PnL {pnl} {currency}")),
        "{close}"
    );
    let fill = first_of(&bodies, "order_filled");
    assert_eq!(fill["fields"]["side"], "buy");
    assert!(fill["fields"]["price"].is_number());
    // The clean stop is told too.
    assert_eq!(bodies.last().unwrap()["kind"], "stopped");
}

#[tokio::test]
async fn short_disconnects_say_nothing_and_a_long_outage_says_one_thing_and_its_end() {
    let (server, mut h) = with_webhook().await;
    h.run().await;
    h.bar(0, 4_190).await;
    // A storm: fifty drops, each back before NOTIFY_DISCONNECT_AFTER (the clock stands still).
    for _ in 0..50 {
        h.broker.set_connected(false);
        h.broker.set_connected(true);
    }
    h.settle().await;
    let metrics = h.obs.metrics.clone();
    wait_until("fifty reconnects handled", || {
        metric(
            &metrics.encode().unwrap(),
            "palm_oil_bot_broker_reconnects_total",
        ) == Some(50.0)
    })
    .await;
    // One long outage: the next tick finds the link down past the limit (120 s by default).
    h.broker.set_connected(false);
    let status = h.obs.status.clone();
    wait_until("the engine to see the link down", || {
        status.live().connection == observability::ConnectionState::Connecting
    })
    .await;
    h.clock.advance(121_000);
    wait_for_kind(&server, "disconnected").await;
    h.broker.set_connected(true);
    wait_for_kind(&server, "reconnected").await;
    stop_and_flush(&mut h).await;
    let kinds = kinds(&server).await;
    let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
    assert_eq!(count("disconnected"), 1, "{kinds:?}");
    assert_eq!(count("reconnected"), 1, "{kinds:?}");
    let bodies = received(&server).await;
    let down = first_of(&bodies, "disconnected");
    assert!(
        down["title"]
            .as_str()
            .unwrap()
            .starts_with("broker link down for 12"),
        "{down}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trading_goes_on_while_the_notification_endpoint_hangs() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    {
        let held = Arc::clone(&held);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                held.lock().unwrap().push(socket);
            }
        });
    }
    let mut h = notifying(
        format!("http://127.0.0.1:{port}/hook"),
        Duration::from_secs(3_600),
    );
    h.run().await;
    // The start message is stuck in flight at the endpoint.
    let notifier = h.obs.notifier.clone();
    wait_until("the start message to hang", || {
        notifier.stats()[0].1.in_flight
    })
    .await;
    // Quotes keep being handled, bars close, the decision becomes an order and a fill.
    h.cross_down().await;
    for i in 2..20 {
        h.bar(i, 4_100).await;
    }
    assert_eq!(h.broker.orders_sent().len(), 1);
    assert_eq!(h.store.open_positions().await.unwrap().len(), 1);
    let live = h.obs.status.live();
    assert!(live.position.is_some());
    assert!(
        live.last_quote
            .is_some_and(|q| q.received_at_ms > T0 + 19 * MIN)
    );
    // ... while delivery is still hung on the first message, the fill waiting behind it.
    let stats = h.obs.notifier.stats()[0].1;
    assert!(stats.in_flight);
    assert_eq!(stats.sent, 0);
    assert!(stats.queued >= 1, "{stats:?}");
    h.stop().await;
}

#[tokio::test]
async fn time_based_alerts_fire_once_each_and_the_day_ends_with_a_summary() {
    let (server, mut h) = with_webhook().await;
    h.obs.alerts.sentiment_max_age = Some(Duration::from_secs(600));
    h.obs.alerts.token_expires_at = Some(domain::Timestamp(T0 + 30 * MIN));
    h.run().await;
    wait_for_kind(&server, "started").await;
    // Twenty minutes on: no sentiment reading ever came, and the token is ten minutes from expiry.
    h.quote_at(20 * MIN + 1_000, 4_190).await;
    wait_for_kind(&server, "sentiment_unavailable").await;
    wait_for_kind(&server, "token_near_expiry").await;
    // The UTC day turns (T0 is midnight): yesterday's summary.
    h.quote_at(domain::Timestamp::DAY_MS + 1_000, 4_190).await;
    wait_for_kind(&server, "daily_summary").await;
    h.quote_at(domain::Timestamp::DAY_MS + 2 * MIN, 4_190).await;
    stop_and_flush(&mut h).await;
    let bodies = received(&server).await;
    let count = |k: &str| bodies.iter().filter(|b| b["kind"] == k).count();
    assert_eq!(count("sentiment_unavailable"), 1);
    assert_eq!(count("token_near_expiry"), 1);
    assert_eq!(count("daily_summary"), 1);
    let summary = first_of(&bodies, "daily_summary");
    assert_eq!(summary["fields"]["date"], "2025-11-24");
    assert_eq!(summary["fields"]["trades"], 0);
    assert!(summary["fields"]["equity"].is_number());
    assert!(
        summary["title"].as_str().unwrap().contains("equity 10000"),
        "{summary}"
    );
}

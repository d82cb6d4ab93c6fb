//! Delivery against local mocks of each service on loopback: the request each one expects, a
//! storm merged into one message, a 429 honouring its wait, 5xx retried, an unreachable
//! endpoint counted as failed without holding up the others, and a hanging endpoint that
//! never blocks the sender. Waits go through a recording sleeper (no real sleeping, no timing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{FixedClock, Secret, Timestamp};
use notify::{
    DeliveryConfig, DeliveryOutcome, DeliveryStats, Destination, Notification, NotificationKind,
    Notifier, Severity,
};
use scraper::{HttpClient, HttpPolicy, RecordingSleeper};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Longest a test waits for delivery before failing.
const WAIT: Duration = Duration::from_secs(10);

fn client(timeout: Duration) -> HttpClient {
    HttpClient::new(HttpPolicy {
        allowed_hosts: vec!["127.0.0.1".to_owned()],
        allow_plain_http_loopback: true,
        request_timeout: timeout,
        connect_timeout: Duration::from_secs(2),
        ..HttpPolicy::default()
    })
    .unwrap()
}

fn config() -> DeliveryConfig {
    DeliveryConfig {
        max_attempts: 3,
        ..DeliveryConfig::default()
    }
}

type Seen = Arc<Mutex<Vec<(&'static str, DeliveryOutcome)>>>;

fn start(
    destinations: Vec<Destination>,
    off: &[NotificationKind],
) -> (Notifier, RecordingSleeper, Seen) {
    start_with(destinations, off, Duration::from_secs(10))
}

fn start_with(
    destinations: Vec<Destination>,
    off: &[NotificationKind],
    timeout: Duration,
) -> (Notifier, RecordingSleeper, Seen) {
    let sleeper = RecordingSleeper::new();
    let seen: Seen = Arc::default();
    let observer = {
        let seen = Arc::clone(&seen);
        Arc::new(move |d: &'static str, o: DeliveryOutcome| seen.lock().unwrap().push((d, o)))
    };
    let notifier = Notifier::start(
        destinations,
        client(timeout),
        config(),
        off.iter().copied().collect::<BTreeSet<_>>(),
        Arc::new(FixedClock::new(Timestamp(1_764_000_000_000))),
        Arc::new(sleeper.clone()),
        Some(observer),
    );
    (notifier, sleeper, seen)
}

fn stats(n: &Notifier, name: &str) -> DeliveryStats {
    n.stats()
        .into_iter()
        .find(|(d, _)| *d == name)
        .map(|(_, s)| s)
        .unwrap()
}

fn closed(at: i64) -> Notification {
    Notification::new(
        NotificationKind::PositionClosed,
        Severity::Info,
        Timestamp(at),
        "position 7 closed (take_profit): PnL 12.50 USD",
    )
    .key(None)
    .field("pnl", 12.5)
    .field("currency", "USD")
}

fn webhook(server: &MockServer) -> Destination {
    Destination::Webhook {
        url: Secret::new(format!("{}/hooks/ops", server.uri())),
        bearer: Some(Secret::new("hook-token-1")),
    }
}

async fn bodies(server: &MockServer) -> Vec<serde_json::Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn each_service_gets_the_request_it_expects() {
    let server = MockServer::start().await;
    for p in [
        "/hooks/ops",
        "/botT0KEN:abc/sendMessage",
        "/api/webhooks/1/disc-tok",
        "/services/T1/B2/slack-tok",
    ] {
        Mock::given(method("POST"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"ok\":true}"))
            .mount(&server)
            .await;
    }
    let (notifier, _, _) = start(
        vec![
            webhook(&server),
            Destination::Telegram {
                base_url: server.uri(),
                bot_token: Secret::new("T0KEN:abc"),
                chat_id: Secret::new("-1001234"),
            },
            Destination::Discord {
                url: Secret::new(format!("{}/api/webhooks/1/disc-tok", server.uri())),
            },
            Destination::Slack {
                url: Secret::new(format!("{}/services/T1/B2/slack-tok", server.uri())),
            },
        ],
        &[],
    );
    notifier.send(closed(1_764_000_000_000));
    assert!(notifier.flush(WAIT).await);

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 4, "one request per destination");
    let by_path = |p: &str| {
        let r = requests.iter().find(|r| r.url.path() == p).unwrap();
        (
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap(),
            r.headers.clone(),
        )
    };
    let (hook, headers) = by_path("/hooks/ops");
    assert_eq!(hook["kind"], "position_closed");
    assert_eq!(hook["severity"], "info");
    assert_eq!(hook["fields"]["pnl"], 12.5, "numbers stay JSON numbers");
    assert_eq!(hook["fields"]["currency"], "USD");
    assert_eq!(hook["count"], 1);
    assert_eq!(
        headers.get("authorization").unwrap().to_str().unwrap(),
        "Bearer hook-token-1"
    );
    let (tg, _) = by_path("/botT0KEN:abc/sendMessage");
    assert_eq!(tg["chat_id"], "-1001234");
    assert!(tg["text"].as_str().unwrap().contains("PnL 12.50 USD"));
    let (discord, _) = by_path("/api/webhooks/1/disc-tok");
    assert!(
        discord["content"]
            .as_str()
            .unwrap()
            .starts_with("[INFO] palm-oil-bot: position 7 closed")
    );
    assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));
    let (slack, _) = by_path("/services/T1/B2/slack-tok");
    assert!(slack["text"].as_str().unwrap().contains("PnL 12.50 USD"));
    for (name, s) in notifier.stats() {
        assert_eq!((s.sent, s.failed), (1, 0), "{name}");
    }
}

#[tokio::test]
async fn a_storm_of_fifty_disconnects_is_one_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let (notifier, _, seen) = start(vec![webhook(&server)], &[]);
    // The delivery task has not run yet (this test's runtime is single-threaded and nothing
    // awaited): all fifty wait in the queue together, as they do behind the rate limit.
    for i in 0..50 {
        notifier.send(
            Notification::new(
                NotificationKind::Disconnected,
                Severity::Warning,
                Timestamp(1_764_000_000_000 + i * 1_000),
                format!("broker link down ({i})"),
            )
            .field("attempt", i),
        );
    }
    assert!(notifier.flush(WAIT).await);
    let got = bodies(&server).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["count"], 50);
    assert_eq!(got[0]["title"], "broker link down (49)", "the newest text");
    let s = stats(&notifier, "webhook");
    assert_eq!((s.sent, s.merged), (1, 49));
    let merged = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, o)| *o == DeliveryOutcome::Merged)
        .count();
    assert_eq!(merged, 49, "each merge reaches the metrics observer");
}

#[tokio::test]
async fn a_switched_off_kind_is_never_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let (notifier, _, _) = start(vec![webhook(&server)], &[NotificationKind::PositionClosed]);
    assert!(!notifier.is_enabled(NotificationKind::PositionClosed));
    notifier.send(closed(1));
    notifier.send(Notification::new(
        NotificationKind::Started,
        Severity::Info,
        Timestamp(2),
        "trading PALMOIL",
    ));
    assert!(notifier.flush(WAIT).await);
    let got = bodies(&server).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["kind"], "started");
}

#[tokio::test]
async fn a_429_waits_as_long_as_retry_after_says_then_delivers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T/B/x"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "7"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/services/T/B/x"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .with_priority(2)
        .mount(&server)
        .await;
    // Discord says how long in its body.
    Mock::given(method("POST"))
        .and(path("/api/webhooks/9/t"))
        .respond_with(ResponseTemplate::new(429).set_body_string(
            r#"{"message":"You are being rate limited.","retry_after":2.5,"global":false}"#,
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/webhooks/9/t"))
        .respond_with(ResponseTemplate::new(204))
        .with_priority(2)
        .mount(&server)
        .await;
    let (slack, slack_sleeps, _) = start(
        vec![Destination::Slack {
            url: Secret::new(format!("{}/services/T/B/x", server.uri())),
        }],
        &[],
    );
    let (discord, discord_sleeps, _) = start(
        vec![Destination::Discord {
            url: Secret::new(format!("{}/api/webhooks/9/t", server.uri())),
        }],
        &[],
    );
    slack.send(closed(1));
    discord.send(closed(1));
    assert!(slack.flush(WAIT).await && discord.flush(WAIT).await);
    assert_eq!(slack_sleeps.waits(), [Duration::from_secs(7)]);
    assert_eq!(discord_sleeps.waits(), [Duration::from_millis(2_500)]);
    let s = stats(&slack, "slack");
    assert_eq!((s.sent, s.retried, s.failed), (1, 1, 0));
    assert_eq!(stats(&discord, "discord").sent, 1);
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

#[tokio::test]
async fn server_errors_back_off_and_a_refusal_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/flaky"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/flaky"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such hook"))
        .mount(&server)
        .await;
    let (flaky, sleeps, _) = start(
        vec![Destination::Webhook {
            url: Secret::new(format!("{}/flaky", server.uri())),
            bearer: None,
        }],
        &[],
    );
    flaky.send(closed(1));
    assert!(flaky.flush(WAIT).await);
    let waits = sleeps.waits();
    assert_eq!(waits.len(), 2, "{waits:?}");
    // Backoff from 1 s, doubling, jitter on the upper half.
    assert!(waits[0] >= Duration::from_millis(500) && waits[0] <= Duration::from_secs(1));
    assert!(waits[1] >= Duration::from_secs(1) && waits[1] <= Duration::from_secs(2));
    assert_eq!(stats(&flaky, "webhook").sent, 1);

    let (gone, sleeps, _) = start(
        vec![Destination::Webhook {
            url: Secret::new(format!("{}/gone", server.uri())),
            bearer: None,
        }],
        &[],
    );
    gone.send(closed(1));
    assert!(gone.flush(WAIT).await);
    assert!(sleeps.waits().is_empty(), "a 404 is not retried");
    let s = stats(&gone, "webhook");
    assert_eq!((s.sent, s.failed, s.retried), (0, 1, 0));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_counted_and_does_not_hold_up_the_others() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(serde_json::json!({"chat_id": "42"})))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"ok\":true}"))
        .mount(&server)
        .await;
    // A port nothing listens on: connections are refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let (notifier, sleeps, seen) = start(
        vec![
            Destination::Discord {
                url: Secret::new(format!(
                    "http://127.0.0.1:{port}/api/webhooks/5/secret-part"
                )),
            },
            Destination::Telegram {
                base_url: server.uri(),
                bot_token: Secret::new("1:tok"),
                chat_id: Secret::new("42"),
            },
        ],
        &[],
    );
    notifier.send(closed(1));
    assert!(notifier.flush(WAIT).await);
    let discord = stats(&notifier, "discord");
    assert_eq!((discord.sent, discord.failed, discord.retried), (0, 1, 2));
    assert_eq!(
        sleeps.waits().len(),
        2,
        "two retries with backoff before giving up"
    );
    assert_eq!(stats(&notifier, "telegram").sent, 1);
    assert!(
        seen.lock()
            .unwrap()
            .contains(&("discord", DeliveryOutcome::Failed))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_never_blocks_the_sender_and_the_queue_stays_bounded() {
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
    let (notifier, _, _) = start_with(
        vec![Destination::Webhook {
            url: Secret::new(format!("http://127.0.0.1:{port}/hang")),
            bearer: None,
        }],
        &[],
        Duration::from_secs(3_600),
    );
    notifier.send(closed(0));
    // Wait until the first message is stuck in flight.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !stats(&notifier, "webhook").in_flight {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never went in flight"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Sending goes on regardless; the queue keeps the newest 100 and counts what it dropped.
    for i in 1..=250 {
        notifier.send(closed(i));
    }
    let s = stats(&notifier, "webhook");
    assert!(s.in_flight);
    assert_eq!(s.queued, 100);
    assert_eq!(s.dropped, 150);
    assert_eq!(s.sent, 0);
    assert!(!notifier.flush(Duration::from_millis(50)).await);
}

//! Perplexity over a mock server on loopback: the request's shape, answer validation, retries,
//! permanent failures, the budget, and that the key never leaks.

// Helpers in a test crate fail the test by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use domain::{Clock, Secret};
use scraper::{
    HttpClient, PerplexityConfig, PerplexitySource, RecordingSleeper, SentimentSource, SourceError,
    SourceInputs, SourceKind,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn source(
    server: &MockServer,
    clock: Arc<dyn Clock>,
    sleeper: &RecordingSleeper,
) -> PerplexitySource {
    let config = loopback_config(vec![SourceKind::Perplexity], &server.uri(), &[]);
    let http = HttpClient::new(config.http.policy()).unwrap();
    PerplexitySource::new(
        config.perplexity,
        Secret::new(KEY),
        http,
        clock,
        Arc::new(sleeper.clone()),
    )
    .unwrap()
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn api_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"message": message, "type": "invalid_request_error", "code": code}
    }))
}

async fn mount(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .respond_with(response)
        .mount(server)
        .await;
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn success_sends_the_responses_api_request_and_validates_the_answer() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .respond_with(ok(run("completed", GOOD_ANSWER)))
            .expect(1)
            .mount(&server)
            .await;
        let clock = clock();
        let sleeper = RecordingSleeper::new();
        let reading = source(&server, clock.clone(), &sleeper)
            .fetch()
            .await
            .unwrap();
        assert_eq!(reading.score, 0.42);
        assert_eq!(reading.confidence, 0.7);
        assert_eq!(reading.item_count, 6);
        assert_eq!(reading.source, "perplexity");
        assert_eq!(reading.known_at, NOW);
        assert_eq!(
            reading.summary,
            "ITS: Nov 1-20 exports up 2% m/m; stocks seen lower"
        );
        assert!(sleeper.waits().is_empty());

        let sent = &server.received_requests().await.unwrap()[0];
        let body: Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(body["model"], "perplexity/sonar");
        assert_eq!(body["tools"], json!([{"type": "web_search"}]));
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(
            body["response_format"]["json_schema"]["name"],
            "palm_oil_sentiment"
        );
        let schema = &body["response_format"]["json_schema"]["schema"];
        assert_eq!(
            schema["required"],
            json!(["score", "confidence", "summary", "item_count"])
        );
        let input = body["input"].as_str().unwrap();
        for driver in [
            "MPOB",
            "ITS",
            "biodiesel",
            "soybean oil",
            "Brent",
            "ringgit",
            "levies",
        ] {
            assert!(input.contains(driver), "prompt lacks {driver}");
        }
        assert!(body["instructions"].is_string());
        assert!(body["max_output_tokens"].is_u64());
        // Fields of the retired chat-completions API are rejected by the new one.
        assert!(body.get("messages").is_none() && body.get("max_tokens").is_none());
        let allowed = [
            "model",
            "input",
            "instructions",
            "tools",
            "max_output_tokens",
            "response_format",
        ];
        for key in body.as_object().unwrap().keys() {
            assert!(allowed.contains(&key.as_str()), "unexpected field {key}");
        }
    })
    .await;
}

#[tokio::test]
async fn rate_limit_then_success_backs_off_with_jitter() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .respond_with(api_error(429, "request_rate_limit_exceeded", "slow down"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        mount(&server, ok(run("completed", GOOD_ANSWER))).await;
        let sleeper = RecordingSleeper::new();
        let reading = source(&server, clock(), &sleeper).fetch().await.unwrap();
        assert_eq!(reading.score, 0.42);
        assert_eq!(requests(&server).await, 2);
        let waits = sleeper.waits();
        assert_eq!(waits.len(), 1, "one backoff between the two attempts");
        // Full jitter over the first 1 s step.
        assert!(waits[0] <= Duration::from_secs(1), "{waits:?}");
    })
    .await;
}

#[tokio::test]
async fn rate_limit_headers_set_the_wait() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .respond_with(
                api_error(429, "request_rate_limit_exceeded", "slow down")
                    .insert_header("x-ratelimit-remaining", "0")
                    .insert_header("x-ratelimit-reset", "7"),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .respond_with(
                api_error(503, "overloaded", "try later").insert_header("retry-after", "3"),
            )
            .up_to_n_times(1)
            .with_priority(2)
            .mount(&server)
            .await;
        mount(&server, ok(run("completed", GOOD_ANSWER))).await;
        let sleeper = RecordingSleeper::new();
        source(&server, clock(), &sleeper).fetch().await.unwrap();
        assert_eq!(
            sleeper.waits(),
            vec![Duration::from_secs(7), Duration::from_secs(3)]
        );
    })
    .await;
}

#[tokio::test]
async fn persistent_rate_limit_gives_up_after_bounded_attempts() {
    bounded(async {
        let server = MockServer::start().await;
        mount(
            &server,
            api_error(429, "request_rate_limit_exceeded", "slow down"),
        )
        .await;
        let sleeper = RecordingSleeper::new();
        let err = source(&server, clock(), &sleeper)
            .fetch()
            .await
            .unwrap_err();
        assert!(
            matches!(err, SourceError::RateLimited { attempts: 3, .. }),
            "{err}"
        );
        assert!(err.is_transient());
        assert_eq!(requests(&server).await, 3);
        let waits = sleeper.waits();
        assert_eq!(waits.len(), 2);
        assert!(waits[0] <= Duration::from_secs(1) && waits[1] <= Duration::from_secs(2));
    })
    .await;
}

#[tokio::test]
async fn failed_status_with_http_200_is_an_error() {
    bounded(async {
        let server = MockServer::start().await;
        let mut body = run("failed", "");
        body["error"] = json!({"code": "server_error", "message": "search backend failed"});
        mount(&server, ok(body)).await;
        let err = source(&server, clock(), &RecordingSleeper::new())
            .fetch()
            .await
            .unwrap_err();
        match &err {
            SourceError::RunNotCompleted { status, detail } => {
                assert_eq!(status, "failed");
                assert!(detail.as_deref().unwrap().contains("search backend failed"));
            }
            other => panic!("expected RunNotCompleted, got {other}"),
        }
    })
    .await;
}

#[tokio::test]
async fn truncated_output_is_an_error() {
    bounded(async {
        let server = MockServer::start().await;
        let mut body = run("incomplete", r#"{"score": 0.42, "confidence": 0.7, "summ"#);
        body["incomplete_details"] = json!({"reason": "max_output_tokens"});
        mount(&server, ok(body)).await;
        let err = source(&server, clock(), &RecordingSleeper::new())
            .fetch()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SourceError::RunNotCompleted { status, detail }
                if status == "incomplete" && detail.as_deref().unwrap().contains("max_output_tokens")),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn other_unfinished_statuses_are_errors() {
    for status in ["cancelled", "queued", "in_progress"] {
        bounded(async {
            let server = MockServer::start().await;
            mount(&server, ok(run(status, GOOD_ANSWER))).await;
            let err = source(&server, clock(), &RecordingSleeper::new())
                .fetch()
                .await
                .unwrap_err();
            assert!(matches!(&err, SourceError::RunNotCompleted { status: s, .. } if s == status));
        })
        .await;
    }
}

#[tokio::test]
async fn malformed_answer_json_is_an_error() {
    bounded(async {
        let server = MockServer::start().await;
        mount(
            &server,
            ok(run(
                "completed",
                "Palm oil looks bullish this week {score: 0.5",
            )),
        )
        .await;
        let err = source(&server, clock(), &RecordingSleeper::new())
            .fetch()
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::MalformedAnswer(_)), "{err}");

        let server = MockServer::start().await;
        mount(
            &server,
            ok(json!({"status": "completed", "output": "nope"})),
        )
        .await;
        let err = source(&server, clock(), &RecordingSleeper::new())
            .fetch()
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::MalformedAnswer(_)), "{err}");
    })
    .await;
}

#[tokio::test]
async fn out_of_range_score_is_an_error() {
    bounded(async {
        let server = MockServer::start().await;
        mount(
            &server,
            ok(run(
                "completed",
                r#"{"score": 1.7, "confidence": 0.9, "summary": "Very bullish", "item_count": 4}"#,
            )),
        )
        .await;
        let err = source(&server, clock(), &RecordingSleeper::new())
            .fetch()
            .await
            .unwrap_err();
        assert!(
            matches!(err, SourceError::OutOfRange { field: "score", value, .. } if value == 1.7),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn retired_api_403_disables_without_retry() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .respond_with(api_error(
                403,
                "chat_completions_not_available",
                "The chat completions API has been retired.",
            ))
            .expect(1)
            .mount(&server)
            .await;
        let sleeper = RecordingSleeper::new();
        let source = source(&server, clock(), &sleeper);
        let err = source.fetch().await.unwrap_err();
        assert!(
            matches!(&err, SourceError::Disabled { reason } if reason.contains("chat_completions_not_available")),
            "{err}"
        );
        assert!(!err.is_transient());
        assert!(source.disabled_reason().is_some());
        // Later calls answer at once, without the network.
        let again = source.fetch().await.unwrap_err();
        assert!(matches!(again, SourceError::Disabled { .. }));
        assert_eq!(requests(&server).await, 1);
        assert!(sleeper.waits().is_empty());
    })
    .await;
}

#[tokio::test]
async fn other_client_errors_are_permanent_but_do_not_disable() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .respond_with(api_error(400, "invalid_request", "unknown field messages"))
            .expect(2)
            .mount(&server)
            .await;
        let source = source(&server, clock(), &RecordingSleeper::new());
        for _ in 0..2 {
            let err = source.fetch().await.unwrap_err();
            assert!(matches!(&err, SourceError::Rejected { status: 400, message } if message.contains("unknown field")));
            assert!(!err.is_transient());
        }
    })
    .await;
}

#[tokio::test]
async fn hourly_budget_caps_requests() {
    bounded(async {
        let server = MockServer::start().await;
        mount(&server, ok(run("completed", GOOD_ANSWER))).await;
        let mut config = loopback_config(vec![SourceKind::Perplexity], &server.uri(), &[]);
        config.perplexity.hourly_request_budget = 2;
        let clock = clock();
        let source = PerplexitySource::new(
            config.perplexity.clone(),
            Secret::new(KEY),
            HttpClient::new(config.http.policy()).unwrap(),
            clock.clone(),
            Arc::new(RecordingSleeper::new()),
        )
        .unwrap();
        source.fetch().await.unwrap();
        clock.advance(60_000);
        source.fetch().await.unwrap();
        let err = source.fetch().await.unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::BudgetExhausted {
                    limit: 2,
                    window: "hour"
                }
            ),
            "{err}"
        );
        assert_eq!(requests(&server).await, 2);
        // The first request leaves the window an hour after it was made.
        clock.advance(3_540_000);
        source.fetch().await.unwrap();
        assert_eq!(requests(&server).await, 3);
    })
    .await;
}

#[tokio::test]
async fn requests_go_one_at_a_time() {
    bounded(async {
        let server = MockServer::start().await;
        mount(
            &server,
            ok(run("completed", GOOD_ANSWER)).set_delay(Duration::from_millis(300)),
        )
        .await;
        let source = Arc::new(source(&server, clock(), &RecordingSleeper::new()));
        let started = Instant::now();
        let (a, b) = tokio::join!(source.fetch(), source.fetch());
        a.unwrap();
        b.unwrap();
        // Overlapping requests would finish in about 300 ms; serialised ones need 600 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_key_never_appears_in_logs_errors_or_debug() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (errors, debug) = bounded(async {
        let server = MockServer::start().await;
        // A 500, a 429 and then a 401 whose message echoes the key back.
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .respond_with(api_error(
                500,
                "internal",
                &format!("upstream failed for {KEY}"),
            ))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .respond_with(api_error(429, "request_rate_limit_exceeded", "slow down"))
            .up_to_n_times(1)
            .with_priority(2)
            .mount(&server)
            .await;
        mount(
            &server,
            api_error(401, "invalid_api_key", &format!("Invalid API key {KEY}")),
        )
        .await;

        let config = loopback_config(vec![SourceKind::Perplexity], &server.uri(), &[]);
        let service = config
            .build_with_sleeper(
                SourceInputs {
                    perplexity_api_key: Some(Secret::new(KEY)),
                    ..SourceInputs::default()
                },
                clock(),
                Arc::new(RecordingSleeper::new()),
            )
            .unwrap();
        let detailed = service.reading_detailed().await.unwrap_err();
        let unavailable = service.reading().await.unwrap_err();
        assert!(detailed.to_string().contains("401"), "{detailed}");
        assert_eq!(
            requests(&server).await,
            3,
            "401 ends the retries and disables"
        );
        let errors = format!("{detailed} {detailed:?} {unavailable} {unavailable:?}");
        let debug = format!("{service:?} {:?}", PerplexityConfig::default());
        (errors, debug)
    })
    .await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("perplexity"),
        "the failing calls were logged: {logs}"
    );
    assert!(logs.contains("disabled"), "{logs}");
    assert!(!logs.contains(KEY), "key leaked into logs:\n{logs}");
    assert!(!errors.contains(KEY), "key leaked into errors: {errors}");
    assert!(!debug.contains(KEY), "key leaked into Debug: {debug}");
    assert!(
        errors.contains("***"),
        "the echoed key was redacted: {errors}"
    );
}

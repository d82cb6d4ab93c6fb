//! X API v2 recent search over a mock server on loopback: scoring, the daily post budget, and
//! a refused token disabling the source.

// Helpers in a test crate fail the test by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use domain::{Clock, Secret, Timestamp};
use scraper::{HttpClient, SentimentSource, SourceError, SourceKind, XConfig, XSearchSource};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "x-bearer-TEST-0123456789";

fn x_source(
    server: &MockServer,
    clock: Arc<dyn Clock>,
    budget: u32,
    max_results: u32,
) -> XSearchSource {
    let config = loopback_config(vec![SourceKind::X], "http://127.0.0.1:9", &[]);
    let x = XConfig {
        base_url: server.uri(),
        daily_post_budget: budget,
        max_results,
        ..XConfig::default()
    };
    XSearchSource::new(
        x,
        Secret::new(TOKEN),
        HttpClient::new(config.http.policy()).unwrap(),
        clock,
    )
    .unwrap()
}

fn created(hours_ago: i64) -> String {
    let at = NOW.plus_millis(-hours_ago * Timestamp::HOUR_MS);
    chrono::DateTime::from_timestamp_millis(at.millis())
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn page(result_count: u32) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": [
            {"id": "1", "text": "Palm oil exports rise 8% says ITS", "created_at": created(1)},
            {"id": "2", "text": "FCPO bullish as stocks fall", "created_at": created(2)},
            {"id": "3", "text": "Palm oil stocks rise to a record, bearish", "created_at": created(100)}
        ],
        "meta": {"result_count": result_count}
    }))
}

fn asked(request: &wiremock::Request) -> String {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == "max_results")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn recent_posts_are_scored() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/2/tweets/search/recent"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(page(3))
            .expect(1)
            .mount(&server)
            .await;
        let source = x_source(&server, clock(), 200, 25);
        let reading = source.fetch().await.unwrap();
        assert_eq!(reading.source, "x");
        assert_eq!(reading.item_count, 2, "the 100-hour-old post is dropped");
        assert!(reading.score > 0.5, "{}", reading.score);
        assert_eq!(source.posts_read_today(), 3);
        let request = &server.received_requests().await.unwrap()[0];
        assert_eq!(asked(request), "25");
        assert!(
            request
                .url
                .query()
                .unwrap()
                .contains("tweet.fields=created_at")
        );
    })
    .await;
}

#[tokio::test]
async fn the_daily_post_budget_caps_reads() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/2/tweets/search/recent"))
            .respond_with(page(20))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/2/tweets/search/recent"))
            .respond_with(page(10))
            .mount(&server)
            .await;
        let clock = clock();
        let source = x_source(&server, clock.clone(), 30, 20);
        source.fetch().await.unwrap();
        source.fetch().await.unwrap();
        let err = source.fetch().await.unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::BudgetExhausted {
                    limit: 30,
                    window: "UTC day"
                }
            ),
            "{err}"
        );
        let asks: Vec<String> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(asked)
            .collect();
        assert_eq!(asks, ["20", "10"]);
        // A new UTC day brings a new budget.
        clock.advance(Timestamp::DAY_MS);
        source.fetch().await.unwrap();
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn a_refused_token_disables_the_source() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/2/tweets/search/recent"))
            .respond_with(
                ResponseTemplate::new(401).set_body_json(json!({"title": "Unauthorized"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let source = x_source(&server, clock(), 200, 25);
        let err = source.fetch().await.unwrap_err();
        assert!(matches!(err, SourceError::Disabled { .. }), "{err}");
        assert!(matches!(
            source.fetch().await,
            Err(SourceError::Disabled { .. })
        ));
        assert_eq!(
            source.posts_read_today(),
            0,
            "a refused request reads no posts"
        );
        assert!(!format!("{err} {err:?} {source:?}").contains(TOKEN));
    })
    .await;
}

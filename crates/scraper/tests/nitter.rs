//! Nitter over mock instances on loopback: scoring, refusing non-RSS, empty and stale feeds,
//! deduplication across instances, circuit breakers, and the chain when everything is down.

// Helpers in a test crate fail the test by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use domain::{Clock, Secret};
use scraper::{
    HttpClient, NitterSource, RecordingSleeper, SentimentSource, SourceError, SourceInputs,
    SourceKind,
};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn rss(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "application/rss+xml; charset=utf-8")
}

async fn instance(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/search/rss"))
        .and(query_param("f", "tweets"))
        .and(query_param("q", "\"palm oil\""))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn nitter(servers: &[&MockServer], clock: Arc<dyn Clock>) -> NitterSource {
    let uris: Vec<String> = servers.iter().map(|s| s.uri()).collect();
    let config = loopback_config(vec![SourceKind::Nitter], "http://127.0.0.1:9", &uris);
    NitterSource::new(
        config.nitter,
        HttpClient::new(config.http.policy()).unwrap(),
        clock,
    )
    .unwrap()
}

const BULLISH: [&str; 3] = [
    "Malaysia palm oil exports rise 8% in Nov 1-20, says ITS",
    "Palm oil stocks fell to a 6-month low, bullish for FCPO",
    "Indonesia confirms B50 biodiesel mandate from 2027",
];

#[tokio::test]
async fn a_valid_feed_is_scored() {
    bounded(async {
        let posts: Vec<Post<'_>> = BULLISH
            .iter()
            .enumerate()
            .map(|(i, text)| Post {
                id: [
                    "1861000000000000001",
                    "1861000000000000002",
                    "1861000000000000003",
                ][i],
                host: "nitter.one",
                text,
                hours_ago: 2,
            })
            .collect();
        let server = instance(rss(feed(&posts))).await;
        let reading = nitter(&[&server], clock()).fetch().await.unwrap();
        assert_eq!(reading.source, "nitter");
        assert_eq!(reading.item_count, 3);
        assert!(reading.score > 0.5, "{}", reading.score);
        assert!(reading.confidence > 0.0 && reading.confidence < 1.0);
        assert_eq!(reading.known_at, NOW);
        assert!(reading.summary.contains("3 of 3"), "{}", reading.summary);
    })
    .await;
}

#[tokio::test]
async fn an_html_challenge_page_with_200_is_a_failure() {
    bounded(async {
        let server = instance(
            ResponseTemplate::new(200).set_body_raw(CHALLENGE_PAGE, "text/html; charset=utf-8"),
        )
        .await;
        let err = nitter(&[&server], clock()).fetch().await.unwrap_err();
        match &err {
            SourceError::NoInstance(failures) => {
                assert_eq!(failures.len(), 1);
                assert!(
                    matches!(failures[0].1, SourceError::InvalidFeed(_)),
                    "{err}"
                );
            }
            other => panic!("expected NoInstance, got {other}"),
        }
    })
    .await;
}

#[tokio::test]
async fn a_failing_instance_trips_its_breaker_until_the_cooldown() {
    bounded(async {
        let server =
            instance(ResponseTemplate::new(200).set_body_raw(CHALLENGE_PAGE, "text/html")).await;
        let clock = clock();
        let source = nitter(&[&server], clock.clone());
        // Three failures (the default threshold) open the breaker.
        for _ in 0..3 {
            source.fetch().await.unwrap_err();
        }
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
        let err = source.fetch().await.unwrap_err();
        assert!(err.to_string().contains("circuit open"), "{err}");
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
        // After the cool-down one trial goes through.
        clock.advance(900_000);
        source.fetch().await.unwrap_err();
        assert_eq!(server.received_requests().await.unwrap().len(), 4);
    })
    .await;
}

#[tokio::test]
async fn an_empty_feed_is_no_data() {
    bounded(async {
        let server = instance(rss(feed(&[]))).await;
        let err = nitter(&[&server], clock()).fetch().await.unwrap_err();
        assert!(matches!(err, SourceError::NoData(_)), "{err}");
    })
    .await;
}

#[tokio::test]
async fn posts_without_palm_oil_terms_are_no_data() {
    bounded(async {
        let server = instance(rss(feed(&[
            Post {
                id: "1",
                host: "n",
                text: "Lunch at the plantation canteen",
                hours_ago: 1,
            },
            Post {
                id: "2",
                host: "n",
                text: "Palm oil webinar registration open",
                hours_ago: 1,
            },
        ])))
        .await;
        let err = nitter(&[&server], clock()).fetch().await.unwrap_err();
        assert!(
            matches!(&err, SourceError::NoData(m) if m.contains("0 with a palm-oil price term")),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn duplicates_across_instances_count_once() {
    bounded(async {
        let shared = [
            Post {
                id: "1861000000000000001",
                host: "nitter.one",
                text: BULLISH[0],
                hours_ago: 1,
            },
            Post {
                id: "1861000000000000002",
                host: "nitter.one",
                text: BULLISH[1],
                hours_ago: 1,
            },
        ];
        let first = instance(rss(feed(&shared))).await;
        // The same statuses under another host, plus one new post.
        let second = instance(rss(feed(&[
            Post {
                id: "1861000000000000001",
                host: "nitter.two",
                text: BULLISH[0],
                hours_ago: 1,
            },
            Post {
                id: "1861000000000000002",
                host: "nitter.two",
                text: BULLISH[1],
                hours_ago: 1,
            },
            Post {
                id: "1861000000000000009",
                host: "nitter.two",
                text: "Palm oil output rises in Sabah, bearish",
                hours_ago: 1,
            },
        ])))
        .await;
        let reading = nitter(&[&first, &second], clock()).fetch().await.unwrap();
        assert_eq!(reading.item_count, 3, "{}", reading.summary);
        assert_eq!(first.received_requests().await.unwrap().len(), 1);
        assert_eq!(second.received_requests().await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn one_bad_instance_does_not_spoil_a_good_one() {
    bounded(async {
        let bad = instance(ResponseTemplate::new(503)).await;
        let good = instance(rss(feed(&[
            Post {
                id: "11",
                host: "g",
                text: BULLISH[0],
                hours_ago: 1,
            },
            Post {
                id: "12",
                host: "g",
                text: BULLISH[1],
                hours_ago: 1,
            },
        ])))
        .await;
        let reading = nitter(&[&bad, &good], clock()).fetch().await.unwrap();
        assert_eq!(reading.item_count, 2);
    })
    .await;
}

#[tokio::test]
async fn stale_posts_are_dropped() {
    bounded(async {
        let server = instance(rss(feed(&[
            Post {
                id: "21",
                host: "n",
                text: BULLISH[0],
                hours_ago: 1,
            },
            Post {
                id: "22",
                host: "n",
                text: BULLISH[1],
                hours_ago: 3,
            },
            Post {
                id: "23",
                host: "n",
                text: "Palm oil exports fall sharply, bearish",
                hours_ago: 49,
            },
            Post {
                id: "24",
                host: "n",
                text: "Palm oil stocks rise to record, bearish",
                hours_ago: 200,
            },
        ])))
        .await;
        let reading = nitter(&[&server], clock()).fetch().await.unwrap();
        assert_eq!(reading.item_count, 2);
        assert!(reading.score > 0.0, "only the fresh bullish posts count");

        let old = instance(rss(feed(&[Post {
            id: "31",
            host: "n",
            text: BULLISH[0],
            hours_ago: 72,
        }])))
        .await;
        let err = nitter(&[&old], clock()).fetch().await.unwrap_err();
        assert!(
            matches!(&err, SourceError::NoData(m) if m.contains("1 older dropped")),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn persistent_rate_limit_falls_back_to_nitter() {
    bounded(async {
        let perplexity = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .respond_with(ResponseTemplate::new(429).set_body_json(serde_json::json!({
                "error": {"message": "rate limited", "type": "rate_limit", "code": "request_rate_limit_exceeded"}
            })))
            .expect(3)
            .mount(&perplexity)
            .await;
        let feed_server = instance(rss(feed(&[
            Post { id: "41", host: "n", text: BULLISH[0], hours_ago: 1 },
            Post { id: "42", host: "n", text: BULLISH[2], hours_ago: 1 },
        ])))
        .await;
        let config = loopback_config(
            vec![SourceKind::Perplexity, SourceKind::Nitter],
            &perplexity.uri(),
            &[feed_server.uri()],
        );
        let sleeper = RecordingSleeper::new();
        let service = config
            .build_with_sleeper(
                SourceInputs {
                    perplexity_api_key: Some(Secret::new(KEY)),
                    ..SourceInputs::default()
                },
                clock(),
                Arc::new(sleeper.clone()),
            )
            .unwrap();
        let reading = service.reading().await.unwrap();
        assert_eq!(reading.source, "nitter");
        assert_eq!(sleeper.waits().len(), 2, "backed off between the three attempts");
        let stats = service.stats();
        assert_eq!(stats.failures_by.get("perplexity"), Some(&1));
        assert_eq!(stats.served_by.get("nitter"), Some(&1));
    })
    .await;
}

#[tokio::test]
async fn every_source_down_is_unavailable() {
    bounded(async {
        let perplexity = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .respond_with(ResponseTemplate::new(502))
            .mount(&perplexity)
            .await;
        let challenge =
            instance(ResponseTemplate::new(200).set_body_raw(CHALLENGE_PAGE, "text/html")).await;
        let empty = instance(rss(feed(&[]))).await;
        let config = loopback_config(
            vec![SourceKind::Perplexity, SourceKind::Nitter],
            &perplexity.uri(),
            &[challenge.uri(), empty.uri()],
        );
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
        let unavailable = service.reading().await.unwrap_err();
        assert_eq!(unavailable.source, "chain");
        assert!(
            unavailable
                .reason
                .contains("perplexity: server error HTTP 502"),
            "{}",
            unavailable.reason
        );
        assert!(
            unavailable.reason.contains("nitter: no data"),
            "{}",
            unavailable.reason
        );
        let stats = service.stats();
        assert_eq!(stats.unavailable, 1);
        assert!(stats.served_by.is_empty());
    })
    .await;
}

#[tokio::test]
async fn cache_serves_within_ttl_and_asks_again_after() {
    bounded(async {
        let server = instance(rss(feed(&[
            Post {
                id: "51",
                host: "n",
                text: BULLISH[0],
                hours_ago: 1,
            },
            Post {
                id: "52",
                host: "n",
                text: BULLISH[1],
                hours_ago: 1,
            },
        ])))
        .await;
        let mut config = loopback_config(
            vec![SourceKind::Nitter],
            "http://127.0.0.1:9",
            &[server.uri()],
        );
        config.cache_ttl_secs = 600;
        let clock = clock();
        let service = config
            .build(SourceInputs::default(), clock.clone())
            .unwrap();
        let first = service.reading().await.unwrap();
        clock.advance(599_000);
        assert_eq!(service.reading().await.unwrap(), first);
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
        clock.advance(1_000);
        let third = service.reading().await.unwrap();
        assert_eq!(third.known_at, NOW.plus_millis(600_000));
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
        let stats = service.stats();
        assert_eq!((stats.cache_hits, stats.cache_misses), (1, 2));
    })
    .await;
}

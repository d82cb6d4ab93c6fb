//! Shared helpers for the scraper's HTTP tests: loopback-only configuration, a hand-set clock,
//! canned Perplexity runs and Nitter feeds, and a bound on every test's duration.

// Test helpers: a panic is how they fail a test.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use domain::{FixedClock, Timestamp};
use scraper::{HttpSettings, SentimentConfig, SourceKind};
use serde_json::{Value, json};

/// 2026-11-23T09:00:00Z.
pub const NOW: Timestamp = Timestamp(1_795_424_400_000);

/// The key used in tests; it must never appear in output.
pub const KEY: &str = "pplx-TEST-7f3a9c2e5b1d";

pub fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::new(NOW))
}

/// Fails the test instead of hanging.
pub async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("test exceeded 30 s")
}

/// A configuration that talks only to mock servers on 127.0.0.1 over plain http.
pub fn loopback_config(
    order: Vec<SourceKind>,
    perplexity_uri: &str,
    nitter: &[String],
) -> SentimentConfig {
    let mut config = SentimentConfig {
        order,
        cache_ttl_secs: 0,
        http: HttpSettings {
            allowed_hosts: vec!["127.0.0.1".to_owned()],
            allow_plain_http_loopback: true,
            connect_timeout_secs: 2,
            request_timeout_secs: 10,
            max_response_bytes: 256 * 1024,
            extra_ca_file: None,
        },
        ..SentimentConfig::default()
    };
    config.perplexity.base_url = perplexity_uri.to_owned();
    config.perplexity.max_attempts = 3;
    config.perplexity.request_timeout_secs = 10;
    config.nitter.instances = nitter.to_vec();
    config.nitter.queries = vec!["\"palm oil\"".to_owned()];
    config.nitter.instance_timeout_secs = 5;
    config
}

/// A Responses API run with `status` whose answer text is split over two output_text parts.
pub fn run(status: &str, answer: &str) -> Value {
    let cut = answer.len() / 2;
    let (a, b) = answer.split_at(cut);
    json!({
        "id": "resp_01",
        "object": "response",
        "model": "perplexity/sonar",
        "status": status,
        "output": [
            {"type": "search_results", "results": [
                {"title": "Malaysia palm oil exports rise", "url": "https://example.com/a"},
                {"title": "MPOB stocks", "url": "https://example.com/b"}
            ]},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": a},
                {"type": "output_text", "text": b}
            ]}
        ]
    })
}

pub const GOOD_ANSWER: &str = r#"{"score": 0.42, "confidence": 0.7, "summary": "ITS: Nov 1-20 exports up 2% m/m; stocks seen lower", "item_count": 6}"#;

/// One RSS item.
pub struct Post<'a> {
    pub id: &'a str,
    pub host: &'a str,
    pub text: &'a str,
    pub hours_ago: i64,
}

/// An RFC 822 date `hours` before [`NOW`].
pub fn rfc822(hours_ago: i64) -> String {
    let at = NOW.plus_millis(-hours_ago * Timestamp::HOUR_MS);
    chrono::DateTime::from_timestamp_millis(at.millis())
        .unwrap()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// A Nitter search feed with `posts`.
pub fn feed(posts: &[Post<'_>]) -> String {
    let mut items = String::new();
    for p in posts {
        items.push_str(&format!(
            "<item><title>{text}</title><dc:creator>@trader</dc:creator>\
             <description><![CDATA[<p>{text}</p>]]></description>\
             <pubDate>{date}</pubDate>\
             <guid>https://{host}/trader/status/{id}#m</guid>\
             <link>https://{host}/trader/status/{id}#m</link></item>",
            text = p.text,
            date = rfc822(p.hours_ago),
            host = p.host,
            id = p.id,
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <rss xmlns:dc=\"http://purl.org/dc/elements/1.1/\" version=\"2.0\"><channel>\
         <title>Nitter search</title><link>https://nitter.example</link>{items}</channel></rss>"
    )
}

pub const CHALLENGE_PAGE: &str = "<!DOCTYPE html><html><head><title>Just a moment...</title></head>\
<body><p>Verifying you are human. This may take a few seconds.</p></body></html>";

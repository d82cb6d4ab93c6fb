//! Nitter RSS (fallback source): searches on several instances, each behind its own timeout and
//! circuit breaker; only real RSS counts; posts are deduplicated by status id, old ones dropped,
//! and the rest scored with the palm-oil lexicon. No posts means no data, never neutral.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{Clock, SentimentReading, Timestamp};
use reqwest::Url;

use crate::error::{HttpError, SourceError};
use crate::http::{HttpClient, HttpRequest};
use crate::lexicon::{PalmOilLexicon, aggregate};
use crate::limits::CircuitBreaker;
use crate::rss::{FeedItem, parse_rss};
use crate::source::{SentimentFuture, SentimentSource, one_line, validated};

/// The source name in readings and stats.
pub const NITTER: &str = "nitter";

/// Nitter accepts search queries up to this many characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// Settings of the Nitter source.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NitterConfig {
    /// Instance base URLs, e.g. `https://nitter.net`; each host must be on the allow-list.
    pub instances: Vec<String>,
    /// Search queries (at most 200 characters each).
    pub queries: Vec<String>,
    /// Time allowed per request to one instance, in seconds.
    pub instance_timeout_secs: u64,
    /// Consecutive failures that open an instance's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker skips the instance, in seconds.
    pub breaker_cooldown_secs: u64,
    /// Posts older than this are dropped, in hours.
    pub max_item_age_hours: u64,
    /// Fewest scored posts for a reading; fewer is "no data".
    pub min_scored_items: u32,
}

impl Default for NitterConfig {
    fn default() -> NitterConfig {
        NitterConfig {
            instances: vec!["https://nitter.net".to_owned()],
            queries: vec![
                "\"palm oil\" price".to_owned(),
                "FCPO OR \"CPO futures\"".to_owned(),
            ],
            instance_timeout_secs: 8,
            breaker_failures: 3,
            breaker_cooldown_secs: 900,
            max_item_age_hours: 48,
            min_scored_items: 2,
        }
    }
}

/// One instance and its breaker.
#[derive(Debug)]
struct Instance {
    base: Url,
    label: String,
    breaker: Mutex<CircuitBreaker>,
}

/// The Nitter sentiment source.
pub struct NitterSource {
    config: NitterConfig,
    instances: Vec<Instance>,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    lexicon: PalmOilLexicon,
}

impl std::fmt::Debug for NitterSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NitterSource")
            .field("instances", &self.instances)
            .field("queries", &self.config.queries)
            .finish_non_exhaustive()
    }
}

/// A post kept for scoring.
struct Post {
    text: String,
    published: Timestamp,
}

impl NitterSource {
    /// A source over `config.instances`; fails if a URL is invalid, off the allow-list, or a
    /// query is empty or longer than 200 characters.
    pub fn new(
        config: NitterConfig,
        http: HttpClient,
        clock: Arc<dyn Clock>,
    ) -> Result<NitterSource, crate::ConfigError> {
        for (i, query) in config.queries.iter().enumerate() {
            let chars = query.chars().count();
            if query.trim().is_empty() || chars > MAX_QUERY_CHARS {
                return Err(crate::ConfigError::Invalid {
                    setting: format!("nitter.queries[{i}]"),
                    reason: format!("{chars} characters; a query needs 1 to {MAX_QUERY_CHARS}"),
                });
            }
        }
        if config.queries.is_empty() {
            return Err(crate::ConfigError::Invalid {
                setting: "nitter.queries".to_owned(),
                reason: "no query configured".to_owned(),
            });
        }
        let mut instances = Vec::new();
        for (i, raw) in config.instances.iter().enumerate() {
            let base = http.checked_url(raw).map_err(|e| match e {
                HttpError::HostNotAllowed { host } => crate::ConfigError::HostNotAllowed {
                    setting: format!("nitter.instances[{i}]"),
                    host,
                },
                other => crate::ConfigError::Invalid {
                    setting: format!("nitter.instances[{i}]"),
                    reason: other.to_string(),
                },
            })?;
            let label = match base.port() {
                Some(port) => format!("{}:{port}", base.host_str().unwrap_or("")),
                None => base.host_str().unwrap_or("").to_owned(),
            };
            instances.push(Instance {
                base,
                label,
                breaker: Mutex::new(CircuitBreaker::new(
                    config.breaker_failures,
                    i64::try_from(config.breaker_cooldown_secs.saturating_mul(1000))
                        .unwrap_or(i64::MAX),
                )),
            });
        }
        if instances.is_empty() {
            return Err(crate::ConfigError::Invalid {
                setting: "nitter.instances".to_owned(),
                reason: "no instance configured".to_owned(),
            });
        }
        Ok(NitterSource {
            config,
            instances,
            http,
            clock,
            lexicon: PalmOilLexicon::default(),
        })
    }

    async fn fetch_all(&self) -> Result<SentimentReading, SourceError> {
        let mut failures: Vec<(String, SourceError)> = Vec::new();
        let mut posts: BTreeMap<String, Post> = BTreeMap::new();
        let mut feeds_read = 0u32;
        let mut stale = 0u32;
        let max_age_ms = i64::try_from(self.config.max_item_age_hours)
            .unwrap_or(i64::MAX / Timestamp::HOUR_MS)
            .saturating_mul(Timestamp::HOUR_MS);
        for instance in &self.instances {
            let now = self.clock.now();
            let permit = instance
                .breaker
                .lock()
                .map_err(|_| SourceError::Disabled {
                    reason: "breaker state poisoned".to_owned(),
                })?
                .permit(now);
            if let Err(until) = permit {
                failures.push((instance.label.clone(), SourceError::CircuitOpen { until }));
                continue;
            }
            match self.fetch_instance(instance).await {
                Ok(items) => {
                    self.record(instance, true);
                    feeds_read += 1;
                    let now = self.clock.now();
                    for item in items {
                        let Some(post) = to_post(&item) else {
                            continue;
                        };
                        if now.millis_since(post.published) > max_age_ms {
                            stale += 1;
                            continue;
                        }
                        let key = item
                            .status_id()
                            .map(str::to_owned)
                            .unwrap_or_else(|| format!("text:{}", post.text));
                        posts.entry(key).or_insert(post);
                    }
                }
                Err(e) => {
                    tracing::warn!(source = NITTER, instance = %instance.label, error = %e, "nitter instance failed");
                    self.record(instance, false);
                    failures.push((instance.label.clone(), e));
                }
            }
        }
        if feeds_read == 0 {
            return Err(SourceError::NoInstance(failures));
        }
        if posts.is_empty() {
            return Err(SourceError::NoData(format!(
                "{feeds_read} feed(s) read, no post within {} h ({stale} older dropped)",
                self.config.max_item_age_hours
            )));
        }
        let scores: Vec<f64> = posts
            .values()
            .filter_map(|p| self.lexicon.score(&p.text))
            .collect();
        let scored = u32::try_from(scores.len()).unwrap_or(u32::MAX);
        if scored < self.config.min_scored_items.max(1) {
            return Err(SourceError::NoData(format!(
                "{} recent post(s), {scored} with a palm-oil price term (need {})",
                posts.len(),
                self.config.min_scored_items.max(1)
            )));
        }
        let Some((score, confidence)) = aggregate(&scores) else {
            return Err(SourceError::NoData("no scored post".to_owned()));
        };
        let newest = posts
            .values()
            .max_by_key(|p| p.published)
            .map(|p| one_line(&p.text))
            .unwrap_or_default();
        validated(SentimentReading {
            score,
            confidence,
            source: NITTER.to_owned(),
            known_at: self.clock.now(),
            item_count: scored,
            summary: one_line(&format!(
                "{scored} of {} recent posts scored; newest: {newest}",
                posts.len()
            )),
        })
    }

    fn record(&self, instance: &Instance, ok: bool) {
        let now = self.clock.now();
        if let Ok(mut breaker) = instance.breaker.lock() {
            if ok {
                breaker.on_success();
            } else {
                breaker.on_failure(now);
            }
        }
    }

    /// Runs every query on one instance; the first failure fails the instance.
    async fn fetch_instance(&self, instance: &Instance) -> Result<Vec<FeedItem>, SourceError> {
        let mut all = Vec::new();
        for query in &self.config.queries {
            let mut url = instance.base.clone();
            url.set_path("/search/rss");
            url.query_pairs_mut()
                .clear()
                .append_pair("f", "tweets")
                .append_pair("q", query);
            let request = HttpRequest::get(url)
                .header("accept", "application/rss+xml, application/xml;q=0.9")
                .timeout(Duration::from_secs(self.config.instance_timeout_secs));
            let response = self.http.send(request).await?;
            let status = response.status;
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                return Err(SourceError::RateLimited {
                    attempts: 1,
                    retry_after: crate::retry::server_wait(&response.headers, self.clock.now()),
                });
            }
            if status.is_server_error() {
                return Err(SourceError::ServerError {
                    status: status.as_u16(),
                    attempts: 1,
                    message: "instance failed".to_owned(),
                });
            }
            if !status.is_success() {
                // RSS disabled or the search route removed: only a configuration change helps.
                return Err(SourceError::Rejected {
                    status: status.as_u16(),
                    message: "instance refused the search".to_owned(),
                });
            }
            let items = parse_rss(&response.text()).map_err(SourceError::InvalidFeed)?;
            all.extend(items);
        }
        Ok(all)
    }
}

/// The post's text and time; `None` when it has no text or no readable date (its age is unknown).
fn to_post(item: &FeedItem) -> Option<Post> {
    let text = if item.title.trim().is_empty() {
        strip_tags(&item.description)
    } else {
        item.title.clone()
    };
    if text.trim().is_empty() {
        return None;
    }
    let published = chrono::DateTime::parse_from_rfc2822(item.pub_date.trim()).ok()?;
    Some(Post {
        text,
        published: Timestamp(published.timestamp_millis()),
    })
}

/// Drops HTML tags, keeping the text between them.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

impl SentimentSource for NitterSource {
    fn name(&self) -> &str {
        NITTER
    }

    fn fetch(&self) -> SentimentFuture<'_> {
        Box::pin(self.fetch_all())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_need_a_date_and_text() {
        let mut item = FeedItem {
            description: "<p>Palm <b>exports rise</b></p>".into(),
            pub_date: "Mon, 23 Nov 2026 08:00:00 GMT".into(),
            ..FeedItem::default()
        };
        let post = to_post(&item).unwrap();
        assert!(post.text.contains("exports rise"));
        assert_eq!(post.published.to_string(), "2026-11-23T08:00:00.000Z");
        item.pub_date = "yesterday".into();
        assert!(to_post(&item).is_none());
    }
}

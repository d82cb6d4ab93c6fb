//! X API v2 recent search (optional, paid per post read): one search per fetch, capped by a
//! daily post budget, posts scored with the palm-oil lexicon.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{Clock, SentimentReading, Timestamp};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::error::{HttpError, SourceError};
use crate::http::{HttpClient, HttpRequest};
use crate::lexicon::{PalmOilLexicon, aggregate};
use crate::source::{SentimentFuture, SentimentSource, one_line, validated};
use domain::Secret;

/// The source name in readings and stats.
pub const X: &str = "x";

/// The API's bounds on `max_results` for recent search.
const MIN_RESULTS: u32 = 10;
const MAX_RESULTS: u32 = 100;

/// Settings of the X recent-search source (the bearer token is passed separately).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XConfig {
    /// API root; the request goes to `{base_url}/2/tweets/search/recent`.
    pub base_url: String,
    /// The search query (X query syntax, at most 512 characters).
    pub query: String,
    /// Posts asked for per search (10 to 100).
    pub max_results: u32,
    /// Posts that may be read per UTC day; each one is billed.
    pub daily_post_budget: u32,
    /// Time allowed for one request, in seconds.
    pub request_timeout_secs: u64,
    /// Posts older than this are dropped, in hours.
    pub max_item_age_hours: u64,
    /// Fewest scored posts for a reading; fewer is "no data".
    pub min_scored_items: u32,
}

impl Default for XConfig {
    fn default() -> XConfig {
        XConfig {
            base_url: "https://api.x.com".to_owned(),
            query: "(\"palm oil\" OR FCPO OR \"CPO futures\") lang:en -is:retweet".to_owned(),
            max_results: 25,
            daily_post_budget: 200,
            request_timeout_secs: 15,
            max_item_age_hours: 48,
            min_scored_items: 2,
        }
    }
}

/// The X recent-search sentiment source.
pub struct XSearchSource {
    config: XConfig,
    endpoint: Url,
    token: Secret,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    lexicon: PalmOilLexicon,
    state: Mutex<XState>,
}

#[derive(Debug, Default)]
struct XState {
    day: i64,
    posts_read: u32,
    disabled: Option<String>,
}

impl std::fmt::Debug for XSearchSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XSearchSource")
            .field("endpoint", &self.endpoint.as_str())
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct SearchPage {
    #[serde(default)]
    data: Vec<Post>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Post {
    text: String,
    #[serde(default)]
    created_at: Option<String>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    result_count: u32,
}

impl XSearchSource {
    /// A source using `http` (whose allow-list must contain the API host) and `token`.
    pub fn new(
        config: XConfig,
        token: Secret,
        http: HttpClient,
        clock: Arc<dyn Clock>,
    ) -> Result<XSearchSource, HttpError> {
        let endpoint = http.checked_url(&format!(
            "{}/2/tweets/search/recent",
            config.base_url.trim_end_matches('/')
        ))?;
        Ok(XSearchSource {
            config,
            endpoint,
            token,
            http,
            clock,
            lexicon: PalmOilLexicon::default(),
            state: Mutex::new(XState::default()),
        })
    }

    /// Posts read so far in the current UTC day.
    pub fn posts_read_today(&self) -> u32 {
        let day = self.clock.now().epoch_day();
        self.state
            .lock()
            .map(|s| if s.day == day { s.posts_read } else { 0 })
            .unwrap_or(0)
    }

    /// Reserves up to `max_results` posts of today's budget; the number to ask for.
    fn reserve(&self) -> Result<u32, SourceError> {
        let day = self.clock.now().epoch_day();
        let mut state = self.state.lock().map_err(|_| SourceError::Disabled {
            reason: "internal state poisoned".to_owned(),
        })?;
        if let Some(reason) = &state.disabled {
            return Err(SourceError::Disabled {
                reason: reason.clone(),
            });
        }
        if state.day != day {
            state.day = day;
            state.posts_read = 0;
        }
        let remaining = self
            .config
            .daily_post_budget
            .saturating_sub(state.posts_read);
        let ask = self
            .config
            .max_results
            .clamp(MIN_RESULTS, MAX_RESULTS)
            .min(remaining);
        if ask < MIN_RESULTS {
            return Err(SourceError::BudgetExhausted {
                limit: self.config.daily_post_budget,
                window: "UTC day",
            });
        }
        // Count the whole request against the budget now; corrected when the answer arrives.
        state.posts_read = state.posts_read.saturating_add(ask);
        Ok(ask)
    }

    fn settle(&self, reserved: u32, read: u32) {
        if let Ok(mut state) = self.state.lock() {
            state.posts_read = state
                .posts_read
                .saturating_sub(reserved)
                .saturating_add(read);
        }
    }

    fn disable(&self, reason: String) -> SourceError {
        tracing::error!(source = X, reason = %reason, "x source disabled");
        if let Ok(mut state) = self.state.lock() {
            state.disabled = Some(reason.clone());
        }
        SourceError::Disabled { reason }
    }

    async fn search(&self) -> Result<SentimentReading, SourceError> {
        let ask = self.reserve()?;
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("query", &self.config.query)
            .append_pair("max_results", &ask.to_string())
            .append_pair("tweet.fields", "created_at");
        let request = HttpRequest::get(url)
            .bearer(&self.token)
            .timeout(Duration::from_secs(self.config.request_timeout_secs));
        let response = match self.http.send(request).await {
            Ok(r) => r,
            Err(e) => {
                self.settle(ask, 0);
                return Err(e.into());
            }
        };
        let status = response.status;
        if !status.is_success() {
            self.settle(ask, 0);
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => self.disable(format!(
                    "HTTP {}: the bearer token was refused or lacks access",
                    status.as_u16()
                )),
                StatusCode::TOO_MANY_REQUESTS => SourceError::RateLimited {
                    attempts: 1,
                    retry_after: crate::retry::server_wait(&response.headers, self.clock.now()),
                },
                s if s.is_server_error() => SourceError::ServerError {
                    status: s.as_u16(),
                    attempts: 1,
                    message: "X API server error".to_owned(),
                },
                s => SourceError::Rejected {
                    status: s.as_u16(),
                    message: "X API refused the search".to_owned(),
                },
            });
        }
        let page: SearchPage = match serde_json::from_slice(&response.body) {
            Ok(page) => page,
            Err(e) => {
                // Billing is per post delivered; without a count assume the whole request.
                return Err(SourceError::MalformedAnswer(format!("X search page: {e}")));
            }
        };
        let delivered = page
            .meta
            .as_ref()
            .map_or(0, |m| m.result_count)
            .max(u32::try_from(page.data.len()).unwrap_or(u32::MAX));
        self.settle(ask, delivered);
        self.score(page)
    }

    fn score(&self, page: SearchPage) -> Result<SentimentReading, SourceError> {
        let now = self.clock.now();
        let max_age_ms = i64::try_from(self.config.max_item_age_hours)
            .unwrap_or(i64::MAX / Timestamp::HOUR_MS)
            .saturating_mul(Timestamp::HOUR_MS);
        let recent: Vec<&Post> = page
            .data
            .iter()
            .filter(|p| {
                p.created_at
                    .as_deref()
                    .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                    .is_some_and(|t| {
                        now.millis_since(Timestamp(t.timestamp_millis())) <= max_age_ms
                    })
            })
            .collect();
        if recent.is_empty() {
            return Err(SourceError::NoData(format!(
                "{} post(s) returned, none within {} h",
                page.data.len(),
                self.config.max_item_age_hours
            )));
        }
        let scores: Vec<f64> = recent
            .iter()
            .filter_map(|p| self.lexicon.score(&p.text))
            .collect();
        let scored = u32::try_from(scores.len()).unwrap_or(u32::MAX);
        let need = self.config.min_scored_items.max(1);
        let (score, confidence) = match aggregate(&scores) {
            Some(v) if scored >= need => v,
            _ => {
                return Err(SourceError::NoData(format!(
                    "{} recent post(s), {scored} with a palm-oil price term (need {need})",
                    recent.len()
                )));
            }
        };
        validated(SentimentReading {
            score,
            confidence,
            source: X.to_owned(),
            known_at: now,
            item_count: scored,
            summary: one_line(&format!(
                "{scored} of {} recent posts scored; first: {}",
                recent.len(),
                recent.first().map_or("", |p| p.text.as_str())
            )),
        })
    }
}

impl SentimentSource for XSearchSource {
    fn name(&self) -> &str {
        X
    }

    fn fetch(&self) -> SentimentFuture<'_> {
        Box::pin(self.search())
    }
}

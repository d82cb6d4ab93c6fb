//! Perplexity (primary source): one Responses API run with web search and a JSON-schema answer,
//! validated before use. Retries 429/5xx with backoff, disables itself on 401/403, spends at
//! most a configured number of requests per hour, and sends one request at a time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{Clock, SentimentReading};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{HttpError, SourceError};
use crate::http::{HttpClient, HttpRequest, HttpResponse};
use crate::limits::SlidingBudget;
use crate::retry::{RetryPolicy, Sleeper, full_jitter, server_wait};
use crate::source::{SentimentFuture, SentimentSource, one_line, validated};
use domain::Secret;

/// The source name in readings and stats.
pub const PERPLEXITY: &str = "perplexity";

/// Settings of the Perplexity source (the API key is passed separately, never configured here).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerplexityConfig {
    /// API root; the request goes to `{base_url}/v1/responses`.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Cap on the answer's length, which also caps cost.
    pub max_output_tokens: u32,
    /// How far back the news search looks, in hours (stated in the prompt).
    pub lookback_hours: u32,
    /// Time allowed for one request, in seconds (web search runs are slow).
    pub request_timeout_secs: u64,
    /// Attempts per fetch, the first included.
    pub max_attempts: u32,
    /// First backoff step, in milliseconds.
    pub backoff_min_ms: u64,
    /// Largest backoff step, in milliseconds.
    pub backoff_max_ms: u64,
    /// Longest server-requested wait honoured, in seconds; longer ends the fetch.
    pub max_server_wait_secs: u64,
    /// Requests allowed per sliding hour (each attempt counts).
    pub hourly_request_budget: u32,
}

impl Default for PerplexityConfig {
    fn default() -> PerplexityConfig {
        PerplexityConfig {
            base_url: "https://api.perplexity.ai".to_owned(),
            model: "perplexity/sonar".to_owned(),
            max_output_tokens: 600,
            lookback_hours: 24,
            request_timeout_secs: 60,
            max_attempts: 4,
            backoff_min_ms: 1_000,
            backoff_max_ms: 20_000,
            max_server_wait_secs: 60,
            hourly_request_budget: 20,
        }
    }
}

impl PerplexityConfig {
    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("{}/v1/responses", self.base_url.trim_end_matches('/'))
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            min_delay: Duration::from_millis(self.backoff_min_ms),
            max_delay: Duration::from_millis(self.backoff_max_ms.max(self.backoff_min_ms)),
            max_server_wait: Duration::from_secs(self.max_server_wait_secs),
        }
    }
}

/// The Perplexity sentiment source.
pub struct PerplexitySource {
    config: PerplexityConfig,
    endpoint: Url,
    key: Secret,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    /// Held for a whole fetch: the lowest tier allows about one request per second.
    one_at_a_time: tokio::sync::Mutex<()>,
    state: Mutex<PerplexityState>,
}

#[derive(Debug)]
struct PerplexityState {
    budget: SlidingBudget,
    disabled: Option<String>,
}

impl std::fmt::Debug for PerplexitySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerplexitySource")
            .field("endpoint", &self.endpoint.as_str())
            .field("key", &self.key)
            .field("disabled", &self.disabled_reason())
            .finish_non_exhaustive()
    }
}

/// What the fetch loop does after one attempt.
enum Next {
    Done(Result<SentimentReading, SourceError>),
    Retry {
        wait: Duration,
        failure: SourceError,
    },
}

impl PerplexitySource {
    /// A source using `http` (whose allow-list must contain the API host) and `key`.
    pub fn new(
        config: PerplexityConfig,
        key: Secret,
        http: HttpClient,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Result<PerplexitySource, HttpError> {
        let endpoint = http.checked_url(&config.endpoint())?;
        let budget = SlidingBudget::new(config.hourly_request_budget, domain::Timestamp::HOUR_MS);
        Ok(PerplexitySource {
            config,
            endpoint,
            key,
            http,
            clock,
            sleeper,
            one_at_a_time: tokio::sync::Mutex::new(()),
            state: Mutex::new(PerplexityState {
                budget,
                disabled: None,
            }),
        })
    }

    /// Why the source disabled itself, if it did.
    pub fn disabled_reason(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.disabled.clone())
    }

    /// The JSON body sent to `/v1/responses` (exposed so the wire shape can be checked).
    pub fn request_body(&self) -> Value {
        json!({
            "model": self.config.model,
            "input": prompt(self.config.lookback_hours),
            "instructions": INSTRUCTIONS,
            "tools": [{"type": "web_search"}],
            "max_output_tokens": self.config.max_output_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "palm_oil_sentiment", "schema": answer_schema()},
            },
        })
    }

    async fn fetch_once_locked(&self) -> Result<SentimentReading, SourceError> {
        let _turn = self.one_at_a_time.lock().await;
        if let Some(reason) = self.disabled_reason() {
            return Err(SourceError::Disabled { reason });
        }
        let policy = self.config.retry_policy();
        let steps = policy.steps();
        let body = serde_json::to_vec(&self.request_body())
            .map_err(|e| SourceError::MalformedAnswer(format!("request encoding: {e}")))?;
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            self.spend_budget()?;
            let request = HttpRequest::post_json(self.endpoint.clone(), body.clone())
                .bearer(&self.key)
                .header("accept", "application/json")
                .timeout(Duration::from_secs(self.config.request_timeout_secs));
            let outcome = self.http.send(request).await;
            let step = usize::try_from(attempt - 1)
                .ok()
                .and_then(|i| steps.get(i).copied());
            match self.judge(outcome, attempt, step, &policy) {
                Next::Done(result) => return result,
                Next::Retry { wait, failure } => {
                    tracing::warn!(
                        source = PERPLEXITY,
                        attempt,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        error = %failure,
                        "perplexity request failed; backing off"
                    );
                    self.sleeper.sleep(wait).await;
                }
            }
        }
    }

    fn spend_budget(&self) -> Result<(), SourceError> {
        let now = self.clock.now();
        let mut state = self.state.lock().map_err(|_| SourceError::Disabled {
            reason: "internal state poisoned".to_owned(),
        })?;
        if state.budget.try_spend(now, 1) {
            Ok(())
        } else {
            Err(SourceError::BudgetExhausted {
                limit: state.budget.limit(),
                window: "hour",
            })
        }
    }

    fn disable(&self, reason: String) -> SourceError {
        tracing::error!(source = PERPLEXITY, reason = %reason, "perplexity source disabled");
        if let Ok(mut state) = self.state.lock() {
            state.disabled = Some(reason.clone());
        }
        SourceError::Disabled { reason }
    }

    /// Decides what one attempt's outcome means. `step` is the next backoff step, `None` when
    /// no attempts are left.
    fn judge(
        &self,
        outcome: Result<HttpResponse, HttpError>,
        attempt: u32,
        step: Option<Duration>,
        policy: &RetryPolicy,
    ) -> Next {
        let response = match outcome {
            Ok(response) => response,
            Err(e) if e.is_transient() => {
                return match step {
                    Some(step) => Next::Retry {
                        wait: full_jitter(step),
                        failure: e.into(),
                    },
                    None => Next::Done(Err(e.into())),
                };
            }
            Err(e) => return Next::Done(Err(e.into())),
        };
        let status = response.status;
        if status.is_success() {
            return Next::Done(self.parse_success(&response));
        }
        let api = ApiError::from_body(&response.body, &self.key);
        if status == StatusCode::UNAUTHORIZED {
            return Next::Done(Err(self.disable(format!(
                "HTTP 401: the API key was rejected ({})",
                api.describe()
            ))));
        }
        if status == StatusCode::FORBIDDEN {
            let reason = if api.code.as_deref() == Some("chat_completions_not_available") {
                format!(
                    "HTTP 403 chat_completions_not_available: the endpoint is the retired chat-completions API ({})",
                    api.describe()
                )
            } else {
                format!("HTTP 403: access forbidden ({})", api.describe())
            };
            return Next::Done(Err(self.disable(reason)));
        }
        let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        if !retryable {
            return Next::Done(Err(SourceError::Rejected {
                status: status.as_u16(),
                message: api.describe(),
            }));
        }
        let hint = server_wait(&response.headers, self.clock.now());
        let failure = if status == StatusCode::TOO_MANY_REQUESTS {
            SourceError::RateLimited {
                attempts: attempt,
                retry_after: hint,
            }
        } else {
            SourceError::ServerError {
                status: status.as_u16(),
                attempts: attempt,
                message: api.describe(),
            }
        };
        let Some(step) = step else {
            return Next::Done(Err(failure));
        };
        let wait = match hint {
            Some(hint) if hint > policy.max_server_wait => return Next::Done(Err(failure)),
            Some(hint) => hint,
            None => full_jitter(step),
        };
        Next::Retry { wait, failure }
    }

    fn parse_success(&self, response: &HttpResponse) -> Result<SentimentReading, SourceError> {
        let run: ResponsesRun = serde_json::from_slice(&response.body)
            .map_err(|e| SourceError::MalformedAnswer(format!("response body: {e}")))?;
        if run.status != "completed" {
            let detail = run
                .error
                .as_ref()
                .map(|e| redact(&e.to_string(), &self.key))
                .or_else(|| run.incomplete_details.as_ref().map(Value::to_string));
            return Err(SourceError::RunNotCompleted {
                status: run.status,
                detail,
            });
        }
        let text: String = run
            .output
            .iter()
            .filter(|item| item.kind == "message")
            .flat_map(|item| item.content.iter())
            .filter(|part| part.kind == "output_text")
            .map(|part| part.text.as_str())
            .collect();
        if text.trim().is_empty() {
            return Err(SourceError::MalformedAnswer(
                "completed run has no output_text".to_owned(),
            ));
        }
        let sources = run
            .output
            .iter()
            .filter(|item| item.kind == "search_results")
            .map(|item| item.results.len())
            .sum::<usize>();
        let answer = Answer::parse(&text)?;
        tracing::info!(
            source = PERPLEXITY,
            score = answer.score,
            confidence = answer.confidence,
            items = answer.item_count,
            search_results = sources,
            "perplexity reading"
        );
        validated(SentimentReading {
            score: answer.score,
            confidence: answer.confidence,
            source: PERPLEXITY.to_owned(),
            known_at: self.clock.now(),
            item_count: answer.item_count,
            summary: answer.summary,
        })
    }
}

impl SentimentSource for PerplexitySource {
    fn name(&self) -> &str {
        PERPLEXITY
    }

    fn fetch(&self) -> SentimentFuture<'_> {
        Box::pin(self.fetch_once_locked())
    }
}

const INSTRUCTIONS: &str = "You are a commodities analyst. Answer only with the JSON object the \
schema describes. Base the judgement on news you found, not on general knowledge; if you found \
no relevant news, set item_count to 0.";

/// The question asked: what moved or will move the crude palm oil price, by the drivers that matter.
fn prompt(lookback_hours: u32) -> String {
    format!(
        "Search news from the last {lookback_hours} hours about crude palm oil and Bursa Malaysia \
         FCPO futures. Judge their net effect on the palm oil price over the next few trading days. \
         Weigh: MPOB monthly supply and demand data (stocks, output, exports; published around the \
         10th); cargo surveyor export estimates from ITS, AmSpec and SGS (10th, 15th, 20th, 25th \
         and month end); Malaysian and Indonesian export duties and levies; Indonesia's biodiesel \
         mandate; soybean oil prices; Brent crude; the ringgit; and weather in Malaysia and \
         Indonesia. score: -1 strongly bearish to 1 strongly bullish for the price. confidence: 0 \
         to 1. item_count: how many distinct news items the judgement rests on. summary: one line \
         under 200 characters naming the main driver."
    )
}

/// The JSON schema the answer must follow.
fn answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": -1, "maximum": 1},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "summary": {"type": "string"},
            "item_count": {"type": "integer", "minimum": 0},
        },
        "required": ["score", "confidence", "summary", "item_count"],
        "additionalProperties": false,
    })
}

/// The validated structured answer.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    score: f64,
    confidence: f64,
    summary: String,
    item_count: u32,
}

#[derive(Deserialize)]
struct RawAnswer {
    score: Option<Value>,
    confidence: Option<Value>,
    summary: Option<Value>,
    item_count: Option<Value>,
}

impl Answer {
    fn parse(text: &str) -> Result<Answer, SourceError> {
        let raw: RawAnswer = serde_json::from_str(text.trim()).map_err(|e| {
            SourceError::MalformedAnswer(format!("answer is not the JSON object asked for: {e}"))
        })?;
        let score = number(raw.score, "score")?;
        if !(-1.0..=1.0).contains(&score) {
            return Err(SourceError::OutOfRange {
                field: "score",
                value: score,
                range: "[-1, 1]",
            });
        }
        let confidence = number(raw.confidence, "confidence")?;
        if !(0.0..=1.0).contains(&confidence) {
            return Err(SourceError::OutOfRange {
                field: "confidence",
                value: confidence,
                range: "[0, 1]",
            });
        }
        let summary = match raw.summary {
            Some(Value::String(s)) if !s.trim().is_empty() => one_line(&s),
            Some(Value::String(_)) => {
                return Err(SourceError::MalformedAnswer("summary is empty".to_owned()));
            }
            Some(_) => {
                return Err(SourceError::MalformedAnswer(
                    "summary is not a string".to_owned(),
                ));
            }
            None => {
                return Err(SourceError::MalformedAnswer(
                    "missing field summary".to_owned(),
                ));
            }
        };
        let count = match raw.item_count {
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
                SourceError::MalformedAnswer(format!("item_count {n} is not an integer"))
            })?,
            Some(other) => {
                return Err(SourceError::MalformedAnswer(format!(
                    "item_count {other} is not an integer"
                )));
            }
            None => {
                return Err(SourceError::MalformedAnswer(
                    "missing field item_count".to_owned(),
                ));
            }
        };
        let item_count = u32::try_from(count).map_err(|_| SourceError::OutOfRange {
            field: "item_count",
            value: count as f64,
            range: "[0, 4294967295]",
        })?;
        if item_count == 0 {
            return Err(SourceError::NoData(format!(
                "no relevant news found ({summary})"
            )));
        }
        Ok(Answer {
            score,
            confidence,
            summary,
            item_count,
        })
    }
}

fn number(value: Option<Value>, field: &'static str) -> Result<f64, SourceError> {
    match value {
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| SourceError::MalformedAnswer(format!("{field} is not a finite number"))),
        Some(other) => Err(SourceError::MalformedAnswer(format!(
            "{field} is not a number: {other}"
        ))),
        None => Err(SourceError::MalformedAnswer(format!(
            "missing field {field}"
        ))),
    }
}

/// Removes the key from text an API sent back, in case it echoes the credential.
fn redact(text: &str, key: &Secret) -> String {
    if key.is_empty() {
        return text.to_owned();
    }
    text.replace(key.expose(), "***")
}

/// A Responses API run, reduced to what we read.
#[derive(Deserialize)]
struct ResponsesRun {
    status: String,
    #[serde(default)]
    output: Vec<OutputItem>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    incomplete_details: Option<Value>,
}

#[derive(Deserialize)]
struct OutputItem {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    content: Vec<ContentPart>,
    #[serde(default)]
    results: Vec<Value>,
}

#[derive(Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

/// `{"error": {"message", "type", "code"}}`, read leniently: any part may be missing.
#[derive(Debug, Default)]
struct ApiError {
    code: Option<String>,
    message: Option<String>,
}

impl ApiError {
    fn from_body(body: &[u8], key: &Secret) -> ApiError {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return ApiError::default();
        };
        let error = value.get("error").unwrap_or(&Value::Null);
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(redact(s, key)),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        ApiError {
            code: text(error.get("code")).or_else(|| text(error.get("type"))),
            message: text(error.get("message")).map(|m| one_line(&m)),
        }
    }

    fn describe(&self) -> String {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            (None, Some(message)) => message.clone(),
            (None, None) => "no error detail".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_validation_names_the_problem() {
        let ok = Answer::parse(
            r#"{"score": 0.4, "confidence": 0.7, "summary": "Exports up\n8%", "item_count": 5}"#,
        )
        .unwrap();
        assert_eq!(ok.summary, "Exports up 8%");
        assert_eq!(ok.item_count, 5);

        let missing = Answer::parse(r#"{"score": 0.4, "confidence": 0.7, "item_count": 5}"#);
        assert!(matches!(missing, Err(SourceError::MalformedAnswer(m)) if m.contains("summary")));

        let text_score = Answer::parse(
            r#"{"score": "bullish", "confidence": 0.7, "summary": "s", "item_count": 5}"#,
        );
        assert!(matches!(text_score, Err(SourceError::MalformedAnswer(m)) if m.contains("score")));

        let conf =
            Answer::parse(r#"{"score": 0.1, "confidence": 1.2, "summary": "s", "item_count": 5}"#);
        assert!(matches!(
            conf,
            Err(SourceError::OutOfRange {
                field: "confidence",
                ..
            })
        ));

        let negative =
            Answer::parse(r#"{"score": 0.1, "confidence": 0.2, "summary": "s", "item_count": -1}"#);
        assert!(matches!(
            negative,
            Err(SourceError::OutOfRange {
                field: "item_count",
                ..
            })
        ));

        let none = Answer::parse(
            r#"{"score": 0.0, "confidence": 0.9, "summary": "quiet", "item_count": 0}"#,
        );
        assert!(matches!(none, Err(SourceError::NoData(_))));
    }

    #[test]
    fn long_summaries_are_cut_to_one_line() {
        let long = "a ".repeat(400);
        let cut = one_line(&long);
        assert!(cut.chars().count() <= crate::source::MAX_SUMMARY_CHARS + 1);
        assert!(!cut.contains('\n'));
    }

    #[test]
    fn api_errors_never_echo_the_key() {
        let key = Secret::new("pplx-secret-999");
        let body = br#"{"error": {"message": "Invalid key pplx-secret-999", "type": "invalid_request_error", "code": 401}}"#;
        let api = ApiError::from_body(body, &key);
        assert_eq!(api.describe(), "401: Invalid key ***");
    }
}

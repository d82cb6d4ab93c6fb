//! Why a sentiment source could not give a reading, classified for the retry layer.

use std::time::Duration;

/// A failure of the one HTTP client: policy refusals, transport errors, oversized bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The URL could not be parsed.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// The host is not on the network allow-list; nothing was sent.
    #[error("host {host:?} is not on the network allow-list; request refused before connecting")]
    HostNotAllowed {
        /// The refused host.
        host: String,
    },
    /// Plain HTTP to a host that is not an explicitly allowed loopback address.
    #[error(
        "plain http to {host:?} refused: HTTPS is required (plain http only for allowed loopback hosts)"
    )]
    InsecureScheme {
        /// The refused host.
        host: String,
    },
    /// Connecting, sending or reading failed (DNS, TLS, reset, refused redirect).
    #[error("request to {host} failed: {reason}")]
    Transport {
        /// The host the request went to.
        host: String,
        /// What failed (never contains a credential: they travel in headers only).
        reason: String,
        /// Whether the request or connection timed out.
        timed_out: bool,
    },
    /// The body grew past the configured cap; reading stopped there.
    #[error("response from {host} exceeded the {limit}-byte cap")]
    ResponseTooLarge {
        /// The host that sent it.
        host: String,
        /// The cap in bytes.
        limit: usize,
    },
    /// The HTTP client could not be built (TLS configuration).
    #[error("HTTP client could not be built: {0}")]
    Build(String),
}

impl HttpError {
    /// True when trying again later may succeed (network trouble), false for policy refusals.
    pub fn is_transient(&self) -> bool {
        matches!(self, HttpError::Transport { .. })
    }
}

/// Why one source gave no reading. Never a neutral score in disguise.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// The HTTP layer failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The source was disabled by a permanent failure; no request is sent any more.
    #[error("source disabled: {reason}")]
    Disabled {
        /// The failure that disabled it.
        reason: String,
    },
    /// The API said the request itself is wrong or not permitted (4xx other than 429).
    #[error("API refused the request with HTTP {status}: {message}")]
    Rejected {
        /// HTTP status code.
        status: u16,
        /// The API's error code and message.
        message: String,
    },
    /// The server failed (5xx) and retries ran out.
    #[error("server error HTTP {status} after {attempts} attempt(s): {message}")]
    ServerError {
        /// Last HTTP status code.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The API's error message, if any.
        message: String,
    },
    /// Still rate-limited (429) when retries ran out.
    #[error("rate limited after {attempts} attempt(s){}", retry_hint(*.retry_after))]
    RateLimited {
        /// Attempts made.
        attempts: u32,
        /// How long the server asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The configured request budget is used up for the current window.
    #[error("request budget of {limit} per {window} exhausted")]
    BudgetExhausted {
        /// Requests (or posts) allowed per window.
        limit: u32,
        /// The window, in words (`hour`, `UTC day`).
        window: &'static str,
    },
    /// The run did not complete (failed, incomplete, cancelled, queued, in progress).
    #[error("run ended with status {status:?}{}", detail_suffix(.detail))]
    RunNotCompleted {
        /// The status the API reported.
        status: String,
        /// The API's explanation, if any.
        detail: Option<String>,
    },
    /// The answer was not the JSON the schema asked for.
    #[error("malformed answer: {0}")]
    MalformedAnswer(String),
    /// A field of the answer was outside its range.
    #[error("answer field {field} = {value} is outside {range}")]
    OutOfRange {
        /// The field name.
        field: &'static str,
        /// The value as received.
        value: f64,
        /// The allowed range, in words.
        range: &'static str,
    },
    /// The source answered but had nothing to rest a reading on.
    #[error("no data: {0}")]
    NoData(String),
    /// A feed that is not RSS (HTML challenge page, error page, garbage).
    #[error("not an RSS feed: {0}")]
    InvalidFeed(String),
    /// Every instance's circuit breaker is open.
    #[error("circuit open until {until}")]
    CircuitOpen {
        /// When the breaker lets a request through again.
        until: domain::Timestamp,
    },
    /// The newest reading is older than the configured maximum age.
    #[error("latest reading from {known_at} is stale (older than {max_age_secs} s)")]
    Stale {
        /// When the newest reading became known.
        known_at: domain::Timestamp,
        /// The maximum age allowed.
        max_age_secs: u64,
    },
    /// No Nitter instance served a usable feed; each instance's reason is kept.
    #[error("no instance served a feed: {}", join_failures(.0))]
    NoInstance(Vec<(String, SourceError)>),
    /// Several sources failed; each reason is kept, in chain order.
    #[error("all sources failed: {}", join_failures(.0))]
    AllFailed(Vec<(String, SourceError)>),
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (server asked to wait {} s)", d.as_secs()),
        None => String::new(),
    }
}

fn detail_suffix(detail: &Option<String>) -> String {
    match detail {
        Some(d) => format!(": {d}"),
        None => String::new(),
    }
}

fn join_failures(failures: &[(String, SourceError)]) -> String {
    if failures.is_empty() {
        return "no source is configured".to_owned();
    }
    failures
        .iter()
        .map(|(name, e)| format!("{name}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl SourceError {
    /// True when asking again later may succeed; false when only a person can fix it.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Http(e) => e.is_transient(),
            SourceError::ServerError { .. }
            | SourceError::RateLimited { .. }
            | SourceError::BudgetExhausted { .. }
            | SourceError::RunNotCompleted { .. }
            | SourceError::MalformedAnswer(_)
            | SourceError::OutOfRange { .. }
            | SourceError::NoData(_)
            | SourceError::InvalidFeed(_)
            | SourceError::CircuitOpen { .. }
            | SourceError::Stale { .. } => true,
            SourceError::Disabled { .. } | SourceError::Rejected { .. } => false,
            SourceError::AllFailed(all) | SourceError::NoInstance(all) => {
                all.iter().any(|(_, e)| e.is_transient())
            }
        }
    }
}

/// A configuration that cannot build a working chain; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A source is listed in the order but its credential was not provided.
    #[error("sentiment source {source_name} is configured but no {credential} was provided")]
    MissingCredential {
        /// The source.
        source_name: &'static str,
        /// Which credential is missing.
        credential: &'static str,
    },
    /// A configured URL's host is not on the network allow-list.
    #[error("{setting}: host {host:?} is not in http.allowed_hosts")]
    HostNotAllowed {
        /// The setting that holds the URL.
        setting: String,
        /// The host.
        host: String,
    },
    /// A setting has a value that cannot work.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting.
        setting: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The replay series could not be parsed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

/// A replay CSV that cannot be used; the message names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// A row is malformed.
    #[error("replay CSV line {line}: {reason}")]
    BadRow {
        /// 1-based line number in the CSV text.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The series has no rows.
    #[error("replay CSV has no readings")]
    Empty,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_separates_permanent_failures() {
        assert!(
            !SourceError::Disabled {
                reason: "401".into()
            }
            .is_transient()
        );
        assert!(
            SourceError::RateLimited {
                attempts: 3,
                retry_after: None
            }
            .is_transient()
        );
        assert!(!SourceError::Http(HttpError::HostNotAllowed { host: "x".into() }).is_transient());
        let all = SourceError::AllFailed(vec![
            ("a".into(), SourceError::Disabled { reason: "r".into() }),
            ("b".into(), SourceError::NoData("empty".into())),
        ]);
        assert!(all.is_transient());
        assert_eq!(
            all.to_string(),
            "all sources failed: a: source disabled: r; b: no data: empty"
        );
    }
}

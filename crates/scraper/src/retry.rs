//! Backoff for rate-limited and failing APIs: exponential delays (backon) with full jitter,
//! replaced by the server's own hint (`Retry-After`, `X-RateLimit-Reset*`) when it gives one.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use domain::Timestamp;
use reqwest::header::HeaderMap;

/// How a source waits between attempts; injected so tests observe the waits without sleeping.
pub trait Sleeper: Send + Sync + std::fmt::Debug {
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Sleeps on the tokio timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// How many attempts and how long to wait between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
    /// The first backoff step before jitter.
    pub min_delay: Duration,
    /// The largest backoff step before jitter.
    pub max_delay: Duration,
    /// The longest server-requested wait we honour; a longer one ends the retries.
    pub max_server_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(20),
            max_server_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The un-jittered exponential steps between attempts (`max_attempts - 1` of them).
    pub fn steps(&self) -> Vec<Duration> {
        let retries = usize::try_from(self.max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(retries)
            .build()
            .collect()
    }
}

/// Full jitter: a uniformly random wait in `[0, step]`, so clients that failed together spread out.
pub fn full_jitter(step: Duration) -> Duration {
    let millis = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=millis))
}

/// The wait a response asks for: `Retry-After` seconds, else an `X-RateLimit-Reset*` header
/// (seconds, epoch seconds, or a duration like `1m30s`), judged against `now`.
pub fn server_wait(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    if let Some(secs) = header_str(headers, "retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    let remaining_zero_or_unknown = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-ratelimit-remaining"))
        .all(|(_, value)| value.to_str().map(|v| v.trim() == "0").unwrap_or(true));
    if !remaining_zero_or_unknown {
        return None;
    }
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-ratelimit-reset"))
        .filter_map(|(_, value)| value.to_str().ok())
        .filter_map(|value| parse_reset(value, now))
        .max()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Epoch seconds above this are absolute times, below it relative seconds.
const EPOCH_SECONDS_THRESHOLD: f64 = 1.0e9;

fn parse_reset(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(number) = value.parse::<f64>() {
        if !number.is_finite() || number < 0.0 {
            return None;
        }
        let secs = if number > EPOCH_SECONDS_THRESHOLD {
            let now_secs = now.millis() as f64 / 1000.0;
            (number - now_secs).max(0.0)
        } else {
            number
        };
        return Duration::try_from_secs_f64(secs).ok();
    }
    parse_compound_duration(value)
}

/// Parses `1h2m3s`, `6m0s`, `250ms`, `1.5s`.
fn parse_compound_duration(value: &str) -> Option<Duration> {
    let mut total = 0.0f64;
    let mut rest = value;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let (scale, unit_len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else {
            return None;
        };
        total += number * scale;
        rest = rest.get(unit_len..)?;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn steps_grow_exponentially_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 5,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3),
            max_server_wait: Duration::from_secs(60),
        };
        assert_eq!(
            policy.steps(),
            [1, 2, 3, 3].map(Duration::from_secs).to_vec()
        );
    }

    #[test]
    fn full_jitter_stays_within_the_step() {
        for _ in 0..100 {
            assert!(full_jitter(Duration::from_millis(50)) <= Duration::from_millis(50));
        }
    }

    #[test]
    fn server_hints_are_read() {
        let now = Timestamp(1_700_000_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(server_wait(&h, now), None);
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1700000007"));
        assert_eq!(server_wait(&h, now), Some(Duration::from_secs(7)));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("2.5"));
        assert_eq!(server_wait(&h, now), Some(Duration::from_millis(2500)));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1m30s"));
        assert_eq!(server_wait(&h, now), Some(Duration::from_secs(90)));
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("12"));
        assert_eq!(
            server_wait(&h, now),
            None,
            "quota left: the reset is no hint"
        );
        h.insert("retry-after", HeaderValue::from_static("4"));
        assert_eq!(server_wait(&h, now), Some(Duration::from_secs(4)));
    }
}

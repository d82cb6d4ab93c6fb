//! The boundary every sentiment source implements, and an in-memory fake beside it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use domain::SentimentReading;

use crate::error::SourceError;

/// What a source's fetch returns: a boxed future, so sources can sit in one `Vec<Arc<dyn _>>`.
pub type SentimentFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SentimentReading, SourceError>> + Send + 'a>>;

/// A place sentiment comes from: one reading (score in [-1, 1], confidence in [0, 1]) or a typed
/// reason why not. A source never turns a failure into a neutral score.
pub trait SentimentSource: Send + Sync + std::fmt::Debug {
    /// Short stable name (`perplexity`, `nitter`, `x`, `replay`, `fake`), used in readings and stats.
    fn name(&self) -> &str;

    /// Fetches one reading now.
    fn fetch(&self) -> SentimentFuture<'_>;
}

/// An in-memory source for tests: replays queued outcomes, then repeats the last one.
#[derive(Debug)]
pub struct FakeSource {
    name: String,
    outcomes: Mutex<VecDeque<Result<SentimentReading, SourceError>>>,
    calls: AtomicU32,
}

impl FakeSource {
    /// A fake named `name` that gives `outcomes` in order; the last one repeats.
    pub fn new(
        name: impl Into<String>,
        outcomes: impl IntoIterator<Item = Result<SentimentReading, SourceError>>,
    ) -> FakeSource {
        FakeSource {
            name: name.into(),
            outcomes: Mutex::new(outcomes.into_iter().collect()),
            calls: AtomicU32::new(0),
        }
    }

    /// How many times `fetch` was called.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl SentimentSource for FakeSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn fetch(&self) -> SentimentFuture<'_> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let outcome = match self.outcomes.lock() {
            Ok(mut queue) => {
                if queue.len() > 1 {
                    queue.pop_front()
                } else {
                    queue.front().cloned()
                }
            }
            Err(_) => None,
        };
        let outcome = outcome
            .unwrap_or_else(|| Err(SourceError::NoData("fake source has no outcomes".into())));
        Box::pin(async move { outcome })
    }
}

/// Checks a reading's ranges before it leaves a source.
pub(crate) fn validated(reading: SentimentReading) -> Result<SentimentReading, SourceError> {
    if !(reading.score.is_finite() && (-1.0..=1.0).contains(&reading.score)) {
        return Err(SourceError::OutOfRange {
            field: "score",
            value: reading.score,
            range: "[-1, 1]",
        });
    }
    if !(reading.confidence.is_finite() && (0.0..=1.0).contains(&reading.confidence)) {
        return Err(SourceError::OutOfRange {
            field: "confidence",
            value: reading.confidence,
            range: "[0, 1]",
        });
    }
    Ok(reading)
}

/// The longest summary kept; longer ones are cut at a character boundary.
pub(crate) const MAX_SUMMARY_CHARS: usize = 240;

/// Collapses whitespace (newlines included) and cuts to [`MAX_SUMMARY_CHARS`].
pub(crate) fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(MAX_SUMMARY_CHARS) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Timestamp;

    fn reading(score: f64) -> SentimentReading {
        SentimentReading {
            score,
            confidence: 0.5,
            source: "fake".into(),
            known_at: Timestamp(0),
            item_count: 1,
            summary: "s".into(),
        }
    }

    #[tokio::test]
    async fn fake_replays_then_repeats_last() {
        let fake = FakeSource::new(
            "fake",
            [Err(SourceError::NoData("x".into())), Ok(reading(0.2))],
        );
        assert!(fake.fetch().await.is_err());
        assert_eq!(fake.fetch().await.unwrap().score, 0.2);
        assert_eq!(fake.fetch().await.unwrap().score, 0.2);
        assert_eq!(fake.calls(), 3);
    }

    #[test]
    fn validation_rejects_out_of_range() {
        assert!(validated(reading(1.5)).is_err());
        assert!(validated(reading(f64::NAN)).is_err());
        assert!(validated(reading(-1.0)).is_ok());
    }
}

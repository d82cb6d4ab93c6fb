//! Test doubles for other crates' tests (feature `test-util`, never in a production build): a
//! sentiment source that replays queued outcomes, and a sleeper that records waits instead of
//! sleeping.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::SentimentReading;

use crate::error::SourceError;
use crate::retry::Sleeper;
use crate::source::{SentimentFuture, SentimentSource};

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

/// Returns at once and records each requested wait, for tests.
#[derive(Debug, Clone, Default)]
pub struct RecordingSleeper {
    waits: Arc<Mutex<Vec<Duration>>>,
}

impl RecordingSleeper {
    /// A sleeper with no recorded waits.
    pub fn new() -> RecordingSleeper {
        RecordingSleeper::default()
    }

    /// The waits requested so far, in order.
    pub fn waits(&self) -> Vec<Duration> {
        self.waits.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        if let Ok(mut waits) = self.waits.lock() {
            waits.push(duration);
        }
        Box::pin(std::future::ready(()))
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

    #[tokio::test]
    async fn the_recording_sleeper_returns_at_once_and_remembers_each_wait() {
        let sleeper = RecordingSleeper::new();
        sleeper.sleep(Duration::from_secs(30)).await;
        sleeper.sleep(Duration::from_millis(5)).await;
        assert_eq!(
            sleeper.waits(),
            vec![Duration::from_secs(30), Duration::from_millis(5)]
        );
    }
}

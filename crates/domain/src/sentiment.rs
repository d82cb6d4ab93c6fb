//! Sentiment readings: what news and social posts said about palm oil, and when it was known.

use std::fmt;

use crate::Timestamp;

/// One sentiment reading from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct SentimentReading {
    /// From -1 (bearish for palm oil) to 1 (bullish).
    pub score: f64,
    /// From 0 (a guess) to 1 (certain).
    pub confidence: f64,
    /// Which source produced it (e.g. `perplexity`, `nitter`, `replay`).
    pub source: String,
    /// When it became known: a backtest may use it only from this instant.
    pub known_at: Timestamp,
    /// How many items (articles, posts) it rests on.
    pub item_count: u32,
    /// One line a person can read.
    pub summary: String,
}

impl SentimentReading {
    /// True when score and confidence are finite and inside their ranges.
    pub fn is_valid(&self) -> bool {
        self.score.is_finite()
            && self.confidence.is_finite()
            && (-1.0..=1.0).contains(&self.score)
            && (0.0..=1.0).contains(&self.confidence)
    }

    /// Age of the reading at `now`, in milliseconds.
    pub fn age_millis(&self, now: Timestamp) -> i64 {
        now.millis_since(self.known_at)
    }
}

/// Why no reading could be had; the strategy's policy decides what that means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentimentUnavailable {
    /// Which source (or `chain` for all of them).
    pub source: String,
    /// Why, in words.
    pub reason: String,
}

impl fmt::Display for SentimentUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sentiment from {} unavailable: {}",
            self.source, self.reason
        )
    }
}

impl std::error::Error for SentimentUnavailable {}

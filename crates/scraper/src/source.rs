//! The boundary every sentiment source implements.

use std::future::Future;
use std::pin::Pin;

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

    #[test]
    fn validation_rejects_out_of_range() {
        assert!(validated(reading(1.5)).is_err());
        assert!(validated(reading(f64::NAN)).is_err());
        assert!(validated(reading(-1.0)).is_ok());
    }
}

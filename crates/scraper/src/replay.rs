//! Replays a recorded sentiment series (CSV: timestamp, score, confidence[, summary]) as a
//! source: the latest reading known at or before the clock's now. Used offline by demos and
//! backtests; a series ships with the crate.

use std::sync::Arc;

use domain::{Clock, SentimentReading, Timestamp};

use crate::error::{ReplayError, SourceError};
use crate::source::{SentimentFuture, SentimentSource, one_line};

/// The source name in readings and stats.
pub const REPLAY: &str = "replay";

/// A few weeks of plausible palm-oil readings (26 Oct to 30 Nov 2026), for offline demos.
pub const BUNDLED_SERIES: &str = include_str!("../assets/palm-oil-sentiment.csv");

/// Settings of the replay source.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayConfig {
    /// A reading older than this (hours) at the clock's now is stale; `None` never goes stale.
    pub max_age_hours: Option<u64>,
}

/// A recorded series served by the clock.
pub struct ReplaySource {
    readings: Vec<SentimentReading>,
    clock: Arc<dyn Clock>,
    max_age_hours: Option<u64>,
}

impl std::fmt::Debug for ReplaySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplaySource")
            .field("readings", &self.readings.len())
            .field("max_age_hours", &self.max_age_hours)
            .finish_non_exhaustive()
    }
}

impl ReplaySource {
    /// The bundled series.
    pub fn bundled(
        clock: Arc<dyn Clock>,
        config: &ReplayConfig,
    ) -> Result<ReplaySource, ReplayError> {
        ReplaySource::from_csv(BUNDLED_SERIES, clock, config)
    }

    /// A series parsed from CSV text. Lines starting with `#` are comments; a first row
    /// starting with `timestamp` is a header. Timestamps (RFC 3339 or epoch milliseconds) must
    /// strictly increase.
    pub fn from_csv(
        text: &str,
        clock: Arc<dyn Clock>,
        config: &ReplayConfig,
    ) -> Result<ReplaySource, ReplayError> {
        Ok(ReplaySource {
            readings: parse_series(text)?,
            clock,
            max_age_hours: config.max_age_hours,
        })
    }

    /// Every reading, oldest first.
    pub fn readings(&self) -> &[SentimentReading] {
        &self.readings
    }

    /// The latest reading known at or before `at`.
    pub fn reading_at(&self, at: Timestamp) -> Option<&SentimentReading> {
        let known = self.readings.partition_point(|r| r.known_at <= at);
        known.checked_sub(1).and_then(|i| self.readings.get(i))
    }

    fn current(&self) -> Result<SentimentReading, SourceError> {
        let now = self.clock.now();
        let reading = self.reading_at(now).ok_or_else(|| {
            SourceError::NoData(format!(
                "the replayed series has no reading at or before {now}"
            ))
        })?;
        if let Some(hours) = self.max_age_hours {
            let max_ms = i64::try_from(hours)
                .unwrap_or(i64::MAX / Timestamp::HOUR_MS)
                .saturating_mul(Timestamp::HOUR_MS);
            if reading.age_millis(now) > max_ms {
                return Err(SourceError::Stale {
                    known_at: reading.known_at,
                    max_age_secs: hours.saturating_mul(3600),
                });
            }
        }
        Ok(reading.clone())
    }
}

impl SentimentSource for ReplaySource {
    fn name(&self) -> &str {
        REPLAY
    }

    fn fetch(&self) -> SentimentFuture<'_> {
        let result = self.current();
        Box::pin(async move { result })
    }
}

fn parse_series(text: &str) -> Result<Vec<SentimentReading>, ReplayError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut readings: Vec<SentimentReading> = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut first = true;
    loop {
        let more = reader
            .read_record(&mut record)
            .map_err(|e| ReplayError::BadRow {
                line: e.position().map_or(0, csv::Position::line),
                reason: e.to_string(),
            })?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, csv::Position::line);
        let bad = |reason: String| ReplayError::BadRow { line, reason };
        if std::mem::take(&mut first) && record.get(0) == Some("timestamp") {
            continue;
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        if !(3..=4).contains(&record.len()) {
            return Err(bad(format!(
                "{} fields; expected timestamp, score, confidence[, summary]",
                record.len()
            )));
        }
        let field = |i: usize| record.get(i).unwrap_or("");
        let known_at = parse_time(field(0)).map_err(bad)?;
        let score = parse_unit(field(1), "score", -1.0).map_err(bad)?;
        let confidence = parse_unit(field(2), "confidence", 0.0).map_err(bad)?;
        let summary = match field(3) {
            "" => "replayed reading".to_owned(),
            s => one_line(s),
        };
        if let Some(previous) = readings.last()
            && known_at <= previous.known_at
        {
            return Err(bad(format!(
                "timestamp {known_at} is not after the previous row's {}",
                previous.known_at
            )));
        }
        readings.push(SentimentReading {
            score,
            confidence,
            source: REPLAY.to_owned(),
            known_at,
            // A replayed row is one recorded judgement.
            item_count: 1,
            summary,
        });
    }
    if readings.is_empty() {
        return Err(ReplayError::Empty);
    }
    Ok(readings)
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(Timestamp(ms));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| Timestamp(t.timestamp_millis()))
        .map_err(|e| format!("timestamp {text:?} is neither RFC 3339 nor epoch milliseconds: {e}"))
}

fn parse_unit(text: &str, name: &str, low: f64) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{name} {text:?} is not a number"))?;
    if !value.is_finite() || value < low || value > 1.0 {
        return Err(format!("{name} {value} is outside [{low}, 1]"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::FixedClock;

    fn at(text: &str) -> Timestamp {
        parse_time(text).unwrap()
    }

    #[tokio::test]
    async fn bundled_series_serves_the_latest_known_reading() {
        let clock = Arc::new(FixedClock::new(at("2026-11-10T06:00:00Z")));
        let replay = ReplaySource::bundled(clock.clone(), &ReplayConfig::default()).unwrap();
        assert!(replay.readings().len() >= 20);
        let r = replay.fetch().await.unwrap();
        assert_eq!(r.known_at, at("2026-11-10T05:00:00Z"));
        assert!(r.summary.contains("MPOB"));
        assert!(r.score < 0.0);
        assert_eq!(r.source, "replay");

        // Exactly at a row's time, that row is known.
        clock.set(at("2026-11-10T08:30:00Z"));
        assert!(replay.fetch().await.unwrap().summary.contains("ITS"));

        clock.set(at("2026-01-01T00:00:00Z"));
        assert!(matches!(replay.fetch().await, Err(SourceError::NoData(_))));
    }

    #[tokio::test]
    async fn old_readings_go_stale_when_configured() {
        let clock = Arc::new(FixedClock::new(at("2026-11-02T12:00:00Z")));
        let config = ReplayConfig {
            max_age_hours: Some(6),
        };
        let replay =
            ReplaySource::from_csv("2026-11-02T00:30:00Z,0.2,0.5,B40\n", clock.clone(), &config)
                .unwrap();
        assert!(matches!(
            replay.fetch().await,
            Err(SourceError::Stale { .. })
        ));
        clock.set(at("2026-11-02T06:30:00Z"));
        assert_eq!(replay.fetch().await.unwrap().summary, "B40");
    }

    #[test]
    fn bad_rows_are_named_by_line() {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(Timestamp(0)));
        let cfg = ReplayConfig::default();
        let cases = [
            (
                "timestamp,score,confidence\n1000,0.1,0.5\n2000,1.5,0.5\n",
                3,
                "score 1.5",
            ),
            (
                "# c\n1000,0.1,0.5\nnot-a-time,0.1,0.5\n",
                3,
                "neither RFC 3339",
            ),
            ("1000,0.1,0.5\n1000,0.2,0.5\n", 2, "not after"),
            ("1000,0.1\n", 1, "2 fields"),
            ("1000,0.1,-0.2\n", 1, "confidence -0.2"),
            ("1000,0.1,0.5,\"a,b\",extra\n", 1, "5 fields"),
        ];
        for (text, line, needle) in cases {
            let err = ReplaySource::from_csv(text, clock.clone(), &cfg).unwrap_err();
            let shown = err.to_string();
            assert!(
                matches!(err, ReplayError::BadRow { line: l, .. } if l == line)
                    && shown.contains(needle),
                "{text:?}: {shown}"
            );
        }
        assert_eq!(
            ReplaySource::from_csv("# only a comment\n", clock, &cfg).unwrap_err(),
            ReplayError::Empty
        );
    }
}

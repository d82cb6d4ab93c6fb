//! The fallback chain (sources tried in configured order) behind a TTL cache, with counters the
//! bot maps to metrics: cache hits and misses, which source served, which failed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use domain::{Clock, SentimentReading, SentimentUnavailable, Timestamp};

use crate::error::SourceError;
use crate::source::{SentimentFuture, SentimentSource};

/// The name a chain reports in stats and in "unavailable".
pub const CHAIN: &str = "chain";

/// Counters since start, copied out for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentimentStats {
    /// Requests answered from the cache.
    pub cache_hits: u64,
    /// Requests that went to the chain.
    pub cache_misses: u64,
    /// Readings served, by source name.
    pub served_by: BTreeMap<String, u64>,
    /// Failed fetches, by source name.
    pub failures_by: BTreeMap<String, u64>,
    /// Requests for which every source failed.
    pub unavailable: u64,
    /// Why the last "unavailable" happened, if one did.
    pub last_unavailable: Option<String>,
}

/// Sources tried in order; the first valid reading wins.
#[derive(Debug)]
pub struct FallbackChain {
    sources: Vec<Arc<dyn SentimentSource>>,
    stats: Arc<Mutex<SentimentStats>>,
}

impl FallbackChain {
    /// A chain over `sources`, tried in the given order.
    pub fn new(sources: Vec<Arc<dyn SentimentSource>>) -> FallbackChain {
        FallbackChain {
            sources,
            stats: Arc::new(Mutex::new(SentimentStats::default())),
        }
    }

    /// The sources' names, in order.
    pub fn source_names(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.name().to_owned()).collect()
    }

    async fn first_reading(&self) -> Result<SentimentReading, SourceError> {
        let mut failures = Vec::new();
        for source in &self.sources {
            match source.fetch().await {
                Ok(reading) if reading.is_valid() => {
                    self.count(|s| {
                        *s.served_by.entry(source.name().to_owned()).or_default() += 1;
                    });
                    // Every refresh serves one: routine, so below info (the refresher logs new
                    // readings at info).
                    tracing::debug!(
                        source = source.name(),
                        score = reading.score,
                        "sentiment served"
                    );
                    return Ok(reading);
                }
                Ok(reading) => {
                    // A source must validate; this guards against one that does not.
                    failures.push((
                        source.name().to_owned(),
                        SourceError::OutOfRange {
                            field: "score or confidence",
                            value: reading.score,
                            range: "score [-1, 1], confidence [0, 1]",
                        },
                    ));
                }
                Err(e) => {
                    tracing::warn!(source = source.name(), error = %e, "sentiment source failed; trying the next");
                    failures.push((source.name().to_owned(), e));
                }
            }
            if let Some((name, _)) = failures.last() {
                let name = name.clone();
                self.count(|s| *s.failures_by.entry(name).or_default() += 1);
            }
        }
        Err(SourceError::AllFailed(failures))
    }

    fn count(&self, update: impl FnOnce(&mut SentimentStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            update(&mut stats);
        }
    }
}

impl SentimentSource for FallbackChain {
    fn name(&self) -> &str {
        CHAIN
    }

    fn fetch(&self) -> SentimentFuture<'_> {
        Box::pin(self.first_reading())
    }
}

/// What the bot calls: the chain behind a TTL cache. Only readings are cached; a failure is
/// asked again next time (the sources' own budgets and breakers limit how often).
pub struct SentimentService {
    chain: FallbackChain,
    ttl_ms: i64,
    clock: Arc<dyn Clock>,
    /// Held across a fetch so concurrent callers share one fetch instead of each paying for one.
    cached: tokio::sync::Mutex<Option<(SentimentReading, Timestamp)>>,
}

impl std::fmt::Debug for SentimentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentimentService")
            .field("chain", &self.chain)
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

impl SentimentService {
    /// A service over `chain`, caching a reading for `ttl_ms` milliseconds of `clock` time.
    pub fn new(chain: FallbackChain, ttl_ms: i64, clock: Arc<dyn Clock>) -> SentimentService {
        SentimentService {
            chain,
            ttl_ms,
            clock,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The sources' names, in chain order.
    pub fn source_names(&self) -> Vec<String> {
        self.chain.source_names()
    }

    /// The current reading (cached within the TTL), or why none is available.
    pub async fn reading(&self) -> Result<SentimentReading, SentimentUnavailable> {
        self.reading_detailed()
            .await
            .map_err(|e| SentimentUnavailable {
                source: CHAIN.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Like [`SentimentService::reading`], keeping each source's typed error.
    pub async fn reading_detailed(&self) -> Result<SentimentReading, SourceError> {
        let mut cached = self.cached.lock().await;
        let now = self.clock.now();
        if let Some((reading, fetched_at)) = cached.as_ref()
            && now.millis_since(*fetched_at) < self.ttl_ms
        {
            self.chain.count(|s| s.cache_hits += 1);
            return Ok(reading.clone());
        }
        self.chain.count(|s| s.cache_misses += 1);
        match self.chain.first_reading().await {
            Ok(reading) => {
                *cached = Some((reading.clone(), self.clock.now()));
                Ok(reading)
            }
            Err(e) => {
                let reason = e.to_string();
                self.chain.count(|s| {
                    s.unavailable += 1;
                    s.last_unavailable = Some(reason);
                });
                Err(e)
            }
        }
    }

    /// A copy of the counters.
    pub fn stats(&self) -> SentimentStats {
        self.chain
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeSource;
    use domain::FixedClock;

    fn reading(source: &str, score: f64) -> SentimentReading {
        SentimentReading {
            score,
            confidence: 0.6,
            source: source.into(),
            known_at: Timestamp(0),
            item_count: 3,
            summary: "s".into(),
        }
    }

    #[tokio::test]
    async fn cache_hits_within_ttl_and_misses_after() {
        let clock = Arc::new(FixedClock::new(Timestamp(1_000)));
        let fake = Arc::new(FakeSource::new(
            "fake",
            [Ok(reading("fake", 0.1)), Ok(reading("fake", -0.3))],
        ));
        let service = SentimentService::new(
            FallbackChain::new(vec![fake.clone()]),
            60_000,
            clock.clone(),
        );
        assert_eq!(service.reading().await.unwrap().score, 0.1);
        clock.advance(59_999);
        assert_eq!(service.reading().await.unwrap().score, 0.1);
        assert_eq!(fake.calls(), 1);
        clock.advance(1);
        assert_eq!(service.reading().await.unwrap().score, -0.3);
        assert_eq!(fake.calls(), 2);
        let stats = service.stats();
        assert_eq!((stats.cache_hits, stats.cache_misses), (1, 2));
        assert_eq!(stats.served_by.get("fake"), Some(&2));
    }

    #[tokio::test]
    async fn chain_falls_back_in_order_and_counts() {
        let clock = Arc::new(FixedClock::new(Timestamp(0)));
        let first = Arc::new(FakeSource::new(
            "first",
            [Err(SourceError::NoData("quiet".into()))],
        ));
        let second = Arc::new(FakeSource::new("second", [Ok(reading("second", 0.4))]));
        let service = SentimentService::new(
            FallbackChain::new(vec![first.clone(), second.clone()]),
            0,
            clock,
        );
        assert_eq!(service.reading().await.unwrap().source, "second");
        let stats = service.stats();
        assert_eq!(stats.failures_by.get("first"), Some(&1));
        assert_eq!(stats.served_by.get("second"), Some(&1));
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_say_why() {
        let clock = Arc::new(FixedClock::new(Timestamp(0)));
        let only = Arc::new(FakeSource::new(
            "only",
            [
                Err(SourceError::Disabled {
                    reason: "HTTP 401".into(),
                }),
                Ok(reading("only", 0.2)),
            ],
        ));
        let service = SentimentService::new(FallbackChain::new(vec![only.clone()]), 60_000, clock);
        let err = service.reading().await.unwrap_err();
        assert_eq!(err.source, "chain");
        assert!(
            err.reason.contains("only: source disabled: HTTP 401"),
            "{}",
            err.reason
        );
        assert_eq!(service.stats().unavailable, 1);
        assert_eq!(service.reading().await.unwrap().score, 0.2);
        assert_eq!(only.calls(), 2);
    }

    #[tokio::test]
    async fn a_source_that_returns_an_invalid_reading_is_skipped() {
        let clock = Arc::new(FixedClock::new(Timestamp(0)));
        let broken = Arc::new(FakeSource::new("broken", [Ok(reading("broken", 7.0))]));
        let service = SentimentService::new(FallbackChain::new(vec![broken]), 0, clock);
        assert!(service.reading().await.is_err());
    }
}

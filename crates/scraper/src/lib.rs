//! Palm-oil news and social sentiment: Perplexity (primary), Nitter RSS and optionally X as
//! fallbacks, and a replayed series for offline runs, behind one [`SentimentSource`] trait,
//! tried in configured order behind a TTL cache ([`SentimentService`]), all over one HTTP client
//! that only speaks TLS to allow-listed hosts. It must never turn a failure or an empty feed
//! into a neutral reading, never put a credential into a log line, error or Debug output, never
//! read the environment or install a global (subscriber, crypto provider), and never read the
//! system time directly: time comes from the injected [`domain::Clock`].

mod chain;
mod config;
mod error;
#[cfg(any(test, feature = "test-util"))]
mod fakes;
mod http;
mod lexicon;
mod limits;
mod nitter;
mod perplexity;
mod replay;
mod retry;
mod rss;
mod source;
mod x_api;

pub use chain::{CHAIN, FallbackChain, SentimentService, SentimentStats};
pub use config::{HttpSettings, SentimentConfig, SourceInputs, SourceKind};
pub use domain::Secret;
pub use error::{ConfigError, HttpError, ReplayError, SourceError};
#[cfg(any(test, feature = "test-util"))]
pub use fakes::{FakeSource, RecordingSleeper};
pub use http::{HttpClient, HttpPolicy, HttpRequest, HttpResponse};
pub use lexicon::{PalmOilLexicon, aggregate};
pub use limits::{CircuitBreaker, SlidingBudget};
pub use nitter::{MAX_QUERY_CHARS, NITTER, NitterConfig, NitterSource};
pub use perplexity::{PERPLEXITY, PerplexityConfig, PerplexitySource};
pub use replay::{BUNDLED_SERIES, REPLAY, ReplayConfig, ReplaySource};
pub use retry::{RetryPolicy, Sleeper, TokioSleeper, full_jitter, server_wait};
pub use rss::{FeedItem, parse_rss};
pub use source::{SentimentFuture, SentimentSource};
pub use x_api::{X, XConfig, XSearchSource};

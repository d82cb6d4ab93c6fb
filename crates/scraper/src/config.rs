//! The sentiment configuration (serde, with defaults) and the one function that builds the
//! chain from it: the bot deserialises this, adds the credentials it read, and calls `build`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use domain::Clock;

use crate::chain::{FallbackChain, SentimentService};
use crate::error::{ConfigError, HttpError};
use crate::http::{HttpClient, HttpPolicy};
use crate::nitter::{NitterConfig, NitterSource};
use crate::perplexity::{PerplexityConfig, PerplexitySource};
use crate::replay::{ReplayConfig, ReplaySource};
use crate::retry::{Sleeper, TokioSleeper};
use crate::source::SentimentSource;
use crate::x_api::{XConfig, XSearchSource};
use domain::Secret;

/// A kind of source, as named in `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Perplexity Responses API with web search.
    Perplexity,
    /// Nitter RSS search.
    Nitter,
    /// X API v2 recent search.
    X,
    /// The replayed series (offline).
    Replay,
}

/// The `[sentiment]` section of the bot's configuration.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SentimentConfig {
    /// Sources tried in this order; the first reading wins.
    pub order: Vec<SourceKind>,
    /// How long a reading is reused before asking the chain again, in seconds.
    pub cache_ttl_secs: u64,
    /// The HTTP client's allow-list, timeouts and size cap.
    pub http: HttpSettings,
    /// Perplexity settings.
    pub perplexity: PerplexityConfig,
    /// Nitter settings.
    pub nitter: NitterConfig,
    /// X API settings.
    pub x: XConfig,
    /// Replay settings.
    pub replay: ReplayConfig,
}

impl Default for SentimentConfig {
    fn default() -> SentimentConfig {
        SentimentConfig {
            order: vec![SourceKind::Perplexity, SourceKind::Nitter],
            cache_ttl_secs: 900,
            http: HttpSettings::default(),
            perplexity: PerplexityConfig::default(),
            nitter: NitterConfig::default(),
            x: XConfig::default(),
            replay: ReplayConfig::default(),
        }
    }
}

/// The network settings every source shares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// The only hosts requests (and redirects) may go to.
    pub allowed_hosts: Vec<String>,
    /// Allow plain http to 127.0.0.1, localhost and ::1 only; for tests against local mocks.
    pub allow_plain_http_loopback: bool,
    /// Connect timeout, in seconds.
    pub connect_timeout_secs: u64,
    /// Default whole-request timeout, in seconds (sources may set shorter ones).
    pub request_timeout_secs: u64,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// PEM file of a private CA trusted in addition to the public roots (an API gateway, a mock).
    pub extra_ca_file: Option<PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            allowed_hosts: vec![
                "api.perplexity.ai".to_owned(),
                "api.x.com".to_owned(),
                "nitter.net".to_owned(),
            ],
            allow_plain_http_loopback: false,
            connect_timeout_secs: 5,
            request_timeout_secs: 60,
            max_response_bytes: 2 * 1024 * 1024,
            extra_ca_file: None,
        }
    }
}

impl HttpSettings {
    /// The client policy these settings describe.
    pub fn policy(&self) -> HttpPolicy {
        HttpPolicy {
            allowed_hosts: self.allowed_hosts.clone(),
            allow_plain_http_loopback: self.allow_plain_http_loopback,
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_response_bytes: self.max_response_bytes,
            max_redirects: 3,
            extra_ca_file: self.extra_ca_file.clone(),
        }
    }
}

/// What the bot supplies besides the configuration: credentials from its environment and,
/// optionally, a replay series to use instead of the bundled one.
#[derive(Debug, Clone, Default)]
pub struct SourceInputs {
    /// Perplexity API key.
    pub perplexity_api_key: Option<Secret>,
    /// X API app bearer token.
    pub x_bearer_token: Option<Secret>,
    /// Replay CSV text; `None` uses [`crate::BUNDLED_SERIES`].
    pub replay_csv: Option<String>,
}

impl SentimentConfig {
    /// Builds the cached chain, sleeping on the tokio timer between retries.
    pub fn build(
        &self,
        inputs: SourceInputs,
        clock: Arc<dyn Clock>,
    ) -> Result<SentimentService, ConfigError> {
        self.build_with_sleeper(inputs, clock, Arc::new(TokioSleeper))
    }

    /// Builds the cached chain with an injected sleeper (tests observe backoff through it).
    pub fn build_with_sleeper(
        &self,
        inputs: SourceInputs,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Result<SentimentService, ConfigError> {
        if self.order.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "sentiment.order".to_owned(),
                reason: "no source listed".to_owned(),
            });
        }
        for (i, kind) in self.order.iter().enumerate() {
            if self.order[..i].contains(kind) {
                return Err(ConfigError::Invalid {
                    setting: "sentiment.order".to_owned(),
                    reason: format!("{kind:?} is listed twice"),
                });
            }
        }
        let http = HttpClient::new(self.http.policy())?;
        let mut sources: Vec<Arc<dyn SentimentSource>> = Vec::new();
        for kind in &self.order {
            let source: Arc<dyn SentimentSource> = match kind {
                SourceKind::Perplexity => {
                    let key = credential(&inputs.perplexity_api_key, "perplexity", "API key")?;
                    Arc::new(
                        PerplexitySource::new(
                            self.perplexity.clone(),
                            key,
                            http.clone(),
                            Arc::clone(&clock),
                            Arc::clone(&sleeper),
                        )
                        .map_err(|e| url_error("perplexity.base_url", e))?,
                    )
                }
                SourceKind::Nitter => Arc::new(NitterSource::new(
                    self.nitter.clone(),
                    http.clone(),
                    Arc::clone(&clock),
                )?),
                SourceKind::X => {
                    let token = credential(&inputs.x_bearer_token, "x", "bearer token")?;
                    Arc::new(
                        XSearchSource::new(self.x.clone(), token, http.clone(), Arc::clone(&clock))
                            .map_err(|e| url_error("x.base_url", e))?,
                    )
                }
                SourceKind::Replay => Arc::new(match &inputs.replay_csv {
                    Some(text) => ReplaySource::from_csv(text, Arc::clone(&clock), &self.replay)?,
                    None => ReplaySource::bundled(Arc::clone(&clock), &self.replay)?,
                }),
            };
            sources.push(source);
        }
        let ttl_ms = i64::try_from(self.cache_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        Ok(SentimentService::new(
            FallbackChain::new(sources),
            ttl_ms,
            clock,
        ))
    }
}

fn credential(
    value: &Option<Secret>,
    source_name: &'static str,
    credential: &'static str,
) -> Result<Secret, ConfigError> {
    match value {
        Some(secret) if !secret.is_empty() => Ok(secret.clone()),
        _ => Err(ConfigError::MissingCredential {
            source_name,
            credential,
        }),
    }
}

fn url_error(setting: &str, e: HttpError) -> ConfigError {
    match e {
        HttpError::HostNotAllowed { host } => ConfigError::HostNotAllowed {
            setting: setting.to_owned(),
            host,
        },
        other => ConfigError::Invalid {
            setting: setting.to_owned(),
            reason: other.to_string(),
        },
    }
}

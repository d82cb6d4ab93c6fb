//! Builds the sentiment service from the bot's settings, the secrets read from the environment
//! and the network allow-list: the one place that turns `SENTIMENT_SOURCES` into a fallback chain.
//!
//! A source listed in `SENTIMENT_SOURCES` whose credential or setting is missing is skipped with a
//! note, so a half-configured bot still gets sentiment from what remains; when nothing remains it
//! is a configuration error that names every reason.

use std::fmt;
use std::sync::Arc;

use domain::{Clock, Secret};
use scraper::{SentimentConfig, SentimentService, SourceInputs, SourceKind};

use crate::allowlist::NetworkAllowList;
use crate::config::{Config, SentimentSourceKind};

/// Environment variable holding the Perplexity API key.
pub const PERPLEXITY_API_KEY: &str = "PERPLEXITY_API_KEY";
/// Environment variable holding the X API bearer token.
pub const X_BEARER_TOKEN: &str = "X_BEARER_TOKEN";

/// The sentiment sources' credentials (`Debug` shows neither value).
#[derive(Debug, Clone, Default)]
pub struct SentimentSecrets {
    /// Perplexity API key, when set and not blank.
    pub perplexity_api_key: Option<Secret>,
    /// X API bearer token, when set and not blank.
    pub x_bearer_token: Option<Secret>,
}

impl SentimentSecrets {
    /// Reads both credentials through `env` (the caller passes the process environment);
    /// a blank value counts as unset.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> SentimentSecrets {
        let secret = |name: &str| env(name).map(Secret::new).filter(|s| !s.is_empty());
        SentimentSecrets {
            perplexity_api_key: secret(PERPLEXITY_API_KEY),
            x_bearer_token: secret(X_BEARER_TOKEN),
        }
    }
}

/// A configured source left out of the chain, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSource {
    /// The source's name (`perplexity`, `nitter`, `x`).
    pub source: &'static str,
    /// Why it was left out, naming the setting to fix.
    pub reason: &'static str,
}

impl fmt::Display for SkippedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} skipped: {}", self.source, self.reason)
    }
}

/// Why no sentiment service could be built; always a configuration problem (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SentimentSetupError {
    /// Every configured source was skipped, or none is configured.
    #[error("no usable sentiment source: {}", describe_skipped(.skipped))]
    NoUsableSource {
        /// Each configured source and why it was skipped (empty: none configured).
        skipped: Vec<SkippedSource>,
    },
    /// The scraper refused the configuration it was given.
    #[error("sentiment configuration: {0}")]
    Scraper(#[from] scraper::ConfigError),
}

impl SentimentSetupError {
    /// A configuration problem: retrying never helps.
    pub const fn is_transient(&self) -> bool {
        false
    }
}

fn describe_skipped(skipped: &[SkippedSource]) -> String {
    if skipped.is_empty() {
        return "SENTIMENT_SOURCES lists no source".to_owned();
    }
    skipped
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What [`plan`] decided: the scraper's configuration, its inputs, and what was left out.
#[derive(Debug, Clone)]
pub struct SentimentPlan {
    /// The chain's configuration (sources in order, hosts, Nitter instances and queries).
    pub config: SentimentConfig,
    /// Credentials for the sources that are in the chain.
    pub inputs: SourceInputs,
    /// Configured sources left out, with the reason.
    pub skipped: Vec<SkippedSource>,
}

/// The source's name as in `SENTIMENT_SOURCES`.
pub const fn source_name(kind: SentimentSourceKind) -> &'static str {
    match kind {
        SentimentSourceKind::Perplexity => "perplexity",
        SentimentSourceKind::Nitter => "nitter",
        SentimentSourceKind::X => "x",
    }
}

/// Decides the chain without building it (pure, so it can be checked without a network).
pub fn plan(
    config: &Config,
    secrets: &SentimentSecrets,
    allow: &NetworkAllowList,
) -> Result<SentimentPlan, SentimentSetupError> {
    let settings = &config.sentiment;
    let mut order = Vec::new();
    let mut skipped = Vec::new();
    for kind in &settings.sources {
        let kind = *kind;
        let missing = match kind {
            SentimentSourceKind::Perplexity if secrets.perplexity_api_key.is_none() => {
                Some("PERPLEXITY_API_KEY is not set in the environment")
            }
            SentimentSourceKind::X if secrets.x_bearer_token.is_none() => {
                Some("X_BEARER_TOKEN is not set in the environment")
            }
            SentimentSourceKind::Nitter if settings.nitter_instances.is_empty() => {
                Some("NITTER_INSTANCES is empty")
            }
            SentimentSourceKind::Nitter if settings.nitter_queries.is_empty() => {
                Some("NITTER_QUERIES is empty")
            }
            _ => None,
        };
        let scraper_kind = match kind {
            SentimentSourceKind::Perplexity => SourceKind::Perplexity,
            SentimentSourceKind::Nitter => SourceKind::Nitter,
            SentimentSourceKind::X => SourceKind::X,
        };
        match missing {
            Some(reason) => skipped.push(SkippedSource {
                source: source_name(kind),
                reason,
            }),
            // The bot's settings may list a source twice; the chain tries each once.
            None if !order.contains(&scraper_kind) => order.push(scraper_kind),
            None => {}
        }
    }
    if order.is_empty() {
        return Err(SentimentSetupError::NoUsableSource { skipped });
    }
    let mut scraper_config = SentimentConfig {
        order,
        // Half the refresh period: the scheduled refresh always finds the cache expired and
        // fetches, while other readers (dashboard, a second task) in between share that reading.
        cache_ttl_secs: settings.refresh_secs / 2,
        ..SentimentConfig::default()
    };
    scraper_config.http.allowed_hosts = allow.hosts().map(str::to_owned).collect();
    scraper_config.http.allow_plain_http_loopback = false;
    scraper_config
        .http
        .extra_ca_file
        .clone_from(&settings.ca_file);
    scraper_config
        .perplexity
        .base_url
        .clone_from(&settings.perplexity_base_url);
    scraper_config.x.base_url.clone_from(&settings.x_base_url);
    scraper_config
        .nitter
        .instances
        .clone_from(&settings.nitter_instances);
    scraper_config
        .nitter
        .queries
        .clone_from(&settings.nitter_queries);
    let uses = |k: SourceKind| scraper_config.order.contains(&k);
    let inputs = SourceInputs {
        perplexity_api_key: secrets
            .perplexity_api_key
            .clone()
            .filter(|_| uses(SourceKind::Perplexity)),
        x_bearer_token: secrets
            .x_bearer_token
            .clone()
            .filter(|_| uses(SourceKind::X)),
        replay_csv: None,
    };
    Ok(SentimentPlan {
        config: scraper_config,
        inputs,
        skipped,
    })
}

/// The live sentiment service (`run`, `sentiment`): the configured chain behind its cache, plus
/// the sources that were skipped (log each as a note).
pub fn build_service(
    config: &Config,
    secrets: &SentimentSecrets,
    allow: &NetworkAllowList,
    clock: Arc<dyn Clock>,
) -> Result<(SentimentService, Vec<SkippedSource>), SentimentSetupError> {
    let plan = plan(config, secrets, allow)?;
    let service = plan.config.build(plan.inputs, clock)?;
    Ok((service, plan.skipped))
}

/// The offline service (`demo`, `sentiment --replay`): replays `series_csv` (timestamp, score,
/// confidence[, summary]), or the bundled palm-oil series when `None`, by `clock`'s time. It
/// makes no network connection: its HTTP allow-list is empty.
pub fn replay_service(
    clock: Arc<dyn Clock>,
    series_csv: Option<String>,
) -> Result<SentimentService, SentimentSetupError> {
    let mut config = SentimentConfig {
        order: vec![SourceKind::Replay],
        // Re-read the series at most once a minute of clock time; it is in memory anyway.
        cache_ttl_secs: 60,
        ..SentimentConfig::default()
    };
    config.http.allowed_hosts = Vec::new();
    let inputs = SourceInputs {
        replay_csv: series_csv,
        ..SourceInputs::default()
    };
    Ok(config.build(inputs, clock)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{FixedClock, Timestamp};

    fn config(pairs: &[(&str, &str)]) -> Config {
        crate::config::test_support::config_from(pairs).unwrap()
    }

    fn secrets(perplexity: Option<&str>, x: Option<&str>) -> SentimentSecrets {
        let env = |name: &str| match name {
            PERPLEXITY_API_KEY => perplexity.map(str::to_owned),
            X_BEARER_TOKEN => x.map(str::to_owned),
            _ => None,
        };
        SentimentSecrets::from_env(&env)
    }

    fn allow(config: &Config, s: &SentimentSecrets) -> NetworkAllowList {
        NetworkAllowList::from_config(
            config,
            s.perplexity_api_key.is_some(),
            s.x_bearer_token.is_some(),
        )
    }

    #[test]
    fn chain_follows_the_configured_order_and_hosts() {
        let c = config(&[
            ("SENTIMENT_SOURCES", "nitter,perplexity,x"),
            (
                "NITTER_INSTANCES",
                "https://nitter.example,https://n2.example:8443",
            ),
            ("NITTER_QUERIES", "palm oil"),
            ("SENTIMENT_REFRESH", "600"),
        ]);
        let s = secrets(Some("pplx-key"), Some("x-token"));
        let full = plan(&c, &s, &allow(&c, &s)).unwrap();
        assert_eq!(
            full.config.order,
            vec![SourceKind::Nitter, SourceKind::Perplexity, SourceKind::X]
        );
        assert!(full.skipped.is_empty());
        assert_eq!(full.config.cache_ttl_secs, 300);
        assert_eq!(
            full.config.nitter.instances,
            vec!["https://nitter.example", "https://n2.example:8443"]
        );
        assert_eq!(full.config.nitter.queries, vec!["palm oil"]);
        let hosts = &full.config.http.allowed_hosts;
        for host in [
            "api.perplexity.ai",
            "api.x.com",
            "nitter.example",
            "n2.example",
            "demo.ctraderapi.com",
        ] {
            assert!(hosts.iter().any(|h| h == host), "{host} not in {hosts:?}");
        }
        assert!(!full.config.http.allow_plain_http_loopback);
        assert_eq!(
            full.inputs.perplexity_api_key.as_ref().map(Secret::expose),
            Some("pplx-key")
        );
    }

    #[test]
    fn sources_without_credentials_are_skipped_with_a_reason() {
        let c = config(&[
            ("SENTIMENT_SOURCES", "perplexity,x,nitter"),
            ("NITTER_INSTANCES", "https://nitter.example"),
        ]);
        let s = secrets(None, Some("   "));
        let partial = plan(&c, &s, &allow(&c, &s)).unwrap();
        assert_eq!(partial.config.order, vec![SourceKind::Nitter]);
        let notes: Vec<String> = partial.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            notes,
            vec![
                "perplexity skipped: PERPLEXITY_API_KEY is not set in the environment",
                "x skipped: X_BEARER_TOKEN is not set in the environment",
            ]
        );
        // A key for a source that is not in the chain is not handed to the scraper.
        let s = secrets(Some("pplx-key"), None);
        let c = config(&[
            ("SENTIMENT_SOURCES", "nitter"),
            ("NITTER_INSTANCES", "https://nitter.example"),
        ]);
        let nitter_only = plan(&c, &s, &allow(&c, &s)).unwrap();
        assert!(nitter_only.inputs.perplexity_api_key.is_none());
        assert!(
            !nitter_only
                .config
                .http
                .allowed_hosts
                .iter()
                .any(|h| h == "api.perplexity.ai")
        );
    }

    #[test]
    fn nothing_usable_is_an_error_naming_every_reason() {
        let c = config(&[]);
        let s = secrets(None, None);
        let err = plan(&c, &s, &allow(&c, &s)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("no usable sentiment source"), "{text}");
        assert!(text.contains("PERPLEXITY_API_KEY is not set"), "{text}");
        assert!(text.contains("NITTER_INSTANCES is empty"), "{text}");

        let c = config(&[("SENTIMENT_SOURCES", "")]);
        let err = plan(&c, &s, &allow(&c, &s)).unwrap_err();
        assert!(
            err.to_string()
                .contains("SENTIMENT_SOURCES lists no source")
        );
    }

    #[tokio::test]
    async fn built_service_never_shows_the_key() {
        let c = config(&[("SENTIMENT_SOURCES", "perplexity")]);
        let s = secrets(Some("pplx-MARKER-123"), None);
        let clock = Arc::new(FixedClock::new(Timestamp(0)));
        let (service, skipped) = build_service(&c, &s, &allow(&c, &s), clock).unwrap();
        assert!(skipped.is_empty());
        assert_eq!(service.source_names(), vec!["perplexity"]);
        let shown = format!("{service:?} {s:?} {:?}", plan(&c, &s, &allow(&c, &s)));
        assert!(!shown.contains("MARKER"), "{shown}");
    }

    #[tokio::test]
    async fn replay_serves_the_reading_known_at_the_clock() {
        let series = "timestamp,score,confidence,summary\n\
                      2026-01-01T00:00:00Z,0.5,0.8,first\n\
                      2026-01-02T00:00:00Z,-0.25,0.6,second\n";
        // 2026-01-01T12:00:00Z: only the first reading is known.
        let clock = Arc::new(FixedClock::new(Timestamp(1_767_268_800_000)));
        let service = replay_service(clock.clone(), Some(series.to_owned())).unwrap();
        let reading = service.reading().await.unwrap();
        assert_eq!((reading.score, reading.source.as_str()), (0.5, "replay"));
        clock.advance(24 * 3_600_000);
        assert_eq!(service.reading().await.unwrap().score, -0.25);

        // Before the series starts there is nothing to replay: unavailable, never neutral.
        let early = Arc::new(FixedClock::new(Timestamp(0)));
        let service = replay_service(early, Some(series.to_owned())).unwrap();
        assert!(service.reading().await.is_err());
    }

    #[test]
    fn the_bundled_series_parses() {
        let clock = Arc::new(FixedClock::new(Timestamp(0)));
        let service = replay_service(clock, None).unwrap();
        assert_eq!(service.source_names(), vec!["replay"]);
        let bad = replay_service(
            Arc::new(FixedClock::new(Timestamp(0))),
            Some("timestamp,score,confidence\n2026-01-01T00:00:00Z,7,0.5\n".to_owned()),
        )
        .unwrap_err();
        assert!(bad.to_string().contains("line 2"), "{bad}");
    }
}

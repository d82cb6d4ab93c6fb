//! The network allow-list: the only hosts the bot may connect to, checked before connecting.

use std::collections::BTreeSet;
use std::fmt;

use crate::config::{Config, SentimentSourceKind};

/// Host of Perplexity's API (when `PERPLEXITY_BASE_URL` keeps its default).
pub const PERPLEXITY_HOST: &str = "api.perplexity.ai";
/// Host of the X API (when `X_API_BASE_URL` keeps its default).
pub const X_API_HOST: &str = "api.x.com";

/// A connection to a host that is not on the allow-list; refused before any byte is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to connect to {host}: not on the network allow-list ({allowed})")]
pub struct HostNotAllowed {
    /// The host that was refused.
    pub host: String,
    /// The hosts that are allowed, comma-separated.
    pub allowed: String,
}

/// The hosts outbound connections may go to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkAllowList {
    hosts: BTreeSet<String>,
}

impl NetworkAllowList {
    /// The configured cTrader host, and each enabled sentiment source's hosts (the hosts of
    /// `PERPLEXITY_BASE_URL` and `X_API_BASE_URL`, and of each Nitter instance).
    pub fn from_config(
        config: &Config,
        perplexity_key_set: bool,
        x_token_set: bool,
    ) -> NetworkAllowList {
        let mut list = NetworkAllowList::default();
        list.allow(&config.broker.host);
        for source in &config.sentiment.sources {
            match source {
                SentimentSourceKind::Perplexity if perplexity_key_set => {
                    list.allow_url(&config.sentiment.perplexity_base_url, PERPLEXITY_HOST);
                }
                SentimentSourceKind::X if x_token_set => {
                    list.allow_url(&config.sentiment.x_base_url, X_API_HOST);
                }
                SentimentSourceKind::Nitter => {
                    for url in &config.sentiment.nitter_instances {
                        if let Some(host) = host_of_url(url) {
                            list.allow(host);
                        }
                    }
                }
                SentimentSourceKind::Perplexity | SentimentSourceKind::X => {}
            }
        }
        list
    }

    /// Adds the hosts operator notifications go to.
    pub fn allow_notifications(&mut self, hosts: &[String]) {
        for host in hosts {
            self.allow(host);
        }
    }

    /// Adds the host of `url`; `fallback` when the URL has none (validation refuses such URLs,
    /// so this only keeps the list meaningful for hand-built configurations).
    fn allow_url(&mut self, url: &str, fallback: &str) {
        self.allow(host_of_url(url).unwrap_or(fallback));
    }

    /// Adds a host (case-insensitive).
    pub fn allow(&mut self, host: &str) {
        self.hosts.insert(normalise(host));
    }

    /// Ok when `host` is allowed; otherwise an error naming it.
    pub fn check(&self, host: &str) -> Result<(), HostNotAllowed> {
        if self.hosts.contains(&normalise(host)) {
            Ok(())
        } else {
            Err(HostNotAllowed {
                host: host.to_owned(),
                allowed: self.to_string(),
            })
        }
    }

    /// The allowed hosts, sorted.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(String::as_str)
    }
}

impl fmt::Display for NetworkAllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<&str> = self.hosts().collect();
        f.write_str(&hosts.join(", "))
    }
}

fn normalise(host: &str) -> String {
    host.trim()
        .trim_end_matches('.')
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// The host part of an `https://host[:port]/...` URL.
pub fn host_of_url(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_hosts_off_the_list_naming_them() {
        let mut list = NetworkAllowList::default();
        list.allow("Demo.ctraderapi.com");
        assert!(list.check("demo.ctraderapi.com").is_ok());
        let err = list.check("evil.example").unwrap_err();
        assert!(err.to_string().contains("evil.example"));
        assert!(err.to_string().contains("demo.ctraderapi.com"));
    }

    /// Issue 14, report 8: an API gateway's host is allowed, the public API's host no longer.
    #[test]
    fn configured_base_urls_put_their_hosts_on_the_list() {
        let config = crate::config::test_support::config_from(&[
            ("SENTIMENT_SOURCES", "perplexity,x"),
            ("PERPLEXITY_BASE_URL", "https://gw.internal.example/pplx"),
            ("X_API_BASE_URL", "https://x-gw.internal.example:8443"),
        ])
        .unwrap();
        let list = NetworkAllowList::from_config(&config, true, true);
        assert!(list.check("gw.internal.example").is_ok());
        assert!(list.check("x-gw.internal.example").is_ok());
        assert!(list.check(PERPLEXITY_HOST).is_err());
        assert!(list.check(X_API_HOST).is_err());
        // Without the key or token, their hosts stay off the list.
        let list = NetworkAllowList::from_config(&config, false, false);
        assert!(list.check("gw.internal.example").is_err());
    }

    #[test]
    fn extracts_hosts_from_urls() {
        assert_eq!(
            host_of_url("https://nitter.net/search/rss?q=x"),
            Some("nitter.net")
        );
        assert_eq!(
            host_of_url("https://nitter.example:8443"),
            Some("nitter.example")
        );
        assert_eq!(host_of_url("https://[::1]:9000/x"), Some("::1"));
        assert_eq!(host_of_url("https://"), None);
    }
}

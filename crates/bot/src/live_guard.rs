//! The live guard: whether a session may trade real money. The broker decides what the account
//! is (its account list's `isLive`); CTRADER_ENV, when set, must agree; the official live host
//! serves live accounts only. A live account is never traded without `--confirm-live`
//! (`--dry-run` sends no order, so it may look).

use ctrader_client::{DEMO_HOST, LIVE_HOST, LiveExpectation};

use crate::config::{BrokerEndpoint, TradingEnv};

/// What the operator allowed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LiveConsent {
    /// `--confirm-live`: real money may be traded.
    pub confirm_live: bool,
    /// `--dry-run`: no order is sent, so a live account may be watched.
    pub dry_run: bool,
}

impl LiveConsent {
    /// True when a live account may be connected to.
    pub const fn allows_live(self) -> bool {
        self.confirm_live || self.dry_run
    }
}

/// Where to connect first, and what the account must be there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPlan {
    /// The host to connect to.
    pub host: String,
    /// The kind CTRADER_ENV demands, if set.
    pub expect: Option<LiveExpectation>,
    /// True when neither CTRADER_HOST nor CTRADER_ENV is set: the demo host is asked first,
    /// and a live account moves the session to the live host (with consent only).
    pub follow_account: bool,
}

/// Refused before any order: the sentence says why and what to do (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LiveRefusal(pub String);

fn env_name(env: TradingEnv) -> &'static str {
    match env {
        TradingEnv::Demo => "demo",
        TradingEnv::Live => "live",
    }
}

fn normalised(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// True for the official live host (which serves live accounts only).
pub fn is_live_host(host: &str) -> bool {
    normalised(host) == LIVE_HOST
}

/// What is known of the account's kind before connecting: CTRADER_ENV when set, else whether
/// the official live host is named. The broker's own word is checked once connected.
pub fn expected_live(endpoint: &BrokerEndpoint) -> bool {
    endpoint.env.map_or_else(
        || is_live_host(&endpoint.host),
        |env| env == TradingEnv::Live,
    )
}

/// Decides where to connect before connecting: the official live host needs consent, and
/// CTRADER_ENV must not contradict an official host.
pub fn plan(
    endpoint: &BrokerEndpoint,
    consent: LiveConsent,
) -> Result<ConnectionPlan, LiveRefusal> {
    let host = normalised(&endpoint.host);
    if let Some(env) = endpoint.env {
        let clash = match env {
            TradingEnv::Demo => host == LIVE_HOST,
            TradingEnv::Live => host == DEMO_HOST,
        };
        if clash {
            return Err(LiveRefusal(format!(
                "CTRADER_ENV is {} but CTRADER_HOST is {host}, which serves {} accounts only",
                env_name(env),
                if host == LIVE_HOST { "live" } else { "demo" }
            )));
        }
    }
    if host == LIVE_HOST && !consent.allows_live() {
        return Err(LiveRefusal(format!(
            "{LIVE_HOST} serves live accounts only: real money would be traded. Add --confirm-live \
             to do so, or --dry-run to decide without sending orders"
        )));
    }
    Ok(ConnectionPlan {
        host: endpoint.host.clone(),
        expect: endpoint.env.map(|env| LiveExpectation {
            live: env == TradingEnv::Live,
            said_by: format!("CTRADER_ENV is {}", env_name(env)),
        }),
        follow_account: endpoint.env.is_none() && !endpoint.host_set,
    })
}

/// Checks the account's kind once the broker said it: a live account needs consent.
pub fn check_account(
    account_id: i64,
    account_is_live: bool,
    consent: LiveConsent,
) -> Result<(), LiveRefusal> {
    if account_is_live && !consent.allows_live() {
        return Err(LiveRefusal(format!(
            "account {account_id} is a live account (the broker's isLive): real money would be \
             traded. Add --confirm-live to do so, or --dry-run to decide without sending orders"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(env: Option<TradingEnv>, host: Option<&str>) -> BrokerEndpoint {
        BrokerEndpoint {
            env,
            host: host
                .map(str::to_owned)
                .unwrap_or_else(|| env.unwrap_or(TradingEnv::Demo).official_host().to_owned()),
            host_set: host.is_some(),
            port: 5035,
            ca_file: None,
            simulator_clock: None,
        }
    }

    const NONE: LiveConsent = LiveConsent {
        confirm_live: false,
        dry_run: false,
    };
    const CONFIRMED: LiveConsent = LiveConsent {
        confirm_live: true,
        dry_run: false,
    };

    #[test]
    fn the_live_host_is_refused_without_consent_whatever_ctrader_env_says() {
        // The reported case: CTRADER_ENV at its default with CTRADER_HOST=live.ctraderapi.com.
        for env in [None, Some(TradingEnv::Live)] {
            let err = plan(&endpoint(env, Some("LIVE.ctraderapi.com")), NONE).unwrap_err();
            assert!(
                err.0.contains("live.ctraderapi.com") && err.0.contains("--confirm-live"),
                "{err}"
            );
        }
        let err = plan(&endpoint(Some(TradingEnv::Live), None), NONE).unwrap_err();
        assert!(err.0.contains("--confirm-live"), "{err}");
        let ok = plan(&endpoint(None, Some("live.ctraderapi.com")), CONFIRMED).unwrap();
        assert_eq!(ok.expect, None);
        assert!(!ok.follow_account);
        let dry = LiveConsent {
            confirm_live: false,
            dry_run: true,
        };
        assert!(plan(&endpoint(Some(TradingEnv::Live), None), dry).is_ok());
    }

    #[test]
    fn ctrader_env_contradicting_an_official_host_names_both() {
        let err = plan(
            &endpoint(Some(TradingEnv::Demo), Some("live.ctraderapi.com")),
            CONFIRMED,
        )
        .unwrap_err();
        assert!(
            err.0.contains("CTRADER_ENV is demo") && err.0.contains("live.ctraderapi.com"),
            "{err}"
        );
        let err = plan(
            &endpoint(Some(TradingEnv::Live), Some("demo.ctraderapi.com")),
            CONFIRMED,
        )
        .unwrap_err();
        assert!(
            err.0.contains("CTRADER_ENV is live") && err.0.contains("demo.ctraderapi.com"),
            "{err}"
        );
    }

    #[test]
    fn unset_settings_ask_the_demo_host_and_follow_the_account() {
        let p = plan(&endpoint(None, None), NONE).unwrap();
        assert_eq!(p.host, DEMO_HOST);
        assert!(p.follow_account);
        let p = plan(&endpoint(Some(TradingEnv::Demo), Some("localhost")), NONE).unwrap();
        assert!(!p.follow_account);
        assert_eq!(
            p.expect,
            Some(LiveExpectation {
                live: false,
                said_by: "CTRADER_ENV is demo".into()
            })
        );
    }

    #[test]
    fn a_live_account_needs_consent() {
        let err = check_account(7, true, NONE).unwrap_err();
        assert!(err.0.contains("account 7 is a live account"), "{err}");
        assert!(check_account(7, true, CONFIRMED).is_ok());
        assert!(check_account(7, false, NONE).is_ok());
    }
}

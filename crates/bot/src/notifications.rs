//! Operator notifications as the bot configures them: the destinations' secrets from the
//! environment, their hosts for the allow-list, and the notifier started with the metrics.

use std::sync::Arc;
use std::time::Duration;

use domain::{Clock, Secret};
use notify::{DeliveryConfig, DeliveryOutcome, Destination, Notifier};
use observability::Metrics;
use scraper::{HttpClient, HttpPolicy, TokioSleeper};

use crate::config::{ConfigErrors, NotifySettings, check_service_url};
use crate::settings::SettingProblem;

/// The destinations' secrets, from the environment only. A webhook URL is a secret: the services
/// put the token in its path.
#[derive(Debug, Clone, Default)]
pub struct NotifySecrets {
    /// `NOTIFY_WEBHOOK_URL`: a generic webhook receiving the message as JSON.
    pub webhook_url: Option<Secret>,
    /// `NOTIFY_WEBHOOK_TOKEN`: sent to it as a bearer token.
    pub webhook_token: Option<Secret>,
    /// `TELEGRAM_BOT_TOKEN`.
    pub telegram_token: Option<Secret>,
    /// `TELEGRAM_CHAT_ID`.
    pub telegram_chat: Option<Secret>,
    /// `DISCORD_WEBHOOK_URL`.
    pub discord_url: Option<Secret>,
    /// `SLACK_WEBHOOK_URL`.
    pub slack_url: Option<Secret>,
}

impl NotifySecrets {
    /// Reads and checks them; every problem is named, never with a value.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<NotifySecrets, ConfigErrors> {
        let get = |name: &str| {
            env(name)
                .map(|v| Secret::new(v.trim()))
                .filter(|s| !s.is_empty())
        };
        let secrets = NotifySecrets {
            webhook_url: get("NOTIFY_WEBHOOK_URL"),
            webhook_token: get("NOTIFY_WEBHOOK_TOKEN"),
            telegram_token: get("TELEGRAM_BOT_TOKEN"),
            telegram_chat: get("TELEGRAM_CHAT_ID"),
            discord_url: get("DISCORD_WEBHOOK_URL"),
            slack_url: get("SLACK_WEBHOOK_URL"),
        };
        let mut problems = Vec::new();
        if let Some(url) = &secrets.webhook_url
            && check_service_url(url.expose()).is_err()
        {
            problems.push(SettingProblem::new(
                "NOTIFY_WEBHOOK_URL",
                "must be an https:// URL with a host (plain http only to this machine); value not shown",
            ));
        }
        if secrets.webhook_token.is_some() && secrets.webhook_url.is_none() {
            problems.push(SettingProblem::new(
                "NOTIFY_WEBHOOK_TOKEN",
                "is set but NOTIFY_WEBHOOK_URL is not",
            ));
        }
        match (&secrets.telegram_token, &secrets.telegram_chat) {
            (Some(_), None) => problems.push(SettingProblem::new(
                "TELEGRAM_CHAT_ID",
                "is missing: TELEGRAM_BOT_TOKEN needs the chat to write to",
            )),
            (None, Some(_)) => problems.push(SettingProblem::new(
                "TELEGRAM_BOT_TOKEN",
                "is missing: TELEGRAM_CHAT_ID is set",
            )),
            (Some(token), Some(_)) if token.expose().contains(['/', ' ', '?', '#']) => {
                problems.push(SettingProblem::new(
                    "TELEGRAM_BOT_TOKEN",
                    "is not a bot token (it holds '/', '?', '#' or a space); value not shown",
                ));
            }
            _ => {}
        }
        for (name, url) in [
            ("DISCORD_WEBHOOK_URL", &secrets.discord_url),
            ("SLACK_WEBHOOK_URL", &secrets.slack_url),
        ] {
            if let Some(url) = url
                && webhook_path(url.expose()).is_none()
            {
                problems.push(SettingProblem::new(
                    name,
                    "must be the webhook URL the service gave (https://host/path...); value not shown",
                ));
            }
        }
        if problems.is_empty() {
            Ok(secrets)
        } else {
            Err(ConfigErrors(problems))
        }
    }

    /// Every secret set, for the log scrubber.
    pub fn redact(&self) -> Vec<Secret> {
        [
            &self.webhook_url,
            &self.webhook_token,
            &self.telegram_token,
            &self.telegram_chat,
            &self.discord_url,
            &self.slack_url,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }
}

/// The path and query of a webhook URL (where its token is), e.g. `/api/webhooks/1/abc`.
fn webhook_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let slash = rest.find('/')?;
    let path = &rest[slash..];
    (path.len() > 1 && !path.contains(char::is_whitespace)).then_some(path)
}

/// The destinations the secrets and settings describe. A Discord or Slack webhook's path goes
/// to the configured base URL, so a gateway or a local mock can stand in for the service.
pub fn destinations(settings: &NotifySettings, secrets: &NotifySecrets) -> Vec<Destination> {
    let mut out = Vec::new();
    if let Some(url) = &secrets.webhook_url {
        out.push(Destination::Webhook {
            url: url.clone(),
            bearer: secrets.webhook_token.clone(),
        });
    }
    if let (Some(token), Some(chat)) = (&secrets.telegram_token, &secrets.telegram_chat) {
        out.push(Destination::Telegram {
            base_url: settings.telegram_base_url.clone(),
            bot_token: token.clone(),
            chat_id: chat.clone(),
        });
    }
    if let Some(path) = secrets
        .discord_url
        .as_ref()
        .and_then(|u| webhook_path(u.expose()))
    {
        out.push(Destination::Discord {
            url: Secret::new(format!("{}{path}", settings.discord_base_url)),
        });
    }
    if let Some(path) = secrets
        .slack_url
        .as_ref()
        .and_then(|u| webhook_path(u.expose()))
    {
        out.push(Destination::Slack {
            url: Secret::new(format!("{}{path}", settings.slack_base_url)),
        });
    }
    out
}

/// The hosts notifications go to (for the network allow-list).
pub fn hosts(settings: &NotifySettings, secrets: &NotifySecrets) -> Vec<String> {
    destinations(settings, secrets)
        .iter()
        .filter_map(Destination::host)
        .collect()
}

/// Starts delivery (one task per destination) with its outcomes counted in `metrics`; a
/// disabled notifier when no destination is configured.
pub fn start(
    settings: &NotifySettings,
    secrets: &NotifySecrets,
    metrics: &Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> Result<Notifier, String> {
    let destinations = destinations(settings, secrets);
    if destinations.is_empty() {
        tracing::info!("no notification destination configured (see README: alerting)");
        return Ok(Notifier::disabled());
    }
    let hosts: Vec<String> = destinations.iter().filter_map(Destination::host).collect();
    let client = HttpClient::new(HttpPolicy {
        allowed_hosts: hosts,
        // Plain http only reaches a configured loopback mock: validation refused it elsewhere.
        allow_plain_http_loopback: true,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(15),
        max_response_bytes: 64 * 1024,
        max_redirects: 0,
        extra_ca_file: None,
    })
    .map_err(|e| format!("notifications: {e}"))?;
    let outcomes: Vec<&str> = DeliveryOutcome::ALL.iter().map(|o| o.as_str()).collect();
    for d in &destinations {
        metrics.register_notification_destination(d.name(), &outcomes);
    }
    let names: Vec<&str> = destinations.iter().map(Destination::name).collect();
    tracing::info!(
        destinations = %names.join(","),
        off = %settings.events_off.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(","),
        "operator notifications on"
    );
    let observer = {
        let metrics = Arc::clone(metrics);
        Arc::new(move |destination: &'static str, outcome: DeliveryOutcome| {
            metrics.record_notification(destination, outcome.as_str());
        })
    };
    Ok(Notifier::start(
        destinations,
        client,
        DeliveryConfig {
            min_interval: Duration::from_secs(settings.min_interval_secs),
            ..DeliveryConfig::default()
        },
        settings.events_off.clone(),
        clock,
        Arc::new(TokioSleeper),
        Some(observer),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{config_from, env_of};

    #[test]
    fn secrets_are_checked_by_name_without_values() {
        let err = NotifySecrets::from_env(&env_of(&[
            ("TELEGRAM_BOT_TOKEN", "123:secret-token"),
            ("DISCORD_WEBHOOK_URL", "not a url secret-discord"),
            ("NOTIFY_WEBHOOK_URL", "http://hooks.example/secret-path"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for name in [
            "TELEGRAM_CHAT_ID",
            "DISCORD_WEBHOOK_URL",
            "NOTIFY_WEBHOOK_URL",
        ] {
            assert!(text.contains(name), "{text}");
        }
        for secret in ["secret-token", "secret-discord", "secret-path"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn webhook_paths_go_to_the_configured_base_and_hosts_join_the_list() {
        let config = config_from(&[
            ("DISCORD_BASE_URL", "http://127.0.0.1:7001/"),
            ("NOTIFY_EVENTS_OFF", "daily_summary, Order-Filled"),
        ])
        .unwrap();
        assert_eq!(config.notify.events_off.len(), 2);
        let secrets = NotifySecrets::from_env(&env_of(&[
            (
                "DISCORD_WEBHOOK_URL",
                "https://discord.com/api/webhooks/1/tok",
            ),
            (
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T/B/x",
            ),
            ("TELEGRAM_BOT_TOKEN", "1:abc"),
            ("TELEGRAM_CHAT_ID", "-100"),
        ]))
        .unwrap();
        let names: Vec<&str> = destinations(&config.notify, &secrets)
            .iter()
            .map(Destination::name)
            .collect();
        assert_eq!(names, ["telegram", "discord", "slack"]);
        assert_eq!(
            hosts(&config.notify, &secrets),
            ["api.telegram.org", "127.0.0.1", "hooks.slack.com"]
        );
        assert_eq!(secrets.redact().len(), 4);
    }

    #[test]
    fn settings_refuse_unknown_kinds_and_plain_http_off_this_machine() {
        let err = config_from(&[
            ("NOTIFY_EVENTS_OFF", "fills"),
            ("SLACK_BASE_URL", "http://hooks.example"),
            ("NOTIFY_DISCONNECT_AFTER", "0"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("NOTIFY_EVENTS_OFF") && text.contains("\"fills\" is not one of"));
        assert!(text.contains("SLACK_BASE_URL") && text.contains("plain http only"));
        assert!(text.contains("NOTIFY_DISCONNECT_AFTER"));
    }
}

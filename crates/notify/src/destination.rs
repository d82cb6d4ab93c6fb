//! Where messages go and what each service expects: a generic JSON webhook, Telegram's
//! `sendMessage`, and Discord and Slack incoming webhooks. URLs and tokens are secrets: no error
//! or log line built here contains one.

use std::time::Duration;

use domain::Secret;
use scraper::{HttpClient, HttpError, HttpRequest};

use crate::queue::Pending;

/// One place notifications are delivered to.
#[derive(Clone)]
pub enum Destination {
    /// A generic webhook: the message as JSON, POSTed to `url` (with an optional bearer token).
    Webhook {
        /// The full URL (may carry a token of its own).
        url: Secret,
        /// Sent as `Authorization: Bearer …` when set.
        bearer: Option<Secret>,
    },
    /// Telegram's Bot API: `POST {base_url}/bot{token}/sendMessage` to one chat.
    Telegram {
        /// Root of the Bot API, e.g. `https://api.telegram.org`.
        base_url: String,
        /// The bot's token from BotFather.
        bot_token: Secret,
        /// The chat (or channel) id.
        chat_id: Secret,
    },
    /// A Discord incoming webhook (its full URL: the configured base plus the webhook's path).
    Discord {
        /// The webhook URL.
        url: Secret,
    },
    /// A Slack incoming webhook (its full URL: the configured base plus the webhook's path).
    Slack {
        /// The webhook URL.
        url: Secret,
    },
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs and tokens are secrets: only the kind.
        f.debug_struct("Destination")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// Why a message could not be built or sent; never carries a URL or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationError {
    /// Which destination.
    pub destination: &'static str,
    /// What went wrong, secrets removed.
    pub reason: String,
}

impl std::fmt::Display for DestinationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.destination, self.reason)
    }
}

impl std::error::Error for DestinationError {}

/// Discord caps a message at 2,000 characters, Telegram at 4,096; Slack accepts far more.
const DISCORD_MAX_CHARS: usize = 2_000;
const TELEGRAM_MAX_CHARS: usize = 4_096;

impl Destination {
    /// The destination's name in logs and metric labels.
    pub const fn name(&self) -> &'static str {
        match self {
            Destination::Webhook { .. } => "webhook",
            Destination::Telegram { .. } => "telegram",
            Destination::Discord { .. } => "discord",
            Destination::Slack { .. } => "slack",
        }
    }

    /// The URL requests go to (a secret: it may hold a token).
    fn url(&self) -> String {
        match self {
            Destination::Webhook { url, .. }
            | Destination::Discord { url }
            | Destination::Slack { url } => url.expose().to_owned(),
            Destination::Telegram {
                base_url,
                bot_token,
                ..
            } => format!(
                "{}/bot{}/sendMessage",
                base_url.trim_end_matches('/'),
                bot_token.expose()
            ),
        }
    }

    /// The host requests go to (not a secret; for the allow-list and logs).
    pub fn host(&self) -> Option<String> {
        let url = self.url();
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next()?;
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next()?
        } else {
            authority.rsplit_once(':').map_or(authority, |(h, _)| h)
        };
        (!host.is_empty()).then(|| host.to_ascii_lowercase())
    }

    fn error(&self, reason: impl Into<String>) -> DestinationError {
        DestinationError {
            destination: self.name(),
            reason: self.scrub(&reason.into()),
        }
    }

    /// Removes this destination's URL and tokens from `text`.
    pub fn scrub(&self, text: &str) -> String {
        let mut secrets = vec![self.url()];
        match self {
            Destination::Webhook { url, bearer } => {
                secrets.push(url.expose().to_owned());
                if let Some(b) = bearer {
                    secrets.push(b.expose().to_owned());
                }
            }
            Destination::Telegram {
                bot_token, chat_id, ..
            } => {
                secrets.push(bot_token.expose().to_owned());
                secrets.push(chat_id.expose().to_owned());
            }
            Destination::Discord { url } | Destination::Slack { url } => {
                secrets.push(url.expose().to_owned());
                // The path holds the webhook's token.
                if let Some((_, path)) = url
                    .expose()
                    .split_once("://")
                    .and_then(|(_, r)| r.split_once('/'))
                {
                    secrets.push(format!("/{path}"));
                }
            }
        }
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_owned();
        for s in secrets.iter().filter(|s| s.len() >= 4) {
            out = out.replace(s.as_str(), "***");
        }
        out
    }

    /// The request that delivers `pending` here.
    pub fn request(
        &self,
        client: &HttpClient,
        pending: &Pending,
    ) -> Result<HttpRequest, DestinationError> {
        let url = client.checked_url(&self.url()).map_err(|e| match e {
            HttpError::InvalidUrl { .. } => self.error("the configured URL is not valid"),
            other => self.error(other.to_string()),
        })?;
        let n = &pending.notification;
        let text = n.text(pending.count, pending.first_at);
        let body = match self {
            Destination::Webhook { .. } => serde_json::json!({
                "source": "palm-oil-bot",
                "kind": n.kind.as_str(),
                "severity": n.severity.as_str(),
                "title": n.title,
                "text": n.body,
                "at": n.at.to_string(),
                "at_ms": n.at.millis(),
                "count": pending.count,
                "first_at": pending.first_at.to_string(),
                "fields": n.fields,
            }),
            Destination::Telegram { chat_id, .. } => serde_json::json!({
                "chat_id": chat_id.expose(),
                "text": cut(&text, TELEGRAM_MAX_CHARS),
                "disable_web_page_preview": true,
            }),
            Destination::Discord { .. } => serde_json::json!({
                "content": cut(&text, DISCORD_MAX_CHARS),
                // Never ping @everyone or a role from a bot message.
                "allowed_mentions": { "parse": [] },
            }),
            Destination::Slack { .. } => serde_json::json!({ "text": text }),
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| self.error(e.to_string()))?;
        let mut request = HttpRequest::post_json(url, bytes);
        if let Destination::Webhook {
            bearer: Some(token),
            ..
        } = self
        {
            request = request.bearer(token);
        }
        Ok(request)
    }

    /// The wait a 429 body asks for: Discord's `retry_after` (seconds, fractional) or Telegram's
    /// `parameters.retry_after` (seconds).
    pub fn body_retry_after(&self, body: &[u8]) -> Option<Duration> {
        let json: serde_json::Value = serde_json::from_slice(body).ok()?;
        let secs = json
            .get("retry_after")
            .or_else(|| json.get("parameters").and_then(|p| p.get("retry_after")))?
            .as_f64()?;
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_scrubbing_never_show_tokens() {
        let telegram = Destination::Telegram {
            base_url: "https://api.telegram.org/".into(),
            bot_token: Secret::new("123456:ABC-very-secret"),
            chat_id: Secret::new("-100777"),
        };
        assert_eq!(telegram.host().as_deref(), Some("api.telegram.org"));
        let said = telegram.scrub(
            "error sending request for url (https://api.telegram.org/bot123456:ABC-very-secret/sendMessage)",
        );
        assert!(!said.contains("ABC-very-secret"), "{said}");
        let discord = Destination::Discord {
            url: Secret::new("http://127.0.0.1:9/api/webhooks/1/tok-en"),
        };
        assert_eq!(discord.host().as_deref(), Some("127.0.0.1"));
        assert!(
            !discord
                .scrub("posting /api/webhooks/1/tok-en failed")
                .contains("tok-en")
        );
        assert!(!format!("{discord:?}").contains("tok-en"));
    }

    #[test]
    fn retry_after_is_read_from_discord_and_telegram_bodies() {
        let d = Destination::Slack {
            url: Secret::new("https://hooks.slack.com/services/x"),
        };
        assert_eq!(
            d.body_retry_after(
                br#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#
            ),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(
            d.body_retry_after(br#"{"ok":false,"error_code":429,"parameters":{"retry_after":7}}"#),
            Some(Duration::from_secs(7))
        );
        assert_eq!(d.body_retry_after(b"ratelimited"), None);
    }
}

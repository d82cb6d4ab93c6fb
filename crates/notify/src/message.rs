//! What the bot tells the operator: the kinds of event (each can be switched off), their
//! severity, and one message.

use std::collections::BTreeMap;

use domain::Timestamp;
use serde::Serialize;

/// The events an operator can be told about; each can be switched off by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// An order of ours filled and opened (or changed) a position.
    OrderFilled,
    /// A position closed, with its PnL in the account's currency.
    PositionClosed,
    /// The broker rejected an order.
    OrderRejected,
    /// The kill switch stopped new positions.
    KillSwitchEngaged,
    /// An operator released the kill switch.
    KillSwitchReleased,
    /// The broker link has been down longer than the set time.
    Disconnected,
    /// The link is back after such an outage.
    Reconnected,
    /// Reconciliation corrected the store, or found something to check by hand.
    Reconciliation,
    /// The access token was refreshed and the new pair stored.
    TokenRefreshed,
    /// The access token expires soon and has not been refreshed.
    TokenNearExpiry,
    /// The access token is invalid and could not be refreshed: trading stopped.
    TokenInvalid,
    /// The broker warned that the account's margin is low.
    MarginCall,
    /// No sentiment reading younger than its maximum age.
    SentimentUnavailable,
    /// The bot started trading.
    Started,
    /// The bot stopped (cleanly, or on a failure).
    Stopped,
    /// The day's trades, PnL, drawdown and equity.
    DailySummary,
}

impl NotificationKind {
    /// Every kind, in a fixed order.
    pub const ALL: [NotificationKind; 16] = [
        NotificationKind::OrderFilled,
        NotificationKind::PositionClosed,
        NotificationKind::OrderRejected,
        NotificationKind::KillSwitchEngaged,
        NotificationKind::KillSwitchReleased,
        NotificationKind::Disconnected,
        NotificationKind::Reconnected,
        NotificationKind::Reconciliation,
        NotificationKind::TokenRefreshed,
        NotificationKind::TokenNearExpiry,
        NotificationKind::TokenInvalid,
        NotificationKind::MarginCall,
        NotificationKind::SentimentUnavailable,
        NotificationKind::Started,
        NotificationKind::Stopped,
        NotificationKind::DailySummary,
    ];

    /// The name used in settings (`NOTIFY_EVENTS_OFF`) and in the webhook's JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotificationKind::OrderFilled => "order_filled",
            NotificationKind::PositionClosed => "position_closed",
            NotificationKind::OrderRejected => "order_rejected",
            NotificationKind::KillSwitchEngaged => "kill_switch_engaged",
            NotificationKind::KillSwitchReleased => "kill_switch_released",
            NotificationKind::Disconnected => "disconnected",
            NotificationKind::Reconnected => "reconnected",
            NotificationKind::Reconciliation => "reconciliation",
            NotificationKind::TokenRefreshed => "token_refreshed",
            NotificationKind::TokenNearExpiry => "token_near_expiry",
            NotificationKind::TokenInvalid => "token_invalid",
            NotificationKind::MarginCall => "margin_call",
            NotificationKind::SentimentUnavailable => "sentiment_unavailable",
            NotificationKind::Started => "started",
            NotificationKind::Stopped => "stopped",
            NotificationKind::DailySummary => "daily_summary",
        }
    }

    /// The kind named `name` (case-insensitive, `-` for `_` accepted).
    pub fn parse(name: &str) -> Option<NotificationKind> {
        let wanted = name.trim().to_ascii_lowercase().replace('-', "_");
        NotificationKind::ALL
            .into_iter()
            .find(|k| k.as_str() == wanted)
    }
}

impl std::fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgently a person should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record: fills, closes, start and stop.
    Info,
    /// Unexpected but handled: rejections, corrections, outages.
    Warning,
    /// Needs a person now: kill switch, invalid token, margin call, a finding to check by hand.
    Critical,
}

impl Severity {
    /// Lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The word a chat message starts with.
    pub const fn label(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// One message to the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// What happened.
    pub kind: NotificationKind,
    /// How urgent.
    pub severity: Severity,
    /// One line, e.g. `position 7 closed: PnL -12.50 USD`.
    pub title: String,
    /// Details, possibly several lines; may be empty.
    pub body: String,
    /// Messages with the same key that wait in a queue are merged into the newest, counted.
    pub key: Option<String>,
    /// When it happened (the bot's clock).
    pub at: Timestamp,
    /// Figures for machines (the webhook's `fields`): numbers as JSON numbers.
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// Longest title and body kept, so one runaway string cannot fill a chat or the queue.
const MAX_TITLE: usize = 200;
const MAX_BODY: usize = 1_500;

impl Notification {
    /// A message of `kind` at `at`; its key is the kind, so repeats waiting in a queue merge.
    pub fn new(
        kind: NotificationKind,
        severity: Severity,
        at: Timestamp,
        title: impl Into<String>,
    ) -> Notification {
        Notification {
            kind,
            severity,
            title: bounded(&title.into(), MAX_TITLE),
            body: String::new(),
            key: Some(kind.as_str().to_owned()),
            at,
            fields: BTreeMap::new(),
        }
    }

    /// Sets the details.
    #[must_use]
    pub fn body(mut self, body: impl Into<String>) -> Notification {
        self.body = bounded(&body.into(), MAX_BODY);
        self
    }

    /// Sets the merge key (`None`: never merged, e.g. each fill is its own message).
    #[must_use]
    pub fn key(mut self, key: Option<String>) -> Notification {
        self.key = key;
        self
    }

    /// Adds a figure for machines.
    #[must_use]
    pub fn field(mut self, name: &str, value: impl Into<serde_json::Value>) -> Notification {
        self.fields.insert(name.to_owned(), value.into());
        self
    }

    /// The text a chat shows: severity, title, details, and how many were merged.
    pub fn text(&self, count: u32, first_at: Timestamp) -> String {
        let mut text = format!("[{}] palm-oil-bot: {}", self.severity.label(), self.title);
        if !self.body.is_empty() {
            text.push('\n');
            text.push_str(&self.body);
        }
        if count > 1 {
            text.push_str(&format!(
                "\n({count} such events since {}; this is the latest)",
                clock_time(first_at)
            ));
        }
        text
    }
}

/// `HH:MM:SS UTC` of a timestamp.
fn clock_time(at: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(at.millis())
        .map(|t| t.format("%H:%M:%S UTC").to_string())
        .unwrap_or_else(|| at.to_string())
}

fn bounded(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in NotificationKind::ALL {
            assert_eq!(NotificationKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(
            NotificationKind::parse("Daily-Summary"),
            Some(NotificationKind::DailySummary)
        );
        assert_eq!(NotificationKind::parse("daily"), None);
    }

    #[test]
    fn text_names_severity_and_merged_count() {
        let n = Notification::new(
            NotificationKind::Disconnected,
            Severity::Warning,
            Timestamp(3_600_000),
            "broker link down for 120 s",
        )
        .body("reason: reset");
        assert_eq!(
            n.text(1, n.at),
            "[WARNING] palm-oil-bot: broker link down for 120 s\nreason: reset"
        );
        assert!(
            n.text(50, Timestamp(0))
                .ends_with("(50 such events since 00:00:00 UTC; this is the latest)")
        );
        let long = Notification::new(n.kind, n.severity, n.at, "x".repeat(1_000));
        assert_eq!(long.title.chars().count(), MAX_TITLE);
    }
}

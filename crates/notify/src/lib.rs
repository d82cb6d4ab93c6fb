//! Notifications to the operator, from the bot itself: a generic JSON webhook, Telegram, Discord
//! and Slack. The trading path only calls [`Notifier::send`], which never blocks and never fails:
//! each destination has its own bounded queue (a full queue drops its oldest message and counts
//! it), merges messages about the same thing while they wait (a disconnect storm is one message),
//! keeps to a per-destination rate, and retries 429 and 5xx answers with backoff, honouring
//! `Retry-After`. Failures are counted and logged, never raised.
//!
//! HTTP goes through `scraper`'s client (the one place HTTP clients are built: rustls, the
//! allow-list, timeouts, a size cap). Secrets (tokens, webhook URLs) arrive from the bot, which
//! reads them from the environment; they never reach a log line or an error message here.

mod delivery;
mod destination;
mod message;
mod queue;

pub use delivery::{DeliveryConfig, DeliveryOutcome, DeliveryStats, Notifier, OutcomeObserver};
pub use destination::{Destination, DestinationError};
pub use message::{Notification, NotificationKind, Severity};
pub use queue::{Pending, PendingQueue, Pushed};

//! The delivery side: one task per destination draining its queue at a bounded rate, retrying
//! what may succeed later. The sender's side ([`Notifier::send`]) is a short lock and a wake-up.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use domain::Clock;
use scraper::{HttpClient, Sleeper, server_wait};
use tokio::sync::Notify;

use crate::destination::Destination;
use crate::message::{Notification, NotificationKind};
use crate::queue::{Pending, PendingQueue, Pushed};

/// Bounds and pacing of delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Messages waiting per destination; a full queue drops its oldest.
    pub queue_capacity: usize,
    /// Least time between two messages to one destination (its rate limit).
    pub min_interval: Duration,
    /// Attempts per message, the first included.
    pub max_attempts: u32,
    /// First backoff step after a failure without a `Retry-After`.
    pub backoff_min: Duration,
    /// Largest backoff step.
    pub backoff_max: Duration,
    /// Longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> DeliveryConfig {
        DeliveryConfig {
            queue_capacity: 100,
            // Telegram allows about one message a second per chat; Slack one a second per hook.
            min_interval: Duration::from_secs(1),
            max_attempts: 5,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(600),
        }
    }
}

/// What happened to a message at one destination, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// Accepted by the service.
    Sent,
    /// Given up on (attempts spent, or refused for good).
    Failed,
    /// Dropped from a full queue before it was tried.
    Dropped,
    /// Merged into a waiting message about the same thing.
    Merged,
    /// One attempt failed; another follows.
    Retried,
}

impl DeliveryOutcome {
    /// Every outcome, for pre-registering metric series.
    pub const ALL: [DeliveryOutcome; 5] = [
        DeliveryOutcome::Sent,
        DeliveryOutcome::Failed,
        DeliveryOutcome::Dropped,
        DeliveryOutcome::Merged,
        DeliveryOutcome::Retried,
    ];

    /// The metric label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Sent => "sent",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::Dropped => "dropped",
            DeliveryOutcome::Merged => "merged",
            DeliveryOutcome::Retried => "retried",
        }
    }
}

/// Told of every outcome, by destination name (the bot counts them in a metric).
pub type OutcomeObserver = Arc<dyn Fn(&'static str, DeliveryOutcome) + Send + Sync>;

/// Counts of one destination's outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Messages the service accepted.
    pub sent: u64,
    /// Messages given up on.
    pub failed: u64,
    /// Messages dropped from a full queue.
    pub dropped: u64,
    /// Messages merged into a waiting one.
    pub merged: u64,
    /// Attempts that failed and were retried.
    pub retried: u64,
    /// Messages waiting now.
    pub queued: usize,
    /// Whether a message is being sent now.
    pub in_flight: bool,
}

impl DeliveryStats {
    fn count(&mut self, outcome: DeliveryOutcome) {
        let slot = match outcome {
            DeliveryOutcome::Sent => &mut self.sent,
            DeliveryOutcome::Failed => &mut self.failed,
            DeliveryOutcome::Dropped => &mut self.dropped,
            DeliveryOutcome::Merged => &mut self.merged,
            DeliveryOutcome::Retried => &mut self.retried,
        };
        *slot = slot.saturating_add(1);
    }
}

#[derive(Debug)]
struct LaneState {
    queue: PendingQueue,
    in_flight: bool,
    closed: bool,
    stats: DeliveryStats,
}

/// One destination's queue and the wake-up its task waits on.
#[derive(Debug)]
struct Lane {
    destination: Destination,
    state: Mutex<LaneState>,
    wake: Notify,
}

impl Lane {
    fn state(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Shared {
    lanes: Vec<Arc<Lane>>,
    off: BTreeSet<NotificationKind>,
    observer: Option<OutcomeObserver>,
}

/// The handle the bot sends notifications through; cheap to clone. Sending never blocks, waits
/// or fails: delivery happens in tasks of its own.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .shared
            .lanes
            .iter()
            .map(|l| l.destination.name())
            .collect();
        f.debug_struct("Notifier")
            .field("destinations", &names)
            .field("off", &self.shared.off)
            .finish()
    }
}

impl Notifier {
    /// A notifier with no destination: every message is discarded.
    pub fn disabled() -> Notifier {
        Notifier {
            shared: Arc::new(Shared {
                lanes: Vec::new(),
                off: BTreeSet::new(),
                observer: None,
            }),
        }
    }

    /// Starts one delivery task per destination on the current tokio runtime. `off` lists the
    /// kinds never sent; `sleeper` does every wait (rate limit, backoff, `Retry-After`).
    pub fn start(
        destinations: Vec<Destination>,
        client: HttpClient,
        config: DeliveryConfig,
        off: BTreeSet<NotificationKind>,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        observer: Option<OutcomeObserver>,
    ) -> Notifier {
        let lanes: Vec<Arc<Lane>> = destinations
            .into_iter()
            .map(|destination| {
                Arc::new(Lane {
                    destination,
                    state: Mutex::new(LaneState {
                        queue: PendingQueue::new(config.queue_capacity),
                        in_flight: false,
                        closed: false,
                        stats: DeliveryStats::default(),
                    }),
                    wake: Notify::new(),
                })
            })
            .collect();
        for lane in &lanes {
            let worker = Worker {
                lane: Arc::clone(lane),
                client: client.clone(),
                config,
                clock: Arc::clone(&clock),
                sleeper: Arc::clone(&sleeper),
                observer: observer.clone(),
            };
            tokio::spawn(worker.run());
        }
        Notifier {
            shared: Arc::new(Shared {
                lanes,
                off,
                observer,
            }),
        }
    }

    /// Whether messages of `kind` go anywhere.
    pub fn is_enabled(&self, kind: NotificationKind) -> bool {
        !self.shared.lanes.is_empty() && !self.shared.off.contains(&kind)
    }

    /// The destinations' names.
    pub fn destinations(&self) -> Vec<&'static str> {
        self.shared
            .lanes
            .iter()
            .map(|l| l.destination.name())
            .collect()
    }

    /// Queues `notification` for every destination; returns at once.
    pub fn send(&self, notification: Notification) {
        if !self.is_enabled(notification.kind) {
            return;
        }
        for lane in &self.shared.lanes {
            let pushed = {
                let mut state = lane.state();
                if state.closed {
                    continue;
                }
                lane_push(&mut state, notification.clone())
            };
            match pushed {
                Pushed::Queued => {}
                Pushed::Merged => self.observe(lane, DeliveryOutcome::Merged),
                Pushed::DroppedOldest => {
                    tracing::warn!(
                        destination = lane.destination.name(),
                        "notification queue full: the oldest message was dropped"
                    );
                    self.observe(lane, DeliveryOutcome::Dropped);
                }
            }
            lane.wake.notify_one();
        }
    }

    fn observe(&self, lane: &Lane, outcome: DeliveryOutcome) {
        if let Some(observer) = &self.shared.observer {
            observer(lane.destination.name(), outcome);
        }
    }

    /// Each destination's counts so far.
    pub fn stats(&self) -> Vec<(&'static str, DeliveryStats)> {
        self.shared
            .lanes
            .iter()
            .map(|lane| {
                let state = lane.state();
                let mut stats = state.stats;
                stats.queued = state.queue.len();
                stats.in_flight = state.in_flight;
                (lane.destination.name(), stats)
            })
            .collect()
    }

    /// Waits until every queue is empty and nothing is in flight, for at most `limit`; true when
    /// it got there (at a clean stop, so the last messages leave before the process does).
    pub async fn flush(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.shared.lanes.iter().all(|lane| {
                let state = lane.state();
                state.queue.is_empty() && !state.in_flight
            });
            if idle {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops accepting messages; each task ends once its queue is empty.
    pub fn close(&self) {
        for lane in &self.shared.lanes {
            lane.state().closed = true;
            lane.wake.notify_one();
        }
    }
}

fn lane_push(state: &mut LaneState, notification: Notification) -> Pushed {
    let pushed = state.queue.push(notification);
    match pushed {
        Pushed::Queued => {}
        Pushed::Merged => state.stats.count(DeliveryOutcome::Merged),
        Pushed::DroppedOldest => state.stats.count(DeliveryOutcome::Dropped),
    }
    pushed
}

/// One destination's delivery task.
struct Worker {
    lane: Arc<Lane>,
    client: HttpClient,
    config: DeliveryConfig,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    observer: Option<OutcomeObserver>,
}

/// How one attempt ended.
enum Attempt {
    Sent,
    /// Worth another try after the wait.
    Again {
        wait: Duration,
        reason: String,
    },
    /// Never worth another try.
    Refused(String),
}

impl Worker {
    async fn run(self) {
        let mut last_sent: Option<tokio::time::Instant> = None;
        loop {
            loop {
                {
                    let state = self.lane.state();
                    if !state.queue.is_empty() {
                        break;
                    }
                    if state.closed {
                        return;
                    }
                }
                self.lane.wake.notified().await;
            }
            // The rate limit is kept before taking the message, so what arrives meanwhile about
            // the same thing merges into it.
            if let Some(last) = last_sent {
                let since = last.elapsed();
                if since < self.config.min_interval {
                    self.sleeper.sleep(self.config.min_interval - since).await;
                }
            }
            let pending = {
                let mut state = self.lane.state();
                let pending = state.queue.pop();
                state.in_flight = pending.is_some();
                pending
            };
            let Some(pending) = pending else { continue };
            let outcome = self.deliver(&pending).await;
            last_sent = Some(tokio::time::Instant::now());
            {
                let mut state = self.lane.state();
                state.in_flight = false;
                state.stats.count(outcome);
            }
            self.observe(outcome);
        }
    }

    fn observe(&self, outcome: DeliveryOutcome) {
        if let Some(observer) = &self.observer {
            observer(self.lane.destination.name(), outcome);
        }
    }

    async fn deliver(&self, pending: &Pending) -> DeliveryOutcome {
        let destination = &self.lane.destination;
        let attempts = self.config.max_attempts.max(1);
        let mut last_reason = String::new();
        for attempt in 1..=attempts {
            match self.attempt(pending, attempt).await {
                Attempt::Sent => {
                    tracing::debug!(
                        destination = destination.name(),
                        kind = pending.notification.kind.as_str(),
                        merged = pending.count,
                        attempt,
                        "notification sent"
                    );
                    return DeliveryOutcome::Sent;
                }
                Attempt::Refused(reason) => {
                    last_reason = reason;
                    break;
                }
                Attempt::Again { wait, reason } => {
                    last_reason = reason;
                    if attempt == attempts {
                        break;
                    }
                    {
                        let mut state = self.lane.state();
                        state.stats.count(DeliveryOutcome::Retried);
                    }
                    self.observe(DeliveryOutcome::Retried);
                    tracing::debug!(
                        destination = destination.name(),
                        attempt,
                        wait_s = wait.as_secs_f64(),
                        "notification not delivered yet ({last_reason}); retrying"
                    );
                    self.sleeper.sleep(wait).await;
                }
            }
        }
        tracing::warn!(
            destination = destination.name(),
            host = destination.host().unwrap_or_default(),
            kind = pending.notification.kind.as_str(),
            "notification not delivered: {last_reason}"
        );
        DeliveryOutcome::Failed
    }

    async fn attempt(&self, pending: &Pending, attempt: u32) -> Attempt {
        let destination = &self.lane.destination;
        let request = match destination.request(&self.client, pending) {
            Ok(r) => r,
            Err(e) => return Attempt::Refused(e.reason),
        };
        match self.client.send(request).await {
            Ok(response) if response.status.is_success() => Attempt::Sent,
            Ok(response) => {
                let status = response.status.as_u16();
                if status == 429 || response.status.is_server_error() {
                    let asked = server_wait(&response.headers, self.clock.now())
                        .or_else(|| destination.body_retry_after(&response.body));
                    let wait = match asked {
                        Some(w) => w.min(self.config.max_retry_after),
                        None => self.backoff(attempt),
                    };
                    Attempt::Again {
                        wait,
                        reason: format!("HTTP {status}"),
                    }
                } else {
                    let said: String = response.text().chars().take(200).collect();
                    Attempt::Refused(destination.scrub(&format!("HTTP {status}: {said}")))
                }
            }
            Err(e) if e.is_transient() => Attempt::Again {
                wait: self.backoff(attempt),
                reason: destination.scrub(&e.to_string()),
            },
            Err(e) => Attempt::Refused(destination.scrub(&e.to_string())),
        }
    }

    /// Exponential backoff with jitter on the upper half, so retries neither hammer nor align.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(16);
        let step = self
            .config
            .backoff_min
            .saturating_mul(1 << exp)
            .min(self.config.backoff_max);
        step / 2 + scraper::full_jitter(step / 2)
    }
}

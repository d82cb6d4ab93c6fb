//! Client-side rate limits, so the broker never has to refuse us: every request waits its turn, and
//! historical requests also wait on their own, slower limit. When the broker still says
//! `BLOCKED_PAYLOAD_TYPE`, its `retryAfter` holds every request back.
//!
//! cTrader counts requests per connection per second. Each limit keeps the send times of its last
//! `limit` requests and lets a request go only when fewer than `limit` went out in the window
//! before it: a start-up's handful of requests leaves at once (a token bucket that never lets
//! more than the limit into any window must start almost empty, and spaced a session's first
//! history requests 250 ms apart), and no window ever holds more than the limit. The window is a
//! little longer than the broker's second, so network jitter cannot squeeze one more into its.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimits;

/// The broker's window, and the margin added to it against jitter between our send times and
/// the broker's arrival times.
const WINDOW: Duration = Duration::from_millis(1_000 + 100);

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestClass {
    /// Everything but history.
    Ordinary,
    /// Trendbars, tick data, deal list.
    Historical,
}

/// The send times of the most recent requests under one limit.
#[derive(Debug)]
struct Window {
    limit: usize,
    sent: VecDeque<Instant>,
}

impl Window {
    fn new(per_second: u32) -> Window {
        let limit = usize::try_from(per_second.max(1)).unwrap_or(usize::MAX);
        Window {
            limit,
            sent: VecDeque::with_capacity(limit),
        }
    }

    /// When the next request may go: now, or when the oldest one in the window leaves it.
    fn free_at(&mut self, now: Instant) -> Instant {
        while self.sent.front().is_some_and(|t| *t + WINDOW <= now) {
            self.sent.pop_front();
        }
        match self.sent.front() {
            Some(oldest) if self.sent.len() >= self.limit => *oldest + WINDOW,
            _ => now,
        }
    }
}

/// Both windows, taken together so a historical request counts in both at the moment it leaves.
#[derive(Debug)]
struct Windows {
    all: Window,
    historical: Window,
    blocked_until: Option<Instant>,
}

/// The limiters of one client (shared by its successive links).
#[derive(Debug)]
pub(crate) struct Limits {
    windows: Mutex<Windows>,
}

impl Limits {
    /// Limiters for the configured rates.
    pub(crate) fn new(rates: RateLimits) -> Limits {
        Limits {
            windows: Mutex::new(Windows {
                all: Window::new(rates.requests_per_second),
                historical: Window::new(rates.historical_per_second),
                blocked_until: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until a request of `class` may be sent, and counts it as sent.
    pub(crate) async fn acquire(&self, class: RequestClass) {
        loop {
            let until = {
                let mut w = self.lock();
                let now = Instant::now();
                let mut until = w.all.free_at(now);
                if class == RequestClass::Historical {
                    until = until.max(w.historical.free_at(now));
                }
                if let Some(blocked) = w.blocked_until {
                    until = until.max(blocked);
                }
                if until <= now {
                    w.all.sent.push_back(now);
                    if class == RequestClass::Historical {
                        w.historical.sent.push_back(now);
                    }
                    return;
                }
                until
            };
            tokio::time::sleep_until(until).await;
        }
    }

    /// Holds every request back for `pause` (the broker's `retryAfter`).
    pub(crate) fn block_for(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut w = self.lock();
        if w.blocked_until.is_none_or(|b| b < until) {
            w.blocked_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Send times of `n` requests of `class`, from the first.
    async fn stamps(limits: &Limits, class: RequestClass, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut stamps = Vec::new();
        for _ in 0..n {
            limits.acquire(class).await;
            stamps.push(start.elapsed());
        }
        stamps
    }

    /// The most requests any one-second window holds.
    fn busiest_second(stamps: &[Duration]) -> usize {
        (0..stamps.len())
            .map(|i| {
                stamps[i..]
                    .iter()
                    .take_while(|u| **u < stamps[i] + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn no_one_second_window_holds_more_than_the_limit() {
        let limits = Limits::new(RateLimits {
            requests_per_second: 50,
            historical_per_second: 5,
        });
        let stamps = stamps(&limits, RequestClass::Ordinary, 160).await;
        assert_eq!(busiest_second(&stamps), 50);
        // The first 50 leave at once; each later one waits for a place in the window.
        assert_eq!(stamps[49], Duration::ZERO);
        assert_eq!(stamps[50], WINDOW);
        assert!(stamps[159] >= 3 * WINDOW, "{:?}", stamps[159]);
    }

    /// Found by the year soak: a session's start asks history three times (deals, conversion,
    /// trendbars), and a bucket that starts nearly empty spaced them 250 ms apart.
    #[tokio::test(start_paused = true)]
    async fn a_start_up_burst_of_history_leaves_at_once_and_then_keeps_to_five_a_second() {
        let limits = Limits::new(RateLimits::default());
        let stamps = stamps(&limits, RequestClass::Historical, 12).await;
        assert!(
            stamps[..5].iter().all(|s| *s == Duration::ZERO),
            "{stamps:?}"
        );
        assert_eq!(stamps[5], WINDOW);
        assert_eq!(busiest_second(&stamps), 5);
        // Ordinary requests are not held back by history's limit, only counted with it.
        let before = Instant::now();
        limits.acquire(RequestClass::Ordinary).await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn history_counts_against_the_overall_limit_too() {
        let limits = Limits::new(RateLimits {
            requests_per_second: 3,
            historical_per_second: 5,
        });
        let stamps = stamps(&limits, RequestClass::Historical, 4).await;
        assert_eq!(stamps[3], WINDOW, "{stamps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_requests_back() {
        let limits = Limits::new(RateLimits::default());
        limits.block_for(Duration::from_secs(3));
        let start = Instant::now();
        limits.acquire(RequestClass::Ordinary).await;
        assert!(start.elapsed() >= Duration::from_secs(3));
    }
}

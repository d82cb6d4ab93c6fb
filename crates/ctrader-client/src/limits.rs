//! Client-side rate limits, so the broker never has to refuse us: every request waits its turn, and
//! historical requests also wait on their own, slower limit. When the broker still says
//! `BLOCKED_PAYLOAD_TYPE`, its `retryAfter` holds every request back.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::config::RateLimits;

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestClass {
    /// Everything but history.
    Ordinary,
    /// Trendbars, tick data, deal list.
    Historical,
}

/// The limiters of one client (shared by its successive links).
#[derive(Debug)]
pub(crate) struct Limits {
    all: DefaultDirectRateLimiter,
    historical: DefaultDirectRateLimiter,
    blocked_until: Mutex<Option<Instant>>,
}

/// A quota that never lets more than `per_second` requests into any one-second window: a small
/// burst plus a steady rate that together add up to the limit (a plain GCRA with burst = rate
/// would allow up to twice the rate in a window that straddles a full bucket).
pub(crate) fn window_safe_quota(per_second: u32) -> Quota {
    let per_second = per_second.max(1);
    let burst = (per_second / 10).max(1);
    let steady = per_second.saturating_sub(burst).max(1);
    let period = Duration::from_secs(1) / steady;
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Limits {
    /// Limiters for the configured rates.
    pub(crate) fn new(rates: RateLimits) -> Limits {
        Limits {
            all: RateLimiter::direct(window_safe_quota(rates.requests_per_second)),
            historical: RateLimiter::direct(window_safe_quota(rates.historical_per_second)),
            blocked_until: Mutex::new(None),
        }
    }

    /// Waits until a request of `class` may be sent.
    pub(crate) async fn acquire(&self, class: RequestClass) {
        let blocked = *self
            .blocked_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(until) = blocked {
            tokio::time::sleep_until(until).await;
        }
        if class == RequestClass::Historical {
            wait(&self.historical).await;
        }
        wait(&self.all).await;
    }

    /// Holds every request back for `pause` (the broker's `retryAfter`).
    pub(crate) fn block_for(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut blocked = self
            .blocked_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if blocked.is_none_or(|b| b < until) {
            *blocked = Some(until);
        }
    }
}

async fn wait(limiter: &DefaultDirectRateLimiter) {
    while let Err(not_until) = limiter.check() {
        tokio::time::sleep(not_until.wait_time_from(limiter.clock().now())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_one_second_window_holds_more_than_the_limit() {
        let limits = Limits::new(RateLimits {
            requests_per_second: 50,
            historical_per_second: 5,
        });
        let start = std::time::Instant::now();
        let mut stamps = Vec::new();
        for _ in 0..60 {
            limits.acquire(RequestClass::Ordinary).await;
            stamps.push(start.elapsed());
        }
        for (i, t) in stamps.iter().enumerate() {
            let in_window = stamps[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(1))
                .count();
            assert!(in_window <= 50, "{in_window} requests within 1 s of #{i}");
        }
        // 60 requests at 50/s cannot take less than the burst allowance allows.
        assert!(
            stamps[59] >= Duration::from_millis(1_100),
            "{:?}",
            stamps[59]
        );
    }

    #[tokio::test]
    async fn historical_requests_wait_on_their_own_limit() {
        let limits = Limits::new(RateLimits::default());
        let start = std::time::Instant::now();
        for _ in 0..6 {
            limits.acquire(RequestClass::Historical).await;
        }
        // Burst 1 then 4 per second: the sixth is 1.25 s in.
        assert!(
            start.elapsed() >= Duration::from_millis(1_200),
            "{:?}",
            start.elapsed()
        );
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

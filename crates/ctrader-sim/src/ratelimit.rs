//! cTrader's per-connection request limits: a sliding one-second window for all requests and a
//! tighter one for historical requests.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Requests per second one connection may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// All requests (cTrader: 50).
    pub requests_per_second: u32,
    /// Historical requests: trendbars, tick data, deal and order lists (cTrader: 5).
    pub historical_per_second: u32,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            requests_per_second: 50,
            historical_per_second: 5,
        }
    }
}

/// A refused request: how long until one would be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryAfter(pub(crate) Duration);

impl RetryAfter {
    /// Whole seconds for `retryAfter`, at least one.
    pub(crate) fn seconds(self) -> u64 {
        self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)
    }
}

/// One connection's request windows.
#[derive(Debug)]
pub(crate) struct RequestLimiter {
    limits: RateLimits,
    all: VecDeque<Instant>,
    historical: VecDeque<Instant>,
}

const WINDOW: Duration = Duration::from_secs(1);

impl RequestLimiter {
    /// A limiter with nothing sent yet.
    pub(crate) fn new(limits: RateLimits) -> RequestLimiter {
        RequestLimiter {
            limits,
            all: VecDeque::new(),
            historical: VecDeque::new(),
        }
    }

    /// Admits a request at `now` or says how long to wait; refused requests do not count.
    pub(crate) fn admit(&mut self, now: Instant, historical: bool) -> Result<(), RetryAfter> {
        prune(&mut self.all, now);
        prune(&mut self.historical, now);
        check(&self.all, self.limits.requests_per_second, now)?;
        if historical {
            check(&self.historical, self.limits.historical_per_second, now)?;
            self.historical.push_back(now);
        }
        self.all.push_back(now);
        Ok(())
    }
}

fn prune(window: &mut VecDeque<Instant>, now: Instant) {
    while window
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
    {
        window.pop_front();
    }
}

fn check(window: &VecDeque<Instant>, limit: u32, now: Instant) -> Result<(), RetryAfter> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if window.len() < limit {
        return Ok(());
    }
    // The oldest request in the window leaves it first.
    let oldest = window.front().copied().unwrap_or(now);
    Err(RetryAfter(
        WINDOW.saturating_sub(now.saturating_duration_since(oldest)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_per_second_then_blocked_until_the_window_moves() {
        let mut limiter = RequestLimiter::new(RateLimits::default());
        let t0 = Instant::now();
        for i in 0..50 {
            limiter.admit(t0 + Duration::from_millis(i), false).unwrap();
        }
        let refused = limiter
            .admit(t0 + Duration::from_millis(100), false)
            .unwrap_err();
        assert_eq!(refused.0, Duration::from_millis(900));
        assert_eq!(refused.seconds(), 1);
        // Refusals did not count: one slot frees when the first request is a second old.
        limiter
            .admit(t0 + Duration::from_millis(1000), false)
            .unwrap();
        assert!(
            limiter
                .admit(t0 + Duration::from_millis(1000), false)
                .is_err()
        );
    }

    #[test]
    fn historical_requests_have_their_own_tighter_limit() {
        let mut limiter = RequestLimiter::new(RateLimits::default());
        let t0 = Instant::now();
        for _ in 0..5 {
            limiter.admit(t0, true).unwrap();
        }
        assert!(limiter.admit(t0, true).is_err());
        // Other requests still pass.
        limiter.admit(t0, false).unwrap();
        limiter.admit(t0 + Duration::from_secs(1), true).unwrap();
    }
}

//! Cost and failure guards driven by the injected clock: a sliding-window budget and a
//! circuit breaker.

use std::collections::VecDeque;

use domain::Timestamp;

/// At most `limit` units (requests, posts) per sliding window of `window_ms`.
#[derive(Debug, Clone)]
pub struct SlidingBudget {
    limit: u32,
    window_ms: i64,
    spent: VecDeque<(Timestamp, u32)>,
}

impl SlidingBudget {
    /// A budget of `limit` units per `window_ms` milliseconds.
    pub fn new(limit: u32, window_ms: i64) -> SlidingBudget {
        SlidingBudget {
            limit,
            window_ms,
            spent: VecDeque::new(),
        }
    }

    /// The configured limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Units still available at `now`.
    pub fn remaining(&mut self, now: Timestamp) -> u32 {
        while let Some((at, _)) = self.spent.front() {
            if now.millis_since(*at) >= self.window_ms {
                self.spent.pop_front();
            } else {
                break;
            }
        }
        let used = self
            .spent
            .iter()
            .fold(0u32, |sum, (_, units)| sum.saturating_add(*units));
        self.limit.saturating_sub(used)
    }

    /// Spends `units` at `now` if that many remain; false (nothing spent) otherwise.
    pub fn try_spend(&mut self, now: Timestamp, units: u32) -> bool {
        if self.remaining(now) < units {
            return false;
        }
        self.spent.push_back((now, units));
        true
    }

    /// Records `units` spent at `now` even past the limit (a server reported more than asked).
    pub fn record(&mut self, now: Timestamp, units: u32) {
        self.spent.push_back((now, units));
    }
}

/// Opens after `threshold` consecutive failures; after `cooldown_ms` lets one trial through.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown_ms: i64,
    consecutive_failures: u32,
    open_until: Option<Timestamp>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown_ms: i64) -> CircuitBreaker {
        CircuitBreaker {
            threshold: threshold.max(1),
            cooldown_ms,
            consecutive_failures: 0,
            open_until: None,
        }
    }

    /// `Err(until)` while open; `Ok` when closed or when the cool-down has passed (half-open).
    pub fn permit(&self, now: Timestamp) -> Result<(), Timestamp> {
        match self.open_until {
            Some(until) if now < until => Err(until),
            _ => Ok(()),
        }
    }

    /// A success closes the breaker.
    pub fn on_success(&mut self) {
        self.consecutive_failures = 0;
        self.open_until = None;
    }

    /// A failure; at the threshold (or on a failed half-open trial) the breaker opens.
    pub fn on_failure(&mut self, now: Timestamp) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures >= self.threshold {
            self.open_until = Some(now.plus_millis(self.cooldown_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_frees_units_as_the_window_slides() {
        let mut budget = SlidingBudget::new(2, 1000);
        assert!(budget.try_spend(Timestamp(0), 1));
        assert!(budget.try_spend(Timestamp(500), 1));
        assert!(!budget.try_spend(Timestamp(999), 1));
        assert!(budget.try_spend(Timestamp(1000), 1));
        assert_eq!(budget.remaining(Timestamp(1000)), 0);
        assert_eq!(budget.remaining(Timestamp(1500)), 1);
    }

    #[test]
    fn breaker_opens_at_threshold_and_half_opens_after_cooldown() {
        let mut breaker = CircuitBreaker::new(2, 100);
        breaker.on_failure(Timestamp(0));
        assert!(breaker.permit(Timestamp(1)).is_ok());
        breaker.on_failure(Timestamp(10));
        assert_eq!(breaker.permit(Timestamp(50)), Err(Timestamp(110)));
        assert!(breaker.permit(Timestamp(110)).is_ok());
        // A failed trial re-opens at once.
        breaker.on_failure(Timestamp(110));
        assert!(breaker.permit(Timestamp(111)).is_err());
        breaker.on_success();
        assert!(breaker.permit(Timestamp(111)).is_ok());
    }
}

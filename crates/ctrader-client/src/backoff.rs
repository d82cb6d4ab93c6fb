//! Reconnection delays: backon's capped exponential envelope, with full jitter (each delay uniform
//! between zero and the envelope), so many clients restarting together do not reconnect in step.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::config::ReconnectPolicy;

/// Builds the delay sequence of one run of reconnection attempts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FullJitter {
    policy: ReconnectPolicy,
}

impl FullJitter {
    /// Delays for `policy`.
    pub(crate) const fn new(policy: ReconnectPolicy) -> FullJitter {
        FullJitter { policy }
    }
}

/// The delays before each attempt; ends when the attempts allowed are used up.
#[derive(Debug)]
pub(crate) struct FullJitterDelays {
    envelope: backon::ExponentialBackoff,
    rng: fastrand::Rng,
}

impl BackoffBuilder for FullJitter {
    type Backoff = FullJitterDelays;

    fn build(self) -> FullJitterDelays {
        let mut envelope = ExponentialBuilder::new()
            .with_min_delay(self.policy.initial_delay)
            .with_max_delay(self.policy.max_delay)
            .with_factor(2.0);
        envelope = match self.policy.max_attempts {
            Some(n) => envelope.with_max_times(n),
            None => envelope.without_max_times(),
        };
        FullJitterDelays {
            envelope: envelope.build(),
            rng: fastrand::Rng::new(),
        }
    }
}

impl Iterator for FullJitterDelays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let ceiling = self.envelope.next()?;
        Some(ceiling.mul_f64(self.rng.f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_a_doubling_capped_envelope() {
        let policy = ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_attempts: Some(10),
        };
        let delays: Vec<Duration> = FullJitter::new(policy).build().collect();
        assert_eq!(delays.len(), 10);
        for (i, d) in delays.iter().enumerate() {
            let envelope = (Duration::from_millis(100) * 2_u32.pow(u32::try_from(i).unwrap()))
                .min(Duration::from_secs(2));
            assert!(*d <= envelope, "delay {i}: {d:?} > {envelope:?}");
        }
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let policy = ReconnectPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(1),
            max_attempts: None,
        };
        let delays: Vec<Duration> = FullJitter::new(policy).build().take(200).collect();
        let low = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(500))
            .count();
        // Uniform on [0, 1 s): about half below 0.5 s; 200 draws all on one side is ~1e-60.
        assert!((40..=160).contains(&low), "{low} of 200 below half");
    }
}

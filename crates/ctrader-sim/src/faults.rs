//! Faults the simulator can inject, as configured at start (`palm-oil-bot simulate` flags);
//! [`crate::FaultControl`] changes them while it runs.

use std::time::Duration;

use crate::SimError;

/// Which faults to inject. The default injects none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultPlan {
    /// Cut each connection when its N-th message from the client arrives: the message is still
    /// carried out (an order executes) but its replies are lost with the connection, the worst
    /// case a client must reconcile.
    pub drop_after_messages: Option<u64>,
    /// Cut each connection this long after it was accepted.
    pub drop_every: Option<Duration>,
    /// Hold every reply this long before sending it (pushed events are not delayed).
    pub reply_delay: Option<Duration>,
    /// Refuse the next new order with this cTrader error code (e.g. `NOT_ENOUGH_MONEY`), once.
    pub reject_next_order: Option<String>,
    /// Send every execution event twice.
    pub duplicate_execution_events: bool,
    /// Close the oldest open position this often, as a person in the cTrader app would.
    pub external_close_every: Option<Duration>,
    /// Stop sending heartbeats.
    pub silence_heartbeats: bool,
    /// After answering the N-th message of a connection, announce a frame larger than any
    /// client accepts, then close the connection.
    pub oversized_frame_after_messages: Option<u64>,
    /// After answering the N-th message of a connection, send a frame whose body is not a
    /// `ProtoMessage` (the connection stays open).
    pub malformed_frame_after_messages: Option<u64>,
}

impl FaultPlan {
    /// Checks the values, naming the first bad one.
    pub fn validate(&self) -> Result<(), SimError> {
        let zero_count = [
            ("drop after messages", self.drop_after_messages),
            (
                "oversized frame after messages",
                self.oversized_frame_after_messages,
            ),
            (
                "malformed frame after messages",
                self.malformed_frame_after_messages,
            ),
        ]
        .into_iter()
        .find(|(_, n)| *n == Some(0));
        if let Some((what, _)) = zero_count {
            return Err(SimError::Config(format!("{what} must be at least 1")));
        }
        let short = [
            ("drop every", self.drop_every),
            ("external close every", self.external_close_every),
        ]
        .into_iter()
        .find(|(_, d)| d.is_some_and(|d| d < Duration::from_millis(10)));
        if let Some((what, _)) = short {
            return Err(SimError::Config(format!("{what} must be at least 10 ms")));
        }
        if self
            .reply_delay
            .is_some_and(|d| d > Duration::from_secs(600))
        {
            return Err(SimError::Config(
                "reply delay must be at most 600 s".to_owned(),
            ));
        }
        if let Some(code) = &self.reject_next_order {
            validate_error_code(code)?;
        }
        Ok(())
    }
}

/// An error code must look like cTrader's: upper-case letters, digits and underscores.
pub(crate) fn validate_error_code(code: &str) -> Result<(), SimError> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SimError::Config(format!(
            "error code {code:?} must be upper-case letters, digits and underscores (e.g. NOT_ENOUGH_MONEY)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_validation() {
        FaultPlan::default().validate().unwrap();
        let plan = FaultPlan {
            drop_after_messages: Some(0),
            ..FaultPlan::default()
        };
        assert!(
            plan.validate()
                .unwrap_err()
                .to_string()
                .contains("drop after messages")
        );
        let plan = FaultPlan {
            reject_next_order: Some("not enough money".into()),
            ..FaultPlan::default()
        };
        assert!(plan.validate().is_err());
        let plan = FaultPlan {
            reject_next_order: Some("NOT_ENOUGH_MONEY".into()),
            drop_every: Some(Duration::from_secs(30)),
            ..FaultPlan::default()
        };
        plan.validate().unwrap();
        let plan = FaultPlan {
            external_close_every: Some(Duration::ZERO),
            ..FaultPlan::default()
        };
        assert!(
            plan.validate()
                .unwrap_err()
                .to_string()
                .contains("external close")
        );
    }
}

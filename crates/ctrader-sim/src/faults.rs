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
    /// Hold every reply this long before sending it (pushed events are not delayed, nor the
    /// answer to a token refresh, whose loss no client could recover from).
    pub reply_delay: Option<Duration>,
    /// Hold the answer to a token refresh this long, as a slow network delivers a real server's
    /// answer late. The tokens rotate at once: a client that stops without reading the answer
    /// is left with a spent refresh token.
    pub refresh_reply_delay: Option<Duration>,
    /// Hold the answers to new orders this long (the order is worked at once), and no other
    /// reply: an order in flight for that long while the rest of the session goes on.
    pub order_reply_delay: Option<Duration>,
    /// A refreshed token's invalidation reaches each connection only after it has answered one
    /// more request, as a server whose event trails its answer: a connection whose account is
    /// authorised with the old token answers a new authorisation `ALREADY_LOGGED_IN`, then loses
    /// the account's session.
    pub late_token_invalidation: bool,
    /// Work each new order this long after it arrives, as a busy server's queue or a slow network
    /// may: an order sent just before its client died can fill after a new client has already
    /// looked for it. The order is worked even when its connection has gone meanwhile.
    pub order_delay: Option<Duration>,
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
    /// How the trader's market orders (opening and closing) fill: whole, or in parts as a real
    /// server may when liquidity is thin.
    pub partial_fills: PartialFills,
    /// Answer the next N requests after account authorisation with `ProtoOAErrorRes`
    /// `CANT_ROUTE_REQUEST` (the server could not route them; nothing was done).
    pub cant_route_requests: u32,
    /// Answer the next N requests after account authorisation with `ProtoOAErrorRes`
    /// `REQUEST_FREQUENCY_EXCEEDED` carrying `retryAfter` (1 s).
    pub frequency_exceeded_requests: u32,
    /// Accept the next new order (`ORDER_ACCEPTED`, with its order id), then refuse it with this
    /// error code in a `ProtoOAOrderErrorEvent` that carries the order id but no `clientMsgId`.
    pub order_error_without_msg_id: Option<String>,
    /// Send `ProtoOAMarginChangedEvent` after every deal that changes a position's used margin.
    pub margin_changed_events: bool,
}

/// How a trader's market order fills (`--partial-fills`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartialFills {
    /// One deal for the whole volume: `ORDER_ACCEPTED`, `ORDER_FILLED`.
    #[default]
    Off,
    /// Up to this many deals (at least 2) of whole volume steps: `ORDER_ACCEPTED`, then
    /// `ORDER_PARTIAL_FILL` for each deal but the last, then `ORDER_FILLED`. A volume of one step
    /// fills whole.
    Deals(u32),
    /// Half the volume (in whole steps) fills as `ORDER_PARTIAL_FILL`, and the rest is cancelled
    /// (`ORDER_CANCELLED`), as a fill-or-kill remainder would be. A volume of one step fills whole.
    CancelRest,
}

impl PartialFills {
    /// The volumes of the deals a market order of `volume` fills in, with `step` the symbol's
    /// volume step, and whether the remainder is cancelled after them.
    pub(crate) fn parts(self, volume: i64, step: i64) -> (Vec<i64>, bool) {
        let step = step.max(1);
        let steps = volume / step;
        if steps < 2 || volume % step != 0 {
            return (vec![volume], false);
        }
        match self {
            PartialFills::Off => (vec![volume], false),
            PartialFills::CancelRest => (vec![(steps / 2) * step], true),
            PartialFills::Deals(n) => {
                let n = i64::from(n.max(2)).min(steps);
                let (base, extra) = (steps / n, steps % n);
                let parts = (0..n)
                    .map(|i| (base + i64::from(i < extra)) * step)
                    .collect();
                (parts, false)
            }
        }
    }
}

impl std::str::FromStr for PartialFills {
    type Err = SimError;

    /// `off`, `cancel-rest`, or a number of deals (2 to 100).
    fn from_str(s: &str) -> Result<PartialFills, SimError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(PartialFills::Off),
            "cancel-rest" => Ok(PartialFills::CancelRest),
            other => match other.parse::<u32>() {
                Ok(n) if (2..=100).contains(&n) => Ok(PartialFills::Deals(n)),
                _ => Err(SimError::Config(format!(
                    "partial fills {s:?} must be off, cancel-rest or a number of deals from 2 to 100"
                ))),
            },
        }
    }
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
        if self
            .order_reply_delay
            .is_some_and(|d| d > Duration::from_secs(60))
        {
            return Err(SimError::Config(
                "order reply delay must be at most 60 s".to_owned(),
            ));
        }
        if self
            .refresh_reply_delay
            .is_some_and(|d| d > Duration::from_secs(60))
        {
            return Err(SimError::Config(
                "refresh reply delay must be at most 60 s".to_owned(),
            ));
        }
        if self
            .order_delay
            .is_some_and(|d| d > Duration::from_secs(60))
        {
            return Err(SimError::Config(
                "order delay must be at most 60 s".to_owned(),
            ));
        }
        if let Some(code) = &self.reject_next_order {
            validate_error_code(code)?;
        }
        if let Some(code) = &self.order_error_without_msg_id {
            validate_error_code(code)?;
        }
        if let PartialFills::Deals(n) = self.partial_fills
            && !(2..=100).contains(&n)
        {
            return Err(SimError::Config(format!(
                "partial fills of {n} deals: from 2 to 100"
            )));
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
    fn partial_fills_split_whole_steps() {
        assert_eq!(PartialFills::Off.parts(300, 100), (vec![300], false));
        assert_eq!(
            PartialFills::Deals(2).parts(300, 100),
            (vec![200, 100], false)
        );
        assert_eq!(
            PartialFills::Deals(3).parts(500, 100),
            (vec![200, 200, 100], false)
        );
        // Never more deals than steps; one step fills whole.
        assert_eq!(
            PartialFills::Deals(5).parts(200, 100),
            (vec![100, 100], false)
        );
        assert_eq!(PartialFills::Deals(2).parts(100, 100), (vec![100], false));
        assert_eq!(PartialFills::CancelRest.parts(500, 100), (vec![200], true));
        assert_eq!(PartialFills::CancelRest.parts(100, 100), (vec![100], false));
        assert_eq!("3".parse::<PartialFills>().unwrap(), PartialFills::Deals(3));
        assert_eq!(
            "cancel-rest".parse::<PartialFills>().unwrap(),
            PartialFills::CancelRest
        );
        assert!("1".parse::<PartialFills>().is_err());
        assert!("some".parse::<PartialFills>().is_err());
    }

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

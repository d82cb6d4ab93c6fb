//! The fault-injection handle tests and the command line use while the simulator runs.

use std::sync::Arc;
use std::time::Duration;

use super::{ConnectionCommand, Push, Shared, lock};
use crate::SimError;
use crate::faults::{FaultPlan, PartialFills, validate_error_code};

/// Changes the simulator's faults at run time; clones control the same simulator.
#[derive(Debug, Clone)]
pub struct FaultControl {
    shared: Arc<Shared>,
}

impl FaultControl {
    pub(super) fn new(shared: Arc<Shared>) -> FaultControl {
        FaultControl { shared }
    }

    /// The faults in force now.
    pub fn plan(&self) -> FaultPlan {
        lock(&self.shared.faults).clone()
    }

    /// Replaces every fault setting at once.
    pub fn set_plan(&self, plan: FaultPlan) -> Result<(), SimError> {
        plan.validate()?;
        *lock(&self.shared.faults) = plan;
        Ok(())
    }

    /// Cuts each connection when its N-th message arrives (the message is carried out, its
    /// replies are lost); `None` stops it. Counts from each connection's start.
    pub fn drop_after_messages(&self, messages: Option<u64>) -> Result<(), SimError> {
        self.update(|plan| plan.drop_after_messages = messages)
    }

    /// Cuts each connection this long after it was accepted; `None` stops it.
    pub fn drop_every(&self, every: Option<Duration>) -> Result<(), SimError> {
        self.update(|plan| plan.drop_every = every)
    }

    /// Holds every reply this long; `None` answers at once.
    pub fn delay_replies(&self, delay: Option<Duration>) -> Result<(), SimError> {
        self.update(|plan| plan.reply_delay = delay)
    }

    /// Holds the answer to each token refresh this long (the tokens rotate at once); `None`
    /// answers at once.
    pub fn delay_refresh_replies(&self, delay: Option<Duration>) -> Result<(), SimError> {
        self.update(|plan| plan.refresh_reply_delay = delay)
    }

    /// Delivers a refreshed token's invalidation to each connection only after its next answer.
    pub fn late_token_invalidation(&self, on: bool) -> Result<(), SimError> {
        self.update(|plan| plan.late_token_invalidation = on)
    }

    /// Holds the answers to new orders this long (each is worked at once), no other reply;
    /// `None` answers at once.
    pub fn delay_order_replies(&self, delay: Option<Duration>) -> Result<(), SimError> {
        self.update(|plan| plan.order_reply_delay = delay)
    }

    /// Works each new order this long after it arrives (even when its connection has gone by
    /// then); `None` works orders at once.
    pub fn delay_orders(&self, delay: Option<Duration>) -> Result<(), SimError> {
        self.update(|plan| plan.order_delay = delay)
    }

    /// Refuses the next new order with `error_code` (e.g. `NOT_ENOUGH_MONEY`), once.
    pub fn reject_next_order(&self, error_code: &str) -> Result<(), SimError> {
        validate_error_code(error_code)?;
        self.update(|plan| plan.reject_next_order = Some(error_code.to_owned()))
    }

    /// Sends every execution event twice while on.
    pub fn duplicate_execution_events(&self, on: bool) -> Result<(), SimError> {
        self.update(|plan| plan.duplicate_execution_events = on)
    }

    /// How the trader's market orders fill from the next one on: whole ([`PartialFills::Off`]),
    /// in several deals, or half filled with the rest cancelled.
    pub fn partial_fills(&self, mode: PartialFills) -> Result<(), SimError> {
        self.update(|plan| plan.partial_fills = mode)
    }

    /// Answers the next `count` requests (after account authorisation) with `CANT_ROUTE_REQUEST`.
    pub fn cant_route_next(&self, count: u32) -> Result<(), SimError> {
        self.update(|plan| plan.cant_route_requests = count)
    }

    /// Answers the next `count` requests (after account authorisation) with
    /// `REQUEST_FREQUENCY_EXCEEDED` and a `retryAfter` of 1 s.
    pub fn frequency_exceeded_next(&self, count: u32) -> Result<(), SimError> {
        self.update(|plan| plan.frequency_exceeded_requests = count)
    }

    /// Accepts the next new order, then refuses it with `error_code` in an order error event that
    /// names the order id but carries no `clientMsgId`, once.
    pub fn order_error_without_msg_id(&self, error_code: &str) -> Result<(), SimError> {
        validate_error_code(error_code)?;
        self.update(|plan| plan.order_error_without_msg_id = Some(error_code.to_owned()))
    }

    /// Sends (or stops sending) `ProtoOAMarginChangedEvent` after every deal.
    pub fn margin_changed_events(&self, on: bool) -> Result<(), SimError> {
        self.update(|plan| plan.margin_changed_events = on)
    }

    /// Stops (or resumes) the server's heartbeats.
    pub fn silence_heartbeats(&self, silent: bool) -> Result<(), SimError> {
        self.update(|plan| plan.silence_heartbeats = silent)
    }

    /// Closes the oldest open position this often, as a person in the cTrader app would.
    pub fn close_positions_externally_every(
        &self,
        every: Option<Duration>,
    ) -> Result<(), SimError> {
        self.update(|plan| plan.external_close_every = every)
    }

    /// Closes a position now as a person in the cTrader app would: every connection of its
    /// account gets the execution events, unprompted, and a deal records the close.
    pub fn close_position_externally(&self, position_id: i64) -> Result<(), SimError> {
        let reports = {
            let mut exchange = lock(&self.shared.exchange);
            if exchange.broker.open_position(position_id).is_none() {
                return Err(SimError::PositionNotOpen(position_id));
            }
            let now = exchange.now();
            exchange
                .broker
                .close_elsewhere(position_id, now)
                .map_err(|refusal| SimError::Refused {
                    code: refusal.code,
                    description: refusal.description,
                })?
        };
        self.shared.push(Push::Executions {
            reports,
            origin: None,
        });
        Ok(())
    }

    /// Opens a maintenance window of `lasts` from now: every open connection gets
    /// `ProtoOAErrorRes` `SERVER_IS_UNDER_MAINTENANCE` with the window's end and is closed, and
    /// every request is answered so until the window ends. Returns the end in seconds since the
    /// Unix epoch (rounded up to a whole second, as the protocol carries it).
    pub fn announce_maintenance(&self, lasts: Duration) -> Result<i64, SimError> {
        if lasts < Duration::from_secs(1) || lasts > Duration::from_secs(86_400) {
            return Err(SimError::Config(
                "a maintenance window must last between 1 s and one day".to_owned(),
            ));
        }
        Ok(self.shared.start_maintenance(lasts))
    }

    /// Cuts every open connection now, without a word.
    pub fn drop_connections(&self) {
        self.shared.push(Push::Command(ConnectionCommand::Drop));
    }

    /// Ends every open session with `ProtoOAClientDisconnectEvent` carrying `reason`.
    pub fn disconnect_clients(&self, reason: &str) {
        self.shared
            .push(Push::Command(ConnectionCommand::Disconnect(
                reason.to_owned(),
            )));
    }

    /// Sends every open connection a frame announcing a body larger than any client accepts,
    /// then closes it.
    pub fn send_oversized_frame(&self) {
        self.shared
            .push(Push::Command(ConnectionCommand::OversizedFrame));
    }

    /// Sends every open connection a frame whose body is not a `ProtoMessage`.
    pub fn send_malformed_frame(&self) {
        self.shared
            .push(Push::Command(ConnectionCommand::MalformedFrame));
    }

    fn update(&self, change: impl FnOnce(&mut FaultPlan)) -> Result<(), SimError> {
        let mut plan = lock(&self.shared.faults);
        let mut changed = plan.clone();
        change(&mut changed);
        changed.validate()?;
        *plan = changed;
        Ok(())
    }
}

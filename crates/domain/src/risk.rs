//! Risk state that must survive a restart.

use crate::{Money, Timestamp};

/// The kill switch: once engaged, no new position is opened until an operator resets it.
/// It is data the caller persists, so a restart never resets it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KillSwitchState {
    /// Whether trading is stopped.
    pub engaged: bool,
    /// Why it was engaged (readable), when engaged.
    pub reason: Option<String>,
    /// When it was engaged.
    pub engaged_at: Option<Timestamp>,
    /// Highest equity seen, for the drawdown limit.
    pub equity_peak: Option<Money>,
    /// Equity at the start of the current UTC day, for the daily-loss limit.
    pub day_start_equity: Option<Money>,
    /// The deposit currency the equity marks are in (e.g. `USD`); `None` when written by a
    /// version that did not record it, whose marks mixed currencies and must not be trusted.
    pub currency: Option<String>,
    /// The UTC epoch day `day_start_equity` belongs to.
    pub day: Option<i64>,
    /// The broker balance the marks account for: any later change of balance that no closing
    /// deal explains is cash paid in or taken out, which moves the marks instead of counting as a
    /// gain or a loss (also when it happened while the bot was away).
    pub marked_balance: Option<Money>,
    /// Execution time of the latest closing deal `marked_balance` includes.
    pub marked_balance_at: Option<Timestamp>,
}

impl KillSwitchState {
    /// Engages the switch with a reason (keeps the first reason if already engaged).
    pub fn engage(&mut self, reason: impl Into<String>, at: Timestamp) {
        if !self.engaged {
            self.engaged = true;
            self.reason = Some(reason.into());
            self.engaged_at = Some(at);
        }
    }

    /// Releases the switch (an operator's decision).
    pub fn reset(&mut self) {
        self.engaged = false;
        self.reason = None;
        self.engaged_at = None;
    }
}

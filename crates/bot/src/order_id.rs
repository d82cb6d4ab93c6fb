//! Client order ids derived from the decision itself, so the same decision can never become two orders.
//!
//! The id names the symbol, the bar the decision was made on and what it does. If the bot crashes
//! and decides again on the same bar after a restart, it derives the same id, and the store's
//! unique constraint on client order ids refuses a second intent. The order's label is the id
//! itself, so positions opened by this bot are recognised by the label prefix after a restart
//! (`persistence::is_our_label`).

use domain::{ClientOrderId, DomainError, SymbolId, Timestamp};

/// What an order does, as one letter in its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderPurpose {
    /// Open a long position.
    OpenLong,
    /// Open a short position.
    OpenShort,
    /// Close a position.
    Close,
}

impl OrderPurpose {
    const fn letter(self) -> char {
        match self {
            OrderPurpose::OpenLong => 'L',
            OrderPurpose::OpenShort => 'S',
            OrderPurpose::Close => 'X',
        }
    }
}

/// `{prefix}-{symbol}-{bar start in minutes since the epoch}-{L|S|X}`, e.g. `pob-310-29399166-L`.
pub fn decision_order_id(
    prefix: &str,
    symbol: SymbolId,
    bar_start: Timestamp,
    purpose: OrderPurpose,
) -> Result<ClientOrderId, DomainError> {
    let minutes = bar_start.millis().div_euclid(Timestamp::MINUTE_MS);
    ClientOrderId::new(format!("{prefix}-{symbol}-{minutes}-{}", purpose.letter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_decision_always_gets_the_same_id() {
        let at = Timestamp(1_763_949_960_000);
        let a = decision_order_id("pob", SymbolId(310), at, OrderPurpose::OpenLong).unwrap();
        let b = decision_order_id("pob", SymbolId(310), at, OrderPurpose::OpenLong).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "pob-310-29399166-L");
        let close = decision_order_id("pob", SymbolId(310), at, OrderPurpose::Close).unwrap();
        assert_ne!(a, close);
    }

    #[test]
    fn an_overlong_prefix_is_an_error_not_a_panic() {
        let prefix = "p".repeat(45);
        assert!(
            decision_order_id(&prefix, SymbolId(310), Timestamp(0), OrderPurpose::Close).is_err()
        );
    }
}

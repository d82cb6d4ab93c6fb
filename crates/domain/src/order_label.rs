//! The bot's order ids and labels: built here and recognised here, nowhere else.
//!
//! An id is derived from the decision itself, `{prefix}-{symbol}-{bar start in minutes since
//! the epoch}-{L|S|X}` (a dry run's `{prefix}-dry-…`), so the same decision can never become two
//! orders: after a crash and a second decision on the same bar, the same id comes out and the
//! store's unique constraint refuses a second intent. The order's label is the id itself, so a
//! position of ours is recognised by its label after a restart.

use std::fmt;

use crate::{ClientOrderId, DomainError, SymbolId, Timestamp};

/// The operator's label prefix (`LABEL_PREFIX`): 1 to 20 ASCII letters, digits, `-` or `_`.
/// Never empty, so no label of someone else's can pass for ours by accident.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelPrefix(String);

impl LabelPrefix {
    /// Room is left for the rest of the id within cTrader's 50 characters.
    pub const MAX_LEN: usize = 20;

    /// Validates a prefix.
    pub fn new(prefix: impl Into<String>) -> Result<LabelPrefix, DomainError> {
        let prefix = prefix.into();
        let valid = !prefix.is_empty()
            && prefix.len() <= Self::MAX_LEN
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(LabelPrefix(prefix))
        } else {
            Err(DomainError::InvalidLabelPrefix(prefix))
        }
    }

    /// The prefix as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when a position's or order's label marks it as the bot's: `{prefix}-…` (a dry run's
    /// labels included). `pobx-1` is not ours under `pob`.
    pub fn is_ours(&self, label: &str) -> bool {
        label
            .strip_prefix(self.0.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    }

    /// The client order id a label of ours carries (the label is the id), if it is ours.
    pub fn client_order_id_in(&self, label: &str) -> Option<ClientOrderId> {
        if !self.is_ours(label) {
            return None;
        }
        ClientOrderId::new(label).ok()
    }
}

impl fmt::Display for LabelPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an order does, as one letter in its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderPurpose {
    /// Open a long position (`L`).
    OpenLong,
    /// Open a short position (`S`).
    OpenShort,
    /// Close a position (`X`).
    Close,
}

impl OrderPurpose {
    /// The letter that ends the id.
    pub const fn letter(self) -> char {
        match self {
            OrderPurpose::OpenLong => 'L',
            OrderPurpose::OpenShort => 'S',
            OrderPurpose::Close => 'X',
        }
    }
}

/// One trading decision, as its order id names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionId {
    /// The symbol traded.
    pub symbol: SymbolId,
    /// Start of the bar the decision was made on.
    pub bar_start: Timestamp,
    /// What the order does.
    pub purpose: OrderPurpose,
    /// A dry run's decision: ids of its own, so a real run on the same bar is not taken for a
    /// repeat of a decision that was never sent.
    pub dry_run: bool,
}

impl DecisionId {
    /// `{prefix}-{symbol}-{minute}-{L|S|X}` or `{prefix}-dry-{symbol}-{minute}-{L|S|X}`, e.g.
    /// `pob-310-29399166-L`.
    pub fn client_order_id(&self, prefix: &LabelPrefix) -> Result<ClientOrderId, DomainError> {
        let minutes = self.bar_start.millis().div_euclid(Timestamp::MINUTE_MS);
        let dry = if self.dry_run { "dry-" } else { "" };
        ClientOrderId::new(format!(
            "{prefix}-{dry}{}-{minutes}-{}",
            self.symbol,
            self.purpose.letter()
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pob() -> LabelPrefix {
        LabelPrefix::new("pob").unwrap()
    }

    fn decision(purpose: OrderPurpose, dry_run: bool) -> DecisionId {
        DecisionId {
            symbol: SymbolId(310),
            bar_start: Timestamp(1_763_949_960_000),
            purpose,
            dry_run,
        }
    }

    #[test]
    fn the_same_decision_always_gets_the_same_id() {
        let a = decision(OrderPurpose::OpenLong, false)
            .client_order_id(&pob())
            .unwrap();
        let b = decision(OrderPurpose::OpenLong, false)
            .client_order_id(&pob())
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "pob-310-29399166-L");
        let close = decision(OrderPurpose::Close, false)
            .client_order_id(&pob())
            .unwrap();
        assert_eq!(close.as_str(), "pob-310-29399166-X");
        let short = decision(OrderPurpose::OpenShort, false)
            .client_order_id(&pob())
            .unwrap();
        assert_eq!(short.as_str(), "pob-310-29399166-S");
    }

    #[test]
    fn a_dry_run_names_its_decisions_apart_and_still_as_ours() {
        let dry = decision(OrderPurpose::OpenLong, true)
            .client_order_id(&pob())
            .unwrap();
        assert_eq!(dry.as_str(), "pob-dry-310-29399166-L");
        assert!(pob().is_ours(dry.as_str()));
    }

    #[test]
    fn the_bar_minute_rounds_down_before_the_epoch_too() {
        let mut d = decision(OrderPurpose::Close, false);
        d.bar_start = Timestamp(-1);
        assert_eq!(d.client_order_id(&pob()).unwrap().as_str(), "pob-310--1-X");
    }

    #[test]
    fn prefixes_are_checked_once_here() {
        for bad in ["", "p".repeat(21).as_str(), "po b", "pob!", "pöb"] {
            assert_eq!(
                LabelPrefix::new(bad),
                Err(DomainError::InvalidLabelPrefix(bad.to_owned())),
                "{bad:?}"
            );
        }
        let longest = LabelPrefix::new("p".repeat(20)).unwrap();
        let id = decision(OrderPurpose::Close, true)
            .client_order_id(&longest)
            .unwrap();
        assert!(id.as_str().len() <= ClientOrderId::MAX_LEN);
        assert!(LabelPrefix::new("my-bot_2").is_ok());
    }

    #[test]
    fn labels_of_ours_are_recognised_exactly() {
        let p = pob();
        assert!(p.is_ours("pob-41-29399166-L"));
        assert!(!p.is_ours("pobx-1"));
        assert!(!p.is_ours("pob"));
        assert!(!p.is_ours("manual"));
        assert!(!p.is_ours("xpob-1"));
        assert_eq!(
            p.client_order_id_in("pob-7"),
            Some(ClientOrderId::new("pob-7").unwrap())
        );
        assert_eq!(p.client_order_id_in("other-7"), None);
        // Ours by prefix, but not a valid client order id: no id to match on.
        assert_eq!(p.client_order_id_in("pob-a b"), None);
    }
}

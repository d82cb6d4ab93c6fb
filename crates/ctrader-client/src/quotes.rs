//! Merging spot events into full quotes: each event may carry only the side that changed.

use std::collections::HashMap;

use domain::{Price, Quote, SymbolId, Timestamp};

/// The last known bid and ask of every subscribed symbol. Each link has its own book, so a stale
/// side from before a reconnect is never paired with a fresh one.
#[derive(Debug, Default)]
pub(crate) struct QuoteBook {
    sides: HashMap<SymbolId, (Option<Price>, Option<Price>)>,
}

impl QuoteBook {
    /// Applies one spot event; returns the merged quote once both sides are known and the event
    /// changed at least one of them.
    pub(crate) fn apply(
        &mut self,
        symbol: SymbolId,
        bid: Option<Price>,
        ask: Option<Price>,
        time: Timestamp,
    ) -> Option<Quote> {
        if bid.is_none() && ask.is_none() {
            return None;
        }
        let entry = self.sides.entry(symbol).or_default();
        if bid.is_some() {
            entry.0 = bid;
        }
        if ask.is_some() {
            entry.1 = ask;
        }
        match *entry {
            (Some(bid), Some(ask)) => Some(Quote {
                symbol,
                bid,
                ask,
                time,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_side_and_waits_for_both() {
        let mut book = QuoteBook::default();
        let s = SymbolId(310);
        assert_eq!(book.apply(s, Some(Price(10)), None, Timestamp(1)), None);
        let q = book.apply(s, None, Some(Price(12)), Timestamp(2)).unwrap();
        assert_eq!((q.bid, q.ask, q.time), (Price(10), Price(12), Timestamp(2)));
        let q = book.apply(s, None, Some(Price(13)), Timestamp(3)).unwrap();
        assert_eq!((q.bid, q.ask), (Price(10), Price(13)));
        assert_eq!(book.apply(s, None, None, Timestamp(4)), None);
        // Another symbol is independent.
        assert_eq!(
            book.apply(SymbolId(1), Some(Price(1)), None, Timestamp(6)),
            None
        );
    }
}

//! Tick history: every bid and every ask change of a symbol's price path, kept for a bounded
//! time and served as cTrader serves `ProtoOAGetTickDataReq`: newest first, in chunks, the first
//! tick absolute and each later one as its change from the tick before it.

use std::collections::VecDeque;

use domain::Timestamp;

use crate::prices::TwoSided;

/// How long ticks are kept: long enough for any test or tick download the simulator is used for,
/// bounded so a year of warm-up history does not hold tens of millions of ticks in memory.
pub(crate) const TICK_RETENTION_MS: i64 = 8 * Timestamp::DAY_MS;

/// Most ticks one answer carries; more in the range is `hasMore`.
pub(crate) const TICK_CHUNK: usize = 10_000;

/// One price of one side: epoch milliseconds and the price in 1/100000.
pub(crate) type SideTick = (i64, i64);

/// Bid changes and ask changes of one symbol, oldest first.
#[derive(Debug, Clone, Default)]
pub(crate) struct TickSeries {
    bid: VecDeque<SideTick>,
    ask: VecDeque<SideTick>,
}

impl TickSeries {
    /// Records the sides of `quote` that differ from `previous` (both when there is none).
    pub(crate) fn record(&mut self, at: Timestamp, quote: TwoSided, previous: Option<TwoSided>) {
        if previous.is_none_or(|p| p.bid != quote.bid) {
            push(&mut self.bid, (at.0, quote.bid));
        }
        if previous.is_none_or(|p| p.ask != quote.ask) {
            push(&mut self.ask, (at.0, quote.ask));
        }
    }

    /// Ticks of one side (`ask` false: bid) within `[from, to]` (both inclusive, as cTrader's
    /// timestamps are), newest first, at most `limit`; true when the range holds more.
    pub(crate) fn history(
        &self,
        ask: bool,
        from: i64,
        to: i64,
        limit: usize,
    ) -> (Vec<SideTick>, bool) {
        let side = if ask { &self.ask } else { &self.bid };
        let start = side.partition_point(|t| t.0 < from);
        let end = side.partition_point(|t| t.0 <= to);
        let available = end.saturating_sub(start);
        let taken: Vec<SideTick> = side
            .range(start..end.max(start))
            .rev()
            .take(limit)
            .copied()
            .collect();
        (taken, available > limit)
    }
}

fn push(side: &mut VecDeque<SideTick>, tick: SideTick) {
    // Time only moves forward; an older instant would be a caller bug and is ignored.
    if side.back().is_some_and(|last| last.0 > tick.0) {
        return;
    }
    side.push_back(tick);
    while side
        .front()
        .is_some_and(|first| tick.0 - first.0 > TICK_RETENTION_MS)
    {
        side.pop_front();
    }
}

/// Encodes newest-first ticks as the wire carries them: the first absolute, each later one as
/// its change from the tick before it (times therefore go back by zero or more).
pub(crate) fn encode(newest_first: &[SideTick]) -> Vec<SideTick> {
    let mut previous: Option<SideTick> = None;
    newest_first
        .iter()
        .map(|&(at, price)| {
            let wire = match previous {
                None => (at, price),
                Some((t, p)) => (at - t, price - p),
            };
            previous = Some((at, price));
            wire
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(bid: i64, ask: i64) -> TwoSided {
        TwoSided { bid, ask }
    }

    #[test]
    fn records_each_side_when_it_changes() {
        let mut s = TickSeries::default();
        s.record(Timestamp(1_000), quote(100, 102), None);
        s.record(Timestamp(2_000), quote(101, 102), Some(quote(100, 102)));
        s.record(Timestamp(3_000), quote(101, 104), Some(quote(101, 102)));
        assert_eq!(
            s.history(false, 0, 10_000, 10),
            (vec![(2_000, 101), (1_000, 100)], false)
        );
        assert_eq!(
            s.history(true, 0, 10_000, 10),
            (vec![(3_000, 104), (1_000, 102)], false)
        );
        // Inclusive bounds, newest first, chunked.
        assert_eq!(
            s.history(false, 2_000, 2_000, 10),
            (vec![(2_000, 101)], false)
        );
        assert_eq!(s.history(false, 0, 10_000, 1), (vec![(2_000, 101)], true));
        assert_eq!(s.history(false, 5_000, 1_000, 10), (vec![], false));
    }

    #[test]
    fn encodes_the_first_absolute_then_changes() {
        assert_eq!(
            encode(&[(3_000, 104), (2_500, 101), (1_000, 101)]),
            vec![(3_000, 104), (-500, -3), (-1_500, 0)]
        );
        assert!(encode(&[]).is_empty());
    }

    #[test]
    fn old_ticks_are_dropped_after_the_retention() {
        let mut s = TickSeries::default();
        s.record(Timestamp(0), quote(100, 101), None);
        s.record(
            Timestamp(TICK_RETENTION_MS + 1),
            quote(102, 103),
            Some(quote(100, 101)),
        );
        assert_eq!(s.history(false, 0, i64::MAX, 10).0.len(), 1);
    }
}

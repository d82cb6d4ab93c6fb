//! Mid-price OHLC bars built from quotes, aligned to UTC period boundaries.

use domain::{Bar, Quote, SymbolId, Timeframe, Timestamp};

use crate::AggregationError;

/// Builds bars of one symbol and timeframe from its quotes.
///
/// A bar covers `[start, start + timeframe)` with `start` a UTC multiple of the timeframe. It
/// closes when the first quote of a later period arrives, or when the caller's timer tick passes
/// its end; a period without quotes produces no bar. `volume` counts the quotes in the bar.
#[derive(Debug, Clone)]
pub struct BarAggregator {
    symbol: SymbolId,
    timeframe: Timeframe,
    current: Option<Bar>,
    /// End of the last bar handed out: quotes before it would rewrite history.
    closed_until: Option<Timestamp>,
}

impl BarAggregator {
    /// An aggregator with no bar open yet.
    pub const fn new(symbol: SymbolId, timeframe: Timeframe) -> BarAggregator {
        BarAggregator {
            symbol,
            timeframe,
            current: None,
            closed_until: None,
        }
    }

    /// The timeframe of the bars built.
    pub const fn timeframe(&self) -> Timeframe {
        self.timeframe
    }

    /// The bar being built, if a quote arrived in the current period.
    pub const fn current(&self) -> Option<&Bar> {
        self.current.as_ref()
    }

    /// Adds a quote; returns the previous bar when this quote starts a new period.
    ///
    /// A quote older than the open bar's start, or than a bar already handed out, is refused:
    /// it cannot change history.
    pub fn on_quote(&mut self, quote: &Quote) -> Result<Option<Bar>, AggregationError> {
        if quote.symbol != self.symbol {
            return Err(AggregationError::WrongSymbol {
                expected: self.symbol,
                got: quote.symbol,
            });
        }
        // History starts at the open bar (or the end of the last closed one): a quote before it
        // would belong to a period that is either finished or was skipped.
        let history_end = self.current.map(|bar| bar.start).or(self.closed_until);
        if let Some(closed_until) = history_end
            && quote.time < closed_until
        {
            return Err(AggregationError::LateQuote {
                quote_time: quote.time,
                closed_until,
            });
        }
        let start = self.timeframe.bar_start(quote.time);
        let mid = quote.mid();
        let mut closed = None;
        match &mut self.current {
            Some(bar) if start == bar.start => {
                bar.high = bar.high.max(mid);
                bar.low = bar.low.min(mid);
                bar.close = mid;
                bar.volume = bar.volume.saturating_add(1);
            }
            slot => {
                closed = slot.take();
                *slot = Some(Bar {
                    symbol: self.symbol,
                    timeframe: self.timeframe,
                    start,
                    open: mid,
                    high: mid,
                    low: mid,
                    close: mid,
                    volume: 1,
                });
            }
        }
        if let Some(bar) = &closed {
            self.closed_until = Some(bar.start.plus_millis(self.timeframe.millis()));
        }
        Ok(closed)
    }

    /// Closes the open bar if `now` is at or past its end (the caller's timer tick), so a bar is
    /// not held back when the market goes quiet.
    pub fn on_tick(&mut self, now: Timestamp) -> Option<Bar> {
        let end = self.current?.start.plus_millis(self.timeframe.millis());
        if now < end {
            return None;
        }
        self.closed_until = Some(end);
        self.current.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Price;

    const SYM: SymbolId = SymbolId(7);
    /// 2025-11-24 00:00:00 UTC.
    const DAY: i64 = 1_763_942_400_000;

    fn quote(ms_after_day: i64, bid: i64, ask: i64) -> Quote {
        Quote {
            symbol: SYM,
            bid: Price(bid),
            ask: Price(ask),
            time: Timestamp(DAY + ms_after_day),
        }
    }

    #[test]
    fn builds_mid_ohlc_and_closes_on_the_next_period() {
        let mut agg = BarAggregator::new(SYM, Timeframe::M1);
        assert_eq!(agg.on_quote(&quote(1_000, 100, 110)).unwrap(), None); // mid 105
        assert_eq!(agg.on_quote(&quote(20_000, 120, 130)).unwrap(), None); // 125
        assert_eq!(agg.on_quote(&quote(40_000, 90, 91)).unwrap(), None); // 90 (rounded down)
        assert_eq!(agg.on_quote(&quote(59_999, 100, 102)).unwrap(), None); // 101, last ms
        let bar = agg.on_quote(&quote(60_000, 200, 200)).unwrap().unwrap();
        assert_eq!(bar.start, Timestamp(DAY));
        assert_eq!(
            (bar.open, bar.high, bar.low, bar.close, bar.volume),
            (Price(105), Price(125), Price(90), Price(101), 4)
        );
        assert_eq!(bar.timeframe, Timeframe::M1);
        let open = agg.current().unwrap();
        assert_eq!(
            (open.start, open.open),
            (Timestamp(DAY + 60_000), Price(200))
        );
    }

    #[test]
    fn aligns_every_timeframe_to_utc_boundaries() {
        // 2025-11-24 05:37:12.5: every bar start is the boundary at or before it.
        let at = 5 * 3_600_000 + 37 * 60_000 + 12_500;
        let expected = [
            (Timeframe::M1, 5 * 3_600_000 + 37 * 60_000),
            (Timeframe::M5, 5 * 3_600_000 + 35 * 60_000),
            (Timeframe::M15, 5 * 3_600_000 + 30 * 60_000),
            (Timeframe::M30, 5 * 3_600_000 + 30 * 60_000),
            (Timeframe::H1, 5 * 3_600_000),
            (Timeframe::H4, 4 * 3_600_000),
            (Timeframe::D1, 0),
        ];
        for (tf, start) in expected {
            let mut agg = BarAggregator::new(SYM, tf);
            agg.on_quote(&quote(at, 100, 100)).unwrap();
            assert_eq!(agg.current().unwrap().start, Timestamp(DAY + start), "{tf}");
            // The quote exactly at the next boundary closes it.
            let next = start + tf.millis();
            let bar = agg.on_quote(&quote(next, 100, 100)).unwrap().unwrap();
            assert_eq!(bar.start, Timestamp(DAY + start), "{tf}");
        }
    }

    #[test]
    fn invents_no_bars_for_a_gap() {
        let mut agg = BarAggregator::new(SYM, Timeframe::M5);
        agg.on_quote(&quote(0, 100, 100)).unwrap();
        // Next quote 17 minutes later: one bar (00:00) closes, the next opens at 00:15.
        let bar = agg
            .on_quote(&quote(17 * 60_000, 300, 300))
            .unwrap()
            .unwrap();
        assert_eq!(bar.start, Timestamp(DAY));
        assert_eq!(agg.current().unwrap().start, Timestamp(DAY + 15 * 60_000));
        assert_eq!(agg.current().unwrap().open, Price(300));
    }

    #[test]
    fn timer_tick_closes_a_quiet_bar_at_its_end_only() {
        let mut agg = BarAggregator::new(SYM, Timeframe::M1);
        assert_eq!(agg.on_tick(Timestamp(DAY)), None); // nothing open
        agg.on_quote(&quote(10_000, 100, 100)).unwrap();
        assert_eq!(agg.on_tick(Timestamp(DAY + 59_999)), None);
        let bar = agg.on_tick(Timestamp(DAY + 60_000)).unwrap();
        assert_eq!(bar.start, Timestamp(DAY));
        assert!(agg.current().is_none());
        assert_eq!(agg.on_tick(Timestamp(DAY + 120_000)), None);
        // A late quote for the closed minute is refused; one in the next minute opens a bar.
        assert_eq!(
            agg.on_quote(&quote(59_000, 100, 100)),
            Err(AggregationError::LateQuote {
                quote_time: Timestamp(DAY + 59_000),
                closed_until: Timestamp(DAY + 60_000)
            })
        );
        assert_eq!(agg.on_quote(&quote(61_000, 100, 100)).unwrap(), None);
        // A quote older than the open bar's start is refused too, and changes nothing.
        agg.on_quote(&quote(5 * 60_000, 100, 100)).unwrap();
        assert!(matches!(
            agg.on_quote(&quote(4 * 60_000 + 1, 1, 1)),
            Err(AggregationError::LateQuote { .. })
        ));
        assert_eq!(agg.current().unwrap().low, Price(100));
    }

    #[test]
    fn refuses_another_symbols_quote() {
        let mut agg = BarAggregator::new(SYM, Timeframe::M1);
        let mut q = quote(0, 1, 1);
        q.symbol = SymbolId(8);
        assert!(matches!(
            agg.on_quote(&q),
            Err(AggregationError::WrongSymbol { .. })
        ));
        assert!(agg.current().is_none());
    }
}

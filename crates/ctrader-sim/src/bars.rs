//! Trendbars: one-minute bid bars kept for each symbol, aggregated on request into the periods
//! cTrader serves, with the request span limits cTrader enforces.

use std::collections::VecDeque;

use domain::Timestamp;

/// How many one-minute bars a symbol keeps: a little over the 366 days a D1 request may span.
const MAX_MINUTE_BARS: usize = 370 * 1_440;

/// A trendbar period the simulator serves, by its `ProtoOATrendbarPeriod` number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct BarPeriod {
    /// The protocol's enum value.
    pub(crate) code: i32,
    /// Length in minutes.
    pub(crate) minutes: i64,
}

impl BarPeriod {
    /// The period for a protocol value; `None` for W1, MN1 and unknown values (not simulated).
    pub(crate) fn from_code(code: i32) -> Option<BarPeriod> {
        let minutes = match code {
            1 => 1,
            2 => 2,
            3 => 3,
            4 => 4,
            5 => 5,
            6 => 10,
            7 => 15,
            8 => 30,
            9 => 60,
            10 => 240,
            11 => 720,
            12 => 1_440,
            _ => return None,
        };
        Some(BarPeriod { code, minutes })
    }

    /// The longest `toTimestamp - fromTimestamp` one history request may span, in milliseconds:
    /// 3.5 days up to M5, 35 weeks up to H1, 366 days above.
    pub(crate) fn max_span_ms(self) -> i64 {
        match self.minutes {
            ..=5 => 302_400_000,
            6..=60 => 35 * 7 * Timestamp::DAY_MS,
            _ => 366 * Timestamp::DAY_MS,
        }
    }

    /// Start (epoch minutes) of the bar of this period containing `minute`.
    fn align(self, minute: i64) -> i64 {
        minute - minute.rem_euclid(self.minutes)
    }
}

/// One bar of bid prices (1/100000) starting at `minute` (minutes since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trendbar {
    /// Opening minute since the epoch (UTC).
    pub(crate) minute: i64,
    pub(crate) open: i64,
    pub(crate) high: i64,
    pub(crate) low: i64,
    pub(crate) close: i64,
    /// Number of price changes inside the bar.
    pub(crate) ticks: i64,
}

impl Trendbar {
    /// Folds a later bar into this one.
    fn absorb(&mut self, later: &Trendbar) {
        self.high = self.high.max(later.high);
        self.low = self.low.min(later.low);
        self.close = later.close;
        self.ticks += later.ticks;
    }
}

/// A symbol's one-minute bars, oldest first.
#[derive(Debug, Clone, Default)]
pub(crate) struct BarSeries {
    minutes: VecDeque<Trendbar>,
}

impl BarSeries {
    /// Records a bid price change at `at`.
    pub(crate) fn record(&mut self, at: Timestamp, bid: i64) {
        let minute = at.0.div_euclid(Timestamp::MINUTE_MS);
        match self.minutes.back_mut() {
            Some(bar) if bar.minute == minute => {
                bar.absorb(&Trendbar {
                    minute,
                    open: bid,
                    high: bid,
                    low: bid,
                    close: bid,
                    ticks: 1,
                });
            }
            // Time only moves forward; an older instant would be a caller bug and is ignored.
            Some(bar) if bar.minute > minute => {}
            _ => {
                self.minutes.push_back(Trendbar {
                    minute,
                    open: bid,
                    high: bid,
                    low: bid,
                    close: bid,
                    ticks: 1,
                });
                if self.minutes.len() > MAX_MINUTE_BARS {
                    self.minutes.pop_front();
                }
            }
        }
    }

    /// Bars of `period` whose opening instant is within `[from, to]`, oldest first.
    pub(crate) fn history(
        &self,
        period: BarPeriod,
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<Trendbar> {
        let from_minute = period.align(from.0.div_euclid(Timestamp::MINUTE_MS));
        let from_minute = if from_minute * Timestamp::MINUTE_MS < from.0 {
            from_minute + period.minutes
        } else {
            from_minute
        };
        let to_minute = to.0.div_euclid(Timestamp::MINUTE_MS);
        let start = self.minutes.partition_point(|b| b.minute < from_minute);
        let mut out: Vec<Trendbar> = Vec::new();
        for bar in self.minutes.range(start..) {
            let bucket = period.align(bar.minute);
            if bucket > to_minute {
                break;
            }
            match out.last_mut() {
                Some(last) if last.minute == bucket => last.absorb(bar),
                _ => out.push(Trendbar {
                    minute: bucket,
                    ..*bar
                }),
            }
        }
        out
    }

    /// The bar of `period` in progress (the one holding the latest price), if any.
    pub(crate) fn current(&self, period: BarPeriod) -> Option<Trendbar> {
        let last = self.minutes.back()?;
        let bucket = period.align(last.minute);
        let start = self.minutes.partition_point(|b| b.minute < bucket);
        let mut bars = self.minutes.range(start..);
        let mut bar = Trendbar {
            minute: bucket,
            ..*bars.next()?
        };
        for later in bars {
            bar.absorb(later);
        }
        Some(bar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_763_942_400_000; // Monday 00:00 UTC

    fn series() -> BarSeries {
        let mut s = BarSeries::default();
        // Minute 0: 100, 105, 98; minute 1: 101; minute 7: 110, 108.
        for (offset_s, bid) in [
            (0, 100),
            (20, 105),
            (40, 98),
            (60, 101),
            (420, 110),
            (450, 108),
        ] {
            s.record(Timestamp(T0 + offset_s * 1000), bid);
        }
        s
    }

    #[test]
    fn minute_bars_hold_ohlc_and_ticks() {
        let m1 = BarPeriod::from_code(1).unwrap();
        let bars = series().history(m1, Timestamp(T0), Timestamp(T0 + 3_600_000));
        assert_eq!(bars.len(), 3);
        assert_eq!(
            bars[0],
            Trendbar {
                minute: T0 / 60_000,
                open: 100,
                high: 105,
                low: 98,
                close: 98,
                ticks: 3
            }
        );
        assert_eq!(bars[2].minute, T0 / 60_000 + 7);
    }

    #[test]
    fn aggregates_into_longer_periods() {
        let m5 = BarPeriod::from_code(5).unwrap();
        let bars = series().history(m5, Timestamp(T0), Timestamp(T0 + 3_600_000));
        assert_eq!(bars.len(), 2);
        assert_eq!(
            (bars[0].open, bars[0].high, bars[0].low, bars[0].close),
            (100, 105, 98, 101)
        );
        assert_eq!(bars[0].ticks, 4);
        assert_eq!(bars[1].minute, T0 / 60_000 + 5);
        assert_eq!((bars[1].open, bars[1].close), (110, 108));
        let current = series().current(m5).unwrap();
        assert_eq!(current, bars[1]);
    }

    #[test]
    fn range_is_by_bar_start() {
        let m5 = BarPeriod::from_code(5).unwrap();
        // From 00:01: the 00:00 bar started before it and is left out.
        let bars = series().history(m5, Timestamp(T0 + 60_000), Timestamp(T0 + 3_600_000));
        assert_eq!(bars.len(), 1);
        // To 00:04:59: only the first bar.
        let bars = series().history(m5, Timestamp(T0), Timestamp(T0 + 299_000));
        assert_eq!(bars.len(), 1);
    }

    #[test]
    fn periods_and_span_limits() {
        assert_eq!(BarPeriod::from_code(7).unwrap().minutes, 15);
        assert_eq!(BarPeriod::from_code(12).unwrap().minutes, 1_440);
        assert!(BarPeriod::from_code(13).is_none());
        assert_eq!(BarPeriod::from_code(1).unwrap().max_span_ms(), 302_400_000);
        assert_eq!(
            BarPeriod::from_code(9).unwrap().max_span_ms(),
            21_168_000_000
        );
        assert_eq!(
            BarPeriod::from_code(10).unwrap().max_span_ms(),
            31_622_400_000
        );
    }
}

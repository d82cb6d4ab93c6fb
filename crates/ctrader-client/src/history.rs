//! Trendbar history: paging within the broker's span limits, and decoding bars.

use domain::{Bar, Price, SymbolId, Timeframe, Timestamp};

use crate::BrokerError;

/// The longest span one trendbar request may cover for a period (cTrader's documented limits:
/// M1–M5 3.5 days, M10–H1 35 weeks, H4–D1 366 days).
pub const fn max_span_ms(timeframe: Timeframe) -> i64 {
    match timeframe {
        Timeframe::M1 | Timeframe::M5 => 302_400_000,
        Timeframe::M15 | Timeframe::M30 | Timeframe::H1 => 35 * 7 * Timestamp::DAY_MS,
        Timeframe::H4 | Timeframe::D1 => 366 * Timestamp::DAY_MS,
    }
}

/// cTrader's `ProtoOATrendbarPeriod` number for a timeframe.
pub(crate) const fn period_code(timeframe: Timeframe) -> i32 {
    match timeframe {
        Timeframe::M1 => 1,
        Timeframe::M5 => 5,
        Timeframe::M15 => 7,
        Timeframe::M30 => 8,
        Timeframe::H1 => 9,
        Timeframe::H4 => 10,
        Timeframe::D1 => 12,
    }
}

/// Splits `[from, to)` into consecutive windows no longer than the period's limit.
pub fn pages(timeframe: Timeframe, from: Timestamp, to: Timestamp) -> Vec<(Timestamp, Timestamp)> {
    let span = max_span_ms(timeframe);
    let mut out = Vec::new();
    let mut cursor = from;
    while cursor < to {
        let end = Timestamp(cursor.0.saturating_add(span).min(to.0));
        out.push((cursor, end));
        cursor = end;
    }
    out
}

/// One trendbar as the wire carries it: `low` plus unsigned deltas, time in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawTrendbar {
    /// Lowest price, 1/100000.
    pub(crate) low: i64,
    /// Open minus low.
    pub(crate) delta_open: u64,
    /// High minus low.
    pub(crate) delta_high: u64,
    /// Close minus low.
    pub(crate) delta_close: u64,
    /// Bar start, minutes since the epoch (UTC).
    pub(crate) minutes: u32,
    /// Traded volume.
    pub(crate) volume: i64,
}

/// Decodes a trendbar into a domain bar; deltas that overflow a price are a bad value.
pub(crate) fn decode_bar(
    symbol: SymbolId,
    timeframe: Timeframe,
    raw: RawTrendbar,
) -> Result<Bar, BrokerError> {
    let add = |delta: u64| -> Result<Price, BrokerError> {
        i64::try_from(delta)
            .ok()
            .and_then(|d| raw.low.checked_add(d))
            .map(Price)
            .ok_or_else(|| {
                BrokerError::BadValue(format!("trendbar delta {delta} overflows a price"))
            })
    };
    Ok(Bar {
        symbol,
        timeframe,
        start: Timestamp(i64::from(raw.minutes) * Timestamp::MINUTE_MS),
        open: add(raw.delta_open)?,
        high: add(raw.delta_high)?,
        low: Price(raw.low),
        close: add(raw.delta_close)?,
        volume: raw.volume,
    })
}

/// Sorts bars by start and drops duplicates (page edges may overlap) and bars outside `[from, to)`.
pub(crate) fn tidy(mut bars: Vec<Bar>, from: Timestamp, to: Timestamp) -> Vec<Bar> {
    bars.retain(|b| from <= b.start && b.start < to);
    bars.sort_by_key(|b| b.start);
    bars.dedup_by_key(|b| b.start);
    bars
}

/// Which side of the quote a tick history is for (`ProtoOAQuoteType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuoteSide {
    /// Bid prices (`BID = 1`).
    Bid,
    /// Ask prices (`ASK = 2`).
    Ask,
}

impl QuoteSide {
    /// The protocol's number for the side.
    pub(crate) const fn code(self) -> i32 {
        match self {
            QuoteSide::Bid => 1,
            QuoteSide::Ask => 2,
        }
    }
}

/// One historical price of one side: when, and the price in 1/100000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoricalTick {
    /// When the price took effect (UTC).
    pub at: Timestamp,
    /// The price.
    pub price: Price,
}

/// How far back one tick request looks: the client asks for ticks a day at a time and pages
/// backwards inside the day with `hasMore`.
pub(crate) const TICK_WINDOW_MS: i64 = Timestamp::DAY_MS;

/// Decodes a `ProtoOAGetTickDataRes` page, given as `(timestamp, tick)` pairs in wire order: the
/// first pair is absolute, every later one is the change from the pair before it (so times go
/// back: the page is newest first). Returns the ticks newest first. A time that moves forward, a
/// price that is not positive or a sum that overflows is a bad value, never a panic.
pub(crate) fn decode_ticks(pairs: &[(i64, i64)]) -> Result<Vec<HistoricalTick>, BrokerError> {
    let mut out: Vec<HistoricalTick> = Vec::with_capacity(pairs.len());
    let mut previous: Option<(i64, i64)> = None;
    for (index, &(time, price)) in pairs.iter().enumerate() {
        let (at, value) = match previous {
            None => (time, price),
            Some((t, p)) => match (t.checked_add(time), p.checked_add(price)) {
                (Some(at), Some(value)) => (at, value),
                _ => {
                    return Err(BrokerError::BadValue(format!(
                        "tick {index}: the change ({time} ms, {price}) overflows"
                    )));
                }
            },
        };
        if time > 0 && previous.is_some() {
            return Err(BrokerError::BadValue(format!(
                "tick {index}: time moves forward by {time} ms in a newest-first tick list"
            )));
        }
        if at < 0 {
            return Err(BrokerError::BadValue(format!(
                "tick {index}: time {at} is before 1970"
            )));
        }
        if value <= 0 {
            return Err(BrokerError::BadValue(format!(
                "tick {index}: price {value} is not positive"
            )));
        }
        previous = Some((at, value));
        out.push(HistoricalTick {
            at: Timestamp(at),
            price: Price(value),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_respect_the_span_limits() {
        let from = Timestamp(0);
        let to = Timestamp(10 * Timestamp::DAY_MS);
        let m1 = pages(Timeframe::M1, from, to);
        assert_eq!(m1.len(), 3); // 3.5 + 3.5 + 3 days
        assert!(m1.iter().all(|(a, b)| b.0 - a.0 <= 302_400_000));
        assert_eq!(m1.first().map(|p| p.0), Some(from));
        assert_eq!(m1.last().map(|p| p.1), Some(to));
        assert!(m1.windows(2).all(|w| w[0].1 == w[1].0));
        assert_eq!(pages(Timeframe::H1, from, to).len(), 1);
        let two_years = Timestamp(731 * Timestamp::DAY_MS);
        assert_eq!(pages(Timeframe::D1, from, two_years).len(), 2);
        assert!(pages(Timeframe::D1, to, from).is_empty());
    }

    #[test]
    fn decodes_low_plus_deltas() {
        let bar = decode_bar(
            SymbolId(310),
            Timeframe::M5,
            RawTrendbar {
                low: 412_000_000,
                delta_open: 100_000,
                delta_high: 500_000,
                delta_close: 300_000,
                minutes: 29_399_165,
                volume: 42,
            },
        )
        .unwrap();
        assert_eq!(bar.open, Price(412_100_000));
        assert_eq!(bar.high, Price(412_500_000));
        assert_eq!(bar.close, Price(412_300_000));
        assert_eq!(bar.start, Timestamp(29_399_165 * 60_000));
        let overflow = RawTrendbar {
            delta_high: u64::MAX,
            ..RawTrendbar {
                low: 1,
                delta_open: 0,
                delta_high: 0,
                delta_close: 0,
                minutes: 0,
                volume: 0,
            }
        };
        assert!(decode_bar(SymbolId(1), Timeframe::M1, overflow).is_err());
    }

    #[test]
    fn ticks_decode_from_the_first_absolute_then_changes() {
        let ticks =
            decode_ticks(&[(1_000_000, 412_000), (-1_000, 5), (0, -10), (-250, 0)]).unwrap();
        let got: Vec<(i64, i64)> = ticks.iter().map(|t| (t.at.0, t.price.0)).collect();
        assert_eq!(
            got,
            vec![
                (1_000_000, 412_000),
                (999_000, 412_005),
                (999_000, 411_995),
                (998_750, 411_995)
            ]
        );
        assert!(decode_ticks(&[]).unwrap().is_empty());
    }

    #[test]
    fn malformed_ticks_are_errors_not_panics() {
        // Time moving forward: not newest first.
        let e = decode_ticks(&[(1_000, 5), (10, 0)]).unwrap_err();
        assert!(e.to_string().contains("forward"), "{e}");
        // A price that falls to zero or below.
        let e = decode_ticks(&[(1_000, 5), (0, -5)]).unwrap_err();
        assert!(e.to_string().contains("not positive"), "{e}");
        assert!(decode_ticks(&[(1_000, -1)]).is_err());
        // Overflowing sums.
        assert!(decode_ticks(&[(1_000, i64::MAX), (0, 1)]).is_err());
        assert!(decode_ticks(&[(i64::MIN + 1, 5), (-10, 0)]).is_err());
        // Before the epoch.
        assert!(decode_ticks(&[(5, 5), (-10, 0)]).is_err());
    }
}

//! Trendbar history: paging within the broker's span limits, and decoding bars.

use domain::{Bar, Price, SymbolId, Timeframe, Timestamp};

use crate::BrokerError;

/// The longest span one trendbar request may cover for a period (cTrader's documented limits:
/// M1–M5 3.5 days, M10–H1 35 weeks, H4–D1 366 days).
pub(crate) const fn max_span_ms(timeframe: Timeframe) -> i64 {
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
pub(crate) fn pages(
    timeframe: Timeframe,
    from: Timestamp,
    to: Timestamp,
) -> Vec<(Timestamp, Timestamp)> {
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
}

//! Reading backtest inputs: OHLC bars and sentiment readings from CSV text.
//!
//! Parsing works on bytes with hand-written number and timestamp parsers, because the CSV pass
//! dominates a backtest's run time.

use std::io;

use domain::{Bar, ConversionRate, Price, Quote, SentimentReading, SymbolId, Timeframe, Timestamp};
use strategy::BarAggregator;

use crate::DataError;

const PRICE_DATA: &str = "price data";
const SENTIMENT_DATA: &str = "sentiment data";
const RATE_DATA: &str = "conversion rates";

/// Header names accepted for the timestamp column (compared case-insensitively).
const TIMESTAMP_NAMES: [&str; 5] = ["timestamp", "time", "date", "datetime", "date_time"];

/// How to read an OHLC file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OhlcOptions {
    /// The symbol the bars are stamped with.
    pub symbol: SymbolId,
    /// The bar period; `None` infers it from the smallest gap between consecutive timestamps.
    pub timeframe: Option<Timeframe>,
}

impl Default for OhlcOptions {
    /// Symbol 0, timeframe inferred.
    fn default() -> OhlcOptions {
        OhlcOptions {
            symbol: SymbolId(0),
            timeframe: None,
        }
    }
}

fn io_error(what: &'static str, e: csv::Error) -> DataError {
    let line = e.position().map(csv::Position::line);
    match (e.into_kind(), line) {
        (csv::ErrorKind::Io(source), _) => DataError::Io { what, source },
        (csv::ErrorKind::Utf8 { err, .. }, Some(line)) => DataError::Row {
            what,
            line,
            reason: format!("not UTF-8: {err}"),
        },
        (
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            },
            Some(line),
        ) => DataError::Row {
            what,
            line,
            reason: format!("{len} fields where the header has {expected_len}"),
        },
        (kind, Some(line)) => DataError::Row {
            what,
            line,
            reason: format!("{kind:?}"),
        },
        (kind, None) => DataError::Header {
            what,
            reason: format!("{kind:?}"),
        },
    }
}

/// Finds the columns named in `wanted` (each a list of accepted names) in the header.
fn find_columns<const N: usize>(
    what: &'static str,
    header: &csv::ByteRecord,
    wanted: [&[&str]; N],
    required: [bool; N],
) -> Result<[Option<usize>; N], DataError> {
    let mut found = [None; N];
    for (index, raw) in header.iter().enumerate() {
        let name = String::from_utf8_lossy(raw);
        let name = name
            .trim()
            .trim_start_matches('\u{feff}')
            .to_ascii_lowercase();
        for (slot, names) in found.iter_mut().zip(wanted) {
            if names.contains(&name.as_str()) {
                if slot.is_some() {
                    return Err(DataError::Header {
                        what,
                        reason: format!("more than one {} column", names[0]),
                    });
                }
                *slot = Some(index);
            }
        }
    }
    for ((slot, names), required) in found.iter().zip(wanted).zip(required) {
        if slot.is_none() && required {
            let columns: Vec<String> = header
                .iter()
                .map(|h| String::from_utf8_lossy(h).trim().to_owned())
                .collect();
            return Err(DataError::Header {
                what,
                reason: format!(
                    "no {} column (accepted names: {}; found: {})",
                    names[0],
                    names.join(", "),
                    columns.join(", ")
                ),
            });
        }
    }
    Ok(found)
}

fn field(record: &csv::ByteRecord, index: usize) -> &[u8] {
    record.get(index).unwrap_or(b"").trim_ascii()
}

fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads OHLC bars from CSV with a header: a timestamp column (`timestamp`, `time`, `date`,
/// `datetime` or `date_time`), `open`, `high`, `low`, `close` and optionally `volume`, in any
/// order and case. Timestamps are epoch milliseconds or ISO 8601 (`2025-11-24T02:30:00Z`, with optional fraction and
/// offset; no offset means UTC) or `YYYY-MM-DD HH:MM:SS`, or a bare date. Prices are decimals;
/// digits beyond the fifth decimal are rounded half away from zero. Rows must be strictly
/// increasing in time. Any bad row fails with its line number and the reason.
pub fn read_ohlc_csv<R: io::Read>(reader: R, options: &OhlcOptions) -> Result<Vec<Bar>, DataError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(reader);
    let header = rdr
        .byte_headers()
        .map_err(|e| io_error(PRICE_DATA, e))?
        .clone();
    let [ts_col, open_col, high_col, low_col, close_col, volume_col] = find_columns(
        PRICE_DATA,
        &header,
        [
            &TIMESTAMP_NAMES,
            &["open"],
            &["high"],
            &["low"],
            &["close"],
            &["volume", "vol"],
        ],
        [true, true, true, true, true, false],
    )?;
    let (Some(ts_col), Some(open_col), Some(high_col), Some(low_col), Some(close_col)) =
        (ts_col, open_col, high_col, low_col, close_col)
    else {
        // find_columns returned every required column.
        return Err(DataError::Header {
            what: PRICE_DATA,
            reason: "missing a required column".into(),
        });
    };
    let frame = options.timeframe.unwrap_or(Timeframe::M1);
    let mut bars: Vec<Bar> = Vec::new();
    let mut lines: Vec<u64> = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(io_error(PRICE_DATA, e)),
        }
        let line = record.position().map_or(0, csv::Position::line);
        let row_error = |reason: String| DataError::Row {
            what: PRICE_DATA,
            line,
            reason,
        };
        let ts_raw = field(&record, ts_col);
        let start = parse_timestamp(ts_raw)
            .map_err(|why| row_error(format!("timestamp {:?}: {why}", shown(ts_raw))))?;
        let price = |col: usize, name: &str| {
            let raw = field(&record, col);
            match parse_price(raw) {
                Ok(p) if p.raw() > 0 => Ok(p),
                Ok(_) => Err(row_error(format!(
                    "{name} {:?} is not positive",
                    shown(raw)
                ))),
                Err(why) => Err(row_error(format!("{name} {:?}: {why}", shown(raw)))),
            }
        };
        let open = price(open_col, "open")?;
        let high = price(high_col, "high")?;
        let low = price(low_col, "low")?;
        let close = price(close_col, "close")?;
        if high < open.max(close) || low > open.min(close) {
            return Err(row_error(format!(
                "inconsistent bar: high {high} and low {low} must enclose open {open} and close {close}"
            )));
        }
        let volume = match volume_col {
            None => 0,
            Some(col) => {
                let raw = field(&record, col);
                parse_volume(raw)
                    .map_err(|why| row_error(format!("volume {:?}: {why}", shown(raw))))?
            }
        };
        if let Some(prev) = bars.last() {
            if start == prev.start {
                return Err(row_error(format!("duplicate timestamp {start}")));
            }
            if start < prev.start {
                return Err(row_error(format!(
                    "timestamp {start} is earlier than the previous row's {}: rows must be sorted by time",
                    prev.start
                )));
            }
        }
        bars.push(Bar {
            symbol: options.symbol,
            timeframe: frame,
            start,
            open,
            high,
            low,
            close,
            volume,
        });
        lines.push(line);
    }
    if bars.is_empty() {
        return Err(DataError::Empty { what: PRICE_DATA });
    }
    let timeframe = match options.timeframe {
        Some(tf) => {
            if let Some(i) = (1..bars.len())
                .find(|&i| bars[i].start.millis_since(bars[i - 1].start) < tf.millis())
            {
                return Err(DataError::Row {
                    what: PRICE_DATA,
                    line: lines[i],
                    reason: format!(
                        "bar at {} starts less than one {tf} bar after the previous one",
                        bars[i].start
                    ),
                });
            }
            tf
        }
        None => infer_timeframe(&bars)?,
    };
    for bar in &mut bars {
        bar.timeframe = timeframe;
    }
    Ok(bars)
}

/// The timeframe whose length is the smallest gap between consecutive bars.
fn infer_timeframe(bars: &[Bar]) -> Result<Timeframe, DataError> {
    let gap = bars
        .windows(2)
        .map(|w| w[1].start.millis_since(w[0].start))
        .min()
        .ok_or_else(|| {
            DataError::Timeframe("one bar only: give the timeframe explicitly".into())
        })?;
    Timeframe::ALL
        .into_iter()
        .find(|tf| tf.millis() == gap)
        .ok_or_else(|| {
            DataError::Timeframe(format!(
                "the smallest gap between bars is {} s, which is not one of M1, M5, M15, M30, H1, H4, D1",
                gap / 1000
            ))
        })
}

const TICK_DATA: &str = "tick data";

/// True when a CSV header names a `bid` or an `ask` column (or both) and no `open`: a ticks file
/// rather than bars (the backtest then aggregates it).
pub fn is_ticks_header(header_line: &str) -> bool {
    let names: Vec<String> = header_line
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    (has("bid") || has("ask")) && !has("open")
}

/// Reads ticks (a timestamp column as for price data, then `bid`, `ask` or both) and aggregates
/// them into bars of `timeframe` exactly as the live bot does ([`BarAggregator`]): a bar per
/// period that has ticks, `volume` the number of ticks. With both columns the bars are of the mid
/// price, as live; with one column they are of that side (a bid file gives the broker's own bid
/// trendbars). Rows must not go back in time (equal times are allowed); a bid above its ask, or a
/// price that is not positive, is refused.
pub fn read_ticks_csv<R: io::Read>(
    reader: R,
    symbol: SymbolId,
    timeframe: Timeframe,
) -> Result<Vec<Bar>, DataError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(reader);
    let header = rdr
        .byte_headers()
        .map_err(|e| io_error(TICK_DATA, e))?
        .clone();
    let [ts_col, bid_col, ask_col] = find_columns(
        TICK_DATA,
        &header,
        [&TIMESTAMP_NAMES, &["bid"], &["ask"]],
        [true, false, false],
    )?;
    let Some(ts_col) = ts_col else {
        return Err(DataError::Header {
            what: TICK_DATA,
            reason: "missing a required column".into(),
        });
    };
    if bid_col.is_none() && ask_col.is_none() {
        return Err(DataError::Header {
            what: TICK_DATA,
            reason: "no bid or ask column: a ticks file has a bid column, an ask column or both"
                .into(),
        });
    }
    let mut aggregator = BarAggregator::new(symbol, timeframe);
    let mut bars = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut ticks = 0usize;
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(io_error(TICK_DATA, e)),
        }
        let line = record.position().map_or(0, csv::Position::line);
        let row_error = |reason: String| DataError::Row {
            what: TICK_DATA,
            line,
            reason,
        };
        let ts_raw = field(&record, ts_col);
        let time = parse_timestamp(ts_raw)
            .map_err(|why| row_error(format!("timestamp {:?}: {why}", shown(ts_raw))))?;
        let price = |col: usize, name: &str| {
            let raw = field(&record, col);
            match parse_price(raw) {
                Ok(p) if p.raw() > 0 => Ok(p),
                Ok(_) => Err(row_error(format!(
                    "{name} {:?} is not positive",
                    shown(raw)
                ))),
                Err(why) => Err(row_error(format!("{name} {:?}: {why}", shown(raw)))),
            }
        };
        // One side only: both sides of the quote are that price, so the mid is exactly it.
        let (bid, ask) = match (bid_col, ask_col) {
            (Some(b), Some(a)) => (price(b, "bid")?, price(a, "ask")?),
            (Some(b), None) => {
                let bid = price(b, "bid")?;
                (bid, bid)
            }
            (None, Some(a)) => {
                let ask = price(a, "ask")?;
                (ask, ask)
            }
            (None, None) => unreachable_columns()?,
        };
        if bid > ask {
            return Err(row_error(format!("bid {bid} is above ask {ask}")));
        }
        let quote = Quote {
            symbol,
            bid,
            ask,
            time,
        };
        match aggregator.on_quote(&quote) {
            Ok(Some(bar)) => bars.push(bar),
            Ok(None) => {}
            Err(e) => {
                return Err(row_error(format!("{e}: rows must not go back in time")));
            }
        }
        ticks += 1;
    }
    if ticks == 0 {
        return Err(DataError::Empty { what: TICK_DATA });
    }
    // The last period is complete as far as the file knows.
    if let Some(bar) = aggregator.current().copied() {
        bars.push(bar);
    }
    Ok(bars)
}

/// The header check above makes this unreachable; an error rather than a panic all the same.
fn unreachable_columns() -> Result<(Price, Price), DataError> {
    Err(DataError::Header {
        what: TICK_DATA,
        reason: "no bid or ask column".into(),
    })
}

/// The header line [`write_bars_csv`] writes (without its line end).
pub const BARS_CSV_HEADER: &str = "timestamp,open,high,low,close,volume";

/// Writes bars as the CSV [`read_ohlc_csv`] reads: `timestamp,open,high,low,close,volume`, times
/// in ISO 8601 UTC, prices as exact decimals.
pub fn write_bars_csv<W: io::Write>(bars: &[Bar], mut out: W) -> io::Result<()> {
    writeln!(out, "{BARS_CSV_HEADER}")?;
    write_bar_rows(bars, &mut out)?;
    out.flush()
}

/// Writes the rows of [`write_bars_csv`] without its header, one whole line per bar (for a file
/// that grows a page at a time).
pub fn write_bar_rows<W: io::Write>(bars: &[Bar], mut out: W) -> io::Result<()> {
    for b in bars {
        writeln!(
            out,
            "{},{},{},{},{},{}",
            b.start, b.open, b.high, b.low, b.close, b.volume
        )?;
    }
    Ok(())
}

/// Reads sentiment readings from CSV with a header: a timestamp column (as for price data),
/// `score` (-1 to 1) and `confidence` (0 to 1); optional `source` and `summary` columns are kept.
/// The timestamp is when the reading became known; rows must be strictly increasing in time.
pub fn read_sentiment_csv<R: io::Read>(reader: R) -> Result<Vec<SentimentReading>, DataError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(reader);
    let header = rdr
        .byte_headers()
        .map_err(|e| io_error(SENTIMENT_DATA, e))?
        .clone();
    let [ts_col, score_col, conf_col, source_col, summary_col] = find_columns(
        SENTIMENT_DATA,
        &header,
        [
            &TIMESTAMP_NAMES,
            &["score"],
            &["confidence"],
            &["source"],
            &["summary"],
        ],
        [true, true, true, false, false],
    )?;
    let (Some(ts_col), Some(score_col), Some(conf_col)) = (ts_col, score_col, conf_col) else {
        return Err(DataError::Header {
            what: SENTIMENT_DATA,
            reason: "missing a required column".into(),
        });
    };
    let mut readings: Vec<SentimentReading> = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(io_error(SENTIMENT_DATA, e)),
        }
        let line = record.position().map_or(0, csv::Position::line);
        let row_error = |reason: String| DataError::Row {
            what: SENTIMENT_DATA,
            line,
            reason,
        };
        let ts_raw = field(&record, ts_col);
        let known_at = parse_timestamp(ts_raw)
            .map_err(|why| row_error(format!("timestamp {:?}: {why}", shown(ts_raw))))?;
        let number = |col: usize, name: &str, range: std::ops::RangeInclusive<f64>| {
            let raw = field(&record, col);
            let value: f64 = std::str::from_utf8(raw)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| row_error(format!("{name} {:?} is not a number", shown(raw))))?;
            if range.contains(&value) {
                Ok(value)
            } else {
                Err(row_error(format!(
                    "{name} {value} is outside {} to {}",
                    range.start(),
                    range.end()
                )))
            }
        };
        let score = number(score_col, "score", -1.0..=1.0)?;
        let confidence = number(conf_col, "confidence", 0.0..=1.0)?;
        if let Some(prev) = readings.last() {
            if known_at == prev.known_at {
                return Err(row_error(format!("duplicate timestamp {known_at}")));
            }
            if known_at < prev.known_at {
                return Err(row_error(format!(
                    "timestamp {known_at} is earlier than the previous row's {}: rows must be sorted by time",
                    prev.known_at
                )));
            }
        }
        let text = |col: Option<usize>| col.map(|c| shown(field(&record, c)));
        readings.push(SentimentReading {
            score,
            confidence,
            source: text(source_col).unwrap_or_else(|| "replay".to_owned()),
            known_at,
            item_count: 0,
            summary: text(summary_col).unwrap_or_default(),
        });
    }
    Ok(readings)
}

/// Reads quote→account conversion rates from CSV with a header: a timestamp column (as for price
/// data) and `rate` (units of account currency per unit of quote currency, e.g. 0.2222 for MYR→USD).
/// Each rate holds from its time on; rows must be strictly increasing in time.
pub fn read_rates_csv<R: io::Read>(
    reader: R,
) -> Result<Vec<(Timestamp, ConversionRate)>, DataError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(reader);
    let header = rdr
        .byte_headers()
        .map_err(|e| io_error(RATE_DATA, e))?
        .clone();
    let [ts_col, rate_col] = find_columns(
        RATE_DATA,
        &header,
        [&TIMESTAMP_NAMES, &["rate"]],
        [true, true],
    )?;
    let (Some(ts_col), Some(rate_col)) = (ts_col, rate_col) else {
        return Err(DataError::Header {
            what: RATE_DATA,
            reason: "missing a required column".into(),
        });
    };
    let mut rates: Vec<(Timestamp, ConversionRate)> = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(io_error(RATE_DATA, e)),
        }
        let line = record.position().map_or(0, csv::Position::line);
        let row_error = |reason: String| DataError::Row {
            what: RATE_DATA,
            line,
            reason,
        };
        let ts_raw = field(&record, ts_col);
        let at = parse_timestamp(ts_raw)
            .map_err(|why| row_error(format!("timestamp {:?}: {why}", shown(ts_raw))))?;
        let rate = ConversionRate::parse(&shown(field(&record, rate_col)))
            .map_err(|why| row_error(format!("rate {why}")))?;
        if let Some((prev, _)) = rates.last()
            && at <= *prev
        {
            return Err(row_error(format!(
                "timestamp {at} is not after the previous row's {prev}: rows must be sorted by time"
            )));
        }
        rates.push((at, rate));
    }
    if rates.is_empty() {
        return Err(DataError::Empty { what: RATE_DATA });
    }
    Ok(rates)
}

/// Parses a time given on the command line (`--from`, `--to`): the formats a price data file
/// accepts (ISO 8601, `YYYY-MM-DD HH:MM:SS`, a bare date, epoch milliseconds).
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    parse_timestamp(text.trim().as_bytes()).map_err(|why| format!("{text:?}: {why}"))
}

/// Parses a positive or negative decimal into 1/100000 units, rounding beyond five decimals.
pub(crate) fn parse_price(text: &[u8]) -> Result<Price, &'static str> {
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if body.is_empty() {
        return Err("empty");
    }
    let mut value: i64 = 0;
    let mut digits = 0usize;
    let mut decimals: i32 = -1; // -1 until the point is seen
    let mut round_up = false;
    for &b in body {
        match b {
            b'0'..=b'9' => {
                if decimals >= 5 {
                    // Only the sixth decimal decides rounding; later ones are ignored.
                    if decimals == 5 {
                        round_up = b >= b'5';
                        decimals = 6;
                    }
                    continue;
                }
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(i64::from(b - b'0')))
                    .ok_or("out of range")?;
                digits += 1;
                if decimals >= 0 {
                    decimals += 1;
                }
            }
            b'.' if decimals < 0 => decimals = 0,
            _ => return Err("not a decimal number"),
        }
    }
    if digits == 0 {
        return Err("not a decimal number");
    }
    let decimals = decimals.clamp(0, 5);
    let mut scaled = 10_i64
        .checked_pow(u32::try_from(5 - decimals).unwrap_or(0))
        .and_then(|scale| value.checked_mul(scale))
        .ok_or("out of range")?;
    if round_up {
        scaled = scaled.checked_add(1).ok_or("out of range")?;
    }
    Ok(Price(if negative { -scaled } else { scaled }))
}

/// Parses a volume: empty is 0; a decimal is truncated to its whole part.
fn parse_volume(text: &[u8]) -> Result<i64, &'static str> {
    if text.is_empty() {
        return Ok(0);
    }
    let whole = text.split(|&b| b == b'.').next().unwrap_or(b"");
    let frac = text.get(whole.len() + 1..).unwrap_or(b"");
    if whole.is_empty() || !whole.iter().chain(frac).all(u8::is_ascii_digit) {
        return Err("not a non-negative number");
    }
    whole.iter().try_fold(0_i64, |acc, &b| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or("out of range")
    })
}

/// Reads exactly `n` ASCII digits at `at`.
fn digits(text: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = text.get(at..at + n)?;
    part.iter().try_fold(0_i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Milliseconds since 1970-01-01 UTC: 12 to 14 digits (from 1973-03-03 to the year 5138), so a
/// count of epoch *seconds* (10 digits) is refused instead of read as a day in 1970.
fn parse_epoch_millis(text: &[u8]) -> Result<Timestamp, &'static str> {
    if text.len() < 12 {
        return Err(
            "a number this short looks like epoch seconds: epoch timestamps are in milliseconds",
        );
    }
    if text.len() > 14 {
        return Err("epoch milliseconds out of range");
    }
    let ms = text
        .iter()
        .fold(0_i64, |acc, &b| acc * 10 + i64::from(b - b'0'));
    Ok(Timestamp(ms))
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]]` with an optional `Z` or
/// `±HH[:]MM` offset (none means UTC), or epoch milliseconds (`1763951400000`).
pub(crate) fn parse_timestamp(text: &[u8]) -> Result<Timestamp, &'static str> {
    const SHAPE: &str = "expected YYYY-MM-DD, YYYY-MM-DD HH:MM:SS, ISO 8601 or epoch milliseconds";
    let bad = || SHAPE;
    if !text.is_empty() && text.iter().all(u8::is_ascii_digit) {
        return parse_epoch_millis(text);
    }
    let year = digits(text, 0, 4).ok_or_else(bad)?;
    let month = digits(text, 5, 2).ok_or_else(bad)?;
    let day = digits(text, 8, 2).ok_or_else(bad)?;
    if text.get(4) != Some(&b'-') || text.get(7) != Some(&b'-') {
        return Err(SHAPE);
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err("no such date");
    }
    let mut ms = days_from_civil(year, month, day) * Timestamp::DAY_MS;
    let rest = &text[10..];
    if rest.is_empty() {
        return Ok(Timestamp(ms));
    }
    if !matches!(rest[0], b'T' | b't' | b' ') || rest.get(3) != Some(&b':') {
        return Err(SHAPE);
    }
    let hour = digits(rest, 1, 2).ok_or_else(bad)?;
    let minute = digits(rest, 4, 2).ok_or_else(bad)?;
    let mut pos = 6;
    let mut second = 0;
    if rest.get(pos) == Some(&b':') {
        second = digits(rest, pos + 1, 2).ok_or_else(bad)?;
        pos += 3;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("no such time of day");
    }
    ms += hour * Timestamp::HOUR_MS + minute * Timestamp::MINUTE_MS + second * 1000;
    if rest.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        let mut millis = 0;
        while let Some(b) = rest.get(pos).filter(|b| b.is_ascii_digit()) {
            if pos - start < 3 {
                millis = millis * 10 + i64::from(b - b'0');
            }
            pos += 1;
        }
        if pos == start {
            return Err(SHAPE);
        }
        // Fewer than three digits: scale up (".5" is 500 ms).
        for _ in pos - start..3 {
            millis *= 10;
        }
        ms += millis;
    }
    match rest.get(pos..).unwrap_or(b"") {
        b"" | b"Z" | b"z" => Ok(Timestamp(ms)),
        offset if matches!(offset[0], b'+' | b'-') => {
            let oh = digits(offset, 1, 2).ok_or_else(bad)?;
            let om = match offset.len() {
                6 if offset[3] == b':' => digits(offset, 4, 2),
                5 => digits(offset, 3, 2),
                3 => Some(0),
                _ => None,
            }
            .ok_or_else(bad)?;
            if oh > 23 || om > 59 {
                return Err("no such UTC offset");
            }
            let shift = oh * Timestamp::HOUR_MS + om * Timestamp::MINUTE_MS;
            // Local time = UTC + offset, so UTC = local - offset.
            Ok(Timestamp(if offset[0] == b'+' {
                ms - shift
            } else {
                ms + shift
            }))
        }
        _ => Err(SHAPE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Result<String, &'static str> {
        parse_timestamp(text.as_bytes()).map(|t| t.to_string())
    }

    #[test]
    fn parses_the_accepted_timestamp_shapes() {
        assert_eq!(ts("2025-11-24").unwrap(), "2025-11-24T00:00:00.000Z");
        assert_eq!(
            ts("2025-11-24 02:30:00").unwrap(),
            "2025-11-24T02:30:00.000Z"
        );
        assert_eq!(
            ts("2025-11-24T02:30:00Z").unwrap(),
            "2025-11-24T02:30:00.000Z"
        );
        assert_eq!(ts("2025-11-24T02:30").unwrap(), "2025-11-24T02:30:00.000Z");
        assert_eq!(
            ts("2025-11-24T02:30:15.5Z").unwrap(),
            "2025-11-24T02:30:15.500Z"
        );
        assert_eq!(
            ts("2025-11-24T02:30:15.123456789").unwrap(),
            "2025-11-24T02:30:15.123Z"
        );
        assert_eq!(
            ts("2025-11-24T10:30:00+08:00").unwrap(),
            "2025-11-24T02:30:00.000Z"
        );
        assert_eq!(
            ts("2025-11-24T00:30:00-0200").unwrap(),
            "2025-11-24T02:30:00.000Z"
        );
        assert_eq!(
            ts("2024-02-29 00:00:00").unwrap(),
            "2024-02-29T00:00:00.000Z"
        );
        assert_eq!(
            ts("1969-12-31T23:59:59Z").unwrap(),
            "1969-12-31T23:59:59.000Z"
        );
        assert_eq!(ts("1763951400000").unwrap(), "2025-11-24T02:30:00.000Z");
        assert_eq!(ts("1763951400250").unwrap(), "2025-11-24T02:30:00.250Z");
    }

    #[test]
    fn refuses_bad_timestamps_with_a_reason() {
        for (text, why) in [
            ("2025-02-29", "no such date"),
            ("2025-13-01", "no such date"),
            ("2025-11-24 24:00:00", "no such time of day"),
            (
                "24/11/2025",
                "expected YYYY-MM-DD, YYYY-MM-DD HH:MM:SS, ISO 8601 or epoch milliseconds",
            ),
            (
                "2025-11-24T02:30:00 UTC",
                "expected YYYY-MM-DD, YYYY-MM-DD HH:MM:SS, ISO 8601 or epoch milliseconds",
            ),
            (
                "1763942400",
                "a number this short looks like epoch seconds: epoch timestamps are in milliseconds",
            ),
            ("176394240000000", "epoch milliseconds out of range"),
            (
                "",
                "expected YYYY-MM-DD, YYYY-MM-DD HH:MM:SS, ISO 8601 or epoch milliseconds",
            ),
        ] {
            assert_eq!(ts(text), Err(why), "{text}");
        }
    }

    #[test]
    fn parses_prices_exactly_and_rounds_extra_decimals() {
        let p = |t: &str| parse_price(t.as_bytes());
        assert_eq!(p("4125.5"), Ok(Price(412_550_000)));
        assert_eq!(p("4125"), Ok(Price(412_500_000)));
        assert_eq!(p(".5"), Ok(Price(50_000)));
        assert_eq!(p("4125.12345"), Ok(Price(412_512_345)));
        assert_eq!(p("4125.123455"), Ok(Price(412_512_346)));
        assert_eq!(p("4125.1234549999"), Ok(Price(412_512_345)));
        assert_eq!(p("4001.2500000000005"), Ok(Price(400_125_000)));
        assert_eq!(p("-1.5"), Ok(Price(-150_000)));
        assert_eq!(p("1e3"), Err("not a decimal number"));
        assert_eq!(p("1.2.3"), Err("not a decimal number"));
        assert_eq!(p("."), Err("not a decimal number"));
        assert_eq!(p(""), Err("empty"));
        assert_eq!(p("99999999999999999"), Err("out of range"));
    }

    const GOOD: &str = "Date,Open,High,Low,Close,Volume\n\
        2025-11-24 00:00:00,4000,4010,3990,4005,12\n\
        2025-11-24 01:00:00,4005,4020,4000,4015,\n\
        2025-11-24 03:00:00,4015,4016,3980,3981.5,7.9\n";

    #[test]
    fn reads_bars_with_case_insensitive_headers_and_infers_the_timeframe() {
        let bars = read_ohlc_csv(GOOD.as_bytes(), &OhlcOptions::default()).unwrap();
        assert_eq!(bars.len(), 3);
        assert!(bars.iter().all(|b| b.timeframe == Timeframe::H1));
        assert_eq!(bars[2].close, Price(398_150_000));
        assert_eq!((bars[0].volume, bars[1].volume, bars[2].volume), (12, 0, 7));
        // Columns in another order, upper case, no volume, ISO timestamps, a byte-order mark,
        // Windows line ends and spaces around fields.
        let text = "\u{feff}CLOSE, Low ,HIGH,OPEN,TIMESTAMP\r\n1, 1 ,1,1,2025-11-24T00:00:00Z\r\n2,2,2,2, 2025-11-25T00:00:00Z \r\n";
        let bars = read_ohlc_csv(text.as_bytes(), &OhlcOptions::default()).unwrap();
        assert_eq!(bars[1].open, Price(200_000));
        assert_eq!(bars[0].timeframe, Timeframe::D1);
    }

    fn row_error(text: &str) -> (u64, String) {
        match read_ohlc_csv(text.as_bytes(), &OhlcOptions::default()) {
            Err(DataError::Row { line, reason, .. }) => (line, reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_row_fails_with_its_line_number_and_reason() {
        let head = "timestamp,open,high,low,close\n2025-11-24 00:00:00,1,1,1,1\n";
        let (line, reason) = row_error(&format!("{head}2025-11-24 01:00:00,1,abc,1,1\n"));
        assert_eq!(line, 3);
        assert_eq!(reason, "high \"abc\": not a decimal number");
        let (line, reason) = row_error(&format!("{head}2025-11-24 01:00:00,2,1.5,1,2\n"));
        assert_eq!(line, 3);
        assert!(reason.starts_with("inconsistent bar"), "{reason}");
        let (_, reason) = row_error(&format!("{head}2025-11-24 01:00:00,0,1,0,1\n"));
        assert_eq!(reason, "open \"0\" is not positive");
        let (_, reason) = row_error(&format!("{head}2025-11-24 01:00:00,1,1,1\n"));
        assert_eq!(reason, "4 fields where the header has 5");
        let (_, reason) = row_error(&format!("{head}2025-11-31 01:00:00,1,1,1,1\n"));
        assert_eq!(reason, "timestamp \"2025-11-31 01:00:00\": no such date");
    }

    #[test]
    fn unsorted_or_duplicate_timestamps_are_errors() {
        let head = "timestamp,open,high,low,close\n2025-11-24 01:00:00,1,1,1,1\n";
        let (line, reason) = row_error(&format!("{head}2025-11-24 01:00:00,1,1,1,1\n"));
        assert_eq!(
            (line, reason.as_str()),
            (3, "duplicate timestamp 2025-11-24T01:00:00.000Z")
        );
        let (line, reason) = row_error(&format!(
            "{head}2025-11-24 02:00:00,1,1,1,1\n2025-11-24 00:00:00,1,1,1,1\n"
        ));
        assert_eq!(line, 4);
        assert!(reason.contains("rows must be sorted by time"), "{reason}");
    }

    #[test]
    fn header_and_timeframe_problems_are_named() {
        let err =
            read_ohlc_csv("time,open,high,low\n".as_bytes(), &OhlcOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no close column"), "{err}");
        let err = read_ohlc_csv(
            "time,open,high,low,close\n".as_bytes(),
            &OhlcOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }));
        let two_minutes =
            "time,open,high,low,close\n2025-11-24 00:00,1,1,1,1\n2025-11-24 00:02,1,1,1,1\n";
        let err = read_ohlc_csv(two_minutes.as_bytes(), &OhlcOptions::default()).unwrap_err();
        assert!(err.to_string().contains("120 s"), "{err}");
        // An explicit timeframe longer than a gap is refused with the line.
        let opts = OhlcOptions {
            timeframe: Some(Timeframe::M5),
            ..OhlcOptions::default()
        };
        match read_ohlc_csv(two_minutes.as_bytes(), &opts) {
            Err(DataError::Row { line: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
        let opts = OhlcOptions {
            timeframe: Some(Timeframe::M1),
            ..OhlcOptions::default()
        };
        assert_eq!(
            read_ohlc_csv(two_minutes.as_bytes(), &opts).unwrap()[0].timeframe,
            Timeframe::M1
        );
    }

    #[test]
    fn ticks_aggregate_into_mid_bars_as_live_and_bars_round_trip() {
        let text = "time,bid,ask\n\
            2025-11-24T00:00:01Z,100,100.2\n\
            2025-11-24T00:03:00Z,101,101.2\n\
            2025-11-24T00:03:00Z,99,99.2\n\
            2025-11-24T00:07:30.5Z,102,102\n";
        assert!(is_ticks_header("\u{feff}Time, Bid ,Ask"));
        assert!(!is_ticks_header("time,open,high,low,close,bid,ask"));
        let bars = read_ticks_csv(text.as_bytes(), SymbolId(3), Timeframe::M5).unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(
            (
                bars[0].open,
                bars[0].high,
                bars[0].low,
                bars[0].close,
                bars[0].volume
            ),
            (
                Price(10_010_000),
                Price(10_110_000),
                Price(9_910_000),
                Price(9_910_000),
                3
            )
        );
        assert_eq!(bars[1].start.to_string(), "2025-11-24T00:05:00.000Z");
        assert_eq!(bars[1].close, Price(10_200_000));
        // Written bars read back the same.
        let mut out = Vec::new();
        write_bars_csv(&bars, &mut out).unwrap();
        let options = OhlcOptions {
            symbol: SymbolId(3),
            timeframe: Some(Timeframe::M5),
        };
        assert_eq!(read_ohlc_csv(out.as_slice(), &options).unwrap(), bars);
        // Back in time, a crossed quote, no rows.
        let late = "time,bid,ask\n2025-11-24T00:07:00Z,1,1\n2025-11-24T00:01:00Z,1,1\n";
        match read_ticks_csv(late.as_bytes(), SymbolId(3), Timeframe::M5) {
            Err(DataError::Row {
                line: 3, reason, ..
            }) => {
                assert!(reason.contains("must not go back in time"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let crossed = "time,bid,ask\n2025-11-24T00:07:00Z,2,1\n";
        assert!(
            read_ticks_csv(crossed.as_bytes(), SymbolId(3), Timeframe::M5)
                .unwrap_err()
                .to_string()
                .contains("above ask")
        );
        assert!(matches!(
            read_ticks_csv("time,bid,ask\n".as_bytes(), SymbolId(3), Timeframe::M5),
            Err(DataError::Empty { .. })
        ));
    }

    #[test]
    fn one_sided_ticks_aggregate_into_that_sides_bars_with_boundaries_and_gaps() {
        // Bid ticks: 00:04:59.999 closes the first M5 bar, 00:05:00 opens the next; nothing from
        // 00:10 to 00:20 (a gap: no bar), then one tick at 00:20.
        let text = "timestamp,bid\n\
            2025-11-24T00:00:00Z,100\n\
            2025-11-24T00:02:00Z,103\n\
            2025-11-24T00:04:59.999Z,99\n\
            2025-11-24T00:05:00Z,101\n\
            2025-11-24T00:09:59Z,104\n\
            2025-11-24T00:20:00Z,98\n";
        assert!(is_ticks_header("timestamp,bid"));
        assert!(is_ticks_header("timestamp,ask"));
        assert!(!is_ticks_header("timestamp,close"));
        let bars = read_ticks_csv(text.as_bytes(), SymbolId(1), Timeframe::M5).unwrap();
        let got: Vec<(String, i64, i64, i64, i64, i64)> = bars
            .iter()
            .map(|b| {
                (
                    b.start.to_string(),
                    b.open.raw() / 100_000,
                    b.high.raw() / 100_000,
                    b.low.raw() / 100_000,
                    b.close.raw() / 100_000,
                    b.volume,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("2025-11-24T00:00:00.000Z".into(), 100, 103, 99, 99, 3),
                ("2025-11-24T00:05:00.000Z".into(), 101, 104, 101, 104, 2),
                ("2025-11-24T00:20:00.000Z".into(), 98, 98, 98, 98, 1),
            ]
        );
        // An ask-only file is read the same way.
        let asks = text.replace("bid", "ask");
        assert_eq!(
            read_ticks_csv(asks.as_bytes(), SymbolId(1), Timeframe::M5).unwrap(),
            bars
        );
        // Neither side: a header error naming what is missing.
        let e = read_ticks_csv(
            "timestamp,price\n2025-11-24T00:00:00Z,1\n".as_bytes(),
            SymbolId(1),
            Timeframe::M5,
        )
        .unwrap_err();
        assert!(e.to_string().contains("bid"), "{e}");
    }

    #[test]
    fn reads_sentiment_and_checks_ranges_and_order() {
        let text = "Timestamp,Score,Confidence,Summary\n2025-11-24T01:00:00Z,0.5,0.9,exports up\n2025-11-24T03:00:00Z,-0.25,0.5,\n";
        let readings = read_sentiment_csv(text.as_bytes()).unwrap();
        assert_eq!(readings.len(), 2);
        assert_eq!(readings[0].summary, "exports up");
        assert_eq!(readings[1].score, -0.25);
        assert_eq!(readings[1].source, "replay");
        let bad = "timestamp,score,confidence\n2025-11-24T01:00:00Z,1.5,0.9\n";
        match read_sentiment_csv(bad.as_bytes()) {
            Err(DataError::Row {
                line: 2, reason, ..
            }) => assert_eq!(reason, "score 1.5 is outside -1 to 1"),
            other => panic!("{other:?}"),
        }
        let unsorted =
            "timestamp,score,confidence\n2025-11-24T03:00:00Z,0,1\n2025-11-24T01:00:00Z,0,1\n";
        assert!(matches!(
            read_sentiment_csv(unsorted.as_bytes()),
            Err(DataError::Row { line: 3, .. })
        ));
        assert!(read_sentiment_csv("timestamp,score\n".as_bytes()).is_err());
    }
}

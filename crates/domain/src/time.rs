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

/// An accelerated simulator's clock, as a client outside its process can follow it: simulated
/// time `sim` stood at wall-clock moment `wall`, and advances `speed` simulated seconds per real
/// second. Written `SIM_MS,WALL_MS,SPEED` (epoch milliseconds, then a number), the form
/// `palm-oil-bot simulate` writes to its `client.env` as `SIMULATOR_CLOCK`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AcceleratedClock {
    /// Simulated time at the anchor.
    pub sim: Timestamp,
    /// Wall-clock time at the anchor.
    pub wall: Timestamp,
    /// Simulated seconds per real second.
    pub speed: f64,
}

impl AcceleratedClock {
    /// Simulated time at wall-clock moment `wall`.
    #[must_use]
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // ms of a few centuries fit
    pub fn at(&self, wall: Timestamp) -> Timestamp {
        let elapsed = (wall.0 - self.wall.0) as f64 * self.speed;
        self.sim.plus_millis(elapsed as i64)
    }
}

impl Clock for AcceleratedClock {
    fn now(&self) -> Timestamp {
        self.at(SystemClock.now())
    }
}

impl std::fmt::Display for AcceleratedClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{}", self.sim.0, self.wall.0, self.speed)
    }
}

impl std::str::FromStr for AcceleratedClock {
    type Err = String;

    /// `SIM_MS,WALL_MS,SPEED`; the speed above 0 and at most 1,000,000.
    fn from_str(s: &str) -> Result<AcceleratedClock, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [sim, wall, speed] = parts.as_slice() else {
            return Err(format!(
                "{s:?} is not SIM_MS,WALL_MS,SPEED (two epoch milliseconds and a speed)"
            ));
        };
        let ms = |what: &str, v: &str| {
            v.parse::<i64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Timestamp)
                .ok_or_else(|| {
                    format!("{what} {v:?} is not a positive number of epoch milliseconds")
                })
        };
        let speed = speed
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x > 0.0 && *x <= 1_000_000.0)
            .ok_or_else(|| format!("speed {speed:?} must be above 0 and at most 1000000"))?;
        Ok(AcceleratedClock {
            sim: ms("simulated time", sim)?,
            wall: ms("wall-clock time", wall)?,
            speed,
        })
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
    fn an_accelerated_clock_runs_speed_times_the_wall_clock_and_round_trips_its_text() {
        let clock: AcceleratedClock = "1736121600000,1764693550000,20000".parse().unwrap();
        assert_eq!(
            clock.at(Timestamp(1_764_693_550_000)),
            Timestamp(1_736_121_600_000)
        );
        // One real second is 20,000 simulated seconds.
        assert_eq!(
            clock.at(Timestamp(1_764_693_551_000)),
            Timestamp(1_736_121_600_000 + 20_000_000)
        );
        assert_eq!(clock.to_string().parse::<AcceleratedClock>(), Ok(clock));
        for bad in [
            "",
            "1,2",
            "1,2,3,4",
            "x,2,3",
            "1,-2,3",
            "1,2,0",
            "1,2,NaN",
            "1,2,2000000",
        ] {
            let err = bad.parse::<AcceleratedClock>().unwrap_err();
            assert!(!err.is_empty(), "{bad:?}");
        }
    }

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

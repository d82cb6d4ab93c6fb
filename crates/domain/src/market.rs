//! Instruments and market data: sides, symbols, their trading schedule, quotes and bars.

use std::fmt;
use std::str::FromStr;

use crate::{DomainError, Price, Timestamp, Volume};

/// Buy or sell, as cTrader's `TradeSide` (BUY=1, SELL=2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Long: profits when the price rises.
    Buy,
    /// Short: profits when the price falls.
    Sell,
}

impl Side {
    /// The side that closes a position of this side.
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// Lower-case name, as stored and logged.
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Side, DomainError> {
        match s.to_ascii_lowercase().as_str() {
            "buy" | "long" => Ok(Side::Buy),
            "sell" | "short" => Ok(Side::Sell),
            _ => Err(DomainError::UnknownSide(s.to_owned())),
        }
    }
}

/// A broker's id for a symbol; it differs between brokers, so it is always looked up by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SymbolId(pub i64);

impl fmt::Display for SymbolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One weekly trading session, in seconds from Sunday 00:00 UTC (`end` exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklySession {
    /// First second of the week inside the session.
    pub start_second: u32,
    /// First second of the week after the session.
    pub end_second: u32,
}

/// A day the market is closed, as cTrader's `ProtoOAHoliday`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    /// Name for logs.
    pub name: String,
    /// Days since 1970-01-01 (UTC).
    pub epoch_day: i64,
    /// Repeats every year on the same month and day.
    pub recurring: bool,
    /// Seconds of the day the closure starts and ends; `None` means the whole day.
    pub seconds: Option<(u32, u32)>,
}

/// When a symbol can be traded: weekly sessions (UTC) minus holidays.
///
/// A broker keeps its sessions in a local zone; where that zone has daylight saving, the UTC
/// sessions move twice a year. `changes` then holds the UTC sessions from each instant the
/// zone's offset changes, worked out from a time-zone database when the symbol is loaded, so the
/// schedule answers from data alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TradingSchedule {
    /// Weekly sessions in UTC seconds of the week, before the first of `changes` (or always,
    /// when there is none). Empty means "no schedule known": never open.
    pub sessions: Vec<WeeklySession>,
    /// Closures that override the weekly sessions.
    pub holidays: Vec<Holiday>,
    /// The UTC sessions from each offset change of the broker's zone on, oldest first.
    pub changes: Vec<ScheduleChange>,
}

/// The weekly sessions in UTC from an instant on: the broker's zone changed its offset then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleChange {
    /// The first instant of the new offset.
    pub from: Timestamp,
    /// The weekly sessions in UTC seconds of the week from then on.
    pub sessions: Vec<WeeklySession>,
}

impl TradingSchedule {
    /// A schedule open around the clock, every day (for tests and crypto-like symbols).
    pub fn always_open() -> TradingSchedule {
        TradingSchedule {
            sessions: vec![WeeklySession {
                start_second: 0,
                end_second: 7 * 86_400,
            }],
            holidays: Vec::new(),
            changes: Vec::new(),
        }
    }

    /// The weekly sessions (UTC) in force at `at`.
    pub fn sessions_at(&self, at: Timestamp) -> &[WeeklySession] {
        // `changes` is oldest first; the last one that started by `at` is in force.
        match self.changes.partition_point(|c| c.from <= at) {
            0 => &self.sessions,
            n => self
                .changes
                .get(n - 1)
                .map_or(&self.sessions, |c| &c.sessions),
        }
    }

    /// True when `at` is inside a weekly session and not inside a holiday.
    pub fn is_open(&self, at: Timestamp) -> bool {
        let second = at.second_of_week();
        let in_session = self
            .sessions_at(at)
            .iter()
            .any(|s| i64::from(s.start_second) <= second && second < i64::from(s.end_second));
        in_session && !self.holidays.iter().any(|h| h.covers(at))
    }
}

impl Holiday {
    /// True when `at` falls in this closure.
    pub fn covers(&self, at: Timestamp) -> bool {
        let day = at.epoch_day();
        let same_day = if self.recurring {
            month_day(day) == month_day(self.epoch_day)
        } else {
            day == self.epoch_day
        };
        if !same_day {
            return false;
        }
        match self.seconds {
            None => true,
            Some((start, end)) => {
                let second = at.millis().rem_euclid(Timestamp::DAY_MS) / 1000;
                i64::from(start) <= second && second < i64::from(end)
            }
        }
    }
}

/// (month, day) of an epoch day, for recurring holidays.
fn month_day(epoch_day: i64) -> (i64, i64) {
    let text = Timestamp(epoch_day * Timestamp::DAY_MS).to_string();
    let month = text.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(0);
    let day = text.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(0);
    (month, day)
}

/// What the bot must know about a symbol before it trades it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolSpec {
    /// The broker's id.
    pub id: SymbolId,
    /// The broker's name, e.g. `PALMOIL`.
    pub name: String,
    /// Decimal digits of the price.
    pub digits: u32,
    /// Position of the pip (e.g. 0 when one pip is 1 MYR).
    pub pip_position: i32,
    /// Volume of one lot.
    pub lot_size: Volume,
    /// Smallest order volume.
    pub min_volume: Volume,
    /// Largest order volume.
    pub max_volume: Volume,
    /// Order volumes must be a multiple of this.
    pub step_volume: Volume,
    /// When it trades.
    pub schedule: TradingSchedule,
    /// Commission on each side of a trade, when the broker states it as a share of notional.
    pub commission: Option<crate::NotionalCommission>,
}

/// The best bid and ask at an instant, both sides known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// Which symbol.
    pub symbol: SymbolId,
    /// Best bid (what a seller gets).
    pub bid: Price,
    /// Best ask (what a buyer pays).
    pub ask: Price,
    /// When the broker stamped it (or when it arrived, if the broker sent no time).
    pub time: Timestamp,
}

impl Quote {
    /// The midpoint, the price bars and the RSI are built from.
    pub const fn mid(&self) -> Price {
        Price::mid(self.bid, self.ask)
    }

    /// Ask minus bid.
    pub const fn spread(&self) -> Price {
        Price(self.ask.0.saturating_sub(self.bid.0))
    }
}

/// The bar periods the bot trades on, as cTrader's `TrendbarPeriod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timeframe {
    /// One minute.
    M1,
    /// Five minutes.
    M5,
    /// Fifteen minutes.
    M15,
    /// Thirty minutes.
    M30,
    /// One hour.
    H1,
    /// Four hours.
    H4,
    /// One day.
    D1,
}

impl Timeframe {
    /// Every timeframe, shortest first.
    pub const ALL: [Timeframe; 7] = [
        Timeframe::M1,
        Timeframe::M5,
        Timeframe::M15,
        Timeframe::M30,
        Timeframe::H1,
        Timeframe::H4,
        Timeframe::D1,
    ];

    /// Length of one bar in milliseconds.
    pub const fn millis(self) -> i64 {
        match self {
            Timeframe::M1 => Timestamp::MINUTE_MS,
            Timeframe::M5 => 5 * Timestamp::MINUTE_MS,
            Timeframe::M15 => 15 * Timestamp::MINUTE_MS,
            Timeframe::M30 => 30 * Timestamp::MINUTE_MS,
            Timeframe::H1 => Timestamp::HOUR_MS,
            Timeframe::H4 => 4 * Timestamp::HOUR_MS,
            Timeframe::D1 => Timestamp::DAY_MS,
        }
    }

    /// The start of the bar (aligned to UTC boundaries) that contains `at`.
    pub const fn bar_start(self, at: Timestamp) -> Timestamp {
        Timestamp(at.0 - at.0.rem_euclid(self.millis()))
    }

    /// The name used in configuration and logs (`M1` … `D1`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Timeframe::M1 => "M1",
            Timeframe::M5 => "M5",
            Timeframe::M15 => "M15",
            Timeframe::M30 => "M30",
            Timeframe::H1 => "H1",
            Timeframe::H4 => "H4",
            Timeframe::D1 => "D1",
        }
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Timeframe {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Timeframe, DomainError> {
        Timeframe::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| DomainError::UnknownTimeframe(s.to_owned()))
    }
}

/// An OHLC bar of mid prices; `start` is the UTC-aligned opening instant of its period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// Which symbol.
    pub symbol: SymbolId,
    /// Its period.
    pub timeframe: Timeframe,
    /// Start of the period.
    pub start: Timestamp,
    /// First price in the period.
    pub open: Price,
    /// Highest price.
    pub high: Price,
    /// Lowest price.
    pub low: Price,
    /// Last price.
    pub close: Price,
    /// Number of quotes (live) or traded volume (history), as the source gives it.
    pub volume: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_align_to_utc_boundaries() {
        let at = Timestamp(1_763_950_000_123); // 02:06:40.123
        assert_eq!(
            Timeframe::M5.bar_start(at).to_string(),
            "2025-11-24T02:05:00.000Z"
        );
        assert_eq!(
            Timeframe::H4.bar_start(at).to_string(),
            "2025-11-24T00:00:00.000Z"
        );
        assert_eq!("m15".parse::<Timeframe>().unwrap(), Timeframe::M15);
        assert!("M2".parse::<Timeframe>().is_err());
    }

    #[test]
    fn schedule_honours_sessions_and_holidays() {
        // Monday 02:30-04:30 UTC.
        let monday = 86_400;
        let schedule = TradingSchedule {
            sessions: vec![WeeklySession {
                start_second: monday + 9_000,
                end_second: monday + 16_200,
            }],
            holidays: vec![],
            changes: vec![],
        };
        let monday_0300 = Timestamp(1_763_942_400_000 + 3 * 3_600_000); // 2025-11-24 03:00 UTC
        assert!(schedule.is_open(monday_0300));
        assert!(!schedule.is_open(monday_0300.plus_millis(2 * 3_600_000)));
        let mut closed = schedule.clone();
        closed.holidays.push(Holiday {
            name: "test".into(),
            epoch_day: monday_0300.epoch_day() - 365,
            recurring: true,
            seconds: None,
        });
        assert!(!closed.is_open(monday_0300));
    }

    #[test]
    fn the_sessions_in_force_follow_the_zone_changes() {
        // Monday 08:00-16:00 local in a zone one hour ahead part of the year: 08:00-16:00 UTC
        // before the change, 07:00-15:00 UTC from it on.
        let monday = 86_400;
        let session = |start: u32, end: u32| WeeklySession {
            start_second: monday + start * 3_600,
            end_second: monday + end * 3_600,
        };
        // Sunday 2026-03-29 01:00 UTC, and the Monday after it.
        let change = Timestamp(1_774_746_000_000);
        let next_monday = Timestamp(1_774_828_800_000);
        let schedule = TradingSchedule {
            sessions: vec![session(8, 16)],
            holidays: vec![],
            changes: vec![ScheduleChange {
                from: change,
                sessions: vec![session(7, 15)],
            }],
        };
        let hour = Timestamp::HOUR_MS;
        let monday_before = next_monday.plus_millis(-7 * Timestamp::DAY_MS);
        assert!(!schedule.is_open(monday_before.plus_millis(7 * hour)));
        assert!(schedule.is_open(monday_before.plus_millis(8 * hour)));
        assert!(schedule.is_open(next_monday.plus_millis(7 * hour)));
        assert!(!schedule.is_open(next_monday.plus_millis(15 * hour)));
        assert_eq!(
            schedule.sessions_at(change.plus_millis(-1)),
            &[session(8, 16)]
        );
        assert_eq!(schedule.sessions_at(change), &[session(7, 15)]);
    }
}

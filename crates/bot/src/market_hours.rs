//! When a closed market opens next, so the bot can say so instead of waiting in silence (a
//! simulator on realistic hours is closed most of the day).

use domain::{Timestamp, TradingSchedule};

/// How far ahead [`next_open`] looks: long enough for a weekend plus a run of holidays.
const HORIZON_DAYS: i64 = 28;

/// The first instant at or after `from` when `schedule` is open; `None` when it stays closed for
/// the next four weeks (no sessions, or holidays throughout).
pub fn next_open(schedule: &TradingSchedule, from: Timestamp) -> Option<Timestamp> {
    if schedule.is_open(from) {
        return Some(from);
    }
    // The market can only open at a session's start or where a holiday ends: a holiday ends at a
    // second of its day, or at midnight for a whole-day closure.
    let week_start = from.millis() - from.second_of_week() * 1000 - from.millis().rem_euclid(1000);
    let mut candidates = Vec::new();
    // The sessions in force now, and those from each change of the broker's zone offset within
    // the horizon (which can open the market by itself).
    let horizon_end = from.plus_millis(HORIZON_DAYS * Timestamp::DAY_MS);
    let coming: Vec<_> = schedule
        .changes
        .iter()
        .filter(|c| c.from > from && c.from <= horizon_end)
        .collect();
    candidates.extend(coming.iter().map(|c| c.from.millis()));
    let lists = std::iter::once(schedule.sessions_at(from))
        .chain(coming.iter().map(|c| c.sessions.as_slice()));
    for sessions in lists {
        for week in 0..=HORIZON_DAYS / 7 {
            for session in sessions {
                let start = week_start
                    + week * 7 * Timestamp::DAY_MS
                    + i64::from(session.start_second) * 1000;
                candidates.push(start);
            }
        }
    }
    let first_day = from.epoch_day();
    for day in first_day..=first_day + HORIZON_DAYS {
        candidates.push(day * Timestamp::DAY_MS);
        for holiday in &schedule.holidays {
            if let Some((_, end)) = holiday.seconds {
                candidates.push(day * Timestamp::DAY_MS + i64::from(end) * 1000);
            }
        }
    }
    candidates.sort_unstable();
    candidates
        .into_iter()
        .filter(|at| *at > from.millis())
        .map(Timestamp)
        .find(|at| schedule.is_open(*at))
}

/// What the bot says when the market is (or has just) closed.
pub fn closed_note(symbol: &str, schedule: &TradingSchedule, now: Timestamp) -> String {
    match next_open(schedule, now) {
        Some(at) => {
            let hours = at.millis_since(now) as f64 / Timestamp::HOUR_MS as f64;
            format!(
                "market closed: {symbol} opens next at {at} (in {hours:.1} h, by the broker's schedule); \
                 no order until then"
            )
        }
        None => format!(
            "market closed: {symbol} has no session in the next {HORIZON_DAYS} days by the broker's schedule"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Holiday, WeeklySession};

    /// 2026-11-23T09:00:00Z, a Monday.
    const MONDAY_9: Timestamp = Timestamp(1_795_424_400_000);

    fn at(text_offset_hours: i64) -> Timestamp {
        MONDAY_9.plus_millis(text_offset_hours * Timestamp::HOUR_MS)
    }

    /// Weekdays 01:00 to 10:00 UTC (seconds from Sunday 00:00).
    fn weekdays() -> TradingSchedule {
        TradingSchedule {
            sessions: (1..=5)
                .map(|d| WeeklySession {
                    start_second: d * 86_400 + 3_600,
                    end_second: d * 86_400 + 36_000,
                })
                .collect(),
            holidays: Vec::new(),
            changes: Vec::new(),
        }
    }

    #[test]
    fn an_open_market_is_open_now() {
        assert_eq!(next_open(&weekdays(), MONDAY_9), Some(MONDAY_9));
    }

    #[test]
    fn after_the_close_it_opens_the_next_morning_and_after_friday_on_monday() {
        // Monday 11:00: Tuesday 01:00.
        assert_eq!(next_open(&weekdays(), at(2)), Some(at(16)));
        // Friday 12:00 (Monday + 4 days + 3 h): Monday 01:00 of the next week.
        assert_eq!(next_open(&weekdays(), at(4 * 24 + 3)), Some(at(7 * 24 - 8)));
    }

    #[test]
    fn holidays_are_skipped_and_partial_ones_end_where_they_say() {
        let mut schedule = weekdays();
        // Tuesday closed all day: from Monday 11:00 the next open is Wednesday 01:00.
        schedule.holidays.push(Holiday {
            name: "closed".to_owned(),
            epoch_day: at(24).epoch_day(),
            recurring: false,
            seconds: None,
        });
        assert_eq!(next_open(&schedule, at(2)), Some(at(40)));
        // Wednesday closed until 05:00: it opens at 05:00.
        schedule.holidays.push(Holiday {
            name: "late start".to_owned(),
            epoch_day: at(48).epoch_day(),
            recurring: false,
            seconds: Some((0, 5 * 3_600)),
        });
        assert_eq!(next_open(&schedule, at(2)), Some(at(44)));
    }

    #[test]
    fn a_schedule_without_sessions_never_opens() {
        assert_eq!(next_open(&TradingSchedule::default(), MONDAY_9), None);
        let note = closed_note("PALMOIL", &TradingSchedule::default(), MONDAY_9);
        assert!(note.contains("no session in the next 28 days"), "{note}");
    }

    #[test]
    fn the_note_names_the_symbol_and_the_time() {
        let note = closed_note("PALMOIL", &weekdays(), at(2));
        assert!(
            note.contains("PALMOIL opens next at 2026-11-24T01:00:00.000Z (in 14.0 h"),
            "{note}"
        );
    }
}

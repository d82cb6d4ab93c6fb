//! The daily rollover at which open positions are charged (or paid) their swap: 22:00 UTC, Monday to
//! Friday (no rollover on Saturday or Sunday; the symbol's triple day counts three nights so the weekend
//! is paid for), as the symbols declare it with `swapTime`, `swapPeriod` and `chargeSwapAtWeekends`.

use domain::Timestamp;

/// Minutes after 00:00 UTC when swaps are charged (`ProtoOASymbol.swapTime`).
pub(crate) const ROLLOVER_MINUTE_UTC: i32 = 22 * 60;
/// Hours between two rollovers (`ProtoOASymbol.swapPeriod`).
pub(crate) const ROLLOVER_PERIOD_HOURS: i32 = 24;

const ROLLOVER_MS_OF_DAY: i64 = ROLLOVER_MINUTE_UTC as i64 * Timestamp::MINUTE_MS;

/// The weekday of `at` in UTC, as `ProtoOADayOfWeek` numbers it (1 Monday … 7 Sunday).
pub(crate) fn day_of_week(at: Timestamp) -> i32 {
    // 1970-01-01 was a Thursday (4).
    let day = (at.epoch_day() + 3).rem_euclid(7) + 1;
    i32::try_from(day).unwrap_or(1)
}

/// True when a rollover happens on that weekday.
fn rolls_on(day: i32) -> bool {
    (1..=5).contains(&day)
}

/// The first rollover strictly after `after`.
pub(crate) fn next_rollover(after: Timestamp) -> Timestamp {
    let mut day = after.epoch_day();
    loop {
        let at = Timestamp(day * Timestamp::DAY_MS + ROLLOVER_MS_OF_DAY);
        if at > after && rolls_on(day_of_week(at)) {
            return at;
        }
        day += 1;
    }
}

/// Nights a rollover at `at` pays for: 3 on `triple_day`, else 1.
pub(crate) fn nights(at: Timestamp, triple_day: i32) -> i64 {
    if day_of_week(at) == triple_day { 3 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2025-11-24 00:00 UTC.
    const MONDAY: Timestamp = Timestamp(1_763_942_400_000);

    fn at(day: i64, hour: i64, minute: i64) -> Timestamp {
        MONDAY.plus_millis(day * Timestamp::DAY_MS + hour * 3_600_000 + minute * 60_000)
    }

    #[test]
    fn weekdays_and_rollovers() {
        assert_eq!(day_of_week(MONDAY), 1);
        assert_eq!(day_of_week(at(2, 23, 0)), 3);
        assert_eq!(day_of_week(at(6, 12, 0)), 7);
        assert_eq!(next_rollover(at(0, 3, 0)), at(0, 22, 0));
        assert_eq!(next_rollover(at(0, 22, 0)), at(1, 22, 0), "strictly after");
        // Friday night rolls, then nothing until Monday night.
        assert_eq!(next_rollover(at(4, 21, 59)), at(4, 22, 0));
        assert_eq!(next_rollover(at(4, 22, 0)), at(7, 22, 0));
        assert_eq!(nights(at(2, 22, 0), 3), 3, "Wednesday is the triple day");
        assert_eq!(nights(at(1, 22, 0), 3), 1);
    }
}

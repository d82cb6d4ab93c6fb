//! The market: every symbol's price path stepped one simulated step (a second unless configured)
//! at a time while the symbol trades, its one-minute bars, and which quote changes are still to be
//! published as spots.

use std::collections::BTreeMap;

use domain::{Holiday, Timestamp};

use crate::bars::BarSeries;
use crate::prices::{PriceDriver, TwoSided};
use crate::symbols::SimSymbol;
use crate::ticks::TickSeries;

/// One simulated second: the default resolution of the price path, SL/TP checks and bars.
pub(crate) const STEP_MS: i64 = 1_000;

/// A price change of one symbol at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tick {
    /// Which symbol.
    pub(crate) symbol_id: i64,
    /// When.
    pub(crate) at: Timestamp,
    /// The new quote.
    pub(crate) quote: TwoSided,
}

/// What a spot event must carry: only the sides that changed since the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpotUpdate {
    /// Which symbol.
    pub(crate) symbol_id: i64,
    /// New bid, if it changed.
    pub(crate) bid: Option<i64>,
    /// New ask, if it changed.
    pub(crate) ask: Option<i64>,
    /// When the latest change happened.
    pub(crate) at: Timestamp,
}

/// Whether a symbol trades, remembered per day so holidays are not recomputed every second.
#[derive(Debug, Clone, Default)]
struct DayCache {
    day: Option<i64>,
    closures: Vec<Holiday>,
}

/// One symbol's live market.
#[derive(Debug)]
struct Feed {
    symbol: SimSymbol,
    driver: PriceDriver,
    bars: BarSeries,
    /// Every bid and ask change, from the same path as the bars.
    ticks: TickSeries,
    last: Option<TwoSided>,
    last_at: Timestamp,
    published: Option<TwoSided>,
    day_cache: DayCache,
}

impl Feed {
    /// The change from the last published quote to the latest one, now marked published.
    fn unpublished(&mut self) -> Option<SpotUpdate> {
        let last = self.last?;
        let previous = self.published;
        if previous == Some(last) {
            return None;
        }
        self.published = Some(last);
        Some(SpotUpdate {
            symbol_id: self.symbol.id,
            bid: previous
                .is_none_or(|p| p.bid != last.bid)
                .then_some(last.bid),
            ask: previous
                .is_none_or(|p| p.ask != last.ask)
                .then_some(last.ask),
            at: self.last_at,
        })
    }

    /// True when the symbol trades at `at` (weekly sessions minus holidays).
    fn open_at(&mut self, at: Timestamp) -> bool {
        let at = self.symbol.session_time(at);
        let second = at.second_of_week();
        let in_session = self
            .symbol
            .schedule
            .sessions
            .iter()
            .any(|s| i64::from(s.start_second) <= second && second < i64::from(s.end_second));
        if !in_session {
            return false;
        }
        let day = at.epoch_day();
        if self.day_cache.day != Some(day) {
            let day_start = day * Timestamp::DAY_MS;
            self.day_cache = DayCache {
                day: Some(day),
                closures: self
                    .symbol
                    .schedule
                    .holidays
                    .iter()
                    .filter(|h| {
                        let probe = h.seconds.map_or(0, |(start, _)| i64::from(start) * 1000);
                        h.covers(Timestamp(day_start + probe))
                    })
                    .cloned()
                    .collect(),
            };
        }
        !self.day_cache.closures.iter().any(|h| h.covers(at))
    }
}

/// Every symbol's prices and bars, and the simulated clock.
#[derive(Debug)]
pub(crate) struct Market {
    feeds: BTreeMap<i64, Feed>,
    now: Timestamp,
    /// While true the clock runs but no price path moves (a test holding quotes still).
    frozen: bool,
    /// Simulated milliseconds between two steps of every price path.
    step_ms: i64,
    /// Every quote change in order, still to be published, when every quote is its own spot.
    every_quote: Option<Vec<SpotUpdate>>,
}

impl Market {
    /// A market at `start` with one driver per symbol.
    pub(crate) fn new(symbols: Vec<(SimSymbol, PriceDriver)>, start: Timestamp) -> Market {
        let feeds = symbols
            .into_iter()
            .map(|(symbol, driver)| {
                let opening = driver.opening_quote();
                (
                    symbol.id,
                    Feed {
                        symbol,
                        driver,
                        bars: BarSeries::default(),
                        ticks: TickSeries::default(),
                        last: opening,
                        last_at: start,
                        published: None,
                        day_cache: DayCache::default(),
                    },
                )
            })
            .collect();
        Market {
            feeds,
            now: start,
            frozen: false,
            step_ms: STEP_MS,
            every_quote: None,
        }
    }

    /// Steps the price paths every `step_ms` simulated milliseconds (at least 1) instead of every
    /// second; the drivers must have been built for the same step.
    pub(crate) fn with_step(mut self, step_ms: i64) -> Market {
        self.step_ms = step_ms.max(1);
        self
    }

    /// Publishes every quote change as its own spot, in order, as a real server streams them,
    /// instead of each symbol's latest quote once per call to [`Market::take_spot_updates`].
    pub(crate) fn publish_every_quote(&mut self) {
        self.every_quote.get_or_insert_with(Vec::new);
    }

    /// The simulated time of the last step.
    pub(crate) fn now(&self) -> Timestamp {
        self.now
    }

    /// Holds every price path still (`true`) or lets them move again (`false`); the clock runs on.
    pub(crate) fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    /// True while the price paths are held still.
    pub(crate) fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Sets a symbol's quote now, as the next price would; a synthetic path carries on from its mid.
    /// The change is published with the next spot updates. False for an unknown symbol or a
    /// crossed or non-positive quote.
    pub(crate) fn set_quote(&mut self, symbol_id: i64, quote: TwoSided) -> Option<Tick> {
        if quote.bid <= 0 || quote.ask < quote.bid {
            return None;
        }
        let at = self.now;
        let feed = self.feeds.get_mut(&symbol_id)?;
        feed.driver.jump_to((quote.bid + quote.ask) / 2);
        if feed.last.is_none_or(|last| last.bid != quote.bid) {
            feed.bars.record(at, quote.bid);
        }
        feed.ticks.record(at, quote, feed.last);
        feed.last = Some(quote);
        feed.last_at = at;
        Some(Tick {
            symbol_id,
            at,
            quote,
        })
    }

    /// Steps every symbol one step at a time up to `to`, reporting each price change.
    pub(crate) fn advance(&mut self, to: Timestamp, mut on_tick: impl FnMut(Tick)) {
        while self.now.0 + self.step_ms <= to.0 {
            let at = Timestamp(self.now.0 + self.step_ms);
            self.now = at;
            if self.frozen {
                continue;
            }
            for feed in self.feeds.values_mut() {
                if !feed.open_at(at) {
                    continue;
                }
                let Some(quote) = feed.driver.step(at) else {
                    continue;
                };
                if feed.last == Some(quote) {
                    continue;
                }
                if feed.last.is_none_or(|last| last.bid != quote.bid) {
                    feed.bars.record(at, quote.bid);
                }
                feed.ticks.record(at, quote, feed.last);
                feed.last = Some(quote);
                feed.last_at = at;
                if let Some(queue) = &mut self.every_quote {
                    queue.extend(feed.unpublished());
                }
                on_tick(Tick {
                    symbol_id: feed.symbol.id,
                    at,
                    quote,
                });
            }
        }
    }

    /// Moves a symbol's synthetic path to `mid` (1/100000); false for unknown or replayed symbols.
    pub(crate) fn jump_to(&mut self, symbol_id: i64, mid: i64) -> bool {
        self.feeds
            .get_mut(&symbol_id)
            .is_some_and(|f| f.driver.jump_to(mid))
    }

    /// The latest quote of a symbol and when it was set.
    pub(crate) fn last_quote(&self, symbol_id: i64) -> Option<(TwoSided, Timestamp)> {
        self.feeds
            .get(&symbol_id)
            .and_then(|f| f.last.map(|q| (q, f.last_at)))
    }

    /// A symbol's bars.
    pub(crate) fn bars(&self, symbol_id: i64) -> Option<&BarSeries> {
        self.feeds.get(&symbol_id).map(|f| &f.bars)
    }

    /// A symbol's tick history; `None` for an unknown symbol.
    pub(crate) fn ticks(&self, symbol_id: i64) -> Option<&TickSeries> {
        self.feeds.get(&symbol_id).map(|f| &f.ticks)
    }

    /// The quote changes since the last call: every one in order when every quote is published,
    /// else one per symbol that moved.
    pub(crate) fn take_spot_updates(&mut self) -> Vec<SpotUpdate> {
        let mut updates = self
            .every_quote
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        // A quote set by hand (or every change, when only the latest is published).
        updates.extend(self.feeds.values_mut().filter_map(Feed::unpublished));
        updates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prices::SyntheticPath;
    use crate::symbols::{MarketHours, PALM_OIL_SYMBOL_ID, catalog};

    /// Monday 2025-11-24 02:00 UTC.
    const MONDAY_0200: Timestamp = Timestamp(1_763_949_600_000);

    fn market(hours: &MarketHours, seed: u64) -> Market {
        let symbols = catalog("PALMOIL", hours)
            .into_iter()
            .map(|s| {
                let driver = PriceDriver::Synthetic(SyntheticPath::new(
                    s.model.clone(),
                    seed,
                    s.id.unsigned_abs(),
                ));
                (s, driver)
            })
            .collect();
        Market::new(symbols, MONDAY_0200)
    }

    #[test]
    fn palm_oil_only_moves_in_session() {
        let mut market = market(&MarketHours::Realistic, 1);
        let mut palm_ticks = Vec::new();
        market.advance(MONDAY_0200.plus_millis(3 * 3_600_000), |t| {
            if t.symbol_id == PALM_OIL_SYMBOL_ID {
                palm_ticks.push(t.at);
            }
        });
        assert!(!palm_ticks.is_empty());
        let open = MONDAY_0200.plus_millis(30 * 60_000);
        let close = MONDAY_0200.plus_millis(150 * 60_000);
        assert!(
            palm_ticks.iter().all(|t| *t >= open && *t < close),
            "02:30-04:30 only"
        );
        assert_eq!(market.now(), MONDAY_0200.plus_millis(3 * 3_600_000));
        let bars = market.bars(PALM_OIL_SYMBOL_ID).unwrap();
        let m1 = crate::bars::BarPeriod::from_code(1).unwrap();
        let history = bars.history(m1, MONDAY_0200, market.now());
        assert!(
            history.len() > 60 && history.len() <= 120,
            "{} bars",
            history.len()
        );
    }

    #[test]
    fn same_seed_same_market_and_spots_carry_changed_sides() {
        let mut a = market(&MarketHours::AlwaysOpen, 9);
        let mut b = market(&MarketHours::AlwaysOpen, 9);
        let mut ticks_a = Vec::new();
        let mut ticks_b = Vec::new();
        a.advance(MONDAY_0200.plus_millis(600_000), |t| ticks_a.push(t));
        b.advance(MONDAY_0200.plus_millis(600_000), |t| ticks_b.push(t));
        assert_eq!(ticks_a, ticks_b);
        let first = a.take_spot_updates();
        assert_eq!(first.len(), 5, "every symbol has a first quote");
        assert!(first.iter().all(|u| u.bid.is_some() && u.ask.is_some()));
        assert!(a.take_spot_updates().is_empty(), "nothing new");
        let mut one_sided = 0;
        for _ in 0..600 {
            let to = a.now().plus_millis(1000);
            a.advance(to, |_| {});
            for u in a.take_spot_updates() {
                assert!(u.bid.is_some() || u.ask.is_some());
                one_sided += usize::from(u.bid.is_none() || u.ask.is_none());
            }
        }
        assert!(one_sided > 0, "some spots carry only one side");
    }

    #[test]
    fn every_quote_is_published_in_order_at_the_configured_step() {
        let step_ms = 250;
        let symbols = catalog("PALMOIL", &MarketHours::AlwaysOpen)
            .into_iter()
            .map(|s| {
                let path = SyntheticPath::new(s.model.clone(), 5, s.id.unsigned_abs())
                    .with_step(step_ms as f64 / 1000.0);
                (s, PriceDriver::Synthetic(path))
            })
            .collect();
        let mut market = Market::new(symbols, MONDAY_0200).with_step(step_ms);
        market.take_spot_updates();
        market.publish_every_quote();
        let mut ticks = Vec::new();
        market.advance(MONDAY_0200.plus_millis(60_000), |t| ticks.push(t));
        assert!(ticks.iter().all(|t| t.at.millis() % step_ms == 0));
        let busiest = ticks
            .iter()
            .map(|t| t.symbol_id)
            .max_by_key(|id| ticks.iter().filter(|t| t.symbol_id == *id).count());
        let busy: Vec<Tick> = ticks
            .iter()
            .copied()
            .filter(|t| Some(t.symbol_id) == busiest)
            .collect();
        assert!(
            busy.len() > 60,
            "more than one quote a second: {}",
            busy.len()
        );
        let spots = market.take_spot_updates();
        assert_eq!(spots.len(), ticks.len(), "one spot per quote change");
        // Each spot carries the sides that changed since the one before: replaying them gives
        // every quote in order.
        let (mut bid, mut ask) = (None, None);
        let replayed: Vec<(Timestamp, i64, i64)> = spots
            .iter()
            .filter(|u| Some(u.symbol_id) == busiest)
            .map(|u| {
                bid = u.bid.or(bid);
                ask = u.ask.or(ask);
                (u.at, bid.unwrap(), ask.unwrap())
            })
            .collect();
        let expected: Vec<(Timestamp, i64, i64)> = busy
            .iter()
            .map(|t| (t.at, t.quote.bid, t.quote.ask))
            .collect();
        assert_eq!(replayed, expected);
        assert!(market.take_spot_updates().is_empty(), "nothing twice");
    }

    #[test]
    fn a_finer_step_keeps_the_daily_volatility() {
        // The same model stepped every 250 ms or every second moves about as much over a day.
        let model = catalog("PALMOIL", &MarketHours::AlwaysOpen)
            .into_iter()
            .find(|s| s.id == PALM_OIL_SYMBOL_ID)
            .unwrap()
            .model;
        let spread = |step_ms: i64, seed: u64| {
            let mut path =
                SyntheticPath::new(model.clone(), seed, 1).with_step(step_ms as f64 / 1000.0);
            let steps = 6 * 3_600_000 / step_ms;
            let (mut low, mut high) = (i64::MAX, i64::MIN);
            for _ in 0..steps {
                let q = path.step();
                low = low.min(q.bid);
                high = high.max(q.bid);
            }
            (high - low) as f64
        };
        let seeds = 1..=12;
        let coarse: f64 = seeds.clone().map(|s| spread(1000, s)).sum();
        let fine: f64 = seeds.map(|s| spread(250, s + 100)).sum();
        let ratio = fine / coarse;
        assert!((0.6..1.6).contains(&ratio), "range ratio {ratio}");
    }

    #[test]
    fn frozen_prices_stay_still_while_the_clock_runs_and_a_set_quote_holds() {
        let mut market = market(&MarketHours::AlwaysOpen, 3);
        market.advance(MONDAY_0200.plus_millis(60_000), |_| {});
        market.take_spot_updates();
        market.set_frozen(true);
        assert!(market.is_frozen());
        let held = market.last_quote(PALM_OIL_SYMBOL_ID).unwrap().0;
        let mut ticks = 0;
        market.advance(MONDAY_0200.plus_millis(660_000), |_| ticks += 1);
        assert_eq!(ticks, 0, "no path moves while frozen");
        assert_eq!(market.now(), MONDAY_0200.plus_millis(660_000));
        assert_eq!(market.last_quote(PALM_OIL_SYMBOL_ID).unwrap().0, held);
        assert!(market.take_spot_updates().is_empty());

        let set = TwoSided {
            bid: 400_000_000,
            ask: 400_200_000,
        };
        let tick = market.set_quote(PALM_OIL_SYMBOL_ID, set).unwrap();
        assert_eq!((tick.quote, tick.at), (set, market.now()));
        market.advance(MONDAY_0200.plus_millis(720_000), |_| {});
        assert_eq!(market.last_quote(PALM_OIL_SYMBOL_ID).unwrap().0, set);
        let spots = market.take_spot_updates();
        assert_eq!(spots.len(), 1);
        assert_eq!(spots[0].bid, Some(400_000_000));
        assert!(
            market
                .set_quote(PALM_OIL_SYMBOL_ID, TwoSided { bid: 5, ask: 4 })
                .is_none()
        );
        assert!(market.set_quote(999, set).is_none());

        market.set_frozen(false);
        let mut moved = 0;
        market.advance(MONDAY_0200.plus_millis(1_320_000), |t| {
            moved += usize::from(t.symbol_id == PALM_OIL_SYMBOL_ID)
        });
        assert!(moved > 0, "released prices move again");
        let after = market.last_quote(PALM_OIL_SYMBOL_ID).unwrap().0;
        assert!(
            (after.bid - set.bid).abs() < 10_000_000,
            "the path carried on from the set quote: {after:?}"
        );
    }
}

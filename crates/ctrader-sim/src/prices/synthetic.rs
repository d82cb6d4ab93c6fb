//! The deterministic synthetic price path: a mean-reverting log price with quiet and busy
//! stretches and occasional jumps, quoted on the symbol's price grid.

use crate::rng::SimRng;

/// How a symbol's synthetic price moves; all rates are per second of trading time.
#[derive(Debug, Clone)]
pub(crate) struct PathModel {
    /// The level prices revert to, in price units (e.g. 4000.0 MYR/t).
    pub(crate) mean: f64,
    /// Annualised volatility of quiet stretches (0.28 = 28 %).
    pub(crate) annual_volatility: f64,
    /// Trading seconds in a day, to turn annual volatility into a per-second one.
    pub(crate) trading_seconds_per_day: f64,
    /// Trading days for half of a deviation from the mean to decay.
    pub(crate) reversion_half_life_days: f64,
    /// Volatility of busy stretches relative to quiet ones.
    pub(crate) busy_multiplier: f64,
    /// Average length of quiet and busy stretches, in trading seconds.
    pub(crate) mean_quiet_seconds: f64,
    pub(crate) mean_busy_seconds: f64,
    /// Expected number of jumps per trading day, and their typical relative size.
    pub(crate) jumps_per_day: f64,
    pub(crate) jump_size: f64,
    /// Price grid step, in 1/100000.
    pub(crate) tick: i64,
    /// Spread in ticks during quiet and busy stretches.
    pub(crate) spread_quiet_ticks: i64,
    pub(crate) spread_busy_ticks: i64,
}

/// A bid and an ask, in 1/100000, both on the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TwoSided {
    /// Best bid.
    pub(crate) bid: i64,
    /// Best ask.
    pub(crate) ask: i64,
}

/// The state of one symbol's synthetic path.
#[derive(Debug, Clone)]
pub(crate) struct SyntheticPath {
    rng: SimRng,
    log_mean: f64,
    log_price: f64,
    sigma: f64,
    reversion: f64,
    busy: bool,
    /// A momentary one-tick widening on one side (-1 bid lower, +1 ask higher), as thin books do:
    /// it is why real spot events sometimes carry only a bid or only an ask.
    widening: i8,
    switch_to_busy: f64,
    switch_to_quiet: f64,
    jump_chance: f64,
    widen_chance: f64,
    model: PathModel,
}

impl SyntheticPath {
    /// A path for `model` drawn from `seed`; `stream` separates symbols sharing one seed.
    pub(crate) fn new(model: PathModel, seed: u64, stream: u64) -> SyntheticPath {
        let mut rng = SimRng::new(seed, stream);
        let per_day = model.trading_seconds_per_day.max(1.0);
        let sigma = model.annual_volatility / (252.0 * per_day).sqrt();
        let reversion =
            std::f64::consts::LN_2 / (model.reversion_half_life_days.max(0.01) * per_day);
        let log_mean = model.mean.max(f64::MIN_POSITIVE).ln();
        // Start somewhere near the mean, as a market usually is: within a few percent.
        let log_price = log_mean + 0.03 * rng.normal();
        SyntheticPath {
            rng,
            log_mean,
            log_price,
            sigma,
            reversion,
            busy: false,
            widening: 0,
            switch_to_busy: 1.0 / model.mean_quiet_seconds.max(1.0),
            switch_to_quiet: 1.0 / model.mean_busy_seconds.max(1.0),
            jump_chance: model.jumps_per_day / per_day,
            widen_chance: 0.05,
            model,
        }
    }

    /// The same path stepped every `seconds` of trading time instead of every second: each rate
    /// scaled to the step, so the path's volatility per day stays what the model says.
    pub(crate) fn with_step(mut self, seconds: f64) -> SyntheticPath {
        self.sigma *= seconds.sqrt();
        self.reversion *= seconds;
        self.switch_to_busy *= seconds;
        self.switch_to_quiet *= seconds;
        self.jump_chance *= seconds;
        self.widen_chance *= seconds;
        self
    }

    /// Moves the path by one step of trading time (a second unless [`SyntheticPath::with_step`]
    /// says otherwise) and returns the new quote.
    pub(crate) fn step(&mut self) -> TwoSided {
        let switch = if self.busy {
            self.switch_to_quiet
        } else {
            self.switch_to_busy
        };
        if self.rng.chance(switch) {
            self.busy = !self.busy;
        }
        let volatility = if self.busy {
            self.sigma * self.model.busy_multiplier
        } else {
            self.sigma
        };
        self.log_price +=
            self.reversion * (self.log_mean - self.log_price) + volatility * self.rng.normal();
        if self.rng.chance(self.jump_chance) {
            self.log_price += self.model.jump_size * self.rng.normal();
        }
        if self.rng.chance(self.widen_chance) {
            self.widening = match self.widening {
                0 if self.rng.chance(0.5) => -1,
                0 => 1,
                _ => 0,
            };
        }
        // Keep the path finite and positive whatever the parameters: within a factor of e^2 of the mean.
        self.log_price = self
            .log_price
            .clamp(self.log_mean - 2.0, self.log_mean + 2.0);
        self.quote()
    }

    /// The current quote, without moving the path.
    pub(crate) fn quote(&self) -> TwoSided {
        let spread_ticks = if self.busy {
            self.model.spread_busy_ticks
        } else {
            self.model.spread_quiet_ticks
        };
        let quote = quote_around(self.log_price.exp(), self.model.tick, spread_ticks);
        match self.widening {
            -1 if quote.bid > self.model.tick => TwoSided {
                bid: quote.bid - self.model.tick,
                ..quote
            },
            1 => TwoSided {
                ask: quote.ask + self.model.tick,
                ..quote
            },
            _ => quote,
        }
    }

    /// Moves the path to `mid` (price units) at once, as a news shock would; it carries on from there.
    pub(crate) fn jump_to(&mut self, mid: f64) {
        if mid.is_finite() && mid > 0.0 {
            self.log_price = mid.ln().clamp(self.log_mean - 2.0, self.log_mean + 2.0);
        }
    }

    /// True during a busy (high-volatility) stretch.
    #[cfg(test)]
    pub(crate) fn is_busy(&self) -> bool {
        self.busy
    }
}

/// A two-sided quote on a `tick` grid whose midpoint is as close to `mid` (price units) as the grid allows.
pub(crate) fn quote_around(mid: f64, tick: i64, spread_ticks: i64) -> TwoSided {
    let tick = tick.max(1);
    let spread_ticks = spread_ticks.max(1);
    let scaled = mid * 100_000.0;
    // Bounded: callers keep `mid` within a small factor of a realistic price level.
    #[allow(clippy::cast_possible_truncation)]
    let mid_units = if scaled.is_finite() {
        scaled.round().clamp(0.0, 1.0e15) as i64
    } else {
        0
    };
    let half_below = spread_ticks / 2;
    let bid_ticks = (mid_units + tick / 2) / tick - half_below;
    let bid = bid_ticks.max(1) * tick;
    TwoSided {
        bid,
        ask: bid + spread_ticks * tick,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::{MarketHours, PALM_OIL_SYMBOL_ID, catalog};

    fn palm_model() -> PathModel {
        catalog("PALMOIL", &MarketHours::Realistic)
            .into_iter()
            .find(|s| s.id == PALM_OIL_SYMBOL_ID)
            .unwrap()
            .model
    }

    #[test]
    fn same_seed_gives_the_same_path() {
        let mut a = SyntheticPath::new(palm_model(), 99, 310);
        let mut b = SyntheticPath::new(palm_model(), 99, 310);
        let mut c = SyntheticPath::new(palm_model(), 100, 310);
        let pa: Vec<TwoSided> = (0..1000).map(|_| a.step()).collect();
        let pb: Vec<TwoSided> = (0..1000).map(|_| b.step()).collect();
        let pc: Vec<TwoSided> = (0..1000).map(|_| c.step()).collect();
        assert_eq!(pa, pb);
        assert_ne!(pa, pc);
    }

    #[test]
    fn palm_oil_path_is_realistic() {
        let model = palm_model();
        let seconds_per_day = 30_600_usize;
        let mut path = SyntheticPath::new(model, 7, 310);
        let mut closes = Vec::new();
        let mut busy_seconds = 0_usize;
        let mut min = i64::MAX;
        let mut max = i64::MIN;
        // Two trading months, one second at a time.
        for _ in 0..42 {
            for _ in 0..seconds_per_day {
                let q = path.step();
                assert_eq!(q.bid % 100_000, 0, "bid on the RM1 grid");
                assert_eq!(q.ask % 100_000, 0, "ask on the RM1 grid");
                assert!(q.ask > q.bid);
                assert!(q.ask - q.bid <= 400_000, "spread at most 4 ticks");
                min = min.min(q.bid);
                max = max.max(q.bid);
                busy_seconds += usize::from(path.is_busy());
            }
            closes.push(path.quote().bid);
        }
        // Stays in a realistic band around 4,000 MYR/t.
        assert!(min > 300_000_000 && max < 520_000_000, "range {min}..{max}");
        // Daily log returns: a standard deviation between 1 % and 3.5 % (palm oil is ~1.5-2 %).
        let returns: Vec<f64> = closes
            .windows(2)
            .map(|w| (w[1] as f64 / w[0] as f64).ln())
            .collect();
        let n = returns.len() as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let sd = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!((0.01..0.035).contains(&sd), "daily volatility {sd}");
        // Both quiet and busy stretches happen, quiet ones dominating.
        let total = 42 * seconds_per_day;
        assert!(
            busy_seconds > total / 20 && busy_seconds < total / 2,
            "busy {busy_seconds}/{total}"
        );
    }

    #[test]
    fn quote_is_on_grid_and_never_crossed() {
        let q = quote_around(4123.4, 100_000, 2);
        assert_eq!(
            q,
            TwoSided {
                bid: 412_200_000,
                ask: 412_400_000
            }
        );
        let q = quote_around(1.085_04, 1, 8);
        assert_eq!(q.ask - q.bid, 8);
        let q = quote_around(f64::NAN, 1_000, 3);
        assert!(q.bid > 0 && q.ask > q.bid);
    }
}

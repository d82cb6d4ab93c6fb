//! Wilder's relative strength index, updated in O(1) per close, as TA-Lib computes it.

use domain::Price;

use crate::ConfigError;

/// The RSI of a series that neither rose nor fell over the averaging window.
///
/// TA-Lib returns 0 there (its `gain + loss == 0` branch), which would read as "extremely
/// oversold" and make a mean-reversion strategy buy a halted market. A series with no movement
/// has no momentum either way, so we return the neutral 50: neither oversold nor overbought
/// levels can be crossed by a flat market.
pub const FLAT_RSI: f64 = 50.0;

/// Incremental Wilder RSI over closes.
///
/// Seeding follows TA-Lib: the first value appears at the `period + 1`-th close (index `period`)
/// and is built from the simple mean of the first `period` gains and losses; afterwards each
/// average moves as `avg = (avg * (period - 1) + x) / period`. A window with losses but no gains
/// gives 0, one with gains but no losses gives 100, and one with neither gives [`FLAT_RSI`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rsi {
    period: u32,
    prev_close: Option<Price>,
    /// Number of price changes seen (closes minus one), capped once seeded.
    changes: u32,
    avg_gain: f64,
    avg_loss: f64,
    value: Option<f64>,
}

impl Rsi {
    /// An RSI over `period` changes (14 is Wilder's); the period must be at least 2.
    pub fn new(period: u32) -> Result<Rsi, ConfigError> {
        if period < 2 {
            return Err(ConfigError::invalid(
                "rsi period",
                period,
                "must be at least 2",
            ));
        }
        Ok(Rsi {
            period,
            prev_close: None,
            changes: 0,
            avg_gain: 0.0,
            avg_loss: 0.0,
            value: None,
        })
    }

    /// The averaging period.
    pub const fn period(&self) -> u32 {
        self.period
    }

    /// How many closes are needed before the first value (`period + 1`).
    pub const fn closes_needed(&self) -> u32 {
        self.period + 1
    }

    /// How many closes have been seen, counting up to [`Rsi::closes_needed`].
    pub fn closes_seen(&self) -> u32 {
        if self.prev_close.is_none() {
            0
        } else {
            self.changes + 1
        }
    }

    /// The latest value, once warmed up.
    pub const fn value(&self) -> Option<f64> {
        self.value
    }

    /// Feeds the next close and returns the RSI after it (None while warming up).
    pub fn update(&mut self, close: Price) -> Option<f64> {
        let prev = self.prev_close.replace(close)?;
        // The difference of two prices is exact in i128 and in f64 (prices are far below 2^53).
        let change = i128::from(close.raw()) - i128::from(prev.raw());
        #[allow(clippy::cast_precision_loss)] // |change| < 2^64, statistics only
        let (gain, loss) = if change > 0 {
            (change as f64, 0.0)
        } else {
            (0.0, (-change) as f64)
        };
        let period = f64::from(self.period);
        if self.changes < self.period {
            // Seeding: accumulate sums, divide once the window is full.
            self.avg_gain += gain;
            self.avg_loss += loss;
            self.changes += 1;
            if self.changes < self.period {
                return None;
            }
            self.avg_gain /= period;
            self.avg_loss /= period;
        } else {
            self.avg_gain = (self.avg_gain * (period - 1.0) + gain) / period;
            self.avg_loss = (self.avg_loss * (period - 1.0) + loss) / period;
        }
        let total = self.avg_gain + self.avg_loss;
        let value = if total > 0.0 {
            // The ratio first: exactly 1 (or 0) when one average is zero.
            100.0 * (self.avg_gain / total)
        } else {
            FLAT_RSI
        };
        self.value = Some(value);
        Some(value)
    }
}

/// One RSI value (or `None` while warming up) per close of a bar series, computed once so that
/// every strategy with this period run over the same bars can share it (see
/// [`crate::RsiSentimentStrategy::with_shared_rsi`]).
#[derive(Debug, Clone)]
pub struct RsiSeries {
    period: u32,
    closes: std::sync::Arc<[Price]>,
    values: std::sync::Arc<[Option<f64>]>,
}

impl RsiSeries {
    /// Feeds `closes` to a fresh [`Rsi`] of `period` and keeps every value.
    pub fn compute(period: u32, closes: std::sync::Arc<[Price]>) -> Result<RsiSeries, ConfigError> {
        let mut rsi = Rsi::new(period)?;
        let values = closes.iter().map(|&c| rsi.update(c)).collect();
        Ok(RsiSeries {
            period,
            closes,
            values,
        })
    }

    /// The averaging period.
    pub const fn period(&self) -> u32 {
        self.period
    }

    /// The close at `index` and the RSI after it.
    pub(crate) fn at(&self, index: usize) -> Option<(Price, Option<f64>)> {
        Some((*self.closes.get(index)?, *self.values.get(index)?))
    }

    /// A live [`Rsi`] that has seen the first `seen` closes, as if fed one by one.
    pub(crate) fn live_after(&self, seen: usize) -> Result<Rsi, ConfigError> {
        let mut rsi = Rsi::new(self.period)?;
        for &close in self.closes.iter().take(seen) {
            rsi.update(close);
        }
        Ok(rsi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(x: f64) -> Price {
        Price::from_f64(x).unwrap()
    }

    /// Wilder's worked example as StockCharts' ChartSchool publishes it (closes to 4 decimals).
    const CLOSES: [f64; 33] = [
        44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826,
        45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439,
        46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288, 44.1783, 44.2181, 44.5672,
        43.4205, 42.6628, 43.1314,
    ];
    /// The RSI(14) column of that table, from index 14 on.
    const PUBLISHED: [f64; 19] = [
        70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42, 39.99,
        41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
    ];

    #[test]
    fn matches_the_stockcharts_table() {
        let mut rsi = Rsi::new(14).unwrap();
        let out: Vec<Option<f64>> = CLOSES.iter().map(|&c| rsi.update(price(c))).collect();
        assert!(out[..14].iter().all(Option::is_none), "{out:?}");
        for (i, want) in PUBLISHED.iter().enumerate() {
            let got = out[14 + i].unwrap();
            assert!(
                (got - want).abs() < 0.005,
                "index {}: got {got}, want {want}",
                14 + i
            );
        }
        assert_eq!(rsi.value(), out[32]);
    }

    #[test]
    fn first_value_is_the_simple_mean_seed() {
        // Period 2: changes +2, -1 -> avg gain 1, avg loss 0.5 -> 100 * 1 / 1.5.
        let mut rsi = Rsi::new(2).unwrap();
        assert_eq!(rsi.update(price(10.0)), None);
        assert_eq!(rsi.update(price(12.0)), None);
        assert_eq!(rsi.closes_seen(), 2);
        let first = rsi.update(price(11.0)).unwrap();
        assert!((first - 200.0 / 3.0).abs() < 1e-9, "{first}");
        // Then Wilder smoothing: change +3 -> gain (1*1+3)/2 = 2, loss (0.5*1+0)/2 = 0.25.
        let next = rsi.update(price(14.0)).unwrap();
        assert!((next - 100.0 * 2.0 / 2.25).abs() < 1e-9, "{next}");
    }

    #[test]
    fn all_gains_is_100_and_all_losses_is_0() {
        let mut up = Rsi::new(14).unwrap();
        let mut down = Rsi::new(14).unwrap();
        for i in 0..40 {
            let u = up.update(Price(100_000 + i * 1_000));
            let d = down.update(Price(900_000 - i * 1_000));
            if i >= 14 {
                assert_eq!(u, Some(100.0));
                assert_eq!(d, Some(0.0));
            }
        }
    }

    #[test]
    fn flat_series_is_neutral_and_recovers_on_the_first_move() {
        let mut rsi = Rsi::new(3).unwrap();
        for _ in 0..4 {
            rsi.update(Price(500_000));
        }
        assert_eq!(rsi.value(), Some(FLAT_RSI));
        // One rise after a flat window: the loss average stays 0, so the RSI jumps to 100.
        assert_eq!(rsi.update(Price(500_001)), Some(100.0));
        // And one fall of the same size: both averages are non-zero now.
        let v = rsi.update(Price(500_000)).unwrap();
        // avg gain = (1/3 * 2 + 0) / 3 = 2/9, avg loss = (0 * 2 + 1) / 3 = 1/3 -> 100 * (2/9) / (5/9) = 40.
        assert!((v - 40.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn refuses_a_period_below_two() {
        assert!(Rsi::new(1).is_err());
        assert!(Rsi::new(0).is_err());
        assert_eq!(Rsi::new(14).unwrap().closes_needed(), 15);
    }
}

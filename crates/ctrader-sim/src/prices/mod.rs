//! Where the simulated prices come from: a seeded synthetic path or a replayed OHLC file.

mod replay;
mod synthetic;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use domain::Timestamp;

#[cfg(test)]
pub(crate) use replay::OhlcBar;
pub(crate) use replay::{ReplayPath, load_ohlc_csv};
pub(crate) use synthetic::{PathModel, SyntheticPath, TwoSided, quote_around};

/// The palm oil price source, as `--prices synthetic|FILE.csv` chooses it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PriceSource {
    /// The deterministic synthetic path drawn from the configured seed.
    #[default]
    Synthetic,
    /// A replay of an OHLC CSV file (`time,open,high,low,close`); the simulated clock starts at its
    /// first bar and prices stay at the last close once the file ends.
    Csv(PathBuf),
}

impl FromStr for PriceSource {
    type Err = std::convert::Infallible;
    /// `synthetic` (any case) or a path to a CSV file.
    fn from_str(s: &str) -> Result<PriceSource, Self::Err> {
        if s.trim().eq_ignore_ascii_case("synthetic") {
            Ok(PriceSource::Synthetic)
        } else {
            Ok(PriceSource::Csv(PathBuf::from(s)))
        }
    }
}

impl fmt::Display for PriceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceSource::Synthetic => f.write_str("synthetic"),
            PriceSource::Csv(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One symbol's price generator.
#[derive(Debug, Clone)]
pub(crate) enum PriceDriver {
    /// Seeded random walk.
    Synthetic(SyntheticPath),
    /// File replay, quoted with a fixed spread.
    Replay {
        /// The waypoints.
        path: ReplayPath,
        /// Grid step (1/100000).
        tick: i64,
        /// Spread in ticks.
        spread_ticks: i64,
    },
}

impl PriceDriver {
    /// Moves a synthetic path to `mid` (1/100000); a replay follows its file and refuses.
    pub(crate) fn jump_to(&mut self, mid: i64) -> bool {
        match self {
            PriceDriver::Synthetic(path) => {
                #[allow(clippy::cast_precision_loss)] // prices are far below 2^53
                path.jump_to(mid as f64 / 100_000.0);
                true
            }
            PriceDriver::Replay { .. } => false,
        }
    }

    /// The price before any step: where a synthetic path starts (a broker always knows a last
    /// price, even for a market closed since before the history); `None` for a replay.
    pub(crate) fn opening_quote(&self) -> Option<TwoSided> {
        match self {
            PriceDriver::Synthetic(path) => Some(path.quote()),
            PriceDriver::Replay { .. } => None,
        }
    }

    /// Advances one step of trading time ending at `at`; `None` when there is no price yet.
    pub(crate) fn step(&mut self, at: Timestamp) -> Option<TwoSided> {
        match self {
            PriceDriver::Synthetic(path) => Some(path.step()),
            PriceDriver::Replay {
                path,
                tick,
                spread_ticks,
            } => {
                let price = path.price_at(at)?;
                // The file's price is the mid; the grid keeps the quote tradeable.
                #[allow(clippy::cast_precision_loss)] // prices are far below 2^53
                let mid = price as f64 / 100_000.0;
                Some(quote_around(mid, *tick, *spread_ticks))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_source_parses_like_the_flag() {
        assert_eq!(
            "synthetic".parse::<PriceSource>().unwrap(),
            PriceSource::Synthetic
        );
        assert_eq!(
            "Synthetic".parse::<PriceSource>().unwrap(),
            PriceSource::Synthetic
        );
        assert_eq!(
            "data/fcpo.csv".parse::<PriceSource>().unwrap(),
            PriceSource::Csv(PathBuf::from("data/fcpo.csv"))
        );
        assert_eq!(
            PriceSource::Csv(PathBuf::from("a.csv")).to_string(),
            "a.csv"
        );
    }

    #[test]
    fn replay_driver_quotes_on_the_grid() {
        let bars = [OhlcBar {
            time: Timestamp(60_000),
            open: 412_340_000,
            high: 412_340_000,
            low: 412_340_000,
            close: 412_340_000,
        }];
        let mut driver = PriceDriver::Replay {
            path: ReplayPath::new(&bars),
            tick: 100_000,
            spread_ticks: 2,
        };
        assert_eq!(driver.step(Timestamp(0)), None);
        let q = driver.step(Timestamp(60_000)).unwrap();
        assert_eq!((q.bid, q.ask), (412_200_000, 412_400_000));
    }
}

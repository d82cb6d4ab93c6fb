//! Turning an amount in a symbol's quote currency into the account's deposit currency, the way
//! `ProtoOASymbolsForConversionRes` describes it: a chain of symbols whose live quotes give the rate.
//!
//! The convention, shared with the bot's client so both compute the same number: walk the chain from
//! the first asset; at each symbol take its **mid** price `(bid + ask) / 2`; when the asset in hand is
//! the symbol's base, multiply by the mid (and hold its quote asset next); when it is the symbol's
//! quote, divide by the mid (and hold its base next). So MYR → USD through USDMYR is `amount / mid`,
//! USD → MYR through USDMYR is `amount × mid`, and a symbol already quoted in the deposit currency
//! converts at exactly 1. The rate is kept as an exact fraction of integer prices and rounded once,
//! where money is finally computed.

use std::collections::{BTreeMap, VecDeque};

use crate::prices::TwoSided;
use crate::symbols::SimSymbol;

/// `2 × mid` of a 1/100000 quote divided by this is the mid in price units.
const TWICE_PRICE_SCALE: i128 = 200_000;

/// A conversion rate as an exact fraction: deposit amount = quote amount × `num` / `den` (`den > 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    /// Numerator.
    pub(crate) num: i128,
    /// Denominator, positive.
    pub(crate) den: i128,
}

impl Rate {
    /// No conversion: the symbol is quoted in the deposit currency.
    pub(crate) const ONE: Rate = Rate { num: 1, den: 1 };

    /// This rate times the mid of `quote` (the asset in hand is the symbol's base).
    fn times_mid(self, quote: TwoSided) -> Rate {
        let twice_mid = i128::from(quote.bid) + i128::from(quote.ask);
        Rate::reduced(
            self.num.saturating_mul(twice_mid),
            self.den.saturating_mul(TWICE_PRICE_SCALE),
        )
    }

    /// This rate divided by the mid of `quote` (the asset in hand is the symbol's quote).
    fn over_mid(self, quote: TwoSided) -> Rate {
        let twice_mid = i128::from(quote.bid) + i128::from(quote.ask);
        Rate::reduced(
            self.num.saturating_mul(TWICE_PRICE_SCALE),
            self.den.saturating_mul(twice_mid),
        )
    }

    /// The fraction in lowest terms, so chained rates stay far from overflow.
    fn reduced(num: i128, den: i128) -> Rate {
        let divisor = gcd(num, den).max(1);
        Rate {
            num: num / divisor,
            den: den / divisor,
        }
    }

    /// The rate as the protocol's double (`quoteToDepositConversionRate`); for people, not money.
    #[allow(clippy::cast_precision_loss)] // a display value; money uses the exact fraction
    pub(crate) fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

fn gcd(a: i128, b: i128) -> i128 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    i128::try_from(a).unwrap_or(1)
}

/// Why no conversion chain can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChainError {
    /// No asset has this id.
    UnknownAsset(i64),
    /// Both assets exist, but no run of symbols links them.
    NoPath {
        /// Where the chain should start.
        from: i64,
        /// Where it should end.
        to: i64,
    },
}

/// The shortest run of symbols leading from asset `from` to asset `to` (empty when they are the same
/// asset), preferring lower symbol ids when several are as short. `known_assets` tells which ids exist.
pub(crate) fn chain<'a>(
    symbols: &'a BTreeMap<i64, SimSymbol>,
    known_assets: &[i64],
    from: i64,
    to: i64,
) -> Result<Vec<&'a SimSymbol>, ChainError> {
    for asset in [from, to] {
        if !known_assets.contains(&asset) {
            return Err(ChainError::UnknownAsset(asset));
        }
    }
    if from == to {
        return Ok(Vec::new());
    }
    // Breadth first over assets; each symbol links its base and its quote.
    let mut reached_by: BTreeMap<i64, Option<(i64, i64)>> = BTreeMap::new();
    reached_by.insert(from, None);
    let mut queue = VecDeque::from([from]);
    while let Some(asset) = queue.pop_front() {
        for symbol in symbols.values() {
            let next = if symbol.base_asset_id == asset {
                symbol.quote_asset_id
            } else if symbol.quote_asset_id == asset {
                symbol.base_asset_id
            } else {
                continue;
            };
            if reached_by.contains_key(&next) {
                continue;
            }
            reached_by.insert(next, Some((asset, symbol.id)));
            if next == to {
                let mut path = Vec::new();
                let mut at = to;
                while let Some(Some((previous, symbol_id))) = reached_by.get(&at) {
                    if let Some(symbol) = symbols.get(symbol_id) {
                        path.push(symbol);
                    }
                    at = *previous;
                }
                path.reverse();
                return Ok(path);
            }
            queue.push_back(next);
        }
    }
    Err(ChainError::NoPath { from, to })
}

/// The rate from asset `from` along `chain`, at the symbols' latest quotes; `None` when a chain
/// symbol has no quote yet or does not connect to the asset in hand.
pub(crate) fn rate_along(
    from: i64,
    chain: &[&SimSymbol],
    quote_of: impl Fn(i64) -> Option<TwoSided>,
) -> Option<Rate> {
    let mut rate = Rate::ONE;
    let mut holding = from;
    for symbol in chain {
        let quote = quote_of(symbol.id)?;
        if quote.bid + quote.ask <= 0 {
            return None;
        }
        if symbol.base_asset_id == holding {
            rate = rate.times_mid(quote);
            holding = symbol.quote_asset_id;
        } else if symbol.quote_asset_id == holding {
            rate = rate.over_mid(quote);
            holding = symbol.base_asset_id;
        } else {
            return None;
        }
    }
    Some(rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::{
        EUR_ASSET_ID, MYR_ASSET_ID, MarketHours, PALM_OIL_SYMBOL_ID, USD_ASSET_ID,
        USD_MYR_SYMBOL_ID, XAU_ASSET_ID, assets, catalog,
    };

    fn book() -> (BTreeMap<i64, SimSymbol>, Vec<i64>) {
        let symbols = catalog("PALMOIL", &MarketHours::AlwaysOpen)
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        (symbols, assets().iter().map(|a| a.id).collect())
    }

    fn ids(chain: &[&SimSymbol]) -> Vec<i64> {
        chain.iter().map(|s| s.id).collect()
    }

    #[test]
    fn chains_follow_the_symbols() {
        let (symbols, known) = book();
        let myr_usd = chain(&symbols, &known, MYR_ASSET_ID, USD_ASSET_ID).unwrap();
        assert_eq!(ids(&myr_usd), vec![USD_MYR_SYMBOL_ID]);
        let usd_myr = chain(&symbols, &known, USD_ASSET_ID, MYR_ASSET_ID).unwrap();
        assert_eq!(ids(&usd_myr), vec![USD_MYR_SYMBOL_ID]);
        assert!(
            chain(&symbols, &known, USD_ASSET_ID, USD_ASSET_ID)
                .unwrap()
                .is_empty()
        );
        let gold_myr = chain(&symbols, &known, XAU_ASSET_ID, MYR_ASSET_ID).unwrap();
        assert_eq!(ids(&gold_myr), vec![41, USD_MYR_SYMBOL_ID]);
        assert_eq!(
            chain(&symbols, &known, 999, USD_ASSET_ID).unwrap_err(),
            ChainError::UnknownAsset(999)
        );
        assert_eq!(
            chain(&symbols, &known, USD_ASSET_ID, -1).unwrap_err(),
            ChainError::UnknownAsset(-1)
        );
        assert!(symbols.contains_key(&PALM_OIL_SYMBOL_ID));
    }

    #[test]
    fn rates_use_the_mid_dividing_from_the_quote_and_multiplying_from_the_base() {
        let (symbols, known) = book();
        let usdmyr = TwoSided {
            bid: 446_900,
            ask: 447_100,
        };
        let eurusd = TwoSided {
            bid: 108_500,
            ask: 108_510,
        };
        let quote_of = |id: i64| match id {
            USD_MYR_SYMBOL_ID => Some(usdmyr),
            1 => Some(eurusd),
            _ => None,
        };
        let myr_usd = chain(&symbols, &known, MYR_ASSET_ID, USD_ASSET_ID).unwrap();
        let rate = rate_along(MYR_ASSET_ID, &myr_usd, quote_of).unwrap();
        // 1 / 4.47
        assert_eq!(rate.num * 447_000, rate.den * 100_000);
        assert!((rate.to_f64() - 1.0 / 4.47).abs() < 1e-12);
        let usd_myr = rate_along(USD_ASSET_ID, &myr_usd, quote_of).unwrap();
        assert!((usd_myr.to_f64() - 4.47).abs() < 1e-12);
        // EUR → MYR: × EURUSD mid × USDMYR mid.
        let eur_myr = chain(&symbols, &known, EUR_ASSET_ID, MYR_ASSET_ID).unwrap();
        let rate = rate_along(EUR_ASSET_ID, &eur_myr, quote_of).unwrap();
        assert!((rate.to_f64() - 1.08505 * 4.47).abs() < 1e-9);
        // No quote, no rate.
        let gold = chain(&symbols, &known, XAU_ASSET_ID, USD_ASSET_ID).unwrap();
        assert_eq!(rate_along(XAU_ASSET_ID, &gold, quote_of), None);
        assert_eq!(rate_along(USD_ASSET_ID, &[], quote_of), Some(Rate::ONE));
    }
}

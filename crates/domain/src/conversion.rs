//! Money in the account's deposit currency: the account's currency, the broker's conversion chain
//! from a symbol's quote currency to it, the exact rate that chain gives at a set of quotes, and the
//! one function for each PnL figure the bot acts on.
//!
//! Convention (shared with the simulator): each chain symbol converts at its MID price; a step whose
//! base asset is the one held multiplies by the mid, a step whose quote asset is held divides by it.
//! Amounts round half away from zero to the account's money digits, as cTrader's do.

use std::fmt;

use crate::{DealCloseDetail, Money, Price, Quote, Side, SymbolId, Volume};

/// The account's deposit currency as the broker names it (`ProtoOATrader.depositAssetId`, the
/// asset list's name) and the precision of its money (`moneyDigits`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountCurrency {
    /// The broker's asset id of the deposit currency.
    pub asset_id: i64,
    /// Its name, e.g. `USD`.
    pub code: String,
    /// Decimal digits of the account's money amounts.
    pub money_digits: u8,
}

impl fmt::Display for AccountCurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)
    }
}

/// One symbol of a conversion chain, and which way it converts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversionStep {
    /// The symbol whose quotes give this step's rate.
    pub symbol: SymbolId,
    /// Its name, for logs (e.g. `USDMYR`).
    pub name: String,
    /// True when the asset held before this step is the symbol's base (multiply by the price);
    /// false when it is the quote (divide by the price).
    pub multiply: bool,
}

/// How an amount in a symbol's quote currency becomes deposit currency: the broker's chain of
/// symbols (`ProtoOASymbolsForConversionRes`), empty when the two currencies are the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ConversionChain {
    /// The quote currency's name (e.g. `MYR`).
    pub quote_currency: String,
    /// The steps, in order; empty for a symbol quoted in the deposit currency.
    pub steps: Vec<ConversionStep>,
}

impl ConversionChain {
    /// A chain for a symbol quoted in the deposit currency itself.
    pub fn same_currency(code: impl Into<String>) -> ConversionChain {
        ConversionChain {
            quote_currency: code.into(),
            steps: Vec::new(),
        }
    }

    /// The symbols whose quotes the rate needs.
    pub fn symbols(&self) -> impl Iterator<Item = SymbolId> + '_ {
        self.steps.iter().map(|s| s.symbol)
    }

    /// The rate at the given quotes (one per step's symbol); `None` while a step has no quote or
    /// a quote has no positive bid and ask.
    pub fn rate(&self, quote_of: impl Fn(SymbolId) -> Option<Quote>) -> Option<ConversionRate> {
        let mut rate = ConversionRate::IDENTITY;
        for step in &self.steps {
            let q = quote_of(step.symbol)?;
            if q.bid.raw() <= 0 || q.ask.raw() <= 0 {
                return None;
            }
            // mid = (bid + ask) / 2 / 10^5, kept exact as a fraction.
            let twice_mid = i128::from(q.bid.raw()) + i128::from(q.ask.raw());
            let scale = 2 * i128::from(crate::PRICE_SCALE);
            rate = if step.multiply {
                rate.times(twice_mid, scale)?
            } else {
                rate.times(scale, twice_mid)?
            };
        }
        Some(rate)
    }
}

/// Units of deposit currency per unit of quote currency, as an exact positive fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConversionRate {
    numerator: i128,
    denominator: i128,
}

impl ConversionRate {
    /// One to one: the symbol is quoted in the deposit currency.
    pub const IDENTITY: ConversionRate = ConversionRate {
        numerator: 1,
        denominator: 1,
    };

    /// A rate given as a price (1/100000 units), e.g. `Price(22_400)` for 0.224; `None` unless positive.
    pub fn from_price(rate: Price) -> Option<ConversionRate> {
        (rate.raw() > 0)
            .then(|| ConversionRate {
                numerator: i128::from(rate.raw()),
                denominator: i128::from(crate::PRICE_SCALE),
            })
            .map(ConversionRate::reduced)
    }

    /// Parses a positive decimal rate such as `0.2222` or `4.47` (at most 12 decimals).
    pub fn parse(text: &str) -> Result<ConversionRate, String> {
        let t = text.trim();
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits_only = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() && frac.is_empty() || !digits_only(whole) || !digits_only(frac) {
            return Err(format!("{text:?} is not a positive decimal number"));
        }
        if frac.len() > 12 || whole.len() > 12 {
            return Err(format!(
                "{text:?} has more than 12 digits before or after the point"
            ));
        }
        let numerator: i128 = format!("{whole}{frac}")
            .parse()
            .map_err(|_| format!("{text:?} is not a positive decimal number"))?;
        if numerator <= 0 {
            return Err(format!("{text:?} is not positive"));
        }
        // frac.len() <= 12
        let denominator = 10_i128.pow(u32::try_from(frac.len()).unwrap_or(12));
        Ok(ConversionRate {
            numerator,
            denominator,
        }
        .reduced())
    }

    /// `self × n / d`, reduced; `None` on overflow or a non-positive factor.
    fn times(self, n: i128, d: i128) -> Option<ConversionRate> {
        if n <= 0 || d <= 0 {
            return None;
        }
        let a = ConversionRate {
            numerator: self.numerator.checked_mul(n)?,
            denominator: self.denominator.checked_mul(d)?,
        };
        Some(a.reduced())
    }

    fn reduced(self) -> ConversionRate {
        let g = gcd(self.numerator, self.denominator).max(1);
        ConversionRate {
            numerator: self.numerator / g,
            denominator: self.denominator / g,
        }
    }

    /// Converts an amount of quote currency in 1/10^7 units (price 1e-5 × volume 1e-2) into deposit
    /// money at `digits`, rounding half away from zero; `None` on overflow.
    pub fn convert_e7(self, quote_e7: i128, digits: u8) -> Option<Money> {
        let minor = self.convert_e7_minor(quote_e7, digits)?;
        Some(Money::new(i64::try_from(minor).ok()?, digits))
    }

    /// Like [`ConversionRate::convert_e7`], as minor units in an `i128` (for ledgers that sum first).
    pub fn convert_e7_minor(self, quote_e7: i128, digits: u8) -> Option<i128> {
        let scale = 10_i128.checked_pow(u32::from(digits))?;
        let n = quote_e7.checked_mul(self.numerator)?.checked_mul(scale)?;
        let d = self.denominator.checked_mul(10_000_000)?;
        Some(div_round(n, d))
    }

    /// Converts deposit money into quote currency in 1/10^7 units, rounding toward zero.
    pub fn to_quote_e7(self, money: Money) -> Option<i128> {
        let scale = 10_i128.checked_pow(u32::from(money.digits))?;
        i128::from(money.minor)
            .checked_mul(self.denominator)?
            .checked_mul(10_000_000)?
            .checked_div(self.numerator.checked_mul(scale)?)
    }

    /// The rate as a float, for display and metrics only.
    #[allow(clippy::cast_precision_loss)] // display only
    pub fn to_f64(self) -> f64 {
        self.numerator as f64 / self.denominator as f64
    }
}

impl fmt::Display for ConversionRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}", self.to_f64())
    }
}

/// Commission charged on each side of a trade as a share of its notional value: millionths with 8
/// more decimals (cTrader's `preciseTradingCommissionRate` for `USD_PER_MILLION_USD`; exact for a
/// USD account, an estimate in the deposit currency otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotionalCommission(pub i64);

impl NotionalCommission {
    /// The price distance a round trip's commission costs at about `price` (entry and exit each
    /// pay it; rounded up, so sizing never understates it).
    pub fn round_trip_distance(self, price: Price) -> Option<Price> {
        let n = i128::from(price.raw())
            .checked_mul(i128::from(self.0.max(0)))?
            .checked_mul(2)?;
        let d: i128 = 100_000_000_000_000; // 10^6 (per million) × 10^8 (precision)
        Some(Price(i64::try_from((n + d - 1) / d).ok()?))
    }
}

/// The value of moving `volume` from `entry` to `exit` on `side`, in quote currency, 1/10^7 units.
pub fn price_move_e7(side: Side, entry: Price, exit: Price, volume: Volume) -> Option<i128> {
    let delta = i128::from(exit.raw()) - i128::from(entry.raw());
    let signed = if side == Side::Buy { delta } else { -delta };
    signed.checked_mul(i128::from(volume.raw()))
}

/// The price a position closes at now: the bid for a long, the ask for a short.
pub const fn closing_price(side: Side, quote: &Quote) -> Price {
    match side {
        Side::Buy => quote.bid,
        Side::Sell => quote.ask,
    }
}

/// Unrealized PnL the cTrader way, in deposit money at `digits`: the closing-side price move ×
/// volume × rate, plus the swap and commission already charged on the position (`charges`).
pub fn unrealized_pnl(
    side: Side,
    entry: Price,
    volume: Volume,
    quote: &Quote,
    rate: ConversionRate,
    charges: Money,
    digits: u8,
) -> Option<Money> {
    let gross = rate.convert_e7(
        price_move_e7(side, entry, closing_price(side, quote), volume)?,
        digits,
    )?;
    gross.checked_add(charges)?.rescale(digits)
}

/// Realized PnL of a closing deal: its net result as `closePositionDetail` reports it
/// (gross profit + swap + commission).
pub fn realized_pnl(close: &DealCloseDetail) -> Option<Money> {
    close
        .gross_profit
        .checked_add(close.swap)?
        .checked_add(close.commission)
}

/// The largest loss `volume` takes when the price moves `distance` against it, in deposit money
/// (rounded up, so sizing never understates it).
pub fn loss_at_distance(
    distance: Price,
    volume: Volume,
    rate: ConversionRate,
    digits: u8,
) -> Option<Money> {
    let e7 = i128::from(distance.raw()).checked_mul(i128::from(volume.raw()))?;
    let scale = 10_i128.checked_pow(u32::from(digits))?;
    let n = e7.checked_mul(rate.numerator)?.checked_mul(scale)?;
    let d = rate.denominator.checked_mul(10_000_000)?;
    let minor = n.checked_add(d - 1)?.checked_div(d)?;
    Some(Money::new(i64::try_from(minor).ok()?, digits))
}

/// The largest volume, a whole multiple of `step`, whose loss over `distance` stays within `budget`
/// deposit money at `rate`; zero when even one step costs more.
pub fn volume_for_loss(
    budget: Money,
    distance: Price,
    rate: ConversionRate,
    step: Volume,
) -> Option<Volume> {
    if budget.minor <= 0 || distance.raw() <= 0 || step.raw() <= 0 {
        return Some(Volume::ZERO);
    }
    // volume ≤ budget / (distance × rate), all exact: budget_e7_quote / distance.
    let budget_quote_e7 = rate.to_quote_e7(budget)?;
    let raw = budget_quote_e7 / i128::from(distance.raw());
    let raw = i64::try_from(raw.min(i128::from(i64::MAX))).ok()?;
    let mut volume = Volume(raw).round_down_to_step(step);
    // Integer rounding may leave one step too many; never exceed the budget.
    while volume.raw() > 0
        && loss_at_distance(distance, volume, rate, budget.digits)?.minor > budget.minor
    {
        volume = Volume(volume.raw() - step.raw());
    }
    Some(volume)
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `n / d` rounded half away from zero (`d > 0`).
fn div_round(n: i128, d: i128) -> i128 {
    let half = d / 2;
    if n >= 0 {
        (n + half) / d
    } else {
        (n - half) / d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use proptest::prelude::*;

    fn quote(symbol: i64, bid: i64, ask: i64) -> Quote {
        Quote {
            symbol: SymbolId(symbol),
            bid: Price(bid),
            ask: Price(ask),
            time: Timestamp(0),
        }
    }

    fn usdmyr_chain() -> ConversionChain {
        ConversionChain {
            quote_currency: "MYR".into(),
            steps: vec![ConversionStep {
                symbol: SymbolId(9),
                name: "USDMYR".into(),
                multiply: false,
            }],
        }
    }

    #[test]
    fn a_myr_move_on_a_usd_account_divides_by_usdmyr_mid() {
        // Long 10 t from 4,000 to 4,010 MYR: +100 MYR; USDMYR mid 4.5 → 22.22 USD.
        let rate = usdmyr_chain()
            .rate(|_| Some(quote(9, 449_990, 450_010)))
            .unwrap();
        let q = quote(1, 401_000_000, 401_100_000);
        let pnl = unrealized_pnl(
            Side::Buy,
            Price(400_000_000),
            Volume(1_000),
            &q,
            rate,
            Money::new(-150, 2),
            2,
        )
        .unwrap();
        assert_eq!(pnl, Money::new(2_222 - 150, 2));
    }

    #[test]
    fn a_short_closes_at_the_ask() {
        let q = quote(1, 399_000_000, 399_100_000);
        let pnl = unrealized_pnl(
            Side::Sell,
            Price(400_000_000),
            Volume(100),
            &q,
            ConversionRate::IDENTITY,
            Money::zero(2),
            2,
        )
        .unwrap();
        // 4000 - 3991 = 9 MYR per unit.
        assert_eq!(pnl, Money::new(900, 2));
    }

    #[test]
    fn no_rate_without_every_chain_quote() {
        assert!(usdmyr_chain().rate(|_| None).is_none());
        assert!(
            usdmyr_chain()
                .rate(|_| Some(quote(9, 0, 450_000)))
                .is_none()
        );
        assert_eq!(
            ConversionChain::same_currency("USD").rate(|_| None),
            Some(ConversionRate::IDENTITY)
        );
    }

    #[test]
    fn a_two_step_chain_multiplies_then_divides() {
        // MYR → USD (÷ USDMYR 4.0) → EUR (÷ EURUSD 1.25): 1 MYR = 0.2 EUR.
        let chain = ConversionChain {
            quote_currency: "MYR".into(),
            steps: vec![
                ConversionStep {
                    symbol: SymbolId(9),
                    name: "USDMYR".into(),
                    multiply: false,
                },
                ConversionStep {
                    symbol: SymbolId(1),
                    name: "EURUSD".into(),
                    multiply: false,
                },
            ],
        };
        let rate = chain
            .rate(|s| {
                Some(if s == SymbolId(9) {
                    quote(9, 400_000, 400_000)
                } else {
                    quote(1, 125_000, 125_000)
                })
            })
            .unwrap();
        assert_eq!(
            rate.convert_e7(10_000_000 * 100, 2),
            Some(Money::new(2_000, 2))
        );
    }

    #[test]
    fn rates_parse_exactly_and_refuse_nonsense() {
        let r = ConversionRate::parse("0.25").unwrap();
        assert_eq!(
            r.convert_e7(10_000_000 * 100, 2),
            Some(Money::new(2_500, 2))
        );
        assert_eq!(
            ConversionRate::parse("4.47").unwrap(),
            ConversionRate::parse("4.470").unwrap()
        );
        for bad in ["", "0", "-1", "abc", "1.2.3", "0.0000000000001"] {
            assert!(ConversionRate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn realized_is_gross_plus_swap_plus_commission() {
        let close = DealCloseDetail {
            entry_price: Price(0),
            gross_profit: Money::new(13_000, 2),
            swap: Money::new(-212, 2),
            commission: Money::new(-1, 0),
            balance: Money::new(0, 2),
            closed_volume: Volume(100),
            close_reason: None,
        };
        assert_eq!(realized_pnl(&close), Some(Money::new(12_688, 2)));
    }

    #[test]
    fn sizing_refuses_what_even_one_step_would_lose_too_much() {
        // 1 MYR budget, 40 MYR stop, step 1 unit: nothing fits.
        let v = volume_for_loss(
            Money::new(100, 2),
            Price(4_000_000),
            ConversionRate::IDENTITY,
            Volume(100),
        );
        assert_eq!(v, Some(Volume::ZERO));
    }

    proptest! {
        /// The sized volume's stop-loss loss fits the budget, and one more step would not.
        #[test]
        fn sized_volume_is_the_largest_that_fits(
            equity in 100_000_i64..100_000_000,
            bps in 1_u32..500,
            distance in 10_000_i64..20_000_000,
            usdmyr in 300_000_i64..600_000,
            step in prop::sample::select(vec![1_i64, 10, 100]),
            digits in 0_u8..4,
        ) {
            let rate = usdmyr_chain().rate(|_| Some(quote(9, usdmyr, usdmyr))).unwrap();
            let budget = Money::new(i64::try_from(i128::from(equity) * i128::from(bps) / 10_000).unwrap(), digits);
            let v = volume_for_loss(budget, Price(distance), rate, Volume(step)).unwrap();
            let loss = loss_at_distance(Price(distance), v, rate, digits).unwrap();
            prop_assert!(loss.minor <= budget.minor, "loss {loss} over budget {budget}");
            let more = loss_at_distance(Price(distance), Volume(v.raw() + step), rate, digits).unwrap();
            prop_assert!(more.minor > budget.minor, "one more step {more} still within {budget}");
        }

        /// Converting there and back never gains money.
        #[test]
        fn round_trip_never_gains(minor in -1_000_000_000_i64..1_000_000_000, usdmyr in 300_000_i64..600_000) {
            let rate = usdmyr_chain().rate(|_| Some(quote(9, usdmyr, usdmyr + 20))).unwrap();
            let money = Money::new(minor, 2);
            let quote_e7 = rate.to_quote_e7(money).unwrap();
            let back = rate.convert_e7(quote_e7, 2).unwrap();
            prop_assert!((back.minor - minor).abs() <= 1);
        }
    }
}

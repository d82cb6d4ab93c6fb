//! Integer money arithmetic: notional, margin, profit, commission and swap in the account's minor
//! units, converted from the quote currency at an exact [`Rate`] and rounded once, half away from zero.

use domain::Side;

use crate::conversion::Rate;
use crate::symbols::{SimSymbol, SwapCalculation};

/// 10^7: price (1/100000) × volume (1/100).
const PRICE_VOLUME_SCALE: i128 = 10_000_000;
/// Nights a yearly percentage swap rate is spread over, as brokers quote it.
const SWAP_DAYS_PER_YEAR: i128 = 360;

/// `n / d` rounded half away from zero (`d > 0`).
fn div_round(n: i128, d: i128) -> i128 {
    let half = d / 2;
    if n >= 0 {
        (n + half) / d
    } else {
        (n - half) / d
    }
}

/// Saturating narrowing: amounts that large cannot happen with the simulator's limits.
fn narrow(n: i128) -> i64 {
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// 10^digits as i128.
fn pow10(digits: u32) -> i128 {
    10_i128.pow(digits.min(18))
}

/// `amount × rate × 10^money_digits / scale`, rounded: a quote-currency amount (in 1/`scale`)
/// in deposit-currency minor units.
fn to_deposit(amount: i128, scale: i128, rate: Rate, money_digits: u32) -> i64 {
    let numerator = amount
        .saturating_mul(rate.num)
        .saturating_mul(pow10(money_digits));
    narrow(div_round(numerator, scale.saturating_mul(rate.den).max(1)))
}

/// Value of `volume` at `price` in deposit-currency minor units.
pub(crate) fn notional(price: i64, volume: i64, rate: Rate, money_digits: u32) -> i64 {
    to_deposit(
        i128::from(price) * i128::from(volume),
        PRICE_VOLUME_SCALE,
        rate,
        money_digits,
    )
}

/// Margin a position of that notional uses at `leverage`.
pub(crate) fn margin(notional: i64, leverage: i64) -> i64 {
    narrow(div_round(i128::from(notional), i128::from(leverage.max(1))))
}

/// Profit (negative: loss) of `volume` opened at `open` and closed at `close`, in minor units.
pub(crate) fn gross_profit(
    side: Side,
    open: i64,
    close: i64,
    volume: i64,
    rate: Rate,
    money_digits: u32,
) -> i64 {
    let diff = match side {
        Side::Buy => i128::from(close) - i128::from(open),
        Side::Sell => i128::from(open) - i128::from(close),
    };
    to_deposit(
        diff * i128::from(volume),
        PRICE_VOLUME_SCALE,
        rate,
        money_digits,
    )
}

/// One rollover's swap for `volume` of `symbol` held on `side` (negative: a charge), `nights`
/// counted (3 on the symbol's triple day). `mid` is the symbol's mid price (1/100000), used by
/// percentage swaps.
pub(crate) fn swap(
    symbol: &SimSymbol,
    side: Side,
    volume: i64,
    mid: i64,
    nights: i64,
    rate: Rate,
    money_digits: u32,
) -> i64 {
    let terms = &symbol.swap;
    let (pip_position, digits) = (symbol.pip_position, symbol.digits);
    let milli = i128::from(match side {
        Side::Buy => terms.long_milli,
        Side::Sell => terms.short_milli,
    });
    let units = i128::from(volume) * i128::from(nights);
    // Quote-currency amount and its scale: thousandths of the rate, volume in 1/100.
    let (amount, scale) = match terms.calculation {
        // rate × 10^-pipPosition per unit.
        SwapCalculation::Pips => (
            milli * units,
            1_000 * 100 * pow10(u32::try_from(pip_position).unwrap_or(0)),
        ),
        // rate × 10^-digits per unit.
        SwapCalculation::Points => (milli * units, 1_000 * 100 * pow10(digits)),
        // rate / 100 / 360 × mid per unit, mid in 1/100000.
        SwapCalculation::Percentage => (
            milli * units * i128::from(mid),
            1_000 * 100 * 100 * SWAP_DAYS_PER_YEAR * 100_000,
        ),
    };
    to_deposit(amount, scale, rate, money_digits)
}

/// Commission for one side of a trade of that notional (negative: a charge).
pub(crate) fn commission(notional: i64, per_million: i64) -> i64 {
    -narrow(div_round(
        i128::from(notional) * i128::from(per_million),
        1_000_000,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::SwapTerms;

    /// MYR → USD at exactly 0.224 (USDMYR mid 4.4642857…).
    const MYR_USD: Rate = Rate {
        num: 224,
        den: 1_000,
    };

    #[test]
    fn palm_oil_money() {
        // 1 t at 4125 MYR, MYR→USD 0.224: 924.00 USD.
        let n = notional(412_500_000, 100, MYR_USD, 2);
        assert_eq!(n, 92_400);
        assert_eq!(margin(n, 10), 9_240);
        // +40 MYR on 2 t long = 80 MYR = 17.92 USD.
        assert_eq!(
            gross_profit(Side::Buy, 412_500_000, 416_500_000, 200, MYR_USD, 2),
            1_792
        );
        assert_eq!(
            gross_profit(Side::Sell, 412_500_000, 416_500_000, 200, MYR_USD, 2),
            -1_792
        );
        // 30 USD per million on 924 USD: 0.03 USD (0.02772 rounded).
        assert_eq!(commission(n, 30), -3);
    }

    fn symbol(name: &str, terms: SwapTerms) -> SimSymbol {
        let mut symbol = crate::symbols::catalog("PALMOIL", &crate::MarketHours::AlwaysOpen)
            .into_iter()
            .find(|s| s.name == name)
            .unwrap();
        symbol.swap = terms;
        symbol
    }

    #[test]
    fn swaps_by_calculation_type() {
        let pips = SwapTerms {
            long_milli: -730,
            short_milli: 210,
            calculation: SwapCalculation::Pips,
            triple_day: 3,
        };
        let eurusd = symbol("EURUSD", pips);
        // 100,000 EUR long at -0.73 pips (pip 0.0001): -7.30 USD a night, three on the triple day.
        assert_eq!(
            swap(&eurusd, Side::Buy, 10_000_000, 108_500, 1, Rate::ONE, 2),
            -730
        );
        assert_eq!(
            swap(&eurusd, Side::Buy, 10_000_000, 108_500, 3, Rate::ONE, 2),
            -2_190
        );
        assert_eq!(
            swap(&eurusd, Side::Sell, 10_000_000, 108_500, 1, Rate::ONE, 2),
            210
        );
        let points = symbol(
            "EURUSD",
            SwapTerms {
                calculation: SwapCalculation::Points,
                ..pips
            },
        );
        // -0.73 points of 0.00001 on 100,000: -0.73 USD.
        assert_eq!(
            swap(&points, Side::Buy, 10_000_000, 108_500, 1, Rate::ONE, 2),
            -73
        );
        let percent = symbol(
            "PALMOIL",
            SwapTerms {
                long_milli: -6_000,
                short_milli: -3_000,
                calculation: SwapCalculation::Percentage,
                triple_day: 3,
            },
        );
        // 10 t at 4000 MYR = 40,000 MYR × 6 % / 360 = 6.666… MYR = 1.4933 USD at 0.224.
        assert_eq!(
            swap(&percent, Side::Buy, 1_000, 400_000_000, 1, MYR_USD, 2),
            -149
        );
        assert_eq!(
            swap(&percent, Side::Sell, 1_000, 400_000_000, 1, MYR_USD, 4),
            -7_467
        );
    }

    #[test]
    fn fx_money_and_rounding() {
        // 1000 EUR at 1.08505 = 1085.05 USD.
        assert_eq!(notional(108_505, 100_000, Rate::ONE, 2), 108_505);
        // Half a cent rounds away from zero.
        assert_eq!(div_round(5, 10), 1);
        assert_eq!(div_round(-5, 10), -1);
        assert_eq!(narrow(i128::MAX), i64::MAX);
    }
}

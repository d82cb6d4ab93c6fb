//! Integer money arithmetic: notional, margin, profit and commission in the account's minor units.

use domain::Side;

/// 10^13: price (1/100000) × volume (1/100) × conversion rate (1/1000000).
const SCALE: i128 = 10_000_000_000_000;

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

/// Value of `volume` at `price` in deposit-currency minor units.
pub(crate) fn notional(
    price: i64,
    volume: i64,
    quote_to_deposit_ppm: i64,
    money_digits: u32,
) -> i64 {
    narrow(div_round(
        i128::from(price)
            * i128::from(volume)
            * i128::from(quote_to_deposit_ppm)
            * pow10(money_digits),
        SCALE,
    ))
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
    quote_to_deposit_ppm: i64,
    money_digits: u32,
) -> i64 {
    let diff = match side {
        Side::Buy => i128::from(close) - i128::from(open),
        Side::Sell => i128::from(open) - i128::from(close),
    };
    narrow(div_round(
        diff * i128::from(volume) * i128::from(quote_to_deposit_ppm) * pow10(money_digits),
        SCALE,
    ))
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

    #[test]
    fn palm_oil_money() {
        // 1 t at 4125 MYR, MYR→USD 0.224: 924.00 USD.
        let n = notional(412_500_000, 100, 224_000, 2);
        assert_eq!(n, 92_400);
        assert_eq!(margin(n, 10), 9_240);
        // +40 MYR on 2 t long = 80 MYR = 17.92 USD.
        assert_eq!(
            gross_profit(Side::Buy, 412_500_000, 416_500_000, 200, 224_000, 2),
            1_792
        );
        assert_eq!(
            gross_profit(Side::Sell, 412_500_000, 416_500_000, 200, 224_000, 2),
            -1_792
        );
        // 30 USD per million on 924 USD: 0.03 USD (0.02772 rounded).
        assert_eq!(commission(n, 30), -3);
    }

    #[test]
    fn fx_money_and_rounding() {
        // 1000 EUR at 1.08505 = 1085.05 USD.
        assert_eq!(notional(108_505, 100_000, 1_000_000, 2), 108_505);
        // Half a cent rounds away from zero.
        assert_eq!(div_round(5, 10), 1);
        assert_eq!(div_round(-5, 10), -1);
        assert_eq!(narrow(i128::MAX), i64::MAX);
    }
}

//! Fixed-point prices, volumes and money, in the cTrader protocol's own units.

use std::fmt;

use crate::DomainError;

/// Price units per one whole price unit: cTrader sends every price in 1/100000.
pub const PRICE_SCALE: i64 = 100_000;
/// Volume units per one whole unit of the instrument: cTrader volumes are in 0.01 unit.
pub const VOLUME_SCALE: i64 = 100;

/// A price in 1/100000 of the quote currency (e.g. 4125.5 MYR/t is `Price(412_550_000)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Price(pub i64);

impl Price {
    /// Zero, for "no price yet" arithmetic.
    pub const ZERO: Price = Price(0);

    /// The raw 1/100000 units.
    pub const fn raw(self) -> i64 {
        self.0
    }

    /// Parses a decimal such as `"4125.5"` with at most five fractional digits.
    pub fn parse(text: &str) -> Result<Price, DomainError> {
        parse_fixed(text, 5).map(Price)
    }

    /// The price as a float, for display, metrics and statistics only; never compare with it.
    #[allow(clippy::cast_precision_loss)] // display only: prices are far below 2^53
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / PRICE_SCALE as f64
    }

    /// The nearest price to a float (e.g. a cTrader `double` price field); `None` if not finite or out of range.
    #[allow(clippy::cast_possible_truncation)] // range checked just before
    pub fn from_f64(value: f64) -> Option<Price> {
        let scaled = (value * PRICE_SCALE as f64).round();
        (scaled.is_finite() && scaled.abs() < 9.0e18).then_some(Price(scaled as i64))
    }

    /// The midpoint of bid and ask, rounded down.
    pub const fn mid(bid: Price, ask: Price) -> Price {
        Price(bid.0.midpoint(ask.0))
    }

    /// `self + other`, `None` on overflow.
    pub const fn checked_add(self, other: Price) -> Option<Price> {
        match self.0.checked_add(other.0) {
            Some(v) => Some(Price(v)),
            None => None,
        }
    }

    /// `self - other`, `None` on overflow.
    pub const fn checked_sub(self, other: Price) -> Option<Price> {
        match self.0.checked_sub(other.0) {
            Some(v) => Some(Price(v)),
            None => None,
        }
    }

    /// Rounds to a symbol's number of decimal digits (half away from zero).
    pub fn round_to_digits(self, digits: u32) -> Price {
        let digits = digits.min(5);
        let step = 10_i64.pow(5 - digits);
        let half = step / 2;
        let rounded = if self.0 >= 0 {
            (self.0 + half) / step
        } else {
            (self.0 - half) / step
        };
        Price(rounded * step)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fixed(f, self.0, 5)
    }
}

/// A volume in 0.01 unit of the instrument (1000 = 10 units), as cTrader counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Volume(pub i64);

impl Volume {
    /// No volume.
    pub const ZERO: Volume = Volume(0);

    /// The raw 0.01-unit count.
    pub const fn raw(self) -> i64 {
        self.0
    }

    /// A volume of whole units (e.g. 10 tonnes is `Volume(1000)`); `None` on overflow.
    pub const fn from_units(units: i64) -> Option<Volume> {
        match units.checked_mul(VOLUME_SCALE) {
            Some(v) => Some(Volume(v)),
            None => None,
        }
    }

    /// Parses a decimal count of units such as `"2.5"` with at most two fractional digits.
    pub fn parse_units(text: &str) -> Result<Volume, DomainError> {
        parse_fixed(text, 2).map(Volume)
    }

    /// The volume in units, for display and statistics only.
    #[allow(clippy::cast_precision_loss)] // display only
    pub fn units_f64(self) -> f64 {
        self.0 as f64 / VOLUME_SCALE as f64
    }

    /// Rounds down to a whole multiple of `step` (a symbol's volume step); a zero step leaves it as is.
    pub const fn round_down_to_step(self, step: Volume) -> Volume {
        if step.0 <= 0 {
            self
        } else {
            Volume(self.0 - self.0.rem_euclid(step.0))
        }
    }

    /// True for a positive volume.
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fixed(f, self.0, 2)
    }
}

/// An amount of account currency: `minor / 10^digits` (cTrader's `moneyDigits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Money {
    /// The amount in the smallest unit that `digits` gives.
    pub minor: i64,
    /// How many of the digits of `minor` are decimals (cTrader `moneyDigits`, usually 2).
    pub digits: u8,
}

impl Money {
    /// An amount in minor units with its number of decimals.
    pub const fn new(minor: i64, digits: u8) -> Money {
        Money { minor, digits }
    }

    /// Zero at the given precision.
    pub const fn zero(digits: u8) -> Money {
        Money { minor: 0, digits }
    }

    /// The same amount at another precision, rounding toward zero; `None` on overflow.
    pub fn rescale(self, digits: u8) -> Option<Money> {
        let minor = rescale_i128(
            i128::from(self.minor),
            u32::from(self.digits),
            u32::from(digits),
        )?;
        Some(Money {
            minor: i64::try_from(minor).ok()?,
            digits,
        })
    }

    /// The sum, expressed at the finer of the two precisions; `None` on overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        let digits = self.digits.max(other.digits);
        let a = self.rescale(digits)?;
        let b = other.rescale(digits)?;
        Some(Money {
            minor: a.minor.checked_add(b.minor)?,
            digits,
        })
    }

    /// The difference, expressed at the finer of the two precisions; `None` on overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.checked_add(Money {
            minor: other.minor.checked_neg()?,
            digits: other.digits,
        })
    }

    /// The amount as a float, for display, metrics and statistics only.
    #[allow(clippy::cast_precision_loss)] // display only
    pub fn to_f64(self) -> f64 {
        self.minor as f64 / 10_f64.powi(i32::from(self.digits))
    }

    /// True when the amount is below zero.
    pub const fn is_negative(self) -> bool {
        self.minor < 0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_fixed(f, self.minor, u32::from(self.digits))
    }
}

fn rescale_i128(value: i128, from: u32, to: u32) -> Option<i128> {
    if to >= from {
        value.checked_mul(10_i128.checked_pow(to - from)?)
    } else {
        Some(value / 10_i128.checked_pow(from - to)?)
    }
}

/// Parses `[-]digits[.digits]` into an integer with `decimals` implied decimals, exactly.
fn parse_fixed(text: &str, decimals: u32) -> Result<i64, DomainError> {
    let bad = |reason| DomainError::InvalidDecimal {
        text: text.to_owned(),
        reason,
    };
    let trimmed = text.trim();
    let (negative, body) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(bad("no digits"));
    }
    if !whole
        .bytes()
        .chain(frac.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return Err(bad("not a decimal number"));
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > decimals as usize {
        return Err(bad("too many decimal places"));
    }
    let mut value: i64 = 0;
    for b in whole.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or_else(|| bad("out of range"))?;
    }
    let mut frac_value: i64 = 0;
    for b in frac.bytes() {
        frac_value = frac_value * 10 + i64::from(b - b'0');
    }
    #[allow(clippy::cast_possible_truncation)] // frac.len() <= decimals <= 5
    let pad = decimals - frac.len() as u32;
    let scaled = value
        .checked_mul(10_i64.pow(decimals))
        .and_then(|v| v.checked_add(frac_value * 10_i64.pow(pad)))
        .ok_or_else(|| bad("out of range"))?;
    Ok(if negative { -scaled } else { scaled })
}

/// Writes an implied-decimal integer with trailing fractional zeros trimmed (at least one decimal kept
/// only when there is a fraction).
fn write_fixed(f: &mut fmt::Formatter<'_>, value: i64, decimals: u32) -> fmt::Result {
    let scale = 10_i128.pow(decimals);
    let v = i128::from(value);
    let sign = if v < 0 { "-" } else { "" };
    let whole = v.abs() / scale;
    let frac = v.abs() % scale;
    if frac == 0 {
        return write!(f, "{sign}{whole}");
    }
    let text = format!("{frac:0width$}", width = decimals as usize);
    write!(f, "{sign}{whole}.{}", text.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_displays_prices_exactly() {
        assert_eq!(Price::parse("4125.5").unwrap(), Price(412_550_000));
        assert_eq!(Price::parse("-0.00001").unwrap(), Price(-1));
        assert_eq!(Price(412_550_000).to_string(), "4125.5");
        assert_eq!(Price(412_500_000).to_string(), "4125");
        assert_eq!(Price(-1).to_string(), "-0.00001");
    }

    #[test]
    fn refuses_bad_decimals_with_the_reason() {
        for (text, reason) in [
            ("", "no digits"),
            ("1.000001", "too many decimal places"),
            ("12a", "not a decimal number"),
            ("99999999999999999999", "out of range"),
        ] {
            match Price::parse(text) {
                Err(DomainError::InvalidDecimal { reason: r, .. }) => {
                    assert_eq!(r, reason, "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn volume_rounds_down_to_step() {
        assert_eq!(Volume(1_234).round_down_to_step(Volume(100)), Volume(1_200));
        assert_eq!(Volume(99).round_down_to_step(Volume(100)), Volume(0));
        assert_eq!(Volume::parse_units("2.5").unwrap(), Volume(250));
    }

    #[test]
    fn money_adds_across_precisions() {
        let sum = Money::new(150, 2).checked_add(Money::new(1, 0)).unwrap();
        assert_eq!(sum, Money::new(250, 2));
        assert_eq!(sum.to_string(), "2.5");
    }

    #[test]
    fn rounds_price_to_symbol_digits() {
        assert_eq!(Price(412_555_600).round_to_digits(2), Price(412_556_000));
        assert_eq!(Price(412_555_600).round_to_digits(0), Price(412_600_000));
        assert_eq!(Price(-412_555_600).round_to_digits(2), Price(-412_556_000));
    }

    proptest! {
        #[test]
        fn price_display_parse_round_trip(raw in -1_000_000_000_000_i64..1_000_000_000_000) {
            let p = Price(raw);
            prop_assert_eq!(Price::parse(&p.to_string()).unwrap(), p);
        }
    }
}

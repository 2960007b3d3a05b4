//! Money: an exact decimal amount in an ISO 4217 currency, always at that currency's
//! scale (USD 2, JPY 0, KWD 3). Never `f64`. Amounts are non-negative: a debt or a refund is
//! expressed by the event that carries the amount, not by its sign.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount in minor units: read models keep amounts as `BIGINT` minor units.
const MAX_MINOR: i64 = i64::MAX;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not an amount: use digits with an optional decimal point, like \"1250.00\"")]
    Malformed(String),
    #[error("amounts cannot be negative")]
    Negative,
    #[error("{currency} amounts take at most {scale} decimal places")]
    TooManyDecimals { currency: Currency, scale: u32 },
    #[error("the amount is too large")]
    Overflow,
    #[error("`{0}` is not an ISO 4217 currency code that Portico can bill in")]
    UnknownCurrency(String),
    #[error("expected an amount in {expected}, got {found}")]
    CurrencyMismatch { expected: Currency, found: Currency },
}

/// An ISO 4217 currency with a defined minor unit. Funds codes and metals (XAU, XDR, ...)
/// have no minor unit and are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: iso_currency::Currency,
    scale: u32,
}

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let unknown = || MoneyError::UnknownCurrency(code.chars().take(16).collect());
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(unknown());
        }
        let iso = iso_currency::Currency::from_code(code).ok_or_else(unknown)?;
        let scale = iso.exponent().ok_or_else(unknown)?;
        Ok(Self {
            code: iso,
            scale: u32::from(scale),
        })
    }

    /// The three-letter code, e.g. `"USD"`.
    pub fn code(&self) -> &'static str {
        self.code.code()
    }

    /// Number of decimal places of the minor unit (2 for USD, 0 for JPY, 3 for KWD).
    pub fn scale(&self) -> u32 {
        self.scale
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// A non-negative amount at its currency's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Parses a wire amount such as `"1250.00"`. Accepts plain digits with an optional
    /// decimal point and at most the currency's number of decimals; no sign, exponent,
    /// separators or whitespace.
    pub fn parse(amount: &str, currency: Currency) -> Result<Self, MoneyError> {
        let malformed = || MoneyError::Malformed(amount.chars().take(40).collect());
        if let Some(rest) = amount.strip_prefix('-') {
            return if is_plain_decimal(rest) {
                Err(MoneyError::Negative)
            } else {
                Err(malformed())
            };
        }
        if !is_plain_decimal(amount) {
            return Err(malformed());
        }
        let decimals = amount.split_once('.').map_or(0, |(_, frac)| frac.len());
        if decimals > currency.scale as usize {
            return Err(MoneyError::TooManyDecimals {
                currency,
                scale: currency.scale,
            });
        }
        let digits: String = amount.chars().filter(|c| *c != '.').collect();
        // Leading zeros do not add magnitude; strip them so "000…1" is not an overflow.
        let significant = digits.trim_start_matches('0');
        if significant.len() + (currency.scale as usize - decimals) > 18 {
            // 10^18 > i64::MAX / 10: reject before anything can overflow.
            let minor: i128 = format!(
                "{significant}{}",
                "0".repeat(currency.scale as usize - decimals)
            )
            .parse()
            .map_err(|_| MoneyError::Overflow)?;
            if minor > i128::from(MAX_MINOR) {
                return Err(MoneyError::Overflow);
            }
        }
        let value = Decimal::from_str(amount).map_err(|_| MoneyError::Overflow)?;
        Self::from_decimal(value, currency)
    }

    /// An amount from a decimal value; refuses negative values and extra decimals.
    pub fn from_decimal(value: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative);
        }
        let normalized = value.normalize();
        if normalized.scale() > currency.scale {
            return Err(MoneyError::TooManyDecimals {
                currency,
                scale: currency.scale,
            });
        }
        let mut amount = normalized.abs();
        amount.rescale(currency.scale);
        let money = Self { amount, currency };
        money.checked_minor().ok_or(MoneyError::Overflow)?;
        Ok(money)
    }

    /// The amount in minor units (cents for USD), as read models store it.
    pub fn from_minor(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative);
        }
        Ok(Self {
            amount: Decimal::new(minor, currency.scale),
            currency,
        })
    }

    pub fn zero(currency: Currency) -> Self {
        Self {
            amount: Decimal::new(0, currency.scale),
            currency,
        }
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// Minor units. Every `Money` is constructed within `i64` minor units, so this is total.
    pub fn minor_units(&self) -> i64 {
        self.checked_minor().unwrap_or(MAX_MINOR)
    }

    fn checked_minor(&self) -> Option<i64> {
        let mut scaled = self.amount;
        scaled.rescale(self.currency.scale);
        i64::try_from(scaled.mantissa()).ok()
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                expected: self.currency,
                found: other.currency,
            })
        }
    }

    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self
            .minor_units()
            .checked_add(other.minor_units())
            .ok_or(MoneyError::Overflow)?;
        Money::from_minor(sum, self.currency)
    }

    /// `self - other`; an error when the result would be negative.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        Money::from_minor(self.minor_units() - other.minor_units(), self.currency)
    }

    /// `self - other`, floored at zero.
    pub fn saturating_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        Money::from_minor(
            (self.minor_units() - other.minor_units()).max(0),
            self.currency,
        )
    }
}

fn is_plain_decimal(s: &str) -> bool {
    let (int, frac) = match s.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (s, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    digits(int) && frac.is_none_or(digits)
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[derive(Serialize, Deserialize)]
struct MoneyWire {
    amount: String,
    currency: Currency,
}

/// On the wire and in events: `{"amount": "1250.00", "currency": "USD"}`.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MoneyWire {
            amount: self.amount.to_string(),
            currency: self.currency,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = MoneyWire::deserialize(d)?;
        Money::parse(&wire.amount, wire.currency).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn currencies_carry_their_iso_scale() {
        assert_eq!(cur("USD").scale(), 2);
        assert_eq!(cur("JPY").scale(), 0);
        assert_eq!(cur("KWD").scale(), 3);
    }

    #[test]
    fn unknown_or_scaleless_currencies_are_refused() {
        for code in ["XYZ", "usd", "US", "USDX", "", "XAU"] {
            assert!(
                matches!(Currency::parse(code), Err(MoneyError::UnknownCurrency(_))),
                "{code} was accepted"
            );
        }
    }

    #[test]
    fn amounts_are_kept_at_the_currency_scale() {
        assert_eq!(
            Money::parse("1250", cur("USD")).unwrap().to_string(),
            "1250.00 USD"
        );
        assert_eq!(
            Money::parse("1250.5", cur("USD")).unwrap().minor_units(),
            125_050
        );
        assert_eq!(Money::parse("500", cur("JPY")).unwrap().minor_units(), 500);
        assert_eq!(
            Money::parse("1.234", cur("KWD")).unwrap().minor_units(),
            1234
        );
    }

    #[test]
    fn bad_amounts_are_typed_errors() {
        let usd = cur("USD");
        assert_eq!(Money::parse("-1.00", usd), Err(MoneyError::Negative));
        assert!(matches!(
            Money::parse("1.001", usd),
            Err(MoneyError::TooManyDecimals { scale: 2, .. })
        ));
        assert!(matches!(
            Money::parse("1.5", cur("JPY")),
            Err(MoneyError::TooManyDecimals { scale: 0, .. })
        ));
        assert_eq!(
            Money::parse("99999999999999999999999999999", usd),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::parse("92233720368547758.08", usd),
            Err(MoneyError::Overflow)
        );
        assert!(Money::parse("92233720368547758.07", usd).is_ok());
        for bad in [
            "", "1e5", "+1", " 1", "1 ", "1.", ".5", "1,000", "1_000", "NaN", "0x10", "1..2",
        ] {
            assert!(
                matches!(Money::parse(bad, usd), Err(MoneyError::Malformed(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies_and_negative_results() {
        let a = Money::parse("10.00", cur("USD")).unwrap();
        let b = Money::parse("10", cur("JPY")).unwrap();
        assert!(matches!(
            a.checked_add(&b),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        let c = Money::parse("10.01", cur("USD")).unwrap();
        assert_eq!(a.checked_sub(&c), Err(MoneyError::Negative));
    }

    #[test]
    fn money_serializes_amount_as_a_string() {
        let m = Money::parse("1250.00", cur("USD")).unwrap();
        let json = serde_json::to_value(m).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"amount": "1250.00", "currency": "USD"})
        );
        let bad = serde_json::json!({"amount": "-3", "currency": "USD"});
        assert!(serde_json::from_value::<Money>(bad).is_err());
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        prop::sample::select(vec!["USD", "EUR", "JPY", "KWD", "GBP", "CLF"]).prop_map(cur)
    }

    proptest! {
        #[test]
        fn minor_units_round_trip(minor in 0i64..=i64::MAX, c in any_currency()) {
            let m = Money::from_minor(minor, c).unwrap();
            prop_assert_eq!(m.minor_units(), minor);
            let wire = m.amount().to_string();
            prop_assert_eq!(Money::parse(&wire, c).unwrap(), m);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}", c in any_currency()) {
            let _ = Money::parse(&s, c);
        }

        #[test]
        fn sums_are_exact(a in 0i64..1_000_000_000_000, b in 0i64..1_000_000_000_000) {
            let usd = cur("USD");
            let sum = Money::from_minor(a, usd).unwrap().checked_add(&Money::from_minor(b, usd).unwrap()).unwrap();
            prop_assert_eq!(sum.minor_units(), a + b);
            prop_assert_eq!(sum.checked_sub(&Money::from_minor(b, usd).unwrap()).unwrap().minor_units(), a);
        }
    }
}

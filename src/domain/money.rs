use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("invalid currency code `{0}` (expected three letters, e.g. EUR)")]
    InvalidCurrency(String),
    #[error("invalid amount `{0}`")]
    InvalidAmount(String),
    #[error("amount `{amount}` has more decimals than {currency} allows ({exponent})")]
    TooPrecise {
        amount: String,
        currency: Currency,
        exponent: u32,
    },
    #[error("amount `{0}` is out of range")]
    OutOfRange(String),
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
}

/// An ISO 4217 currency code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let bytes = code.trim().as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_alphabetic) => Ok(Self([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
                c.to_ascii_uppercase(),
            ])),
            _ => Err(MoneyError::InvalidCurrency(code.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point in this currency's minor unit (ISO 4217).
    pub fn exponent(&self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_string()
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in integer minor units (cents) of one currency; never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Parses a decimal string as the APIs send it ("1234.5", "-0.99", "12") without going through f64.
    pub fn parse_decimal(amount: &str, currency: Currency) -> Result<Self, MoneyError> {
        let invalid = || MoneyError::InvalidAmount(amount.to_string());
        let s = amount.trim();
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty() && frac_part.is_empty()
            || !all_digits(int_part)
            || !all_digits(frac_part)
        {
            return Err(invalid());
        }
        let exponent = currency.exponent();
        let frac_trimmed = frac_part.trim_end_matches('0');
        if frac_trimmed.len() > exponent as usize {
            return Err(MoneyError::TooPrecise {
                amount: amount.to_string(),
                currency,
                exponent,
            });
        }
        let out_of_range = || MoneyError::OutOfRange(amount.to_string());
        let int_value: i64 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| out_of_range())?
        };
        let mut frac_value: i64 = 0;
        for i in 0..exponent as usize {
            let digit = frac_trimmed
                .as_bytes()
                .get(i)
                .map_or(0, |b| i64::from(b - b'0'));
            frac_value = frac_value * 10 + digit;
        }
        let minor = int_value
            .checked_mul(10_i64.pow(exponent))
            .and_then(|v| v.checked_add(frac_value))
            .ok_or_else(out_of_range)?;
        Ok(Self::new(if negative { -minor } else { minor }, currency))
    }

    /// The amount as a decimal string with exactly the currency's number of decimals.
    pub fn to_decimal_string(&self) -> String {
        let exponent = self.currency.exponent();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exponent == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10_u64.pow(exponent);
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = exponent as usize
        )
    }

    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        self.minor
            .checked_sub(other.minor)
            .map(|minor| Money::new(minor, self.currency))
            .ok_or_else(|| MoneyError::OutOfRange(self.to_decimal_string()))
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("eur").unwrap()
    }

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(
            Money::parse_decimal("1234.5", eur()).unwrap().minor,
            123_450
        );
        assert_eq!(Money::parse_decimal("-0.99", eur()).unwrap().minor, -99);
        assert_eq!(Money::parse_decimal("12", eur()).unwrap().minor, 1200);
        assert_eq!(Money::parse_decimal(".5", eur()).unwrap().minor, 50);
        assert_eq!(Money::parse_decimal("0.10000", eur()).unwrap().minor, 10);
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(Money::parse_decimal("1500", jpy).unwrap().minor, 1500);
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(Money::parse_decimal("1.234", kwd).unwrap().minor, 1234);
    }

    #[test]
    fn rejects_bad_amounts() {
        assert!(matches!(
            Money::parse_decimal("1.234", eur()),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(Money::parse_decimal("1e3", eur()).is_err());
        assert!(Money::parse_decimal("", eur()).is_err());
        assert!(Money::parse_decimal(".", eur()).is_err());
        assert!(matches!(
            Money::parse_decimal("99999999999999999999", eur()),
            Err(MoneyError::OutOfRange(_))
        ));
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("E1R").is_err());
    }

    #[test]
    fn formats_and_subtracts() {
        let a = Money::parse_decimal("10.05", eur()).unwrap();
        assert_eq!(a.to_decimal_string(), "10.05");
        assert_eq!(Money::new(-5, eur()).to_decimal_string(), "-0.05");
        let b = Money::parse_decimal("0.10", eur()).unwrap();
        assert_eq!(a.checked_sub(&b).unwrap().minor, 995);
        let usd = Money::new(1, Currency::parse("USD").unwrap());
        assert!(matches!(
            a.checked_sub(&usd),
            Err(MoneyError::CurrencyMismatch(..))
        ));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"minor":1005,"currency":"EUR"}"#
        );
    }
}

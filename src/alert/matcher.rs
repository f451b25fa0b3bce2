//! Label matchers as Alertmanager writes them: `name=value`, `name!=value`, `name=~regex`,
//! `name!~regex`. A missing label reads as the empty string, as in Alertmanager.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::AlertError;
use super::model::Labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// The value anchored (`^(?:value)$`), compiled once, for the regex operators.
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    pub fn parse(s: &str) -> Result<Self, AlertError> {
        let invalid = || AlertError::InvalidMatcher(s.to_string());
        // Two-character operators first, so `a!=b` is not read as `a!` = `b`.
        let (name, op, value) = [
            MatchOp::NotEqual,
            MatchOp::Regex,
            MatchOp::NotRegex,
            MatchOp::Equal,
        ]
        .into_iter()
        .find_map(|op| {
            s.split_once(op.as_str())
                .map(|(name, value)| (name.trim(), op, value.trim()))
        })
        .ok_or_else(invalid)?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid());
        }
        let value = value.trim_matches('"').to_string();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(Regex::new(&format!("^(?:{value})$")).map_err(|_| invalid())?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self {
            name: name.to_string(),
            op,
            value,
            regex,
        })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let actual = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match (&self.op, &self.regex) {
            (MatchOp::Equal, _) => actual == self.value,
            (MatchOp::NotEqual, _) => actual != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(actual),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(actual),
            // `parse` compiles a regex for both regex operators.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.op.as_str(), self.value)
    }
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Matcher::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What `parse` takes, as the contract's pattern: a label name, an operator, and a value that
/// cannot be read as another operator (`parse` splits at the first `!=`, then `=~`, `!~`, `=`).
/// A regex value is stated as literals, `.`, `.*`, `.+` and `|`, which always compile; `parse`
/// takes any regex, which no pattern can describe.
const PATTERN: &str = concat!(
    r"^[ \t]*[A-Za-z0-9_]+[ \t]*",
    r"(?:!=.*|=[^!~]*|(?:=~|!~)(?:[A-Za-z0-9_ :/-]|\.[*+]?|\|)*)$"
);

/// In the API contract a matcher is its text, e.g. `type=freshness` or `endpoint=~acc.*`.
impl utoipa::PartialSchema for Matcher {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(PATTERN))
            .examples(["type=freshness", "endpoint=~acc.*"])
            .into()
    }
}

impl utoipa::ToSchema for Matcher {}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_matcher_the_contract_allows_parses() {
        let contract = Regex::new(PATTERN).unwrap();
        let allowed = [
            "type=freshness",
            " severity = critical ",
            "endpoint=",
            "a=b=c",
            "a!=b=~c!~d",
            "connector=~cr.*|erp",
            "connector!~.+x|",
            "x=~",
        ];
        for text in allowed {
            assert!(contract.is_match(text), "{text}");
            assert!(Matcher::parse(text).is_ok(), "{text}");
        }
        // Refused by `parse`, and outside the contract.
        for text in ["", "=x", "a b=c", "a=b!=c", "a=~(", "a=~*", "ä=x", "a"] {
            assert!(Matcher::parse(text).is_err(), "{text}");
            assert!(!contract.is_match(text), "{text}");
        }
    }

    #[test]
    fn the_four_operators() {
        let l = labels(&[("severity", "critical"), ("connector", "crm")]);
        assert!(Matcher::parse("severity=critical").unwrap().matches(&l));
        assert!(!Matcher::parse("severity!=critical").unwrap().matches(&l));
        assert!(Matcher::parse("connector=~cr.").unwrap().matches(&l));
        assert!(
            !Matcher::parse("connector=~c").unwrap().matches(&l),
            "anchored"
        );
        assert!(Matcher::parse("connector!~erp|tryton").unwrap().matches(&l));
        assert!(
            Matcher::parse("endpoint=").unwrap().matches(&l),
            "missing is empty"
        );
        assert_eq!(
            Matcher::parse("a!=b").unwrap().to_string(),
            "a!=b",
            "round trip"
        );
    }

    #[test]
    fn malformed_matchers_are_refused() {
        for bad in ["severity", "=x", "a b=c", "a=~("] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
    }
}

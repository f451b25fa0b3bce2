//! Quotes, sales orders and invoices as flat canonical fields: header fields by name and each
//! line's fields as `line.<n>.<name>` (n from 1, in document order), so the engine compares,
//! owns and logs a line's quantity like any other field.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{Currency, Endpoint, Money};
use crate::sync::record::Fields;

/// The canonical header fields of a document endpoint.
pub fn header_fields(endpoint: Endpoint) -> &'static [&'static str] {
    match endpoint {
        Endpoint::Quotes => &[
            "account",
            "date",
            "valid_until",
            "currency",
            "owner",
            "comments",
            // The ERP's quote number (its DocEntry), written back to the CRM.
            "number",
        ],
        // status: open, closed or cancelled.
        Endpoint::SalesOrders => &[
            "number", "account", "date", "currency", "owner", "total", "based_on", "status",
        ],
        Endpoint::Invoices => &[
            "number", "account", "date", "due_date", "currency", "owner", "total", "based_on",
            "status",
        ],
        _ => &[],
    }
}

/// The canonical fields of each line of a document endpoint.
pub fn line_fields(endpoint: Endpoint) -> &'static [&'static str] {
    match endpoint {
        Endpoint::Quotes => &["item", "quantity", "unit_price", "remarks"],
        Endpoint::SalesOrders | Endpoint::Invoices => {
            &["item", "quantity", "unit_price", "subtotal"]
        }
        _ => &[],
    }
}

pub fn is_document(endpoint: Endpoint) -> bool {
    !header_fields(endpoint).is_empty()
}

/// Every canonical field name of a document endpoint, lines as `line.*.<name>` patterns.
pub fn canonical_fields(endpoint: Endpoint) -> Vec<String> {
    header_fields(endpoint)
        .iter()
        .map(|f| f.to_string())
        .chain(line_fields(endpoint).iter().map(|f| format!("line.*.{f}")))
        .collect()
}

pub fn line_field(n: usize, name: &str) -> String {
    format!("line.{n}.{name}")
}

/// `line.3.quantity` -> (3, "quantity").
pub fn parse_line_field(field: &str) -> Option<(usize, &str)> {
    let rest = field.strip_prefix("line.")?;
    let (n, name) = rest.split_once('.')?;
    Some((n.parse().ok().filter(|n| *n > 0)?, name))
}

/// The lines of a record: line number -> (field name -> value).
pub fn lines(fields: &Fields) -> BTreeMap<usize, BTreeMap<&str, &str>> {
    let mut lines: BTreeMap<usize, BTreeMap<&str, &str>> = BTreeMap::new();
    for (field, value) in fields {
        if let Some((n, name)) = parse_line_field(field) {
            lines.entry(n).or_default().insert(name, value.as_str());
        }
    }
    lines
}

/// A set of synced field names where `line.*.<name>` stands for that field of every line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// The names that are not line patterns.
    plain: BTreeSet<String>,
    /// The `<name>` of each `line.*.<name>`, so a line field is checked without building its
    /// pattern: this is asked for every field of every record.
    line: BTreeSet<String>,
}

impl FieldSet {
    pub fn new(names: BTreeSet<String>) -> Self {
        let (line, plain): (BTreeSet<String>, BTreeSet<String>) =
            names.into_iter().partition(|n| n.starts_with("line.*."));
        let line = line
            .into_iter()
            .map(|n| n["line.*.".len()..].to_string())
            .collect();
        Self { plain, line }
    }

    pub fn contains(&self, field: &str) -> bool {
        self.plain.contains(field)
            || parse_line_field(field).is_some_and(|(_, name)| self.line.contains(name))
    }

    /// The concrete fields to compare for one record: the plain names, and every line field
    /// any of `values` holds.
    pub fn expand<'a>(&'a self, values: impl IntoIterator<Item = &'a Fields>) -> BTreeSet<&'a str> {
        let mut fields: BTreeSet<&str> = self.plain.iter().map(String::as_str).collect();
        for set in values {
            fields.extend(
                set.keys()
                    .filter(|f| f.starts_with("line.") && self.contains(f))
                    .map(String::as_str),
            );
        }
        fields
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// A decimal quantity in one spelling: no trailing zeros ("2", "2.5"); never negative (a return
/// is a document of its own, not a line below zero).
pub fn normalize_quantity(field: &str, value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.starts_with('-')
        && v.trim_start_matches(['-', '0', '.'])
            .chars()
            .any(|c| c != '0')
    {
        return Err(FieldError {
            field: field.to_string(),
            message: format!("negative quantity `{value}`"),
        });
    }
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let int_digits = int.strip_prefix('-').unwrap_or(int);
    if int_digits.is_empty() || !digits(int_digits) || !digits(frac) {
        return Err(FieldError {
            field: field.to_string(),
            message: format!("`{value}` is not a quantity"),
        });
    }
    let frac = frac.trim_end_matches('0');
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() || int == "-" {
        format!("{int}0")
    } else {
        int.to_string()
    };
    Ok(if frac.is_empty() {
        int
    } else {
        format!("{int}.{frac}")
    })
}

/// An amount in the currency's own number of decimals ("12.5" EUR -> "12.50").
pub fn normalize_amount(
    field: &str,
    value: &str,
    currency: Currency,
) -> Result<String, FieldError> {
    Money::parse_decimal(value, currency)
        .map(|m| m.to_decimal_string())
        .map_err(|e| FieldError {
            field: field.to_string(),
            message: e.to_string(),
        })
}

/// A date as `YYYY-MM-DD`, from an ISO date or date-time, or epoch milliseconds (HubSpot).
pub fn normalize_date(field: &str, value: &str) -> Result<String, FieldError> {
    let invalid = || FieldError {
        field: field.to_string(),
        message: format!("`{value}` is not a date"),
    };
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = v.parse().map_err(|_| invalid())?;
        let t = chrono::DateTime::from_timestamp_millis(ms).ok_or_else(invalid)?;
        return Ok(t.format("%Y-%m-%d").to_string());
    }
    let day = v.get(..10).ok_or_else(invalid)?;
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| invalid())?;
    Ok(day.to_string())
}

/// Puts every amount, quantity and date of a document record into its one canonical spelling,
/// so the same document reads the same from both systems. Fails naming the first bad field.
pub fn normalize(fields: &mut Fields, default_currency: Currency) -> Result<(), FieldError> {
    let currency = match fields.get("currency") {
        Some(code) => Currency::parse(code).map_err(|e| FieldError {
            field: "currency".into(),
            message: e.to_string(),
        })?,
        None => default_currency,
    };
    for (field, value) in fields.iter_mut() {
        let kind = parse_line_field(field).map_or(field.as_str(), |(_, name)| name);
        *value = match kind {
            "total" | "unit_price" | "subtotal" => normalize_amount(field, value, currency)?,
            "quantity" => normalize_quantity(field, value)?,
            "date" | "valid_until" | "due_date" => normalize_date(field, value)?,
            _ => continue,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_sets_match_line_patterns_and_expand_per_record() {
        let set = FieldSet::new(
            canonical_fields(Endpoint::SalesOrders)
                .into_iter()
                .collect(),
        );
        assert!(set.contains("line.12.quantity"));
        assert!(set.contains("total"));
        assert!(!set.contains("line.1.remarks"));
        assert!(!set.contains("line.x.quantity"));
        let a = Fields::from([("line.2.item".into(), "I1".into())]);
        let b = Fields::from([("line.1.remarks".into(), "x".into())]);
        let expanded = set.expand([&a, &b]);
        assert!(expanded.contains("line.2.item") && expanded.contains("number"));
        assert!(!expanded.contains("line.1.remarks"));
    }

    #[test]
    fn normalize_gives_one_spelling_and_names_the_bad_field() {
        let eur = Currency::parse("EUR").unwrap();
        let mut fields = Fields::from([
            ("line.1.quantity".into(), "2.50".into()),
            ("line.1.unit_price".into(), "12.5".into()),
            ("date".into(), "2026-11-23T00:00:00Z".into()),
            ("total".into(), "31".into()),
        ]);
        normalize(&mut fields, eur).unwrap();
        assert_eq!(fields["line.1.quantity"], "2.5");
        assert_eq!(fields["line.1.unit_price"], "12.50");
        assert_eq!(fields["date"], "2026-11-23");
        assert_eq!(fields["total"], "31.00");
        assert_eq!(normalize_quantity("q", "007").unwrap(), "7");
        assert!(
            normalize_quantity("q", "-5")
                .unwrap_err()
                .message
                .contains("negative")
        );
        assert!(normalize_quantity("q", "2x").is_err());
        assert_eq!(normalize_date("d", "1763856000000").unwrap(), "2025-11-23");
        let mut bad = Fields::from([("line.3.unit_price".into(), "12.345".into())]);
        assert_eq!(
            normalize(&mut bad, eur).unwrap_err().field,
            "line.3.unit_price"
        );
    }
}

//! Price mismatches: for every item and price book, the CRM price against the ERP price (the ERP
//! is the authority), and quote or order lines whose unit price deviates from the ERP price of the
//! customer's price book. Money stays in integer minor units throughout; a tolerance is an
//! absolute amount in minor units or a share in basis points, whichever is larger.
//!
//! [`PriceWatch`] remembers since when each mismatch has been seen, so a finding says when it
//! started, and repeated checks keep one finding per (price book, item).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::findings::{NewFinding, Severity};
use crate::domain::{Item, Line, Money, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceTolerance {
    /// Largest difference ignored, in minor units of the price's currency.
    pub minor_units: i64,
    /// Largest difference ignored, in basis points (1/100 of a percent) of the ERP price.
    pub basis_points: i64,
}

impl Default for PriceTolerance {
    /// Exact: any difference of a cent is a mismatch.
    fn default() -> Self {
        Self {
            minor_units: 0,
            basis_points: 0,
        }
    }
}

impl PriceTolerance {
    fn allows(&self, erp: Money, other: Money) -> bool {
        let difference = i128::from(other.minor) - i128::from(erp.minor);
        let share = i128::from(erp.minor).abs() * i128::from(self.basis_points) / 10_000;
        difference.abs() <= i128::from(self.minor_units).max(share)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PriceIssue {
    /// Same currency, different amounts beyond the tolerance.
    Different { crm: Money, erp: Money },
    /// The two sides price the entry in different currencies: no amount can be compared.
    CurrencyMismatch { crm: Money, erp: Money },
    /// The ERP has a price the CRM lacks.
    MissingInCrm { erp: Money },
    /// The CRM has a price the ERP does not know (the ERP is the authority: it should not be).
    MissingInErp { crm: Money },
    /// A quote or order line priced away from the customer's price book.
    Line {
        document: String,
        line_no: u32,
        unit_price: Money,
        erp: Money,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceMismatch {
    pub price_book: String,
    pub item_code: String,
    pub issue: PriceIssue,
    pub crm_record: Option<String>,
    pub erp_record: Option<String>,
}

impl PriceMismatch {
    fn fingerprint(&self) -> String {
        match &self.issue {
            PriceIssue::Line {
                document, line_no, ..
            } => format!("price_mismatch:line:{document}:{line_no}"),
            _ => format!("price_mismatch:{}:{}", self.price_book, self.item_code),
        }
    }

    /// The finding, given since when the mismatch has been seen and when it was noticed now.
    pub fn finding(&self, started_at: Timestamp, detected_at: Timestamp) -> NewFinding {
        let title = match &self.issue {
            PriceIssue::Different { crm, erp } => format!(
                "{} in {}: CRM {} {}, ERP {} {}",
                self.item_code,
                self.price_book,
                crm.to_decimal_string(),
                crm.currency,
                erp.to_decimal_string(),
                erp.currency
            ),
            PriceIssue::CurrencyMismatch { crm, erp } => format!(
                "{} in {}: CRM prices in {}, ERP in {}",
                self.item_code, self.price_book, crm.currency, erp.currency
            ),
            PriceIssue::MissingInCrm { .. } => {
                format!("{} in {}: no CRM price", self.item_code, self.price_book)
            }
            PriceIssue::MissingInErp { .. } => {
                format!("{} in {}: no ERP price", self.item_code, self.price_book)
            }
            PriceIssue::Line {
                document,
                line_no,
                unit_price,
                erp,
            } => format!(
                "{document} line {line_no}: {} at {} {}, price book {} says {}",
                self.item_code,
                unit_price.to_decimal_string(),
                unit_price.currency,
                self.price_book,
                erp.to_decimal_string()
            ),
        };
        NewFinding {
            kind: "price_mismatch".into(),
            // A wrong price in a customer document is about to reach the customer.
            severity: if matches!(self.issue, PriceIssue::Line { .. }) {
                Severity::Critical
            } else {
                Severity::Warning
            },
            fingerprint: self.fingerprint(),
            title,
            evidence: serde_json::to_value(self).unwrap_or_default(),
            started_at,
            detected_at,
        }
    }
}

/// Every price-book entry on which the CRM and the ERP disagree, sorted by price book and item.
/// Items are matched by code.
pub fn price_book_mismatches(
    erp_items: &[Item],
    crm_items: &[Item],
    tolerance: PriceTolerance,
) -> Vec<PriceMismatch> {
    type Key<'a> = (&'a str, &'a str);
    let mut erp: BTreeMap<Key<'_>, (Money, Option<&String>)> = BTreeMap::new();
    for item in erp_items {
        for e in &item.prices {
            erp.insert((&e.price_book, &item.code), (e.price, item.erp_id.as_ref()));
        }
    }
    let mut crm: BTreeMap<Key<'_>, (Money, Option<&String>)> = BTreeMap::new();
    for item in crm_items {
        for e in &item.prices {
            crm.insert((&e.price_book, &item.code), (e.price, item.crm_id.as_ref()));
        }
    }
    let mut keys: Vec<Key<'_>> = erp.keys().chain(crm.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let (e, c) = (erp.get(&key), crm.get(&key));
            let issue = match (c, e) {
                (Some((crm, _)), Some((erp, _))) if crm.currency != erp.currency => {
                    PriceIssue::CurrencyMismatch {
                        crm: *crm,
                        erp: *erp,
                    }
                }
                (Some((crm, _)), Some((erp, _))) if !tolerance.allows(*erp, *crm) => {
                    PriceIssue::Different {
                        crm: *crm,
                        erp: *erp,
                    }
                }
                (Some(_), Some(_)) | (None, None) => return None,
                (None, Some((erp, _))) => PriceIssue::MissingInCrm { erp: *erp },
                (Some((crm, _)), None) => PriceIssue::MissingInErp { crm: *crm },
            };
            Some(PriceMismatch {
                price_book: key.0.to_string(),
                item_code: key.1.to_string(),
                issue,
                crm_record: c.and_then(|(_, id)| id.cloned()),
                erp_record: e.and_then(|(_, id)| id.cloned()),
            })
        })
        .collect()
}

/// The lines of one document (quote or order) priced away from `price_book`, the customer's price
/// book in the ERP. Lines of items without an ERP price there are left to the price-book check.
pub fn line_mismatches(
    document: &str,
    lines: &[Line],
    price_book: &str,
    erp_items: &[Item],
    tolerance: PriceTolerance,
) -> Vec<PriceMismatch> {
    let prices: HashMap<&str, (Money, Option<&String>)> = erp_items
        .iter()
        .flat_map(|item| {
            item.prices
                .iter()
                .filter(|e| e.price_book == price_book)
                .map(move |e| (item.code.as_str(), (e.price, item.erp_id.as_ref())))
        })
        .collect();
    lines
        .iter()
        .filter_map(|line| {
            let (erp, erp_id) = prices.get(line.item_code.as_str())?;
            let off = line.unit_price.currency != erp.currency
                || !tolerance.allows(*erp, line.unit_price);
            off.then(|| PriceMismatch {
                price_book: price_book.to_string(),
                item_code: line.item_code.clone(),
                issue: PriceIssue::Line {
                    document: document.to_string(),
                    line_no: line.line_no,
                    unit_price: line.unit_price,
                    erp: *erp,
                },
                crm_record: None,
                erp_record: erp_id.cloned(),
            })
        })
        .collect()
}

/// Remembers since when each mismatch has been seen, across checks.
#[derive(Debug, Clone, Default)]
pub struct PriceWatch {
    since: HashMap<String, Timestamp>,
}

impl PriceWatch {
    /// The findings of one check at `now`: every current mismatch (with the time it was first
    /// seen), and the fingerprints of the mismatches that are gone, to resolve.
    pub fn check(
        &mut self,
        mismatches: &[PriceMismatch],
        now: Timestamp,
    ) -> (Vec<NewFinding>, Vec<String>) {
        let mut current = HashMap::with_capacity(mismatches.len());
        let findings = mismatches
            .iter()
            .map(|m| {
                let fingerprint = m.fingerprint();
                let started = self.since.get(&fingerprint).copied().unwrap_or(now);
                current.insert(fingerprint, started);
                m.finding(started, now)
            })
            .collect();
        let mut gone: Vec<String> = self
            .since
            .keys()
            .filter(|f| !current.contains_key(*f))
            .cloned()
            .collect();
        gone.sort();
        self.since = current;
        (findings, gone)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{Currency, PriceBookEntry};

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap())
    }

    fn item(code: &str, id: &str, prices: &[(&str, Money)]) -> Item {
        Item {
            code: code.into(),
            erp_id: Some(format!("erp-{id}")),
            crm_id: Some(format!("crm-{id}")),
            name: code.into(),
            prices: prices
                .iter()
                .map(|(book, price)| PriceBookEntry {
                    price_book: (*book).into(),
                    item_code: code.into(),
                    price: *price,
                })
                .collect(),
            ..Item::default()
        }
    }

    #[test]
    fn price_books_compare_within_tolerance_beyond_across_currencies_and_missing() {
        let usd = Money::new(1000, Currency::parse("USD").unwrap());
        let erp = vec![
            item("A", "1", &[("Retail", eur(1000)), ("Trade", eur(800))]),
            item("B", "2", &[("Retail", eur(2000))]),
            item("C", "3", &[("Retail", eur(1000))]),
            item("D", "4", &[("Retail", eur(500))]),
        ];
        let crm = vec![
            // Within 1%: 10.05 against 10.00.
            item("A", "1", &[("Retail", eur(1005)), ("Trade", eur(800))]),
            // Beyond: 21.00 against 20.00.
            item("B", "2", &[("Retail", eur(2100))]),
            item("C", "3", &[("Retail", usd)]),
            // D has no CRM price; E only a CRM one.
            item("D", "4", &[]),
            item("E", "5", &[("Retail", eur(300))]),
        ];
        let tolerance = PriceTolerance {
            minor_units: 0,
            basis_points: 100,
        };
        let found = price_book_mismatches(&erp, &crm, tolerance);
        let summary: Vec<(&str, &PriceIssue)> = found
            .iter()
            .map(|m| (m.item_code.as_str(), &m.issue))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "B",
                    &PriceIssue::Different {
                        crm: eur(2100),
                        erp: eur(2000)
                    }
                ),
                (
                    "C",
                    &PriceIssue::CurrencyMismatch {
                        crm: usd,
                        erp: eur(1000)
                    }
                ),
                ("D", &PriceIssue::MissingInCrm { erp: eur(500) }),
                ("E", &PriceIssue::MissingInErp { crm: eur(300) }),
            ]
        );
        assert_eq!(found[0].crm_record.as_deref(), Some("crm-2"));
        assert_eq!(found[0].erp_record.as_deref(), Some("erp-2"));
        // Exact tolerance: A's 5 cents count too.
        assert_eq!(
            price_book_mismatches(&erp, &crm, PriceTolerance::default()).len(),
            5
        );
    }

    #[test]
    fn lines_priced_away_from_the_customers_book_are_flagged() {
        let erp = vec![item(
            "A",
            "1",
            &[("Retail", eur(1000)), ("Trade", eur(800))],
        )];
        let line = |no: u32, price: Money| Line {
            line_no: no,
            item_code: "A".into(),
            quantity_milli: 2000,
            unit_price: price,
            subtotal: Money::new(price.minor * 2, price.currency),
            remarks: None,
            base_line: None,
        };
        let lines = vec![line(1, eur(800)), line(2, eur(1000)), line(3, eur(801))];
        let trade = line_mismatches("Q-17", &lines, "Trade", &erp, PriceTolerance::default());
        let flagged: Vec<u32> = trade
            .iter()
            .map(|m| match m.issue {
                PriceIssue::Line { line_no, .. } => line_no,
                _ => 0,
            })
            .collect();
        assert_eq!(flagged, vec![2, 3]);
        let lenient = PriceTolerance {
            minor_units: 1,
            basis_points: 0,
        };
        assert_eq!(
            line_mismatches("Q-17", &lines, "Trade", &erp, lenient).len(),
            1
        );
        let finding = trade[0].finding(Timestamp::from_micros(0), Timestamp::from_micros(0));
        assert_eq!(finding.fingerprint, "price_mismatch:line:Q-17:2");
        assert_eq!(finding.severity, Severity::Critical);
        assert_eq!(
            finding.title,
            "Q-17 line 2: A at 10.00 EUR, price book Trade says 8.00"
        );
    }

    #[test]
    fn a_mismatch_keeps_its_start_across_checks_and_is_resolved_when_gone() {
        let erp = vec![item("B", "2", &[("Retail", eur(2000))])];
        let drifted = vec![item("B", "2", &[("Retail", eur(2100))])];
        let t0 = Timestamp::from_micros(1_000_000);
        let t1 = t0 + Duration::from_secs(600);
        let mut watch = PriceWatch::default();
        let check = |crm: &[Item]| price_book_mismatches(&erp, crm, PriceTolerance::default());

        let (findings, gone) = watch.check(&check(&drifted), t0);
        assert_eq!((findings.len(), gone.len()), (1, 0));
        assert_eq!(findings[0].fingerprint, "price_mismatch:Retail:B");
        assert_eq!(
            findings[0].title,
            "B in Retail: CRM 21.00 EUR, ERP 20.00 EUR"
        );
        let (findings, _) = watch.check(&check(&drifted), t1);
        assert_eq!((findings[0].started_at, findings[0].detected_at), (t0, t1));
        let (findings, gone) = watch.check(&check(&erp), t1);
        assert!(findings.is_empty());
        assert_eq!(gone, vec!["price_mismatch:Retail:B".to_string()]);
    }
}

//! Price mismatches: for every item and price book, the CRM price against the ERP price (the ERP
//! is the authority), and quote or order lines whose unit price deviates from the ERP price of the
//! customer's own price book (each customer buys at one ERP price book; customers without one at
//! a configured default book). Money stays in integer minor units throughout; a tolerance is an
//! absolute amount in minor units or a share in basis points, whichever is larger.
//!
//! [`PriceWatch`] remembers since when each mismatch has been seen, so a finding says when it
//! started, and repeated checks keep one finding per (price book, item) and per document line.

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
    /// A quote or order line priced away from the customer's price book (a different amount
    /// beyond the tolerance, or another currency).
    Line {
        document: String,
        line_no: u32,
        customer: Option<String>,
        unit_price: Money,
        erp: Money,
    },
    /// A quote or order line of an item the customer's price book has no ERP price for: nothing
    /// backs the price the line quotes.
    LineWithoutErpPrice {
        document: String,
        line_no: u32,
        customer: Option<String>,
        unit_price: Money,
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
            }
            | PriceIssue::LineWithoutErpPrice {
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
                ..
            } => format!(
                "{document} line {line_no}: {} at {} {}, price book {} says {} {}",
                self.item_code,
                unit_price.to_decimal_string(),
                unit_price.currency,
                self.price_book,
                erp.to_decimal_string(),
                erp.currency
            ),
            PriceIssue::LineWithoutErpPrice {
                document,
                line_no,
                unit_price,
                ..
            } => format!(
                "{document} line {line_no}: {} at {} {}, no ERP price in price book {}",
                self.item_code,
                unit_price.to_decimal_string(),
                unit_price.currency,
                self.price_book
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

/// A quote or order as the line check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedDocument {
    /// How findings name it (`quotes Q-17`).
    pub name: String,
    /// The customer's ERP number (SAP B1 CardCode), when the document names one.
    pub customer: Option<String>,
    pub lines: Vec<Line>,
}

/// The ERP price book each customer buys at, and the book of customers without one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerPriceBooks {
    /// Customer ERP number -> price book.
    pub books: HashMap<String, String>,
    /// The book of customers without one of their own; none: their lines are not checked.
    pub fallback: Option<String>,
}

impl CustomerPriceBooks {
    /// Every customer at `book`.
    pub fn single(book: impl Into<String>) -> Self {
        Self {
            books: HashMap::new(),
            fallback: Some(book.into()),
        }
    }

    pub fn book_of(&self, customer: Option<&str>) -> Option<&str> {
        customer
            .and_then(|c| self.books.get(c))
            .or(self.fallback.as_ref())
            .map(String::as_str)
    }
}

/// The lines of `documents` priced away from the ERP price of their customer's price book: a
/// different amount beyond the tolerance or another currency, or an item that book has no ERP
/// price for. Documents of customers without a price book (and no fallback) are not checked.
pub fn line_mismatches(
    documents: &[PricedDocument],
    books: &CustomerPriceBooks,
    erp_items: &[Item],
    tolerance: PriceTolerance,
) -> Vec<PriceMismatch> {
    let prices: HashMap<(&str, &str), (Money, Option<&String>)> = erp_items
        .iter()
        .flat_map(|item| {
            item.prices.iter().map(move |e| {
                (
                    (e.price_book.as_str(), item.code.as_str()),
                    (e.price, item.erp_id.as_ref()),
                )
            })
        })
        .collect();
    let erp_ids: HashMap<&str, Option<&String>> = erp_items
        .iter()
        .map(|item| (item.code.as_str(), item.erp_id.as_ref()))
        .collect();
    let mut found = Vec::new();
    for document in documents {
        let Some(book) = books.book_of(document.customer.as_deref()) else {
            continue;
        };
        for line in &document.lines {
            let (issue, erp_record) = match prices.get(&(book, line.item_code.as_str())) {
                Some((erp, erp_id)) => {
                    let off = line.unit_price.currency != erp.currency
                        || !tolerance.allows(*erp, line.unit_price);
                    if !off {
                        continue;
                    }
                    let issue = PriceIssue::Line {
                        document: document.name.clone(),
                        line_no: line.line_no,
                        customer: document.customer.clone(),
                        unit_price: line.unit_price,
                        erp: *erp,
                    };
                    (issue, erp_id.cloned())
                }
                None => {
                    let issue = PriceIssue::LineWithoutErpPrice {
                        document: document.name.clone(),
                        line_no: line.line_no,
                        customer: document.customer.clone(),
                        unit_price: line.unit_price,
                    };
                    let erp_id = erp_ids.get(line.item_code.as_str()).copied().flatten();
                    (issue, erp_id.cloned())
                }
            };
            found.push(PriceMismatch {
                price_book: book.to_string(),
                item_code: line.item_code.clone(),
                issue,
                crm_record: None,
                erp_record,
            });
        }
    }
    found
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

    fn line(no: u32, item: &str, price: Money) -> Line {
        Line {
            line_no: no,
            item_code: item.into(),
            quantity_milli: 2000,
            unit_price: price,
            subtotal: Money::new(price.minor * 2, price.currency),
            remarks: None,
            base_line: None,
        }
    }

    fn document(name: &str, customer: Option<&str>, lines: Vec<Line>) -> PricedDocument {
        PricedDocument {
            name: name.into(),
            customer: customer.map(String::from),
            lines,
        }
    }

    /// (document, line, price book, issue kind) of each mismatch.
    fn summary(found: &[PriceMismatch]) -> Vec<(String, u32, String, &'static str)> {
        found
            .iter()
            .map(|m| match &m.issue {
                PriceIssue::Line {
                    document, line_no, ..
                } => (document.clone(), *line_no, m.price_book.clone(), "line"),
                PriceIssue::LineWithoutErpPrice {
                    document, line_no, ..
                } => (document.clone(), *line_no, m.price_book.clone(), "unpriced"),
                _ => (String::new(), 0, m.price_book.clone(), "other"),
            })
            .collect()
    }

    fn books() -> CustomerPriceBooks {
        CustomerPriceBooks {
            books: [("C1".to_string(), "Trade".to_string())].into(),
            fallback: Some("Retail".into()),
        }
    }

    #[test]
    fn lines_are_checked_against_their_customers_own_price_book() {
        let erp = vec![item(
            "A",
            "1",
            &[("Retail", eur(1000)), ("Trade", eur(800))],
        )];
        // The same prices on a trade customer's quote and on a retail (fallback) customer's.
        let prices = || vec![line(1, "A", eur(800)), line(2, "A", eur(1000))];
        let documents = vec![
            document("Q-17", Some("C1"), prices()),
            document("Q-18", Some("C2"), prices()),
            document("Q-19", None, prices()),
        ];
        let found = line_mismatches(&documents, &books(), &erp, PriceTolerance::default());
        let row = |d: &str, n: u32, book: &str| (d.to_string(), n, book.to_string(), "line");
        assert_eq!(
            summary(&found),
            vec![
                row("Q-17", 2, "Trade"),
                row("Q-18", 1, "Retail"),
                row("Q-19", 1, "Retail"),
            ]
        );
        // Evidence names the item, the book, both values, the document, line and customer.
        let finding = found[0].finding(Timestamp::from_micros(5), Timestamp::from_micros(9));
        assert_eq!(finding.fingerprint, "price_mismatch:line:Q-17:2");
        assert_eq!(finding.severity, Severity::Critical);
        assert_eq!(
            finding.title,
            "Q-17 line 2: A at 10.00 EUR, price book Trade says 8.00 EUR"
        );
        let e = &finding.evidence;
        assert_eq!(e["item_code"], "A");
        assert_eq!(e["price_book"], "Trade");
        assert_eq!(e["erp_record"], "erp-1");
        assert_eq!(e["issue"]["kind"], "line");
        assert_eq!(e["issue"]["document"], "Q-17");
        assert_eq!(e["issue"]["line_no"], 2);
        assert_eq!(e["issue"]["customer"], "C1");
        assert_eq!(e["issue"]["unit_price"]["minor"], 1000);
        assert_eq!(e["issue"]["erp"]["minor"], 800);
        assert_eq!(finding.started_at, Timestamp::from_micros(5));
        // Without a fallback book, customers without their own are not checked.
        let only_own = CustomerPriceBooks {
            fallback: None,
            ..books()
        };
        let found = line_mismatches(&documents, &only_own, &erp, PriceTolerance::default());
        assert_eq!(summary(&found), vec![row("Q-17", 2, "Trade")]);
    }

    #[test]
    fn customer_lines_within_tolerance_beyond_in_another_currency_and_unpriced() {
        let usd = Currency::parse("USD").unwrap();
        let erp = vec![
            item("A", "1", &[("Trade", eur(800))]),
            // B has no price in the customer's book.
            item("B", "2", &[("Retail", eur(500))]),
        ];
        let lines = vec![
            line(1, "A", eur(800)),
            // Within 1%: 8.05 against 8.00.
            line(2, "A", eur(805)),
            // Beyond: 8.20 against 8.00.
            line(3, "A", eur(820)),
            // The same amount in another currency.
            line(4, "A", Money::new(800, usd)),
            line(5, "B", eur(500)),
            // An item the ERP does not know at all.
            line(6, "Z", eur(100)),
        ];
        let documents = vec![document("O-3", Some("C1"), lines)];
        let one_percent = PriceTolerance {
            minor_units: 0,
            basis_points: 100,
        };
        let found = line_mismatches(&documents, &books(), &erp, one_percent);
        let row = |n: u32, kind| ("O-3".to_string(), n, "Trade".to_string(), kind);
        assert_eq!(
            summary(&found),
            vec![
                row(3, "line"),
                row(4, "line"),
                row(5, "unpriced"),
                row(6, "unpriced")
            ]
        );
        assert_eq!(found[2].erp_record.as_deref(), Some("erp-2"));
        assert_eq!(found[3].erp_record, None);
        let currency = found[1].finding(Timestamp::from_micros(0), Timestamp::from_micros(0));
        assert_eq!(
            currency.title,
            "O-3 line 4: A at 8.00 USD, price book Trade says 8.00 EUR"
        );
        let unpriced = found[2].finding(Timestamp::from_micros(0), Timestamp::from_micros(0));
        assert_eq!(unpriced.severity, Severity::Warning);
        assert_eq!(
            unpriced.title,
            "O-3 line 5: B at 5.00 EUR, no ERP price in price book Trade"
        );
        assert_eq!(unpriced.evidence["issue"]["kind"], "line_without_erp_price");
        // Exact tolerance: line 2's 5 cents count too.
        assert_eq!(
            line_mismatches(&documents, &books(), &erp, PriceTolerance::default()).len(),
            5
        );
    }

    #[test]
    fn a_line_mismatch_keeps_its_start_until_the_line_is_fixed() {
        let erp = vec![item("A", "1", &[("Trade", eur(800))])];
        let (t0, t1) = (
            Timestamp::from_micros(0),
            Timestamp::from_micros(60_000_000),
        );
        let mut watch = PriceWatch::default();
        let check = |price: Money| {
            let documents = vec![document("Q-1", Some("C1"), vec![line(1, "A", price)])];
            line_mismatches(&documents, &books(), &erp, PriceTolerance::default())
        };
        let (found, _) = watch.check(&check(eur(900)), t0);
        assert_eq!(found.len(), 1);
        let (found, _) = watch.check(&check(eur(900)), t1);
        assert_eq!((found[0].started_at, found[0].detected_at), (t0, t1));
        let (found, gone) = watch.check(&check(eur(800)), t1);
        assert!(found.is_empty());
        assert_eq!(gone, vec!["price_mismatch:line:Q-1:1".to_string()]);
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

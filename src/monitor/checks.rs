//! The live monitor's checks of the systems themselves, beside the minute buckets of the log:
//! - **prices**: every item's price in every price book, the CRM's against the ERP's, and the
//!   lines of the CRM's quotes and the ERP's sales orders against the ERP price book of each
//!   document's customer, read in full through the engine's connectors. A customer's book is the
//!   configured assignment ([`SystemChecks::with_customer_price_books`]: an operator naming a
//!   customer means it), else the `price_book` field of its ERP account when the ERP connector
//!   maps one, else the default line book;
//! - **reconciliation drift**: the differences each reconciliation of the engine recorded (price
//!   fields excluded: the price check owns those, one finding per item and price book).
//!
//! A check that fails to read a side reports nothing, so a finding is never resolved by an outage.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::TryRecvError};

use super::drift::DriftWatch;
use super::prices::price_book_mismatches;
use super::prices::{
    CustomerPriceBooks, PriceMismatch, PriceTolerance, PriceWatch, PricedDocument, line_mismatches,
};
use super::watch::Report;
use crate::domain::{Currency, Endpoint, Item, Line, Money, PriceBookEntry, System, Timestamp};
use crate::sync::engine::{Engine, Reconciled, SyncError};
use crate::sync::record::Record;

/// The currencies the two sides price in when a record names none.
#[derive(Debug, Clone, Copy)]
pub struct Currencies {
    pub crm: Currency,
    pub erp: Currency,
}

pub struct SystemChecks {
    engine: Arc<Engine>,
    tolerance: PriceTolerance,
    price_books: CustomerPriceBooks,
    currencies: Currencies,
    prices: PriceWatch,
    drift: DriftWatch,
    reconciled: broadcast::Receiver<Reconciled>,
}

impl SystemChecks {
    /// Checks with every customer's lines against `line_price_book` (until
    /// [`Self::with_customer_price_books`] or the ERP's accounts say otherwise).
    pub fn new(
        engine: Arc<Engine>,
        tolerance: PriceTolerance,
        line_price_book: String,
        currencies: Currencies,
    ) -> Self {
        Self {
            reconciled: engine.subscribe_reconciliations(),
            engine,
            tolerance,
            price_books: CustomerPriceBooks::single(line_price_book),
            currencies,
            prices: PriceWatch::default(),
            drift: DriftWatch::default(),
        }
    }

    /// Customer ERP number -> the ERP price book its quote and order lines are checked against,
    /// whatever the ERP's account says (customers not named keep the ERP's book, else the default
    /// line book).
    pub fn with_customer_price_books(mut self, books: HashMap<String, String>) -> Self {
        self.price_books.books = books;
        self
    }

    /// Reads both sides and reports every price mismatch (with when it was first seen) and the
    /// mismatches gone since the last check.
    pub async fn check_prices(&mut self, now: Timestamp) -> Result<Vec<Report>, SyncError> {
        let mismatches = self.price_mismatches().await?;
        let (open, gone) = self.prices.check(&mismatches, now);
        Ok(open
            .into_iter()
            .map(Report::Open)
            .chain(gone.into_iter().map(|fingerprint| Report::Resolve {
                fingerprint,
                at: now,
            }))
            .collect())
    }

    async fn price_mismatches(&self) -> Result<Vec<PriceMismatch>, SyncError> {
        let read = |system| self.engine.read_all(system, Endpoint::Items);
        let erp_all = items(&read(System::Erp).await?, System::Erp, self.currencies.erp);
        let mut erp_items = erp_all.clone();
        let mut crm_items = items(&read(System::Crm).await?, System::Crm, self.currencies.crm);
        // An item one side lacks altogether is the reconciliation's to report, and a price book
        // one side does not map is not synced: neither is a price mismatch.
        let mut shared: Vec<String> = self.engine.mapped_fields(System::Crm, Endpoint::Items)?;
        let erp_fields = self.engine.mapped_fields(System::Erp, Endpoint::Items)?;
        shared.retain(|f| erp_fields.contains(f));
        let codes =
            |items: &[Item]| -> HashSet<String> { items.iter().map(|i| i.code.clone()).collect() };
        let (erp_codes, crm_codes) = (codes(&erp_items), codes(&crm_items));
        for (items, other) in [(&mut erp_items, &crm_codes), (&mut crm_items, &erp_codes)] {
            items.retain(|i| other.contains(&i.code));
            for item in items.iter_mut() {
                item.prices
                    .retain(|p| shared.contains(&format!("price.{}", p.price_book)));
            }
        }
        let mut found = price_book_mismatches(&erp_items, &crm_items, self.tolerance);
        let configured: Vec<Endpoint> = self.engine.endpoints().map(|(e, _)| *e).collect();
        let mut documents = Vec::new();
        for (system, endpoint, currency) in [
            (System::Crm, Endpoint::Quotes, self.currencies.crm),
            (System::Erp, Endpoint::SalesOrders, self.currencies.erp),
        ] {
            if !configured.contains(&endpoint) {
                continue;
            }
            for document in self.engine.read_all(system, endpoint).await? {
                documents.push(PricedDocument {
                    name: format!(
                        "{} {}",
                        endpoint.as_str(),
                        document.key.as_deref().unwrap_or(&document.id)
                    ),
                    customer: document.fields.get("account").cloned(),
                    lines: lines(&document, currency),
                });
            }
        }
        if !documents.is_empty() {
            // Lines are judged against every ERP price (not only the prices both sides map): a
            // customer may buy at a book the CRM does not carry.
            let books = self.customer_price_books().await?;
            found.extend(line_mismatches(
                &documents,
                &books,
                &erp_all,
                self.tolerance,
            ));
        }
        Ok(found)
    }

    /// The configured customer price books, and for the customers not configured the ERP's own
    /// assignment (the `price_book` field of its accounts) when the ERP connector maps one.
    async fn customer_price_books(&self) -> Result<CustomerPriceBooks, SyncError> {
        let mut books = self.price_books.clone();
        let maps_books = self
            .engine
            .mapped_fields(System::Erp, Endpoint::Accounts)
            .is_ok_and(|fields| fields.iter().any(|f| f == "price_book"));
        if maps_books {
            for account in self
                .engine
                .read_all(System::Erp, Endpoint::Accounts)
                .await?
            {
                if let (Some(key), Some(book)) = (account.key, account.fields.get("price_book")) {
                    books.books.entry(key).or_insert_with(|| book.clone());
                }
            }
        }
        Ok(books)
    }

    /// The drift reports of the reconciliations finished since the last call.
    pub fn check_drift(&mut self) -> Vec<Report> {
        let mut reports = Vec::new();
        loop {
            match self.reconciled.try_recv() {
                Ok(check) => {
                    let differences: Vec<_> = check
                        .differences
                        .iter()
                        .filter(|e| e.endpoint != Endpoint::Pricebook)
                        .cloned()
                        .collect();
                    reports.extend(self.drift.check(check.endpoint, &differences, check.at));
                }
                Err(TryRecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the drift check missed reconciliations");
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return reports,
            }
        }
    }
}

fn money(value: &str, currency: Currency) -> Option<Money> {
    Money::parse_decimal(value, currency).ok()
}

/// Items as one side holds them: code (the shared key) and a price per price book (`price.<n>`).
fn items(records: &[Record], system: System, currency: Currency) -> Vec<Item> {
    records
        .iter()
        .filter_map(|r| {
            let code = r.key.clone().or_else(|| r.fields.get("code").cloned())?;
            let prices = r
                .fields
                .iter()
                .filter_map(|(field, value)| {
                    let book = field.strip_prefix("price.")?;
                    Some(PriceBookEntry {
                        price_book: book.to_string(),
                        item_code: code.clone(),
                        price: money(value, currency)?,
                    })
                })
                .collect();
            let id = Some(r.id.clone());
            let (crm_id, erp_id) = match system {
                System::Crm => (id, None),
                System::Erp => (None, id),
            };
            Some(Item {
                crm_id,
                erp_id,
                name: r.fields.get("name").cloned().unwrap_or_default(),
                code,
                prices,
                ..Item::default()
            })
        })
        .collect()
}

/// The lines of a document record (`line.<n>.item|quantity|unit_price|subtotal`).
fn lines(document: &Record, default: Currency) -> Vec<Line> {
    let currency = document
        .fields
        .get("currency")
        .and_then(|c| Currency::parse(c).ok())
        .unwrap_or(default);
    let field = |n: u32, name: &str| document.fields.get(&format!("line.{n}.{name}"));
    (1..)
        .map_while(|n| Some((n, field(n, "item")?)))
        .filter_map(|(n, item)| {
            let unit_price = money(field(n, "unit_price")?, currency)?;
            let quantity: f64 = field(n, "quantity").and_then(|q| q.parse().ok())?;
            Some(Line {
                line_no: n,
                item_code: item.clone(),
                quantity_milli: (quantity * 1000.0).round() as i64,
                subtotal: field(n, "subtotal")
                    .and_then(|s| money(s, currency))
                    .unwrap_or(unit_price),
                unit_price,
                remarks: None,
                base_line: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::record::Fields;

    fn record(key: &str, fields: &[(&str, &str)]) -> Record {
        Record {
            id: format!("id-{key}"),
            key: Some(key.into()),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Fields>(),
            modified_at: Timestamp::from_micros(0),
        }
    }

    #[test]
    fn records_become_items_and_lines() {
        let eur = Currency::parse("EUR").unwrap();
        let items = items(
            &[record(
                "I1",
                &[("price.1", "10.50"), ("price.2", "bad"), ("name", "Bolt")],
            )],
            System::Crm,
            eur,
        );
        assert_eq!(items[0].code, "I1");
        assert_eq!(items[0].crm_id.as_deref(), Some("id-I1"));
        assert_eq!(items[0].prices.len(), 1, "an unreadable price is left out");
        assert_eq!(items[0].prices[0].price, Money::new(1050, eur));
        let quote = record(
            "Q1",
            &[
                ("currency", "USD"),
                ("line.1.item", "I1"),
                ("line.1.quantity", "2"),
                ("line.1.unit_price", "11.55"),
                ("line.2.item", "I2"),
                ("line.2.quantity", "1"),
                ("line.2.unit_price", "3"),
            ],
        );
        let lines = lines(&quote, eur);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].quantity_milli, 2000);
        assert_eq!(
            lines[0].unit_price,
            Money::new(1155, Currency::parse("USD").unwrap())
        );
        assert_eq!(lines[1].line_no, 2);
    }
}

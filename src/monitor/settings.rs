//! `[monitor]`: the detectors' parameters and the live checks' cadence and tolerances, with the
//! values the evaluations in BENCHMARKS.md were measured with as defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::detector::DetectorParams;
use super::freshness::FreshnessParams;
use super::prices::PriceTolerance;
use super::seasonal::SeasonalParams;
use super::success_rate::SuccessRateParams;
use super::watch::WatchParams;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorSettings {
    /// Seconds between two price checks of the live monitor (both sides read in full).
    pub price_check_interval_secs: u64,
    /// Largest price difference ignored, in minor units of the price's currency...
    pub price_tolerance_minor_units: i64,
    /// ...or in basis points of the ERP price, whichever is larger.
    pub price_tolerance_basis_points: i64,
    /// The ERP price list quote and order lines are checked against (the canonical account does
    /// not carry the customer's own price list).
    pub line_price_book: String,
    /// Customer ERP number -> the ERP price list its quote and order lines are checked against,
    /// for customers who buy at another list than `line_price_book`. Overrides the list the ERP
    /// gives the customer (SAP B1 `PriceListNum`).
    #[serde(deserialize_with = "customer_books")]
    pub customer_price_books: BTreeMap<String, String>,
    pub success_rate: SuccessRateParams,
    pub seasonal: SeasonalParams,
    pub freshness: FreshnessParams,
    /// The generic metric-stream detector (`monitor score`).
    pub detector: DetectorParams,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            price_check_interval_secs: 300,
            price_tolerance_minor_units: 0,
            price_tolerance_basis_points: 0,
            line_price_book: "1".into(),
            customer_price_books: BTreeMap::new(),
            success_rate: SuccessRateParams::default(),
            seasonal: SeasonalParams::default(),
            freshness: FreshnessParams::default(),
            detector: DetectorParams::default(),
        }
    }
}

impl MonitorSettings {
    pub fn watch_params(&self) -> WatchParams {
        WatchParams {
            success_rate: self.success_rate.clone(),
            seasonal: self.seasonal.clone(),
            freshness: self.freshness.clone(),
        }
    }

    pub fn price_tolerance(&self) -> PriceTolerance {
        PriceTolerance {
            minor_units: self.price_tolerance_minor_units.max(0),
            basis_points: self.price_tolerance_basis_points.max(0),
        }
    }
}

/// The customer price books, a book given as text or as a number (SAP B1 price lists are
/// numbers); neither a customer nor a book may be empty.
fn customer_books<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Book {
        Name(String),
        Number(u64),
    }
    BTreeMap::<String, Book>::deserialize(d)?
        .into_iter()
        .map(|(customer, book)| {
            let book = match book {
                Book::Name(name) => name.trim().to_string(),
                Book::Number(n) => n.to_string(),
            };
            let customer = customer.trim().to_string();
            if customer.is_empty() || book.is_empty() {
                return Err(serde::de::Error::custom(format!(
                    "monitor.customer_price_books: `{customer}` = `{book}`: neither the customer \
                     nor the price book may be empty"
                )));
            }
            Ok((customer, book))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    #[test]
    fn customer_price_books_load_as_text_or_numbers_and_refuse_empty_names() {
        let settings = Settings::from_toml_str(
            "[monitor]\ncustomer_price_books = { \"C20000\" = \"2\", \"c20001\" = 3 }",
        )
        .unwrap();
        let books: Vec<(&str, &str)> = settings
            .monitor
            .customer_price_books
            .iter()
            .map(|(c, b)| (c.as_str(), b.as_str()))
            .collect();
        // Customer numbers keep their case.
        assert_eq!(books, [("C20000", "2"), ("c20001", "3")]);
        for bad in ["{ \"C1\" = \"\" }", "{ \"\" = \"2\" }"] {
            let err = Settings::from_toml_str(&format!("[monitor]\ncustomer_price_books = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("customer_price_books"), "{err}");
        }
    }
}

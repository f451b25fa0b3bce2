//! The records of the seven endpoints, as syncwarden holds them between the two systems.
//!
//! Every record carries its id on both sides (`crm_id`, `erp_id`); either may be missing until the
//! record has been created or linked on that side.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Endpoint, Money, Timestamp};

/// The cross-reference of one record's ids in the CRM and in the ERP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordLink {
    pub endpoint: Endpoint,
    pub crm_id: String,
    pub erp_id: String,
    pub linked_at: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub street: Option<String>,
    pub city: Option<String>,
    pub postcode: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
}

/// Accounts / Business Partners (bi-directional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub crm_id: Option<String>,
    pub erp_id: Option<String>,
    pub name: String,
    /// The ERP customer number (e.g. SAP B1 CardCode), also kept as a CRM property.
    pub erp_number: Option<String>,
    pub billing_address: Address,
    pub shipping_address: Address,
    pub phone: Option<String>,
    pub industry: Option<String>,
    pub modified_at: Option<Timestamp>,
}

/// Contacts (bi-directional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub crm_id: Option<String>,
    pub erp_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub owner: Option<String>,
    /// The account's ERP number, the key both systems share.
    pub account_erp_number: Option<String>,
    pub modified_at: Option<Timestamp>,
}

/// A price book (SAP B1 price list; HubSpot product price property).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceBook {
    pub crm_id: Option<String>,
    pub erp_id: Option<String>,
    pub name: String,
    pub currency: super::Currency,
}

/// One item's price in one price book (ERP -> CRM; the ERP is the authority).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceBookEntry {
    pub price_book: String,
    pub item_code: String,
    pub price: Money,
}

/// Items (ERP -> CRM).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub crm_id: Option<String>,
    pub erp_id: Option<String>,
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    pub prices: Vec<PriceBookEntry>,
    pub modified_at: Option<Timestamp>,
}

/// A document line of a quote, order or invoice. Quantities are in thousandths of a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub line_no: u32,
    pub item_code: String,
    pub quantity_milli: i64,
    pub unit_price: Money,
    pub subtotal: Money,
    pub remarks: Option<String>,
    /// The line of the document this one was copied from (SAP B1 BaseLine), if any.
    pub base_line: Option<u32>,
}

/// Quotes (CRM -> ERP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub crm_id: Option<String>,
    pub erp_id: Option<String>,
    pub erp_number: Option<String>,
    pub account_erp_number: String,
    pub owner: Option<String>,
    pub date: NaiveDate,
    pub valid_until: Option<NaiveDate>,
    pub ship_to: Address,
    pub lines: Vec<Line>,
    pub modified_at: Option<Timestamp>,
}

/// A document the ERP owns and sends to the CRM: a sales order or an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpDocument {
    pub crm_id: Option<String>,
    pub erp_id: Option<String>,
    pub number: String,
    pub date: NaiveDate,
    pub account_erp_number: String,
    pub owner: Option<String>,
    /// The document total (order value, invoice amount).
    pub total: Money,
    /// The ERP document this one was made from (a quote for an order, an order for an invoice).
    pub base_erp_id: Option<String>,
    pub lines: Vec<Line>,
    pub modified_at: Option<Timestamp>,
}

/// Sales orders (ERP -> CRM).
pub type SalesOrder = ErpDocument;

/// Invoices (ERP -> CRM).
pub type Invoice = ErpDocument;

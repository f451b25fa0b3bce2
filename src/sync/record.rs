//! A record as connectors exchange it with the engine: canonical field names, text values.

use std::collections::BTreeMap;

use crate::domain::Timestamp;

/// Canonical field name -> value. A field that is empty on a side is absent.
pub type Fields = BTreeMap<String, String>;

/// One record as one side holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The id on the side it came from (HubSpot object id, SAP B1 CardCode/ItemCode).
    pub id: String,
    /// The key both systems share (the ERP number), when the side knows it.
    pub key: Option<String>,
    pub fields: Fields,
    pub modified_at: Timestamp,
}

/// A page of records and the token of the next page, if any.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub records: Vec<Record>,
    pub next: Option<String>,
}

/// A create (no `id`) or an update of some fields of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub id: Option<String>,
    /// The shared ERP key, used to upsert without creating twice.
    pub key: String,
    pub fields: Fields,
}

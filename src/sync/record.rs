//! A record as connectors exchange it with the engine: canonical field names, text values.

use std::collections::BTreeMap;

use crate::domain::Timestamp;

/// Canonical field name -> value. A field that is empty on a side is absent.
pub type Fields = BTreeMap<String, String>;

/// The field that says a record was archived (deactivated) on its side: "true", else absent.
/// It syncs like any other field; a connector turns it into its system's archive action.
pub const ARCHIVED: &str = "archived";

/// Whether these values are those of an archived record.
pub fn is_archived(fields: &Fields) -> bool {
    fields.get(ARCHIVED).is_some_and(|v| v == "true")
}

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
    /// Records on the page that could not be read (bad timestamp, bad price...): left out, with why.
    pub rejected: Vec<Rejected>,
    pub next: Option<String>,
}

/// A record a connector refused to turn into a `Record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The record's id on its side, as far as it could be read.
    pub id: String,
    pub error: String,
}

/// A create (no `id`) or an update of some fields of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub id: Option<String>,
    /// The shared ERP key, used to upsert without creating twice.
    pub key: String,
    pub fields: Fields,
}

//! What the sync engine remembers between runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Endpoint, System, Timestamp};

/// The values both sides last agreed on for one record: the base of the three-way compare that
/// tells which side changed a field since the last sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordState {
    pub endpoint: Endpoint,
    /// The key both systems share (the ERP number).
    pub key: String,
    pub crm_id: Option<String>,
    pub erp_id: Option<String>,
    pub fields: BTreeMap<String, String>,
    pub synced_at: Timestamp,
}

/// Run-time switches of one endpoint, set by an operator on top of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EndpointControl {
    pub endpoint: Endpoint,
    pub paused: bool,
    pub dry_run: bool,
    pub changed_at: Timestamp,
    /// Who changed it (a token name, or `cli`).
    pub changed_by: String,
}

/// A write that failed, kept with its error until it is re-driven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: i64,
    pub endpoint: Endpoint,
    pub target: System,
    pub key: String,
    pub record_id: Option<String>,
    pub fields: BTreeMap<String, String>,
    pub error: String,
    pub attempts: i64,
    pub created_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

/// A field both systems changed since the last sync, held for a human (policy `manual`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Conflict {
    pub id: i64,
    pub endpoint: Endpoint,
    pub key: String,
    pub field: String,
    pub base_value: Option<String>,
    pub crm_value: Option<String>,
    pub erp_value: Option<String>,
    pub opened_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub resolution: Option<String>,
}

/// A change of one endpoint's ownership and conflict rules made at run time: the settings as a
/// whole (the `[sync.endpoints.<name>]` table's shape), who and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyChange {
    pub id: i64,
    pub endpoint: Endpoint,
    pub settings: serde_json::Value,
    pub changed_at: Timestamp,
    pub changed_by: String,
}

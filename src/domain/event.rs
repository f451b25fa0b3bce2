//! The field-level event: one row per field change syncwarden sees or makes.

use serde::{Deserialize, Serialize};

use super::{DomainError, Endpoint, System, Timestamp};

/// What happened to one field change. An open set: later features add their own outcomes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Applied,
    SkippedNotOwner,
    Conflict,
    ConflictResolved,
    Failed,
    Merged,
    Unmerged,
    Approved,
    Rejected,
    /// What a dry run would have done.
    DryRun,
    /// Reconciliation: a record one side has and the other lacks.
    Missing,
    /// Reconciliation: a field whose value differs between the sides.
    Drift,
    /// GDPR erasure: a record's personal values were replaced by a tombstone.
    Erased,
}

impl Outcome {
    pub const ALL: [Outcome; 13] = [
        Outcome::Applied,
        Outcome::SkippedNotOwner,
        Outcome::Conflict,
        Outcome::ConflictResolved,
        Outcome::Failed,
        Outcome::Merged,
        Outcome::Unmerged,
        Outcome::Approved,
        Outcome::Rejected,
        Outcome::DryRun,
        Outcome::Missing,
        Outcome::Drift,
        Outcome::Erased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::SkippedNotOwner => "skipped_not_owner",
            Outcome::Conflict => "conflict",
            Outcome::ConflictResolved => "conflict_resolved",
            Outcome::Failed => "failed",
            Outcome::Merged => "merged",
            Outcome::Unmerged => "unmerged",
            Outcome::Approved => "approved",
            Outcome::Rejected => "rejected",
            Outcome::DryRun => "dry_run",
            Outcome::Missing => "missing",
            Outcome::Drift => "drift",
            Outcome::Erased => "erased",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| DomainError::UnknownOutcome(s.to_string()))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field event before it is stored. Values are canonical JSON text (`"Acme"`, `12.5`, `null` is
/// stored as no value) so any field type survives unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewFieldEvent {
    pub idempotency_key: String,
    pub run_id: Option<String>,
    pub endpoint: Endpoint,
    pub crm_id: Option<String>,
    pub erp_id: Option<String>,
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub source_system: System,
    pub target_system: System,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub latency_ms: Option<i64>,
    pub occurred_at: Timestamp,
}

/// A stored field event: the event plus the id and time the log gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldEvent {
    pub id: i64,
    #[serde(flatten)]
    pub event: NewFieldEvent,
    pub recorded_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    /// Finished, but some writes failed (they are in the dead-letter list) or some records read
    /// were rejected as malformed.
    Partial,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Partial,
            RunStatus::Failed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// What a sync run did, filled in when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncRunCounts {
    pub records_read: i64,
    pub records_written: i64,
    pub events: i64,
    pub api_calls_ok: i64,
    pub api_calls_failed: i64,
}

/// One sync run of one endpoint (or of all, when `endpoint` is none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncRun {
    pub id: String,
    pub endpoint: Option<Endpoint>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub status: RunStatus,
    pub counts: SyncRunCounts,
    pub error: Option<String>,
}

//! Merge proposals of the deduper, as the store keeps them until an admin decides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Endpoint, Timestamp};

/// One field of the merged record: the value kept, the member it comes from, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MergeField {
    pub field: String,
    pub value: String,
    pub from: String,
    /// `agreed`, `owner_system`, `most_recent` or `most_complete`.
    pub why: String,
}

/// A proposal to merge the records of one duplicate cluster into its survivor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewDedupProposal {
    pub endpoint: Endpoint,
    /// Record keys of the cluster, sorted: the same cluster found twice is one proposal.
    pub members: Vec<String>,
    pub survivor: String,
    pub fields: Vec<MergeField>,
    /// Every member's fields when the proposal was made, so a merge can be undone exactly and a
    /// decision can become a labelled training pair.
    pub before: BTreeMap<String, BTreeMap<String, String>>,
    /// The weakest match probability inside the cluster.
    pub min_probability: f64,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Open,
    /// Approved (by a person, or by the agent under policy); the merge is queued or running.
    Approved,
    Rejected,
    /// Merged in both systems.
    Applied,
    /// Merged, then undone: every record is back as it was.
    Undone,
}

impl ProposalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Applied => "applied",
            Self::Undone => "undone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Open,
            Self::Approved,
            Self::Rejected,
            Self::Applied,
            Self::Undone,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DedupProposal {
    pub id: i64,
    pub status: ProposalStatus,
    pub decided_at: Option<Timestamp>,
    pub decided_by: Option<String>,
    #[serde(flatten)]
    pub proposal: NewDedupProposal,
}

/// A merge or its undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeKind {
    Merge,
    Undo,
}

impl MergeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Merge => "merge",
            Self::Undo => "undo",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Merge, Self::Undo]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Done, Self::Failed]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A merge (or undo) as a durable job: its steps, how far it got, and what the steps returned
/// (ids of records created again), so a worker that dies mid-way is taken over where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeJob {
    pub id: i64,
    pub proposal_id: i64,
    pub kind: MergeKind,
    pub plan: serde_json::Value,
    pub next_step: usize,
    pub results: BTreeMap<String, String>,
    pub status: JobStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

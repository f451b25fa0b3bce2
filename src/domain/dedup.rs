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
    Approved,
    Rejected,
}

impl ProposalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Open, Self::Approved, Self::Rejected]
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

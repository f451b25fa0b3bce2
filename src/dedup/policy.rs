//! When the agent may merge on its own: per entity, a probability floor, fields every member must
//! share, and never accounts with open invoices. Everything else waits for a person.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DedupError;
use super::merge::CRM_ONLY;
use crate::domain::{DedupProposal, Endpoint};
use crate::store::Store;

/// The auto-merge policy of one endpoint (`[dedup.policy.<endpoint>]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MergePolicy {
    /// Whether the agent may merge this endpoint's duplicates without a person at all.
    pub auto_merge: bool,
    /// The weakest match probability inside the cluster must be at least this.
    pub min_probability: f64,
    /// Fields every member must hold, with the same value (case and surrounding spaces aside).
    pub same_fields: Vec<String>,
    /// Never merge on its own when a member account has an open invoice (status `open` in the
    /// synced invoices): money is involved, a person decides.
    pub unless_open_invoices: bool,
}

impl Default for MergePolicy {
    fn default() -> Self {
        Self {
            auto_merge: false,
            min_probability: 0.98,
            same_fields: Vec::new(),
            unless_open_invoices: true,
        }
    }
}

/// The shipped policies: contacts merge on their own when sure and sharing an e-mail address;
/// accounts always wait for a person.
pub fn default_policies() -> BTreeMap<Endpoint, MergePolicy> {
    BTreeMap::from([
        (Endpoint::Accounts, MergePolicy::default()),
        (
            Endpoint::Contacts,
            MergePolicy {
                auto_merge: true,
                same_fields: vec!["email".into()],
                ..MergePolicy::default()
            },
        ),
    ])
}

/// Why the agent may not merge a proposal on its own, or `None` when it may.
pub async fn refusal(
    store: &dyn Store,
    policy: Option<&MergePolicy>,
    proposal: &DedupProposal,
) -> Result<Option<String>, DedupError> {
    let p = &proposal.proposal;
    let Some(policy) = policy.filter(|p| p.auto_merge) else {
        return Ok(Some(format!("no auto-merge for {}", p.endpoint)));
    };
    if p.min_probability < policy.min_probability {
        return Ok(Some(format!(
            "probability {:.3} below {}",
            p.min_probability, policy.min_probability
        )));
    }
    for field in &policy.same_fields {
        let values: Vec<Option<String>> = p
            .members
            .iter()
            .map(|m| {
                p.before
                    .get(m)
                    .and_then(|f| f.get(field))
                    .map(|v| v.trim().to_lowercase())
                    .filter(|v| !v.is_empty())
            })
            .collect();
        if values.iter().any(Option::is_none) || values.windows(2).any(|w| w[0] != w[1]) {
            return Ok(Some(format!("members differ in {field}")));
        }
    }
    if policy.unless_open_invoices && p.endpoint == Endpoint::Accounts {
        let invoices = store.record_states(Endpoint::Invoices).await?;
        let open = invoices.values().find(|i| {
            i.fields.get("status").map(String::as_str) == Some("open")
                && i.fields
                    .get("account")
                    .is_some_and(|a| p.members.iter().any(|m| !m.starts_with(CRM_ONLY) && m == a))
        });
        if let Some(invoice) = open {
            return Ok(Some(format!("open invoice {}", invoice.key)));
        }
    }
    Ok(None)
}

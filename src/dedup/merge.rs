//! Merges through the connectors, and their undo, as durable jobs.
//!
//! Approving a proposal stores a merge job: a plan of steps (HubSpot merges of each loser into the
//! survivor, the survivor's chosen values written on both sides, ERP losers made inactive) with the
//! before-image of every record. A worker claims the job, runs its steps in order and stores each
//! step's field events with the job's progress in one transaction, so a process killed mid-merge
//! is taken over at the step it was in; every step is idempotent, so running it twice is harmless.
//! The job ends by re-linking the records in the sync state (the survivor's agreed values, the
//! losers' states gone) so the next sync neither puts old values back nor recreates a loser.
//!
//! Undo runs the inverse plan. HubSpot cannot un-merge, so a merged-away CRM record is created
//! again with its before-image values (and its ERP key) and re-linked under its new id.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DedupError;
use crate::clock::Clock;
use crate::domain::{
    DedupProposal, Endpoint, JobStatus, MergeJob, MergeKind, NewFieldEvent, Outcome,
    ProposalStatus, RecordState, System, Timestamp,
};
use crate::store::{MergeFinish, MergeProgress, Store};
use crate::sync::connectors::{Connector, ConnectorError, http::worth_retrying};
use crate::sync::record::{ARCHIVED, Fields, Write};

/// Member ids of records only the CRM holds (not linked to the ERP) start with this.
pub const CRM_ONLY: &str = "crm:";

/// The pseudo-field of the event that records a record merged into another.
const MERGED_INTO: &str = "merged_into";

/// A failed step is tried again this many times (with backoff) before the job fails.
const MAX_ATTEMPTS: i64 = 5;

/// One step of a merge or undo, idempotent on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    /// HubSpot merge of `loser` into `survivor` (CRM ids).
    Merge { survivor: String, loser: String },
    /// Fields written to one record on one side; `old` holds their values before.
    Write {
        system: System,
        id: String,
        key: String,
        fields: Fields,
        old: Fields,
    },
    /// A merged-away CRM record created again; its new id is kept under `marker`.
    Restore {
        marker: String,
        key: Option<String>,
        fields: Fields,
        old_id: String,
    },
}

/// Everything a job does, decided when it is queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub endpoint: Endpoint,
    pub steps: Vec<Step>,
    /// The agreed states of the members as they were before (the before-image on the store side).
    pub before: Vec<RecordState>,
    /// The states stored when the job ends.
    pub after: Vec<RecordState>,
    /// Keys whose state is removed when the job ends (merged-away losers).
    pub dropped: Vec<String>,
    /// key -> restore marker: that state's CRM id is the id the restore step got.
    pub relink: BTreeMap<String, String>,
}

impl Plan {
    /// The fields, per record, whose value a step from `from` on would write is the erasure
    /// tombstone: the erasure replaced the before-image (or the chosen value), and writing it
    /// would put `[erased]` into the CRM or ERP over what the record holds there now.
    pub fn erased_writes(&self, from: usize) -> BTreeMap<String, Vec<String>> {
        let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for step in self.steps.iter().skip(from) {
            let (record, fields) = match step {
                Step::Merge { .. } => continue,
                Step::Write {
                    id, key, fields, ..
                } if key.is_empty() => (format!("{CRM_ONLY}{id}"), fields),
                Step::Write { key, fields, .. } => (key.clone(), fields),
                Step::Restore {
                    key,
                    fields,
                    old_id,
                    ..
                } => (
                    key.clone().unwrap_or_else(|| format!("{CRM_ONLY}{old_id}")),
                    fields,
                ),
            };
            let erased = fields
                .iter()
                .filter(|(_, v)| v.contains(crate::privacy::ERASED))
                .map(|(f, _)| f.clone());
            let entry = found.entry(record).or_default();
            entry.extend(erased);
            entry.sort();
            entry.dedup();
        }
        found.retain(|_, fields| !fields.is_empty());
        found
    }
}

/// A member of a proposal as the merge sees it.
struct Side {
    member: String,
    key: Option<String>,
    crm_id: Option<String>,
    erp_id: Option<String>,
    fields: Fields,
    state: Option<RecordState>,
}

fn sides(proposal: &DedupProposal, states: &BTreeMap<String, RecordState>) -> Vec<Side> {
    let p = &proposal.proposal;
    p.members
        .iter()
        .map(|member| match member.strip_prefix(CRM_ONLY) {
            Some(crm_id) => Side {
                member: member.clone(),
                key: None,
                crm_id: Some(crm_id.to_string()),
                erp_id: None,
                fields: p.before.get(member).cloned().unwrap_or_default(),
                state: None,
            },
            None => {
                let state = states.get(member).cloned();
                Side {
                    member: member.clone(),
                    key: Some(member.clone()),
                    crm_id: state.as_ref().and_then(|s| s.crm_id.clone()),
                    erp_id: state.as_ref().and_then(|s| s.erp_id.clone()),
                    fields: state
                        .as_ref()
                        .map(|s| s.fields.clone())
                        .or_else(|| p.before.get(member).cloned())
                        .unwrap_or_default(),
                    state,
                }
            }
        })
        .collect()
}

/// The merge plan of an approved proposal over the records' current states.
pub fn plan_merge(
    proposal: &DedupProposal,
    states: &BTreeMap<String, RecordState>,
    now: Timestamp,
) -> Result<Plan, DedupError> {
    let p = &proposal.proposal;
    let bad = |message: String| DedupError::Merge {
        proposal: proposal.id,
        message,
    };
    let mut members = sides(proposal, states);
    // The survivor must be linked to the ERP when any member is, or the ERP side would be lost.
    let pick = members
        .iter()
        .position(|s| {
            s.member == p.survivor && (s.key.is_some() || members.iter().all(|m| m.key.is_none()))
        })
        .or_else(|| members.iter().position(|s| s.key.is_some()))
        .ok_or_else(|| bad(format!("survivor {} is not a member", p.survivor)))?;
    let survivor = members.remove(pick);
    let chosen: Fields = p
        .fields
        .iter()
        .map(|f| (f.field.clone(), f.value.clone()))
        .collect();
    let mut steps = Vec::new();
    for loser in &members {
        if let Some(loser_crm) = &loser.crm_id {
            let survivor_crm = survivor.crm_id.clone().ok_or_else(|| {
                bad("the survivor has no CRM record to merge the others into".into())
            })?;
            steps.push(Step::Merge {
                survivor: survivor_crm,
                loser: loser_crm.clone(),
            });
        }
    }
    let changed: Fields = chosen
        .iter()
        .filter(|(f, v)| survivor.fields.get(*f) != Some(*v))
        .map(|(f, v)| (f.clone(), v.clone()))
        .collect();
    let old: Fields = changed
        .keys()
        .filter_map(|f| survivor.fields.get(f).map(|v| (f.clone(), v.clone())))
        .collect();
    let key = survivor.key.clone().unwrap_or_default();
    for (system, id) in [
        (System::Crm, &survivor.crm_id),
        (System::Erp, &survivor.erp_id),
    ] {
        if let (Some(id), false) = (id, changed.is_empty()) {
            steps.push(Step::Write {
                system,
                id: id.clone(),
                key: key.clone(),
                fields: changed.clone(),
                old: old.clone(),
            });
        }
    }
    for loser in &members {
        let (Some(erp_id), Some(key)) = (&loser.erp_id, &loser.key) else {
            continue;
        };
        if p.endpoint != Endpoint::Accounts {
            return Err(bad(format!(
                "{key} exists in the ERP, which cannot make a {} inactive: merge it there",
                p.endpoint
            )));
        }
        steps.push(Step::Write {
            system: System::Erp,
            id: erp_id.clone(),
            key: key.clone(),
            fields: Fields::from([(ARCHIVED.to_string(), "true".to_string())]),
            old: Fields::new(),
        });
    }
    let before: Vec<RecordState> = std::iter::once(&survivor)
        .chain(&members)
        .filter_map(|s| s.state.clone())
        .collect();
    let after = survivor
        .state
        .clone()
        .map(|mut s| {
            // Only the fields the sync keeps for both sides belong in the agreed state.
            for (field, value) in &changed {
                if s.fields.contains_key(field) {
                    s.fields.insert(field.clone(), value.clone());
                }
            }
            s.synced_at = now;
            s
        })
        .into_iter()
        .collect();
    Ok(Plan {
        endpoint: p.endpoint,
        steps,
        before,
        after,
        dropped: members.iter().filter_map(|m| m.key.clone()).collect(),
        relink: BTreeMap::new(),
    })
}

/// The undo of a merge that ran: the inverse steps, in reverse order, and the old states back.
pub fn plan_undo(proposal: &DedupProposal, merge: &Plan) -> Plan {
    let p = &proposal.proposal;
    let states: BTreeMap<&str, &RecordState> =
        merge.before.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut steps = Vec::new();
    let mut relink = BTreeMap::new();
    for step in merge.steps.iter().rev() {
        match step {
            Step::Merge { loser, .. } => {
                let member = p
                    .members
                    .iter()
                    .find(|m| {
                        m.strip_prefix(CRM_ONLY) == Some(loser.as_str())
                            || states
                                .get(m.as_str())
                                .is_some_and(|s| s.crm_id.as_deref() == Some(loser.as_str()))
                    })
                    .cloned()
                    .unwrap_or_else(|| format!("{CRM_ONLY}{loser}"));
                let key = (!member.starts_with(CRM_ONLY)).then(|| member.clone());
                let fields = key
                    .as_deref()
                    .and_then(|k| states.get(k))
                    .map(|s| s.fields.clone())
                    .or_else(|| p.before.get(&member).cloned())
                    .unwrap_or_default();
                let marker = format!("undo-{}-{loser}", proposal.id);
                if let Some(key) = &key {
                    relink.insert(key.clone(), marker.clone());
                }
                steps.push(Step::Restore {
                    marker,
                    key,
                    fields,
                    old_id: loser.clone(),
                });
            }
            Step::Write {
                system,
                id,
                key,
                fields,
                old,
            } => {
                let back: Fields = fields
                    .keys()
                    .map(|f| {
                        let value = match (f.as_str(), old.get(f)) {
                            (_, Some(v)) => v.clone(),
                            (ARCHIVED, None) => "false".to_string(),
                            // A field the record did not have is emptied again.
                            (_, None) => String::new(),
                        };
                        (f.clone(), value)
                    })
                    .collect();
                steps.push(Step::Write {
                    system: *system,
                    id: id.clone(),
                    key: key.clone(),
                    fields: back,
                    old: fields.clone(),
                });
            }
            Step::Restore { .. } => {}
        }
    }
    Plan {
        endpoint: merge.endpoint,
        steps,
        before: merge.after.clone(),
        after: merge.before.clone(),
        dropped: Vec::new(),
        relink,
    }
}

/// Runs merge and undo jobs through the connectors.
#[derive(Clone)]
pub struct Merger {
    store: Arc<dyn Store>,
    crm: Arc<dyn Connector>,
    erp: Arc<dyn Connector>,
    clock: Clock,
    holder: String,
    claim: Duration,
}

impl Merger {
    pub fn new(
        store: Arc<dyn Store>,
        crm: Arc<dyn Connector>,
        erp: Arc<dyn Connector>,
        clock: Clock,
        claim: Duration,
    ) -> Self {
        Self {
            store,
            crm,
            erp,
            clock,
            holder: format!(
                "merge-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            claim,
        }
    }

    pub fn crm(&self) -> &Arc<dyn Connector> {
        &self.crm
    }

    fn connector(&self, system: System) -> &Arc<dyn Connector> {
        match system {
            System::Crm => &self.crm,
            System::Erp => &self.erp,
        }
    }

    /// Runs pending jobs until none is left to claim; returns how many ended (done or failed).
    pub async fn run_pending(&self) -> Result<usize, DedupError> {
        let mut ended = 0;
        loop {
            let now = self.clock.now();
            let Some(job) = self
                .store
                .claim_merge_job(&self.holder, now + self.claim, now)
                .await?
            else {
                return Ok(ended);
            };
            if self.run_job(job).await? {
                ended += 1;
            }
        }
    }

    /// Runs one claimed job from its next step; true when it ended.
    async fn run_job(&self, job: MergeJob) -> Result<bool, DedupError> {
        let plan: Plan =
            serde_json::from_value(job.plan.clone()).map_err(|e| DedupError::Merge {
                proposal: job.proposal_id,
                message: format!("stored plan of job {}: {e}", job.id),
            })?;
        let erased = plan.erased_writes(job.next_step);
        if !erased.is_empty() {
            // Queued before an erasure replaced its values: retrying cannot help.
            let message = format!(
                "refused: it would write the erasure tombstone into {}",
                describe_erased(plan.endpoint, &erased)
            );
            return self.fail(&job, &plan, message).await;
        }
        let mut results = job.results.clone();
        for (i, step) in plan.steps.iter().enumerate().skip(job.next_step) {
            let events = match self.run_step(&job, &plan, i, step, &mut results).await {
                Ok(events) => events,
                Err(error) => return self.failed(&job, &plan, &error).await,
            };
            let now = self.clock.now();
            let progress = MergeProgress {
                job: job.id,
                holder: self.holder.clone(),
                next_step: i + 1,
                results: results.clone(),
                events,
                claimed_until: now + self.claim,
            };
            if !self.store.advance_merge_job(&progress, now).await? {
                tracing::warn!(job = job.id, "merge job taken over by another worker");
                return Ok(false);
            }
        }
        let after = plan
            .after
            .iter()
            .map(|s| {
                let mut s = s.clone();
                if let Some(id) = plan.relink.get(&s.key).and_then(|m| results.get(m)) {
                    s.crm_id = Some(id.clone());
                }
                s.synced_at = self.clock.now();
                s
            })
            .collect();
        let status = match job.kind {
            MergeKind::Merge => ProposalStatus::Applied,
            MergeKind::Undo => ProposalStatus::Undone,
        };
        let finish = MergeFinish {
            status: JobStatus::Done,
            error: None,
            events: Vec::new(),
            states: after,
            dropped_states: plan
                .dropped
                .iter()
                .map(|k| (plan.endpoint, k.clone()))
                .collect(),
            proposal: Some((job.proposal_id, status, job.created_by.clone())),
        };
        let ended = self
            .store
            .finish_merge_job(job.id, &self.holder, &finish, self.clock.now())
            .await?;
        tracing::info!(
            job = job.id,
            proposal = job.proposal_id,
            kind = job.kind.as_str(),
            "merge job done"
        );
        Ok(ended)
    }

    /// Sends one step; returns its field events.
    async fn run_step(
        &self,
        job: &MergeJob,
        plan: &Plan,
        index: usize,
        step: &Step,
        results: &mut BTreeMap<String, String>,
    ) -> Result<Vec<NewFieldEvent>, ConnectorError> {
        let event = StepEvents {
            job,
            endpoint: plan.endpoint,
            index,
            at: self.clock.now(),
        };
        match step {
            Step::Merge { survivor, loser } => {
                self.crm.merge(plan.endpoint, survivor, loser).await?;
                Ok(vec![event.make(
                    System::Crm,
                    Some(loser),
                    None,
                    MERGED_INTO,
                    None,
                    Some(survivor),
                )])
            }
            Step::Write {
                system,
                id,
                key,
                fields,
                old,
            } => {
                let connector = self.connector(*system);
                let mapped = connector.fields(plan.endpoint)?;
                let fields: Fields = fields
                    .iter()
                    .filter(|(f, _)| mapped.contains(f))
                    .map(|(f, v)| (f.clone(), v.clone()))
                    .collect();
                if fields.is_empty() {
                    return Ok(Vec::new());
                }
                let write = Write {
                    id: Some(id.clone()),
                    key: key.clone(),
                    fields: fields.clone(),
                };
                connector
                    .write(plan.endpoint, std::slice::from_ref(&write))
                    .await?
                    .pop()
                    .unwrap_or_else(|| Err(ConnectorError::malformed(*system, "no result")))?;
                let (crm_id, erp_id) = match system {
                    System::Crm => (
                        Some(id.as_str()),
                        Some(key.as_str()).filter(|k| !k.is_empty()),
                    ),
                    System::Erp => (None, Some(id.as_str())),
                };
                Ok(fields
                    .iter()
                    .map(|(f, v)| event.make(*system, crm_id, erp_id, f, old.get(f), Some(v)))
                    .collect())
            }
            Step::Restore {
                marker,
                key,
                fields,
                old_id,
            } => {
                let id = self
                    .crm
                    .restore(plan.endpoint, marker, key.as_deref(), fields)
                    .await?;
                results.insert(marker.clone(), id.clone());
                Ok(vec![event.make(
                    System::Crm,
                    Some(&id),
                    key.as_deref(),
                    MERGED_INTO,
                    Some(old_id),
                    None,
                )])
            }
        }
    }

    /// A step failed: retried later with backoff, or, past the attempts or when retrying cannot
    /// help, the job fails and says why (the steps done so far stay recorded).
    async fn failed(
        &self,
        job: &MergeJob,
        plan: &Plan,
        error: &ConnectorError,
    ) -> Result<bool, DedupError> {
        let now = self.clock.now();
        let message = error.to_string();
        tracing::warn!(job = job.id, attempt = job.attempts, error = %message, "merge step failed");
        if worth_retrying(error) && job.attempts < MAX_ATTEMPTS {
            let wait = Duration::from_secs(1 << job.attempts.clamp(0, 8));
            self.store
                .retry_merge_job(job.id, &self.holder, &message, now + wait)
                .await?;
            return Ok(false);
        }
        self.fail(job, plan, message).await
    }

    /// Ends a job as failed, saying why (the steps done so far stay recorded).
    async fn fail(&self, job: &MergeJob, plan: &Plan, message: String) -> Result<bool, DedupError> {
        let now = self.clock.now();
        tracing::warn!(job = job.id, proposal = job.proposal_id, error = %message, "merge job failed");
        let failed = NewFieldEvent {
            idempotency_key: format!("sw-{}-{}-failed", job.kind.as_str(), job.id),
            run_id: Some(format!("{}-{}", job.kind.as_str(), job.id)),
            endpoint: plan.endpoint,
            crm_id: None,
            erp_id: None,
            field: MERGED_INTO.into(),
            old_value: None,
            new_value: None,
            source_system: System::Crm,
            target_system: System::Crm,
            outcome: Outcome::Failed,
            error: Some(message.clone()),
            latency_ms: None,
            occurred_at: now,
        };
        let finish = MergeFinish {
            status: JobStatus::Failed,
            error: Some(message),
            events: vec![failed],
            states: Vec::new(),
            dropped_states: Vec::new(),
            proposal: None,
        };
        self.store
            .finish_merge_job(job.id, &self.holder, &finish, now)
            .await?;
        Ok(true)
    }
}

/// `accounts C0001: phone, billing_city; accounts crm:123: phone`, for messages.
pub fn describe_erased(endpoint: Endpoint, erased: &BTreeMap<String, Vec<String>>) -> String {
    erased
        .iter()
        .map(|(record, fields)| format!("{endpoint} {record}: {}", fields.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The field events of one step of one job: keyed by job, step and field, so a replayed step
/// records nothing twice.
struct StepEvents<'a> {
    job: &'a MergeJob,
    endpoint: Endpoint,
    index: usize,
    at: Timestamp,
}

impl StepEvents<'_> {
    fn make(
        &self,
        system: System,
        crm_id: Option<&str>,
        erp_id: Option<&str>,
        field: &str,
        old: Option<&String>,
        new: Option<&String>,
    ) -> NewFieldEvent {
        let (job, kind) = (self.job, self.job.kind.as_str());
        let text = |v: &String| serde_json::Value::String(v.clone()).to_string();
        NewFieldEvent {
            idempotency_key: format!("sw-{kind}-{}-{}-{field}", job.id, self.index),
            run_id: Some(format!("{kind}-{}", job.id)),
            endpoint: self.endpoint,
            crm_id: crm_id.map(str::to_string),
            erp_id: erp_id.map(str::to_string),
            field: field.to_string(),
            old_value: old.map(text),
            new_value: new.map(text),
            source_system: system,
            target_system: system,
            outcome: match job.kind {
                MergeKind::Merge => Outcome::Merged,
                MergeKind::Undo => Outcome::Unmerged,
            },
            // Who decided, as the other people's decisions are logged.
            error: Some(format!("{kind} by {}", job.created_by)),
            latency_ms: None,
            occurred_at: self.at,
        }
    }
}

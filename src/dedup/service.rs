//! The deduper as the running service uses it: scans over the store (and the CRM's records not
//! linked to the ERP), the auto-merge policy, and people's decisions (approve, reject, undo). The
//! admin API and the CLI only call these.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::llm::Adjudicator;
use super::merge::{CRM_ONLY, Merger, Plan, describe_erased, plan_merge, plan_undo};
use super::model::Model;
use super::profile::Profile;
use super::scan::{self, ScanReport};
use super::{DedupError, DedupSettings, policy};
use crate::clock::Clock;
use crate::domain::{
    DedupProposal, Endpoint, JobStatus, MergeJob, MergeKind, ProposalStatus, RecordState,
};
use crate::lease::{LeaseError, Leases};
use crate::privacy::ERASURE_FIELD;
use crate::store::{EventQuery, Store};

/// Who the agent's own decisions are recorded as.
pub const AGENT: &str = "agent";

/// The job name of the periodic scan's lease.
pub const LEASE_JOB: &str = "dedup:scan";

/// One proposal with its merge and undo jobs, as `GET /v1/actions/{id}` shows it.
#[derive(Debug, Serialize)]
pub struct Action {
    #[serde(flatten)]
    pub proposal: DedupProposal,
    pub jobs: Vec<MergeJob>,
}

/// What one scan-and-merge pass did for an endpoint.
#[derive(Debug, Serialize)]
pub struct PassReport {
    #[serde(flatten)]
    pub scan: ScanReport,
    /// Records only the CRM holds, scanned with the synced ones.
    pub crm_only_records: usize,
    pub auto_merged: Vec<i64>,
    /// Open proposals left for a person, with the reason the agent did not merge them.
    pub waiting: BTreeMap<i64, String>,
}

pub struct Dedup {
    store: Arc<dyn Store>,
    merger: Option<Merger>,
    settings: DedupSettings,
    feedback_dir: PathBuf,
    clock: Clock,
}

/// The deduper of a running instance: it merges through the sync engine's connectors when
/// there is an engine.
pub fn build(
    settings: &crate::config::Settings,
    store: Arc<dyn Store>,
    engine: Option<&crate::sync::engine::Engine>,
    clock: Clock,
) -> Dedup {
    let merger = engine.map(|e| {
        let (crm, erp) = e.connectors();
        Merger::new(
            store.clone(),
            crm,
            erp,
            clock.clone(),
            Duration::from_secs(settings.dedup.claim_secs.max(1)),
        )
    });
    Dedup::new(store, merger, &settings.dedup, &settings.data_dir, clock)
}

impl Dedup {
    /// `merger` is `None` where the CRM and ERP are not configured: decisions are stored and
    /// merges wait for an instance that has them.
    pub fn new(
        store: Arc<dyn Store>,
        merger: Option<Merger>,
        settings: &DedupSettings,
        data_dir: &Path,
        clock: Clock,
    ) -> Self {
        let feedback_dir = if settings.feedback_dir.is_empty() {
            data_dir.join("dedup-feedback")
        } else {
            PathBuf::from(&settings.feedback_dir)
        };
        Self {
            store,
            merger,
            settings: settings.clone(),
            feedback_dir,
            clock,
        }
    }

    /// Where a person's decisions on an endpoint's proposals are kept as labelled pairs.
    pub fn feedback_file(&self, endpoint: Endpoint) -> PathBuf {
        self.feedback_dir.join(format!("{endpoint}.csv"))
    }

    async fn proposal(&self, id: i64) -> Result<DedupProposal, DedupError> {
        self.store
            .dedup_proposal(id)
            .await?
            .ok_or(DedupError::NotFound(id))
    }

    pub async fn action(&self, id: i64) -> Result<Action, DedupError> {
        Ok(Action {
            proposal: self.proposal(id).await?,
            jobs: self.store.merge_jobs(id).await?,
        })
    }

    fn must_be(
        p: &DedupProposal,
        status: ProposalStatus,
        message: &'static str,
    ) -> Result<(), DedupError> {
        if p.status == status {
            Ok(())
        } else {
            Err(DedupError::WrongState {
                id: p.id,
                status: p.status.as_str(),
                message,
            })
        }
    }

    /// The proposal, if it is still open; `message` says what waits for an open one.
    async fn open_proposal(
        &self,
        id: i64,
        message: &'static str,
    ) -> Result<DedupProposal, DedupError> {
        let p = self.proposal(id).await?;
        Self::must_be(&p, ProposalStatus::Open, message)?;
        Ok(p)
    }

    /// Stores a decision on an open proposal. The store only decides open ones, so of two
    /// people deciding at once the first wins and the second is told.
    async fn decide(
        &self,
        id: i64,
        status: ProposalStatus,
        by: &str,
    ) -> Result<DedupProposal, DedupError> {
        self.store
            .decide_dedup_proposal(id, status, by, self.clock.now())
            .await?
            .ok_or(DedupError::WrongState {
                id,
                status: "decided",
                message: "someone decided it meanwhile",
            })
    }

    /// Approves an open proposal and merges it: the plan is made (and checked) first, the
    /// decision and the merge job are stored, then the merge runs when the connectors are here.
    pub async fn approve(&self, id: i64, by: &str) -> Result<Action, DedupError> {
        let open = self
            .open_proposal(id, "only an open action can be approved")
            .await?;
        let states = self.states(open.proposal.endpoint).await?;
        let plan = plan_merge(&open, &states, self.clock.now())?;
        self.refuse_erased(&open, "approved", &plan).await?;
        let decided = self.decide(id, ProposalStatus::Approved, by).await?;
        if by != AGENT {
            self.keep_feedback(&decided, true);
        }
        self.enqueue(id, MergeKind::Merge, &plan, by).await?;
        self.run_merges().await;
        self.action(id).await
    }

    pub async fn reject(&self, id: i64, by: &str) -> Result<Action, DedupError> {
        self.open_proposal(id, "only an open action can be rejected")
            .await?;
        let decided = self.decide(id, ProposalStatus::Rejected, by).await?;
        self.keep_feedback(&decided, false);
        self.action(id).await
    }

    /// Undoes an applied merge: every record back to its before-image, re-linked.
    pub async fn undo(&self, id: i64, by: &str) -> Result<Action, DedupError> {
        let applied = self.proposal(id).await?;
        Self::must_be(
            &applied,
            ProposalStatus::Applied,
            "only an applied merge can be undone",
        )?;
        let merge = self
            .store
            .merge_jobs(id)
            .await?
            .into_iter()
            .find(|j| j.kind == MergeKind::Merge && j.status == JobStatus::Done)
            .ok_or(DedupError::WrongState {
                id,
                status: "applied",
                message: "its merge job is missing",
            })?;
        let plan: Plan = serde_json::from_value(merge.plan).map_err(|e| DedupError::Merge {
            proposal: id,
            message: format!("stored plan: {e}"),
        })?;
        let undo = plan_undo(&applied, &plan);
        self.refuse_erased(&applied, "undone", &undo).await?;
        self.enqueue(id, MergeKind::Undo, &undo, by).await?;
        self.run_merges().await;
        self.action(id).await
    }

    /// Refuses a plan that would write the erasure tombstone into the CRM or ERP (a before-image
    /// or a chosen value erased since the proposal was made), naming the erasures of its records
    /// and the fields.
    async fn refuse_erased(
        &self,
        proposal: &DedupProposal,
        doing: &'static str,
        plan: &Plan,
    ) -> Result<(), DedupError> {
        let erased = plan.erased_writes(0);
        if erased.is_empty() {
            return Ok(());
        }
        let records: BTreeSet<&str> = erased
            .keys()
            .chain(&proposal.proposal.members)
            .map(|r| r.strip_prefix(CRM_ONLY).unwrap_or(r))
            .collect();
        let mut erasures = BTreeSet::new();
        for record in records {
            let query = EventQuery {
                endpoint: Some(plan.endpoint),
                record_id: Some(record.to_string()),
                field: Some(ERASURE_FIELD.to_string()),
                ..Default::default()
            };
            for event in self.store.query_events(&query).await? {
                erasures.extend(event.event.run_id);
            }
        }
        let erasures = if erasures.is_empty() {
            "a GDPR erasure".to_string()
        } else {
            let ids: Vec<&str> = erasures
                .iter()
                .map(|run| run.strip_prefix("erasure-").unwrap_or(run))
                .collect();
            format!("GDPR erasure {}", ids.join(", "))
        };
        let records = describe_erased(plan.endpoint, &erased);
        tracing::warn!(proposal = proposal.id, doing, %erasures, %records, "refused: erased personal data");
        Err(DedupError::Erased {
            id: proposal.id,
            doing,
            erasures,
            records,
        })
    }

    async fn enqueue(
        &self,
        id: i64,
        kind: MergeKind,
        plan: &Plan,
        by: &str,
    ) -> Result<(), DedupError> {
        let plan = serde_json::to_value(plan).map_err(|e| DedupError::Merge {
            proposal: id,
            message: e.to_string(),
        })?;
        let queued = self
            .store
            .enqueue_merge_job(id, kind, &plan, by, self.clock.now())
            .await?;
        tracing::info!(proposal = id, kind = kind.as_str(), %by, job = ?queued, "merge job queued");
        Ok(())
    }

    /// Runs the pending merge jobs; a failure is logged and the job stays for the next pass.
    pub async fn run_merges(&self) -> usize {
        let Some(merger) = &self.merger else {
            return 0;
        };
        match merger.run_pending().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "merge worker pass failed");
                0
            }
        }
    }

    /// A person's decision kept as labelled pairs for `dedup train`; a failure to write it is
    /// logged, the decision stands.
    fn keep_feedback(&self, decided: &DedupProposal, approved: bool) {
        let path = self.feedback_file(decided.proposal.endpoint);
        let written = std::fs::create_dir_all(&self.feedback_dir)
            .map_err(|source| DedupError::Io {
                path: self.feedback_dir.clone(),
                source,
            })
            .and_then(|()| scan::append_feedback(&path, decided, approved));
        match written {
            Ok(pairs) => {
                tracing::info!(pairs, file = %path.display(), "decision kept as labelled pairs")
            }
            Err(e) => tracing::warn!(error = %e, "could not keep the decision as training pairs"),
        }
    }

    async fn states(
        &self,
        endpoint: Endpoint,
    ) -> Result<BTreeMap<String, RecordState>, DedupError> {
        Ok(self
            .store
            .record_states(endpoint)
            .await?
            .into_iter()
            .collect())
    }

    /// The CRM's records of an endpoint that are not linked to the ERP (planted or typed-in
    /// duplicates live here), as states keyed `crm:<id>`.
    async fn crm_only(&self, endpoint: Endpoint) -> Result<Vec<RecordState>, DedupError> {
        let Some(merger) = &self.merger else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        let mut page = None;
        loop {
            let read = merger.crm().pull(endpoint, None, page).await?;
            found.extend(
                read.records
                    .into_iter()
                    .filter(|r| r.key.is_none())
                    .map(|r| RecordState {
                        endpoint,
                        key: format!("{CRM_ONLY}{}", r.id),
                        crm_id: Some(r.id),
                        erp_id: None,
                        fields: r.fields,
                        synced_at: r.modified_at,
                    }),
            );
            match read.next {
                Some(next) => page = Some(next),
                None => return Ok(found),
            }
        }
    }

    /// Scans one endpoint, then merges on the agent's own authority what the policy allows.
    pub async fn scan_and_merge(
        &self,
        endpoint: Endpoint,
        profile: &Profile,
        model: &Model,
        llm: Option<&Adjudicator>,
    ) -> Result<PassReport, DedupError> {
        let extra = self.crm_only(endpoint).await?;
        let crm_only_records = extra.len();
        let scan = scan::scan(
            self.store.as_ref(),
            profile,
            model,
            &self.settings,
            llm,
            endpoint,
            extra,
            self.clock.now(),
        )
        .await?;
        let mut report = PassReport {
            scan,
            crm_only_records,
            auto_merged: Vec::new(),
            waiting: BTreeMap::new(),
        };
        let policy = self.settings.policy.get(&endpoint);
        for open in self
            .store
            .dedup_proposals(Some(endpoint), Some(ProposalStatus::Open))
            .await?
        {
            match policy::refusal(self.store.as_ref(), policy, &open).await? {
                Some(why) => {
                    report.waiting.insert(open.id, why);
                }
                None if self.merger.is_some() => match self.approve(open.id, AGENT).await {
                    Ok(_) => report.auto_merged.push(open.id),
                    Err(e) => {
                        report.waiting.insert(open.id, e.to_string());
                    }
                },
                None => {
                    report
                        .waiting
                        .insert(open.id, "no connectors to merge with".into());
                }
            }
        }
        Ok(report)
    }

    /// One pass over every endpoint with a profile, under the `dedup:scan` lease (renewed while
    /// the pass lasts, so a long pass keeps it and a dead instance loses it within one lease
    /// length) so two instances never scan and merge at once; `None` when another instance holds
    /// it.
    pub async fn pass(
        &self,
        scans: &[(Endpoint, Profile, Model)],
        llm: Option<&Adjudicator>,
        leases: &Leases,
    ) -> Result<Option<Vec<PassReport>>, DedupError> {
        let work = async {
            let mut reports = Vec::new();
            let mut result = Ok(());
            for (endpoint, profile, model) in scans {
                match self.scan_and_merge(*endpoint, profile, model, llm).await {
                    Ok(report) => reports.push(report),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            self.run_merges().await;
            result.map(|()| reports)
        };
        match leases.hold(LEASE_JOB, work).await {
            Ok(reports) => reports.map(Some),
            Err(LeaseError::Busy { .. }) => Ok(None),
            Err(LeaseError::Store(e)) => Err(e.into()),
        }
    }

    /// The profiles and models of the endpoints configured in `dedup.profiles`; an endpoint whose
    /// profile or model cannot be loaded is left out, saying why.
    pub fn load_scans(&self) -> Vec<(Endpoint, Profile, Model)> {
        self.settings
            .profiles
            .iter()
            .filter_map(|(endpoint, path)| {
                let loaded = Profile::load(Path::new(path))
                    .and_then(|profile| Ok((super::load_model(&profile)?, profile)));
                match loaded {
                    Ok((model, profile)) => Some((*endpoint, profile, model)),
                    Err(e) => {
                        tracing::error!(%endpoint, error = %e, "no periodic dedup of this endpoint");
                        None
                    }
                }
            })
            .collect()
    }
}

/// Scans and auto-merges every `dedup.interval_secs` (and runs waiting merge jobs) until `stop`.
pub async fn run(
    dedup: Arc<Dedup>,
    llm: Option<Adjudicator>,
    every: Duration,
    clock: Clock,
    leases: Leases,
    mut stop: watch::Receiver<bool>,
) {
    let scans = dedup.load_scans();
    loop {
        match dedup.pass(&scans, llm.as_ref(), &leases).await {
            Ok(Some(reports)) => {
                for r in reports {
                    tracing::info!(endpoint = %r.scan.endpoint, new_proposals = r.scan.new_proposals, auto_merged = r.auto_merged.len(), waiting = r.waiting.len(), "dedup pass done");
                }
            }
            Ok(None) => tracing::debug!("another instance runs the dedup pass"),
            Err(e) => tracing::warn!(error = %e, "dedup pass failed"),
        }
        tokio::select! {
            () = clock.sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

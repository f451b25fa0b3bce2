//! Persistence: one `Store` trait, an embedded SQLite backend and a PostgreSQL backend with the same
//! schema shape, each with its own migrations run at start-up.

mod common;
mod digest;
mod listing;
mod postgres;
mod security;
mod sqlite;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::alert::{
    Alert, Attempt, AttemptOutcome, NewNotification, NewSilence, NotificationLogEntry, OutboxEntry,
    OutboxStatus, Silence,
};
use crate::config::{DatabaseSettings, redact_url};
use crate::domain::{
    Conflict, DeadLetter, Endpoint, EndpointControl, FieldEvent, NewFieldEvent, RecordLink,
    RecordState, RunStatus, SyncRun, SyncRunCounts, System, Timestamp,
};
use crate::monitor::rollup::{ApiCalls, Resolution, RollupRow};
use crate::monitor::{Finding, FindingState, NewFinding};

pub use digest::{DayRow, DigestSend, DigestStore, WeekBounds};
pub use listing::{FindingFilter, ListStore, Page, RunKey};
pub use postgres::{PostgresStore, create_scratch_database, drop_database};
pub use security::SecurityStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("idempotency key `{key}` was already used for a different event")]
    IdempotencyConflict { key: String, index: usize },
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url `{0}` (expected sqlite://... or postgres://...)")]
    UnsupportedUrl(String),
    #[error("partition {partition} holds {found} rows, {archived} were archived; not dropped")]
    ArchiveMismatch {
        partition: String,
        found: i64,
        archived: i64,
    },
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e)
            }
            other => StoreError::Database(other),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// One monthly partition of the event log: the events with `from <= occurred_at < to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPartition {
    pub name: String,
    pub from: Timestamp,
    pub to: Timestamp,
}

/// What an append did: `accepted` new events stored, `duplicates` replays of events already stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AppendResult {
    pub accepted: usize,
    pub duplicates: usize,
}

/// A merge job's step done: what to store with it.
#[derive(Debug, Clone)]
pub struct MergeProgress {
    pub job: i64,
    pub holder: String,
    pub next_step: usize,
    pub results: std::collections::BTreeMap<String, String>,
    pub events: Vec<NewFieldEvent>,
    pub claimed_until: Timestamp,
}

/// How a merge job ends and what it leaves in the store.
#[derive(Debug, Clone)]
pub struct MergeFinish {
    pub status: crate::domain::JobStatus,
    pub error: Option<String>,
    pub events: Vec<NewFieldEvent>,
    /// The records' agreed states after the merge (the survivor's new values, ids re-linked).
    pub states: Vec<RecordState>,
    /// Records that no longer exist as such (a merged-away loser).
    pub dropped_states: Vec<(Endpoint, String)>,
    /// The proposal's new status, and who is recorded as deciding it if nobody has yet.
    pub proposal: Option<(i64, crate::domain::ProposalStatus, String)>,
}

/// Filters of the event-log queries (the audit trail). Every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub endpoint: Option<Endpoint>,
    /// A record id on either side.
    pub record_id: Option<String>,
    pub field: Option<String>,
    pub run_id: Option<String>,
    /// Inclusive lower bound on `occurred_at`.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound on `occurred_at`.
    pub to: Option<Timestamp>,
    /// Keyset pagination: only events with an id above this one.
    pub after_id: Option<i64>,
    /// At most this many events, oldest id first (default: 10,000; ceiling: 10,001, a page
    /// and the first event of the next).
    pub limit: Option<u32>,
}

pub const MAX_QUERY_LIMIT: u32 = 10_000;

/// Everything one sync step stores, in one transaction: its events, the new base values of the
/// records it synced, the cursors it reached, the failed writes and conflicts it opened and the
/// dead letters it re-drove. After a crash either all of it is there or none of it.
#[derive(Debug, Default)]
pub struct SyncCommit {
    pub events: Vec<NewFieldEvent>,
    pub states: Vec<RecordState>,
    pub cursors: Vec<(Endpoint, System, Timestamp)>,
    /// New dead letters (their `id` and `resolved_at` are ignored).
    pub dead_letters: Vec<DeadLetter>,
    /// New conflicts (their `id` and resolution are ignored).
    pub conflicts: Vec<Conflict>,
    pub resolved_dead_letters: Vec<i64>,
    /// Dead letters re-driven without success, with the new error.
    pub retried_dead_letters: Vec<(i64, String)>,
    /// Settles the write intents of this endpoint (they are deleted).
    pub clear_intents: Option<Endpoint>,
    /// Settles these write intents, by key: the writes of one chunk of a run.
    pub settled_intents: Vec<String>,
    /// Conflicts a person settled: (id, how).
    pub resolved_conflicts: Vec<(i64, String)>,
}

/// One instance's claim on the next slot of a schedule that several instances share. The one
/// that took the last slot takes this one once it is due; another only once it was due before
/// `overdue_before`, and not while another instance holds the lease `lease`.
#[derive(Debug, Clone, Copy)]
pub struct SlotClaim<'a> {
    pub job: &'a str,
    /// Who claims: its lease holder name.
    pub holder: &'a str,
    /// The lease of the work the slot runs.
    pub lease: &'a str,
    pub now: Timestamp,
    pub overdue_before: Timestamp,
    /// The slot after this one.
    pub next: Timestamp,
    /// When set, a slot that is not already the claimer's is taken only within its share.
    pub share: Option<SlotShare<'a>>,
}

/// An instance's share of the schedules that several instances share (issue 8): of `endpoints`
/// schedules, an instance takes one it does not hold (never taken, handed back, or overdue) only
/// while it holds fewer than `endpoints` divided by the live instances, rounded up.
#[derive(Debug, Clone, Copy)]
pub struct SlotShare<'a> {
    pub endpoints: usize,
    /// The schedules shared (a `LIKE` pattern of their job names), counted per holder.
    pub slots: &'a str,
    /// The live instances: the unexpired leases whose job names match this `LIKE` pattern.
    pub instances: &'a str,
    /// A slot due before this is anyone's, whatever they hold: no instance below its share
    /// took it (instances configured with different endpoints), and it must not wait for ever.
    pub starved_before: Timestamp,
}

/// The write of one record about to be made, stored before it goes out: the events it will
/// record if it reaches its target.
#[derive(Debug, Clone)]
pub struct WriteIntent<'a> {
    /// Names the intent; derived from its events' keys, so the same write planned again is the
    /// same intent and a different one is another.
    pub key: String,
    pub events: Vec<&'a NewFieldEvent>,
}

#[async_trait]
pub trait Store: DigestStore + SecurityStore + ListStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Applies every pending migration.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a batch of events in one transaction: all of it or none. A key already stored with the
    /// same content counts as a duplicate; with different content the whole batch is refused.
    async fn append_events(
        &self,
        batch: &[NewFieldEvent],
        recorded_at: Timestamp,
    ) -> Result<AppendResult, StoreError>;

    async fn query_events(&self, query: &EventQuery) -> Result<Vec<FieldEvent>, StoreError>;

    async fn count_events(&self) -> Result<i64, StoreError>;

    /// Inserts a batch in one transaction with one plain prepared INSERT per event and no idempotency
    /// handling: the raw baseline the ingest benchmark compares `append_events` against.
    async fn baseline_insert_batch(
        &self,
        batch: &[NewFieldEvent],
        recorded_at: Timestamp,
    ) -> Result<(), StoreError>;

    async fn start_run(&self, run: &SyncRun) -> Result<(), StoreError>;

    async fn finish_run(
        &self,
        id: &str,
        ended_at: Timestamp,
        status: RunStatus,
        counts: &SyncRunCounts,
        error: Option<&str>,
    ) -> Result<(), StoreError>;

    async fn run(&self, id: &str) -> Result<Option<SyncRun>, StoreError>;

    /// The most recent runs, newest first.
    async fn recent_runs(&self, limit: u32) -> Result<Vec<SyncRun>, StoreError>;

    async fn link_records(&self, link: &RecordLink) -> Result<(), StoreError>;

    async fn link_by_crm_id(
        &self,
        endpoint: Endpoint,
        crm_id: &str,
    ) -> Result<Option<RecordLink>, StoreError>;

    async fn link_by_erp_id(
        &self,
        endpoint: Endpoint,
        erp_id: &str,
    ) -> Result<Option<RecordLink>, StoreError>;

    /// Stores a sync step whole; the events are appended as `append_events` does.
    async fn commit_sync(
        &self,
        commit: &SyncCommit,
        recorded_at: Timestamp,
    ) -> Result<AppendResult, StoreError>;

    /// Stores a step of a sync run whole. An event whose key the log already holds (a refusal or
    /// conflict seen again when a later run reads its record again) is left out, not checked as a
    /// replay; returns, per event, whether it was recorded.
    async fn commit_run(
        &self,
        commit: &SyncCommit,
        recorded_at: Timestamp,
    ) -> Result<Vec<bool>, StoreError>;

    /// Stores the events of writes about to be made, before making them: one row per record
    /// written (a key already stored is kept as it is).
    async fn save_intents(
        &self,
        endpoint: Endpoint,
        intents: &[WriteIntent<'_>],
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// The events of the intents left by a run that did not commit (it crashed between its
    /// writes and its commit).
    async fn intents(&self, endpoint: Endpoint) -> Result<Vec<NewFieldEvent>, StoreError>;

    /// Forgets what was synced (record bases and cursors) and closes open dead letters and
    /// conflicts, keeping the event log: for a sandbox that starts afresh.
    async fn reset_sync_state(&self, at: Timestamp, reason: &str) -> Result<(), StoreError>;

    /// The last agreed state of every record of `endpoint`, by key.
    async fn record_states(
        &self,
        endpoint: Endpoint,
    ) -> Result<HashMap<String, RecordState>, StoreError>;

    async fn cursor(
        &self,
        endpoint: Endpoint,
        system: System,
    ) -> Result<Option<Timestamp>, StoreError>;

    async fn open_dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError>;

    async fn open_conflicts(&self) -> Result<Vec<Conflict>, StoreError>;

    /// One conflict, open or resolved.
    async fn conflict(&self, id: i64) -> Result<Option<Conflict>, StoreError>;

    async fn set_endpoint_control(&self, control: &EndpointControl) -> Result<(), StoreError>;

    async fn endpoint_controls(&self) -> Result<Vec<EndpointControl>, StoreError>;

    /// Takes or renews the lease on `job` for `holder` until `until`; false when another holder
    /// has it and it has not expired at `now`.
    async fn acquire_lease(
        &self,
        job: &str,
        holder: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up, if `holder` has it.
    async fn release_lease(&self, job: &str, holder: &str) -> Result<(), StoreError>;

    /// Stores a new API token (its hash only); returns its id.
    async fn create_token(
        &self,
        name: &str,
        role: crate::domain::Role,
        token_hash: &str,
        created_at: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<i64, StoreError>;

    async fn token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<crate::domain::ApiToken>, StoreError>;

    async fn tokens(&self) -> Result<Vec<crate::domain::ApiToken>, StoreError>;

    /// Revokes a token; false when there is no such unrevoked token.
    async fn revoke_token(&self, id: i64, at: Timestamp) -> Result<bool, StoreError>;

    /// Records a change of an endpoint's rules; returns its id.
    async fn save_policy_change(
        &self,
        change: &crate::domain::PolicyChange,
    ) -> Result<i64, StoreError>;

    /// Every change of the rules, oldest first.
    async fn policy_changes(&self) -> Result<Vec<crate::domain::PolicyChange>, StoreError>;

    /// Who holds the lease on `job`, and until when.
    async fn lease(&self, job: &str) -> Result<Option<(String, Timestamp)>, StoreError>;

    /// How far `job` has got, when it ever said (see `advance_job_mark`).
    async fn job_mark(&self, job: &str) -> Result<Option<Timestamp>, StoreError>;

    /// Moves `job`'s mark to `mark`; never backwards.
    async fn advance_job_mark(&self, job: &str, mark: Timestamp) -> Result<(), StoreError>;

    /// Takes the slot of a schedule when it is due (see [`SlotClaim`]), moving its mark to the
    /// claim's `next`: true for the one caller that took it.
    async fn claim_job_slot(&self, claim: &SlotClaim<'_>) -> Result<bool, StoreError>;

    /// Hands the schedule `job` back if `holder` took its last slot: the next slot stays where it
    /// is, for any instance to take when due.
    async fn release_job_slot(&self, job: &str, holder: &str) -> Result<(), StoreError>;

    /// The schedules matching the `LIKE` pattern `jobs` whose last slot `holder` took, by name.
    async fn held_job_slots(&self, holder: &str, jobs: &str) -> Result<Vec<String>, StoreError>;

    /// How many leases on jobs matching the `LIKE` pattern `jobs` are unexpired at `now`.
    async fn live_leases(&self, jobs: &str, now: Timestamp) -> Result<usize, StoreError>;

    /// Moves the next slot of `job` to `next` if `holder` took the last one (after its run).
    async fn keep_job_slot(
        &self,
        job: &str,
        holder: &str,
        next: Timestamp,
    ) -> Result<(), StoreError>;

    /// PostgreSQL: creates the event log's monthly partitions (those missing) for `months` months
    /// from the one holding `from`; returns their names. SQLite keeps one table: none.
    async fn ensure_event_partitions(
        &self,
        from: Timestamp,
        months: u32,
    ) -> Result<Vec<String>, StoreError>;

    /// The event log's monthly partitions, oldest first (none on SQLite).
    async fn event_partitions(&self) -> Result<Vec<EventPartition>, StoreError>;

    /// Detaches and drops a monthly partition that has been archived; refused (nothing dropped)
    /// unless it holds exactly `archived` rows.
    async fn drop_event_partition(
        &self,
        partition: &EventPartition,
        archived: i64,
    ) -> Result<(), StoreError>;

    /// Records a finding of the monitor: a new fingerprint opens one, a known one is updated (and
    /// reopened when it had been resolved). Returns the finding as stored.
    async fn upsert_finding(&self, finding: &NewFinding) -> Result<Finding, StoreError>;

    /// Open -> acknowledged; `None` when no open finding has this id.
    async fn acknowledge_finding(
        &self,
        id: i64,
        at: Timestamp,
    ) -> Result<Option<Finding>, StoreError>;

    /// Open or acknowledged -> resolved; `None` when no unresolved finding has this id.
    async fn resolve_finding(&self, id: i64, at: Timestamp) -> Result<Option<Finding>, StoreError>;

    /// One finding, whatever its state.
    async fn finding(&self, id: i64) -> Result<Option<Finding>, StoreError>;

    /// Findings in `state` (all when `None`), most recently detected first.
    async fn findings(&self, state: Option<FindingState>) -> Result<Vec<Finding>, StoreError>;
    /// Stores merge proposals; a cluster that already has an open proposal is skipped. Returns
    /// how many were new.
    async fn save_dedup_proposals(
        &self,
        proposals: &[crate::domain::NewDedupProposal],
    ) -> Result<usize, StoreError>;

    /// Proposals, oldest first, optionally of one endpoint and one status.
    async fn dedup_proposals(
        &self,
        endpoint: Option<Endpoint>,
        status: Option<crate::domain::ProposalStatus>,
    ) -> Result<Vec<crate::domain::DedupProposal>, StoreError>;

    /// Approves or rejects an open proposal; `None` when there is no open proposal with that id.
    async fn decide_dedup_proposal(
        &self,
        id: i64,
        status: crate::domain::ProposalStatus,
        by: &str,
        at: Timestamp,
    ) -> Result<Option<crate::domain::DedupProposal>, StoreError>;

    /// One proposal by id, whatever its status.
    async fn dedup_proposal(
        &self,
        id: i64,
    ) -> Result<Option<crate::domain::DedupProposal>, StoreError>;

    /// Queues a merge or undo job; `None` when the proposal already has one of that kind.
    async fn enqueue_merge_job(
        &self,
        proposal_id: i64,
        kind: crate::domain::MergeKind,
        plan: &serde_json::Value,
        by: &str,
        at: Timestamp,
    ) -> Result<Option<i64>, StoreError>;

    /// Claims the oldest pending job nobody holds (or whose holder's claim ran out at `now`)
    /// for `holder` until `until`.
    async fn claim_merge_job(
        &self,
        holder: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<crate::domain::MergeJob>, StoreError>;

    /// Records a finished step in one transaction: its events, the job's next step and results,
    /// and a renewed claim. False when `holder` no longer holds the job.
    async fn advance_merge_job(
        &self,
        step: &MergeProgress,
        recorded_at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Ends a job in one transaction with what it leaves behind. False when `holder` no longer
    /// holds it.
    async fn finish_merge_job(
        &self,
        id: i64,
        holder: &str,
        finish: &MergeFinish,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Gives a claimed job back after a failed attempt; nobody takes it before `not_before`.
    async fn retry_merge_job(
        &self,
        id: i64,
        holder: &str,
        error: &str,
        not_before: Timestamp,
    ) -> Result<(), StoreError>;

    /// The jobs of one proposal, oldest first.
    async fn merge_jobs(
        &self,
        proposal_id: i64,
    ) -> Result<Vec<crate::domain::MergeJob>, StoreError>;

    /// Stores an alert made from a finding (a new one, or its new state), keeping why it is muted.
    async fn upsert_alert(&self, alert: &Alert) -> Result<(), StoreError>;

    /// Firing alerts, and resolved ones that ended at or after `resolved_since`.
    async fn alerts(&self, resolved_since: Timestamp) -> Result<Vec<Alert>, StoreError>;

    /// Records why an alert is muted (`None`: it is not).
    async fn set_alert_muted(
        &self,
        fingerprint: &str,
        muted_by: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Replaces an alert's annotations (to add its explanation) if it is still in the state of
    /// `updated_at`; false when it has changed since.
    async fn set_alert_annotations(
        &self,
        fingerprint: &str,
        updated_at: Timestamp,
        annotations: &crate::alert::Labels,
    ) -> Result<bool, StoreError>;

    /// The whole notification log.
    async fn notification_log(&self) -> Result<Vec<NotificationLogEntry>, StoreError>;

    /// Records what a receiver is now told about a group and, in the same transaction, the
    /// notification that tells it (none when nothing is to be sent, e.g. a resolution the
    /// receiver does not want): the log never claims a send the outbox does not hold. Returns the
    /// outbox id.
    async fn record_notification(
        &self,
        log: &NotificationLogEntry,
        notification: Option<&NewNotification>,
        at: Timestamp,
    ) -> Result<Option<i64>, StoreError>;

    /// Claims up to `limit` due notifications for `worker` until `claim_until`: pending ones whose
    /// time has come, and ones whose previous claim expired.
    async fn claim_notifications(
        &self,
        worker: &str,
        now: Timestamp,
        claim_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Records an attempt and settles its notification (sent, failed, or pending again from
    /// `next_attempt_at`) in one transaction. Returns false when `worker` no longer held the claim.
    async fn finish_notification(
        &self,
        worker: &str,
        attempt: &Attempt,
        next_attempt_at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Outbox rows with `status` (all when `None`), oldest first.
    async fn outbox(&self, status: Option<OutboxStatus>) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Every attempt to deliver to `receiver`, oldest first.
    async fn notification_attempts(&self, receiver: &str) -> Result<Vec<Attempt>, StoreError>;

    /// Failed attempts of `receiver` since its last delivery.
    async fn receiver_failures(&self, receiver: &str) -> Result<i64, StoreError>;

    async fn add_silence(&self, silence: &NewSilence, at: Timestamp)
    -> Result<Silence, StoreError>;

    /// Every silence, expired ones included.
    async fn silences(&self) -> Result<Vec<Silence>, StoreError>;

    /// Stores the API calls one connector counted, per endpoint, as of `at`.
    async fn record_api_calls(
        &self,
        system: System,
        tallies: &[crate::sync::connectors::CallTally],
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Stored API calls with an id above `after` (all without), in id order.
    async fn api_calls_after(&self, after: Option<i64>) -> Result<Vec<ApiCalls>, StoreError>;

    /// Stored API calls counted in [from, to).
    async fn api_calls_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<ApiCalls>, StoreError>;

    /// Inserts or replaces metric roll-up rows (one transaction).
    async fn upsert_rollups(&self, rows: &[RollupRow]) -> Result<(), StoreError>;

    /// The roll-up rows of `resolution` whose bucket starts in [from, to), by scope then time.
    async fn rollups(
        &self,
        resolution: Resolution,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<RollupRow>, StoreError>;

    /// The last id roll-up job `job` has taken in, if any.
    async fn rollup_progress(&self, job: &str) -> Result<Option<i64>, StoreError>;

    async fn set_rollup_progress(&self, job: &str, last_id: i64) -> Result<(), StoreError>;

    async fn close(&self);
}

fn outcome_status(outcome: AttemptOutcome) -> OutboxStatus {
    match outcome {
        AttemptOutcome::Sent => OutboxStatus::Sent,
        AttemptOutcome::Retry => OutboxStatus::Pending,
        AttemptOutcome::Failed => OutboxStatus::Failed,
    }
}

/// Opens the store the URL names (`sqlite://...` or `postgres://...`) without migrating it.
pub async fn connect(
    url: &SecretString,
    settings: &DatabaseSettings,
) -> Result<Arc<dyn Store>, StoreError> {
    let raw = url.expose_secret();
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(raw, settings).await?))
    } else if let Some(path) = raw.strip_prefix("sqlite://") {
        Ok(Arc::new(SqliteStore::connect(path, settings).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(raw)))
    }
}

/// An event with its position in the batch it came in.
type Indexed<'a> = (usize, &'a NewFieldEvent);

/// Collapses repeats of one key inside a batch: the same content is a duplicate, different content
/// refuses the batch. Returns the first occurrence of each key with its index in the batch.
fn dedupe_batch(batch: &[NewFieldEvent]) -> Result<(Vec<Indexed<'_>>, usize), StoreError> {
    let mut first_index: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
    let mut unique = Vec::with_capacity(batch.len());
    let mut duplicates = 0;
    for (index, event) in batch.iter().enumerate() {
        match first_index.entry(event.idempotency_key.as_str()) {
            Entry::Occupied(first) => {
                if batch[*first.get()] != *event {
                    return Err(StoreError::IdempotencyConflict {
                        key: event.idempotency_key.clone(),
                        index,
                    });
                }
                duplicates += 1;
            }
            Entry::Vacant(slot) => {
                slot.insert(index);
                unique.push((index, event));
            }
        }
    }
    Ok((unique, duplicates))
}

/// After an insert that skipped some keys, checks each skipped key's stored event is the same event.
fn check_replays(unique: &[Indexed<'_>], stored: &[FieldEvent]) -> Result<(), StoreError> {
    let by_key: HashMap<&str, &NewFieldEvent> = stored
        .iter()
        .map(|e| (e.event.idempotency_key.as_str(), &e.event))
        .collect();
    for (index, event) in unique {
        match by_key.get(event.idempotency_key.as_str()) {
            Some(existing) if *existing == *event => {}
            // Archived by retention: the row is in the archive, the key still in the database,
            // so this is a replay of an event already recorded.
            None => {}
            Some(_) => {
                return Err(StoreError::IdempotencyConflict {
                    key: event.idempotency_key.clone(),
                    index: *index,
                });
            }
        }
    }
    Ok(())
}

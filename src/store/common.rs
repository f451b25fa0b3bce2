//! The parts of the `Store` implementation both backends share. The SQL is the same text on both
//! (`$n` placeholders work in SQLite too); a macro stamps the implementation out per backend so each
//! copy is checked against that backend's concrete types.

pub(super) const INSERT_EVENT: &str = include_str!("sql/insert_event.sql");
pub(super) const INSERT_EVENTS_HEAD: &str = include_str!("sql/insert_events_head.sql");
pub(super) const SELECT_EVENTS: &str = include_str!("sql/select_events.sql");
pub(super) const SELECT_RECORD_EVENTS_HEAD: &str =
    include_str!("sql/select_record_events_head.sql");
pub(super) const COUNT_EVENTS: &str = include_str!("sql/count_events.sql");
pub(super) const INSERT_RUN: &str = include_str!("sql/insert_run.sql");
pub(super) const FINISH_RUN: &str = include_str!("sql/finish_run.sql");
pub(super) const SELECT_RUN: &str = include_str!("sql/select_run.sql");
pub(super) const SELECT_RUNS: &str = include_str!("sql/select_runs.sql");
pub(super) const UPSERT_LINK: &str = include_str!("sql/upsert_link.sql");
pub(super) const SELECT_LINK_BY_CRM: &str = include_str!("sql/select_link_by_crm.sql");
pub(super) const SELECT_LINK_BY_ERP: &str = include_str!("sql/select_link_by_erp.sql");
pub(super) const UPSERT_STATES_HEAD: &str = include_str!("sql/upsert_states_head.sql");
pub(super) const UPSERT_STATES_TAIL: &str = include_str!("sql/upsert_states_tail.sql");
pub(super) const SELECT_STATES: &str = include_str!("sql/select_states.sql");
pub(super) const UPSERT_CURSOR: &str = include_str!("sql/upsert_cursor.sql");
pub(super) const SELECT_CURSOR: &str = include_str!("sql/select_cursor.sql");
pub(super) const INSERT_DEAD_LETTER: &str = include_str!("sql/insert_dead_letter.sql");
pub(super) const RESOLVE_DEAD_LETTER: &str = include_str!("sql/resolve_dead_letter.sql");
pub(super) const SELECT_OPEN_DEAD_LETTERS: &str = include_str!("sql/select_open_dead_letters.sql");
pub(super) const INSERT_CONFLICT: &str = include_str!("sql/insert_conflict.sql");
pub(super) const RESET_SYNC_STATE: &str = include_str!("sql/reset_sync_state.sql");
pub(super) const RESET_CURSORS: &str = include_str!("sql/reset_cursors.sql");
pub(super) const CLOSE_DEAD_LETTERS: &str = include_str!("sql/close_dead_letters.sql");
pub(super) const CLOSE_CONFLICTS: &str = include_str!("sql/close_conflicts.sql");
pub(super) const RESOLVE_CONFLICT: &str = include_str!("sql/resolve_conflict.sql");
pub(super) const RETRY_DEAD_LETTER: &str = include_str!("sql/retry_dead_letter.sql");
pub(super) const INSERT_INTENTS_HEAD: &str = include_str!("sql/insert_intents_head.sql");
pub(super) const INSERT_INTENTS_TAIL: &str = include_str!("sql/insert_intents_tail.sql");
pub(super) const SELECT_INTENTS: &str = include_str!("sql/select_intents.sql");
pub(super) const DELETE_INTENTS: &str = include_str!("sql/delete_intents.sql");
pub(super) const DELETE_SETTLED_INTENTS: &str = include_str!("sql/delete_settled_intents.sql");
pub(super) const DELETE_ALL_INTENTS: &str = include_str!("sql/delete_all_intents.sql");
pub(super) const UPSERT_ENDPOINT_CONTROL: &str = include_str!("sql/upsert_endpoint_control.sql");
pub(super) const SELECT_ENDPOINT_CONTROLS: &str = include_str!("sql/select_endpoint_controls.sql");
pub(super) const SELECT_OPEN_CONFLICTS: &str = include_str!("sql/select_open_conflicts.sql");
pub(super) const SELECT_CONFLICT: &str = include_str!("sql/select_conflict.sql");
pub(super) const ACQUIRE_LEASE: &str = include_str!("sql/acquire_lease.sql");
pub(super) const RELEASE_LEASE: &str = include_str!("sql/release_lease.sql");
pub(super) const SELECT_LEASE: &str = include_str!("sql/select_lease.sql");
pub(super) const SELECT_JOB_MARK: &str = include_str!("sql/select_job_mark.sql");
pub(super) const ADVANCE_JOB_MARK: &str = include_str!("sql/advance_job_mark.sql");
pub(super) const CLAIM_JOB_SLOT: &str = include_str!("sql/claim_job_slot.sql");
pub(super) const KEEP_JOB_SLOT: &str = include_str!("sql/keep_job_slot.sql");
pub(super) const RELEASE_JOB_SLOT: &str = include_str!("sql/release_job_slot.sql");
pub(super) const SELECT_HELD_JOB_SLOTS: &str = include_str!("sql/select_held_job_slots.sql");
pub(super) const COUNT_LIVE_LEASES: &str = include_str!("sql/count_live_leases.sql");
pub(super) const INSERT_TOKEN: &str = include_str!("sql/insert_token.sql");
pub(super) const SELECT_TOKEN_BY_HASH: &str = include_str!("sql/select_token_by_hash.sql");
pub(super) const SELECT_TOKENS: &str = include_str!("sql/select_tokens.sql");
pub(super) const REVOKE_TOKEN: &str = include_str!("sql/revoke_token.sql");
pub(super) const INSERT_POLICY_CHANGE: &str = include_str!("sql/insert_policy_change.sql");
pub(super) const SELECT_POLICY_CHANGES: &str = include_str!("sql/select_policy_changes.sql");

pub(super) const INSERT_API_CALLS: &str = include_str!("sql/insert_api_calls.sql");
pub(super) const SELECT_API_CALLS_AFTER: &str = include_str!("sql/select_api_calls_after.sql");
pub(super) const SELECT_API_CALLS_BETWEEN: &str = include_str!("sql/select_api_calls_between.sql");
pub(super) const UPSERT_ROLLUP: &str = include_str!("sql/upsert_rollup.sql");
pub(super) const SELECT_ROLLUPS: &str = include_str!("sql/select_rollups.sql");
pub(super) const SELECT_ROLLUP_PROGRESS: &str = include_str!("sql/select_rollup_progress.sql");
pub(super) const UPSERT_ROLLUP_PROGRESS: &str = include_str!("sql/upsert_rollup_progress.sql");

/// A latency histogram as stored: JSON `[[ms, count], ...]`.
pub(super) fn latencies_json(latencies: &crate::monitor::rollup::Latencies) -> String {
    let pairs: Vec<(i64, u64)> = latencies.iter().map(|(k, v)| (*k, *v)).collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

fn latencies_from(
    column: &str,
    text: &str,
) -> Result<crate::monitor::rollup::Latencies, StoreError> {
    let pairs: Vec<(i64, u64)> = serde_json::from_str(text).map_err(|_| corrupt(column, text))?;
    Ok(pairs.into_iter().collect())
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// An `api_calls` row, in `select_api_calls_*.sql` order.
pub(super) fn api_calls_from_row<R: sqlx::Row>(
    row: &R,
) -> Result<crate::monitor::rollup::ApiCalls, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let system: String = row.try_get(2)?;
    let endpoint: Option<String> = row.try_get(3)?;
    let latencies: String = row.try_get(6)?;
    Ok(crate::monitor::rollup::ApiCalls {
        id: row.try_get(0)?,
        at: Timestamp::from_micros(row.try_get(1)?),
        system: parse_system("system", &system)?,
        endpoint: endpoint.as_deref().map(parse_endpoint).transpose()?,
        attempted: count(row.try_get(4)?),
        succeeded: count(row.try_get(5)?),
        latencies_ms: latencies_from("latencies", &latencies)?,
    })
}

/// A `metric_rollups` row, in `select_rollups.sql` order.
pub(super) fn rollup_from_row<R: sqlx::Row>(
    row: &R,
) -> Result<crate::monitor::rollup::RollupRow, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use crate::monitor::rollup::{Resolution, Rollup, RollupRow};
    let resolution: String = row.try_get(0)?;
    let n = |i: usize| -> Result<u64, StoreError> { Ok(count(row.try_get(i)?)) };
    let histogram = |i: usize, column: &str| -> Result<_, StoreError> {
        let text: String = row.try_get(i)?;
        latencies_from(column, &text)
    };
    Ok(RollupRow {
        resolution: Resolution::parse(&resolution)
            .ok_or_else(|| corrupt("resolution", &resolution))?,
        scope: row.try_get(1)?,
        start: Timestamp::from_micros(row.try_get(2)?),
        values: Rollup {
            api_attempted: n(3)?,
            api_succeeded: n(4)?,
            api_latencies: histogram(5, "api_latencies")?,
            writes_attempted: n(6)?,
            writes_failed: n(7)?,
            events: n(8)?,
            records: n(9)?,
            conflicts_opened: n(10)?,
            conflicts_resolved: n(11)?,
            reconcile_differences: n(12)?,
            duplicates: row.try_get::<Option<i64>, _>(13)?.map(count),
            last_success_at: row
                .try_get::<Option<i64>, _>(14)?
                .map(Timestamp::from_micros),
            sync_latencies: histogram(15, "sync_latencies")?,
        },
    })
}

/// An `api_tokens` row: id, name, role, created_at, expires_at, revoked_at.
pub(super) fn token_from_row<R: sqlx::Row>(row: &R) -> Result<crate::domain::ApiToken, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let role: String = row.try_get(2)?;
    let opt = |i: usize| -> Result<Option<Timestamp>, StoreError> {
        Ok(row
            .try_get::<Option<i64>, _>(i)?
            .map(Timestamp::from_micros))
    };
    Ok(crate::domain::ApiToken {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        role: crate::domain::Role::parse(&role).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: Timestamp::from_micros(row.try_get(3)?),
        expires_at: opt(4)?,
        revoked_at: opt(5)?,
    })
}
pub(super) const UPSERT_FINDING: &str = include_str!("sql/upsert_finding.sql");
pub(super) const ACKNOWLEDGE_FINDING: &str = include_str!("sql/acknowledge_finding.sql");
pub(super) const RESOLVE_FINDING: &str = include_str!("sql/resolve_finding.sql");
pub(super) const SELECT_FINDINGS: &str = include_str!("sql/select_findings.sql");
pub(super) const SELECT_FINDING: &str = include_str!("sql/select_finding.sql");
pub(super) const UPSERT_ALERT: &str = include_str!("sql/upsert_alert.sql");
pub(super) const SELECT_ALERTS: &str = include_str!("sql/select_alerts.sql");
pub(super) const SET_ALERT_MUTED: &str = include_str!("sql/set_alert_muted.sql");
pub(super) const SET_ALERT_ANNOTATIONS: &str = include_str!("sql/set_alert_annotations.sql");
pub(super) const UPSERT_NOTIFICATION_LOG: &str = include_str!("sql/upsert_notification_log.sql");
pub(super) const SELECT_NOTIFICATION_LOG: &str = include_str!("sql/select_notification_log.sql");
pub(super) const INSERT_NOTIFICATION: &str = include_str!("sql/insert_notification.sql");
pub(super) const INSERT_NOTIFICATION_ATTEMPT: &str =
    include_str!("sql/insert_notification_attempt.sql");
pub(super) const FINISH_NOTIFICATION: &str = include_str!("sql/finish_notification.sql");
pub(super) const SELECT_OUTBOX: &str = include_str!("sql/select_outbox.sql");
pub(super) const SELECT_NOTIFICATION_ATTEMPTS: &str =
    include_str!("sql/select_notification_attempts.sql");
pub(super) const COUNT_RECEIVER_FAILURES: &str = include_str!("sql/count_receiver_failures.sql");
pub(super) const INSERT_SILENCE: &str = include_str!("sql/insert_silence.sql");
pub(super) const SELECT_SILENCES: &str = include_str!("sql/select_silences.sql");
pub(super) const INSERT_DEDUP_PROPOSAL: &str = include_str!("sql/insert_dedup_proposal.sql");
pub(super) const SELECT_DEDUP_PROPOSALS: &str = include_str!("sql/select_dedup_proposals.sql");
pub(super) const DECIDE_DEDUP_PROPOSAL: &str = include_str!("sql/decide_dedup_proposal.sql");
pub(super) const SELECT_DEDUP_PROPOSAL: &str = include_str!("sql/select_dedup_proposal.sql");
pub(super) const SET_PROPOSAL_STATUS: &str = include_str!("sql/set_proposal_status.sql");
pub(super) const INSERT_MERGE_JOB: &str = include_str!("sql/insert_merge_job.sql");
pub(super) const CLAIM_MERGE_JOB: &str = include_str!("sql/claim_merge_job.sql");
pub(super) const ADVANCE_MERGE_JOB: &str = include_str!("sql/advance_merge_job.sql");
pub(super) const FINISH_MERGE_JOB: &str = include_str!("sql/finish_merge_job.sql");
pub(super) const RETRY_MERGE_JOB: &str = include_str!("sql/retry_merge_job.sql");
pub(super) const SELECT_MERGE_JOBS: &str = include_str!("sql/select_merge_jobs.sql");
pub(super) const DELETE_STATE: &str = include_str!("sql/delete_state.sql");

/// Keys per `IN (...)` list when re-reading replayed events.
pub(super) const KEYS_PER_LOOKUP: usize = 1000;

/// Rows per multi-row INSERT of sync state: few columns, so well under both backends' limits.
pub(super) const ROWS_PER_STATE_INSERT: usize = 1000;

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::domain::{
    Endpoint, FieldEvent, NewFieldEvent, Outcome, RecordLink, RunStatus, SyncRun, SyncRunCounts,
    System, Timestamp,
};

use super::{EventQuery, MAX_QUERY_LIMIT, StoreError};

/// A migrator over one backend's embedded migrations: (version, description, SQL).
pub(super) fn migrator(migrations: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

pub(super) fn corrupt(column: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("column {column} holds `{value}`"))
}

pub(super) fn parse_endpoint(s: &str) -> Result<Endpoint, StoreError> {
    Endpoint::parse(s).map_err(|_| corrupt("endpoint", s))
}

pub(super) fn parse_system(column: &str, s: &str) -> Result<System, StoreError> {
    System::parse(s).map_err(|_| corrupt(column, s))
}

pub(super) fn parse_outcome(s: &str) -> Result<Outcome, StoreError> {
    Outcome::parse(s).map_err(|_| corrupt("outcome", s))
}

/// The events of one `sync_intents` row: a record's write (a JSON array of its events), or one
/// event alone as rows stored by earlier versions hold it.
pub(super) fn intent_events(text: &str) -> Result<Vec<NewFieldEvent>, StoreError> {
    if text.trim_start().starts_with('[') {
        from_json("event", text)
    } else {
        Ok(vec![from_json("event", text)?])
    }
}

/// A JSON column written by this store, read back.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    column: &str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|_| corrupt(column, s))
}

/// A JSON column's text: the value types written here always serialise.
pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn parse_status(s: &str) -> Result<RunStatus, StoreError> {
    RunStatus::parse(s).ok_or_else(|| corrupt("status", s))
}

/// The raw columns of one `field_events` row, in `select_events.sql` order.
pub(super) struct EventColumns {
    pub id: i64,
    pub idempotency_key: String,
    pub run_id: Option<String>,
    pub endpoint: String,
    pub crm_id: Option<String>,
    pub erp_id: Option<String>,
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub source_system: String,
    pub target_system: String,
    pub outcome: String,
    pub error: Option<String>,
    pub latency_ms: Option<i64>,
    pub occurred_at: i64,
    pub recorded_at: i64,
}

impl TryFrom<EventColumns> for FieldEvent {
    type Error = StoreError;
    fn try_from(c: EventColumns) -> Result<Self, StoreError> {
        Ok(FieldEvent {
            id: c.id,
            event: NewFieldEvent {
                idempotency_key: c.idempotency_key,
                run_id: c.run_id,
                endpoint: parse_endpoint(&c.endpoint)?,
                crm_id: c.crm_id,
                erp_id: c.erp_id,
                field: c.field,
                old_value: c.old_value,
                new_value: c.new_value,
                source_system: parse_system("source_system", &c.source_system)?,
                target_system: parse_system("target_system", &c.target_system)?,
                outcome: parse_outcome(&c.outcome)?,
                error: c.error,
                latency_ms: c.latency_ms,
                occurred_at: Timestamp::from_micros(c.occurred_at),
            },
            recorded_at: Timestamp::from_micros(c.recorded_at),
        })
    }
}

/// The raw columns of one `sync_runs` row.
pub(super) struct RunColumns {
    pub id: String,
    pub endpoint: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub status: String,
    pub counts: SyncRunCounts,
    pub error: Option<String>,
}

impl TryFrom<RunColumns> for SyncRun {
    type Error = StoreError;
    fn try_from(c: RunColumns) -> Result<Self, StoreError> {
        Ok(SyncRun {
            id: c.id,
            endpoint: c.endpoint.as_deref().map(parse_endpoint).transpose()?,
            started_at: Timestamp::from_micros(c.started_at),
            ended_at: c.ended_at.map(Timestamp::from_micros),
            status: parse_status(&c.status)?,
            counts: c.counts,
            error: c.error,
        })
    }
}

/// Field maps are stored as JSON objects.
pub(super) fn fields_to_json(fields: &std::collections::BTreeMap<String, String>) -> String {
    serde_json::to_string(fields).unwrap_or_else(|_| "{}".into())
}

pub(super) fn fields_from_json(
    text: &str,
) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
    serde_json::from_str(text).map_err(|_| corrupt("fields", text))
}

pub(super) fn link_from(
    endpoint: &str,
    crm_id: String,
    erp_id: String,
    linked_at: i64,
) -> Result<RecordLink, StoreError> {
    Ok(RecordLink {
        endpoint: parse_endpoint(endpoint)?,
        crm_id,
        erp_id,
        linked_at: Timestamp::from_micros(linked_at),
    })
}

/// Up to one event more than the largest page: the API asks for it to know whether another page
/// follows.
pub(super) fn effective_limit(query: &EventQuery) -> i64 {
    i64::from(
        query
            .limit
            .unwrap_or(MAX_QUERY_LIMIT)
            .clamp(1, MAX_QUERY_LIMIT + 1),
    )
}

/// JSON columns (labels, matchers, fingerprint lists) are written with serde and read back with it.
pub(super) fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// The raw columns of one `notification_outbox` row, in `select_outbox.sql` order.
pub(super) struct OutboxColumns {
    pub id: i64,
    pub receiver: String,
    pub group_key: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

impl TryFrom<OutboxColumns> for crate::alert::OutboxEntry {
    type Error = StoreError;
    fn try_from(c: OutboxColumns) -> Result<Self, StoreError> {
        Ok(crate::alert::OutboxEntry {
            id: c.id,
            receiver: c.receiver,
            group_key: c.group_key,
            payload: from_json("payload", &c.payload)?,
            status: crate::alert::OutboxStatus::parse(&c.status)
                .ok_or_else(|| corrupt("status", &c.status))?,
            attempts: c.attempts,
            next_attempt_at: Timestamp::from_micros(c.next_attempt_at),
            created_at: Timestamp::from_micros(c.created_at),
            sent_at: c.sent_at.map(Timestamp::from_micros),
            last_error: c.last_error,
        })
    }
}

/// Implements `Store` for a backend struct with a `pool` field for reads. The struct provides
/// `migrator()`, `writer()` (the pool writes go through), `begin_write()` and `insert_new()` (the
/// bulk insert, which differs per backend).
macro_rules! impl_store {
    ($store:ty, $db:ty, $row:ty, $backend:expr) => {
        impl $store {
            fn event_from_row(row: &$row) -> Result<$crate::domain::FieldEvent, StoreError> {
                use sqlx::Row;
                $crate::store::common::EventColumns {
                    id: row.try_get(0)?,
                    idempotency_key: row.try_get(1)?,
                    run_id: row.try_get(2)?,
                    endpoint: row.try_get(3)?,
                    crm_id: row.try_get(4)?,
                    erp_id: row.try_get(5)?,
                    field: row.try_get(6)?,
                    old_value: row.try_get(7)?,
                    new_value: row.try_get(8)?,
                    source_system: row.try_get(9)?,
                    target_system: row.try_get(10)?,
                    outcome: row.try_get(11)?,
                    error: row.try_get(12)?,
                    latency_ms: row.try_get(13)?,
                    occurred_at: row.try_get(14)?,
                    recorded_at: row.try_get(15)?,
                }
                .try_into()
            }

            fn run_from_row(row: &$row) -> Result<$crate::domain::SyncRun, StoreError> {
                use sqlx::Row;
                $crate::store::common::RunColumns {
                    id: row.try_get(0)?,
                    endpoint: row.try_get(1)?,
                    started_at: row.try_get(2)?,
                    ended_at: row.try_get(3)?,
                    status: row.try_get(4)?,
                    counts: $crate::domain::SyncRunCounts {
                        records_read: row.try_get(5)?,
                        records_written: row.try_get(6)?,
                        events: row.try_get(7)?,
                        api_calls_ok: row.try_get(8)?,
                        api_calls_failed: row.try_get(9)?,
                    },
                    error: row.try_get(10)?,
                }
                .try_into()
            }

            fn link_from_row(row: &$row) -> Result<$crate::domain::RecordLink, StoreError> {
                use sqlx::Row;
                let endpoint: String = row.try_get(0)?;
                $crate::store::common::link_from(
                    &endpoint,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                )
            }

            async fn append_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                batch: &[$crate::domain::NewFieldEvent],
                recorded_at: $crate::domain::Timestamp,
            ) -> Result<$crate::store::AppendResult, StoreError> {
                let (unique, mut duplicates) = $crate::store::dedupe_batch(batch)?;
                if unique.is_empty() {
                    return Ok($crate::store::AppendResult {
                        accepted: 0,
                        duplicates,
                    });
                }
                let (inserted, _) = Self::insert_new(tx, &unique, recorded_at, false).await?;
                if inserted < unique.len() {
                    let keys: Vec<&str> = unique
                        .iter()
                        .map(|(_, e)| e.idempotency_key.as_str())
                        .collect();
                    let stored = Self::fetch_by_keys(tx, &keys).await?;
                    $crate::store::check_replays(&unique, &stored)?;
                    duplicates += unique.len() - inserted;
                }
                Ok($crate::store::AppendResult {
                    accepted: inserted,
                    duplicates,
                })
            }

            /// Everything of a sync commit but its events, in the caller's transaction.
            async fn commit_rest(
                tx: &mut sqlx::Transaction<'static, $db>,
                commit: &$crate::store::SyncCommit,
                recorded_at: $crate::domain::Timestamp,
            ) -> Result<(), StoreError> {
                use $crate::store::common as q;
                if let Some(endpoint) = commit.clear_intents {
                    sqlx::query(q::DELETE_INTENTS)
                        .bind(endpoint.as_str())
                        .execute(&mut **tx)
                        .await?;
                }
                for chunk in commit.settled_intents.chunks(q::KEYS_PER_LOOKUP) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(q::DELETE_SETTLED_INTENTS);
                    let mut list = qb.separated(", ");
                    for key in chunk {
                        list.push_bind(key.as_str());
                    }
                    qb.push(")");
                    qb.build().execute(&mut **tx).await?;
                }
                for chunk in commit.states.chunks(q::ROWS_PER_STATE_INSERT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(q::UPSERT_STATES_HEAD);
                    qb.push_values(chunk, |mut row, s| {
                        row.push_bind(s.endpoint.as_str())
                            .push_bind(s.key.clone())
                            .push_bind(s.crm_id.clone())
                            .push_bind(s.erp_id.clone())
                            .push_bind(q::fields_to_json(&s.fields))
                            .push_bind(s.synced_at.as_micros());
                    });
                    qb.push(q::UPSERT_STATES_TAIL);
                    qb.build().execute(&mut **tx).await?;
                }
                for (endpoint, system, at) in &commit.cursors {
                    sqlx::query(q::UPSERT_CURSOR)
                        .bind(endpoint.as_str())
                        .bind(system.as_str())
                        .bind(at.as_micros())
                        .execute(&mut **tx)
                        .await?;
                }
                for d in &commit.dead_letters {
                    sqlx::query(q::INSERT_DEAD_LETTER)
                        .bind(d.endpoint.as_str())
                        .bind(d.target.as_str())
                        .bind(d.key.as_str())
                        .bind(d.record_id.as_deref())
                        .bind(q::fields_to_json(&d.fields))
                        .bind(d.error.as_str())
                        .bind(d.attempts)
                        .bind(d.created_at.as_micros())
                        .execute(&mut **tx)
                        .await?;
                }
                for (id, error) in &commit.retried_dead_letters {
                    sqlx::query(q::RETRY_DEAD_LETTER)
                        .bind(*id)
                        .bind(error.as_str())
                        .execute(&mut **tx)
                        .await?;
                }
                for id in &commit.resolved_dead_letters {
                    sqlx::query(q::RESOLVE_DEAD_LETTER)
                        .bind(*id)
                        .bind(recorded_at.as_micros())
                        .execute(&mut **tx)
                        .await?;
                }
                for (id, resolution) in &commit.resolved_conflicts {
                    sqlx::query(q::RESOLVE_CONFLICT)
                        .bind(recorded_at.as_micros())
                        .bind(resolution.as_str())
                        .bind(*id)
                        .execute(&mut **tx)
                        .await?;
                }
                for c in &commit.conflicts {
                    sqlx::query(q::INSERT_CONFLICT)
                        .bind(c.endpoint.as_str())
                        .bind(c.key.as_str())
                        .bind(c.field.as_str())
                        .bind(c.base_value.as_deref())
                        .bind(c.crm_value.as_deref())
                        .bind(c.erp_value.as_deref())
                        .bind(c.opened_at.as_micros())
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            fn state_from_row(row: &$row) -> Result<$crate::domain::RecordState, StoreError> {
                use sqlx::Row;
                let endpoint: String = row.try_get(0)?;
                let fields: String = row.try_get(4)?;
                Ok($crate::domain::RecordState {
                    endpoint: $crate::store::common::parse_endpoint(&endpoint)?,
                    key: row.try_get(1)?,
                    crm_id: row.try_get(2)?,
                    erp_id: row.try_get(3)?,
                    fields: $crate::store::common::fields_from_json(&fields)?,
                    synced_at: $crate::domain::Timestamp::from_micros(row.try_get(5)?),
                })
            }

            fn proposal_from_row(row: &$row) -> Result<$crate::domain::DedupProposal, StoreError> {
                use sqlx::Row;
                use $crate::store::common::from_json;
                let endpoint: String = row.try_get(1)?;
                let members: String = row.try_get(2)?;
                let fields: String = row.try_get(4)?;
                let before: String = row.try_get(5)?;
                let status: String = row.try_get(8)?;
                let decided_at: Option<i64> = row.try_get(9)?;
                Ok($crate::domain::DedupProposal {
                    id: row.try_get(0)?,
                    status: $crate::domain::ProposalStatus::parse(&status)
                        .ok_or_else(|| $crate::store::common::corrupt("status", &status))?,
                    decided_at: decided_at.map($crate::domain::Timestamp::from_micros),
                    decided_by: row.try_get(10)?,
                    proposal: $crate::domain::NewDedupProposal {
                        endpoint: $crate::store::common::parse_endpoint(&endpoint)?,
                        members: from_json("members", &members)?,
                        survivor: row.try_get(3)?,
                        fields: from_json("fields", &fields)?,
                        before: from_json("before", &before)?,
                        min_probability: row.try_get(6)?,
                        created_at: $crate::domain::Timestamp::from_micros(row.try_get(7)?),
                    },
                })
            }

            fn merge_job_from_row(row: &$row) -> Result<$crate::domain::MergeJob, StoreError> {
                use sqlx::Row;
                use $crate::store::common::{corrupt, from_json};
                let kind: String = row.try_get(2)?;
                let plan: String = row.try_get(3)?;
                let next_step: i64 = row.try_get(4)?;
                let results: String = row.try_get(5)?;
                let status: String = row.try_get(6)?;
                let finished_at: Option<i64> = row.try_get(11)?;
                Ok($crate::domain::MergeJob {
                    id: row.try_get(0)?,
                    proposal_id: row.try_get(1)?,
                    kind: $crate::domain::MergeKind::parse(&kind)
                        .ok_or_else(|| corrupt("kind", &kind))?,
                    plan: from_json("plan", &plan)?,
                    next_step: usize::try_from(next_step)
                        .map_err(|_| corrupt("next_step", &next_step.to_string()))?,
                    results: from_json("results", &results)?,
                    status: $crate::domain::JobStatus::parse(&status)
                        .ok_or_else(|| corrupt("status", &status))?,
                    attempts: row.try_get(7)?,
                    last_error: row.try_get(8)?,
                    created_by: row.try_get(9)?,
                    created_at: $crate::domain::Timestamp::from_micros(row.try_get(10)?),
                    finished_at: finished_at.map($crate::domain::Timestamp::from_micros),
                })
            }

            fn policy_change_from_row(
                row: &$row,
            ) -> Result<$crate::domain::PolicyChange, StoreError> {
                use sqlx::Row;
                let endpoint: String = row.try_get(1)?;
                let settings: String = row.try_get(2)?;
                Ok($crate::domain::PolicyChange {
                    id: row.try_get(0)?,
                    endpoint: $crate::store::common::parse_endpoint(&endpoint)?,
                    settings: $crate::store::common::from_json("settings", &settings)?,
                    changed_at: $crate::domain::Timestamp::from_micros(row.try_get(3)?),
                    changed_by: row.try_get(4)?,
                })
            }

            fn dead_letter_from_row(row: &$row) -> Result<$crate::domain::DeadLetter, StoreError> {
                use sqlx::Row;
                let endpoint: String = row.try_get(1)?;
                let target: String = row.try_get(2)?;
                let fields: String = row.try_get(5)?;
                let resolved: Option<i64> = row.try_get(9)?;
                Ok($crate::domain::DeadLetter {
                    id: row.try_get(0)?,
                    endpoint: $crate::store::common::parse_endpoint(&endpoint)?,
                    target: $crate::store::common::parse_system("target", &target)?,
                    key: row.try_get(3)?,
                    record_id: row.try_get(4)?,
                    fields: $crate::store::common::fields_from_json(&fields)?,
                    error: row.try_get(6)?,
                    attempts: row.try_get(7)?,
                    created_at: $crate::domain::Timestamp::from_micros(row.try_get(8)?),
                    resolved_at: resolved.map($crate::domain::Timestamp::from_micros),
                })
            }

            fn finding_from_row(row: &$row) -> Result<$crate::monitor::Finding, StoreError> {
                use sqlx::Row;
                let severity: String = row.try_get(2)?;
                let evidence: String = row.try_get(5)?;
                let state: String = row.try_get(6)?;
                let acknowledged: Option<i64> = row.try_get(11)?;
                let resolved: Option<i64> = row.try_get(12)?;
                Ok($crate::monitor::Finding {
                    id: row.try_get(0)?,
                    kind: row.try_get(1)?,
                    severity: $crate::monitor::Severity::parse(&severity)
                        .ok_or_else(|| $crate::store::common::corrupt("severity", &severity))?,
                    fingerprint: row.try_get(3)?,
                    title: row.try_get(4)?,
                    evidence: serde_json::from_str(&evidence)
                        .map_err(|_| $crate::store::common::corrupt("evidence", &evidence))?,
                    state: $crate::monitor::FindingState::parse(&state)
                        .ok_or_else(|| $crate::store::common::corrupt("state", &state))?,
                    started_at: $crate::domain::Timestamp::from_micros(row.try_get(7)?),
                    detected_at: $crate::domain::Timestamp::from_micros(row.try_get(8)?),
                    last_seen_at: $crate::domain::Timestamp::from_micros(row.try_get(9)?),
                    occurrences: row.try_get(10)?,
                    acknowledged_at: acknowledged.map($crate::domain::Timestamp::from_micros),
                    resolved_at: resolved.map($crate::domain::Timestamp::from_micros),
                })
            }

            async fn finding_transition(
                &self,
                sql: &'static str,
                id: i64,
                at: $crate::domain::Timestamp,
            ) -> Result<Option<$crate::monitor::Finding>, StoreError> {
                sqlx::query(sql)
                    .bind(id)
                    .bind(at.as_micros())
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(Self::finding_from_row)
                    .transpose()
            }

            fn conflict_from_row(row: &$row) -> Result<$crate::domain::Conflict, StoreError> {
                use sqlx::Row;
                let endpoint: String = row.try_get(1)?;
                let resolved: Option<i64> = row.try_get(8)?;
                Ok($crate::domain::Conflict {
                    id: row.try_get(0)?,
                    endpoint: $crate::store::common::parse_endpoint(&endpoint)?,
                    key: row.try_get(2)?,
                    field: row.try_get(3)?,
                    base_value: row.try_get(4)?,
                    crm_value: row.try_get(5)?,
                    erp_value: row.try_get(6)?,
                    opened_at: $crate::domain::Timestamp::from_micros(row.try_get(7)?),
                    resolved_at: resolved.map($crate::domain::Timestamp::from_micros),
                    resolution: row.try_get(9)?,
                })
            }

            async fn fetch_by_keys(
                conn: &mut <$db as sqlx::Database>::Connection,
                keys: &[&str],
            ) -> Result<Vec<$crate::domain::FieldEvent>, StoreError> {
                let mut events = Vec::with_capacity(keys.len());
                for chunk in keys.chunks($crate::store::common::KEYS_PER_LOOKUP) {
                    let mut qb =
                        sqlx::QueryBuilder::<$db>::new($crate::store::common::SELECT_EVENTS);
                    qb.push(" AND idempotency_key IN (");
                    let mut list = qb.separated(", ");
                    for key in chunk {
                        list.push_bind(*key);
                    }
                    qb.push(")");
                    for row in qb.build().fetch_all(&mut *conn).await? {
                        events.push(Self::event_from_row(&row)?);
                    }
                }
                Ok(events)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                $backend
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                Self::migrator().run(self.writer()).await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn append_events(
                &self,
                batch: &[$crate::domain::NewFieldEvent],
                recorded_at: $crate::domain::Timestamp,
            ) -> Result<$crate::store::AppendResult, StoreError> {
                let mut tx = self.begin_write().await?;
                let result = Self::append_in(&mut tx, batch, recorded_at).await?;
                tx.commit().await?;
                Ok(result)
            }

            async fn query_events(
                &self,
                query: &$crate::store::EventQuery,
            ) -> Result<Vec<$crate::domain::FieldEvent>, StoreError> {
                let mut qb = match &query.record_id {
                    None => sqlx::QueryBuilder::<$db>::new($crate::store::common::SELECT_EVENTS),
                    Some(id) => {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(
                            $crate::store::common::SELECT_RECORD_EVENTS_HEAD,
                        );
                        qb.push_bind(id.clone());
                        qb.push(" UNION ALL SELECT * FROM field_events WHERE erp_id = ")
                            .push_bind(id.clone());
                        qb.push(" AND (crm_id IS NULL OR crm_id <> ")
                            .push_bind(id.clone())
                            .push(")) ");
                        qb.push($crate::store::common::SELECT_EVENTS.replacen(
                            "FROM field_events",
                            "FROM matched",
                            1,
                        ));
                        qb
                    }
                };
                if let Some(endpoint) = query.endpoint {
                    qb.push(" AND endpoint = ").push_bind(endpoint.as_str());
                }
                if let Some(field) = &query.field {
                    qb.push(" AND field = ").push_bind(field.clone());
                }
                if let Some(run_id) = &query.run_id {
                    qb.push(" AND run_id = ").push_bind(run_id.clone());
                }
                if let Some(from) = query.from {
                    qb.push(" AND occurred_at >= ").push_bind(from.as_micros());
                }
                if let Some(to) = query.to {
                    qb.push(" AND occurred_at < ").push_bind(to.as_micros());
                }
                if let Some(after) = query.after_id {
                    qb.push(" AND id > ").push_bind(after);
                }
                qb.push(" ORDER BY id LIMIT ")
                    .push_bind($crate::store::common::effective_limit(query));
                let rows = qb.build().fetch_all(&self.pool).await?;
                rows.iter().map(Self::event_from_row).collect()
            }

            async fn count_events(&self) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar($crate::store::common::COUNT_EVENTS)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn baseline_insert_batch(
                &self,
                batch: &[$crate::domain::NewFieldEvent],
                recorded_at: $crate::domain::Timestamp,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                for e in batch {
                    sqlx::query($crate::store::common::INSERT_EVENT)
                        .bind(e.idempotency_key.as_str())
                        .bind(e.run_id.as_deref())
                        .bind(e.endpoint.as_str())
                        .bind(e.crm_id.as_deref())
                        .bind(e.erp_id.as_deref())
                        .bind(e.field.as_str())
                        .bind(e.old_value.as_deref())
                        .bind(e.new_value.as_deref())
                        .bind(e.source_system.as_str())
                        .bind(e.target_system.as_str())
                        .bind(e.outcome.as_str())
                        .bind(e.error.as_deref())
                        .bind(e.latency_ms)
                        .bind(e.occurred_at.as_micros())
                        .bind(recorded_at.as_micros())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn start_run(&self, run: &$crate::domain::SyncRun) -> Result<(), StoreError> {
                sqlx::query($crate::store::common::INSERT_RUN)
                    .bind(run.id.as_str())
                    .bind(run.endpoint.map(|e| e.as_str()))
                    .bind(run.started_at.as_micros())
                    .bind(run.status.as_str())
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn finish_run(
                &self,
                id: &str,
                ended_at: $crate::domain::Timestamp,
                status: $crate::domain::RunStatus,
                counts: &$crate::domain::SyncRunCounts,
                error: Option<&str>,
            ) -> Result<(), StoreError> {
                sqlx::query($crate::store::common::FINISH_RUN)
                    .bind(id)
                    .bind(ended_at.as_micros())
                    .bind(status.as_str())
                    .bind(counts.records_read)
                    .bind(counts.records_written)
                    .bind(counts.events)
                    .bind(counts.api_calls_ok)
                    .bind(counts.api_calls_failed)
                    .bind(error)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn run(&self, id: &str) -> Result<Option<$crate::domain::SyncRun>, StoreError> {
                sqlx::query($crate::store::common::SELECT_RUN)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(Self::run_from_row)
                    .transpose()
            }

            async fn recent_runs(
                &self,
                limit: u32,
            ) -> Result<Vec<$crate::domain::SyncRun>, StoreError> {
                sqlx::query($crate::store::common::SELECT_RUNS)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::run_from_row)
                    .collect()
            }

            async fn link_records(
                &self,
                link: &$crate::domain::RecordLink,
            ) -> Result<(), StoreError> {
                sqlx::query($crate::store::common::UPSERT_LINK)
                    .bind(link.endpoint.as_str())
                    .bind(link.crm_id.as_str())
                    .bind(link.erp_id.as_str())
                    .bind(link.linked_at.as_micros())
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn link_by_crm_id(
                &self,
                endpoint: $crate::domain::Endpoint,
                crm_id: &str,
            ) -> Result<Option<$crate::domain::RecordLink>, StoreError> {
                sqlx::query($crate::store::common::SELECT_LINK_BY_CRM)
                    .bind(endpoint.as_str())
                    .bind(crm_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(Self::link_from_row)
                    .transpose()
            }

            async fn link_by_erp_id(
                &self,
                endpoint: $crate::domain::Endpoint,
                erp_id: &str,
            ) -> Result<Option<$crate::domain::RecordLink>, StoreError> {
                sqlx::query($crate::store::common::SELECT_LINK_BY_ERP)
                    .bind(endpoint.as_str())
                    .bind(erp_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(Self::link_from_row)
                    .transpose()
            }

            async fn commit_sync(
                &self,
                commit: &$crate::store::SyncCommit,
                recorded_at: $crate::domain::Timestamp,
            ) -> Result<$crate::store::AppendResult, StoreError> {
                let mut tx = self.begin_write().await?;
                let result = Self::append_in(&mut tx, &commit.events, recorded_at).await?;
                Self::commit_rest(&mut tx, commit, recorded_at).await?;
                tx.commit().await?;
                Ok(result)
            }

            async fn commit_run(
                &self,
                commit: &$crate::store::SyncCommit,
                recorded_at: $crate::domain::Timestamp,
            ) -> Result<Vec<bool>, StoreError> {
                let mut tx = self.begin_write().await?;
                let (unique, _) = $crate::store::dedupe_batch(&commit.events)?;
                let (_, keys) = Self::insert_new(&mut tx, &unique, recorded_at, true).await?;
                let keys: std::collections::HashSet<String> = keys.into_iter().collect();
                let mut recorded = vec![false; commit.events.len()];
                for (index, event) in &unique {
                    recorded[*index] = keys.contains(&event.idempotency_key);
                }
                Self::commit_rest(&mut tx, commit, recorded_at).await?;
                tx.commit().await?;
                Ok(recorded)
            }

            async fn save_intents(
                &self,
                endpoint: $crate::domain::Endpoint,
                intents: &[$crate::store::WriteIntent<'_>],
                at: $crate::domain::Timestamp,
            ) -> Result<(), StoreError> {
                use $crate::store::common as q;
                let mut tx = self.begin_write().await?;
                for chunk in intents.chunks(q::ROWS_PER_STATE_INSERT) {
                    let mut rows = Vec::with_capacity(chunk.len());
                    for intent in chunk {
                        rows.push((intent.key.as_str(), q::to_json(&intent.events)?));
                    }
                    let mut qb = sqlx::QueryBuilder::<$db>::new(q::INSERT_INTENTS_HEAD);
                    qb.push_values(rows, |mut row, (key, json)| {
                        row.push_bind(key)
                            .push_bind(endpoint.as_str())
                            .push_bind(json)
                            .push_bind(at.as_micros());
                    });
                    qb.push(q::INSERT_INTENTS_TAIL);
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn intents(
                &self,
                endpoint: $crate::domain::Endpoint,
            ) -> Result<Vec<$crate::domain::NewFieldEvent>, StoreError> {
                let rows: Vec<String> = sqlx::query_scalar($crate::store::common::SELECT_INTENTS)
                    .bind(endpoint.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                let mut events = Vec::new();
                for row in &rows {
                    events.extend($crate::store::common::intent_events(row)?);
                }
                Ok(events)
            }

            async fn reset_sync_state(
                &self,
                at: $crate::domain::Timestamp,
                reason: &str,
            ) -> Result<(), StoreError> {
                use $crate::store::common as q;
                let mut tx = self.begin_write().await?;
                sqlx::query(q::RESET_SYNC_STATE).execute(&mut *tx).await?;
                sqlx::query(q::RESET_CURSORS).execute(&mut *tx).await?;
                sqlx::query(q::DELETE_ALL_INTENTS).execute(&mut *tx).await?;
                sqlx::query(q::CLOSE_DEAD_LETTERS)
                    .bind(at.as_micros())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(q::CLOSE_CONFLICTS)
                    .bind(at.as_micros())
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_states(
                &self,
                endpoint: $crate::domain::Endpoint,
            ) -> Result<std::collections::HashMap<String, $crate::domain::RecordState>, StoreError>
            {
                sqlx::query($crate::store::common::SELECT_STATES)
                    .bind(endpoint.as_str())
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| Self::state_from_row(row).map(|s| (s.key.clone(), s)))
                    .collect()
            }

            async fn cursor(
                &self,
                endpoint: $crate::domain::Endpoint,
                system: $crate::domain::System,
            ) -> Result<Option<$crate::domain::Timestamp>, StoreError> {
                let at: Option<i64> = sqlx::query_scalar($crate::store::common::SELECT_CURSOR)
                    .bind(endpoint.as_str())
                    .bind(system.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(at.map($crate::domain::Timestamp::from_micros))
            }

            async fn open_dead_letters(
                &self,
            ) -> Result<Vec<$crate::domain::DeadLetter>, StoreError> {
                sqlx::query($crate::store::common::SELECT_OPEN_DEAD_LETTERS)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::dead_letter_from_row)
                    .collect()
            }

            async fn open_conflicts(&self) -> Result<Vec<$crate::domain::Conflict>, StoreError> {
                sqlx::query($crate::store::common::SELECT_OPEN_CONFLICTS)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::conflict_from_row)
                    .collect()
            }

            async fn conflict(
                &self,
                id: i64,
            ) -> Result<Option<$crate::domain::Conflict>, StoreError> {
                sqlx::query($crate::store::common::SELECT_CONFLICT)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(Self::conflict_from_row)
                    .transpose()
            }

            async fn set_endpoint_control(
                &self,
                control: &$crate::domain::EndpointControl,
            ) -> Result<(), StoreError> {
                sqlx::query($crate::store::common::UPSERT_ENDPOINT_CONTROL)
                    .bind(control.endpoint.as_str())
                    .bind(i64::from(control.paused))
                    .bind(i64::from(control.dry_run))
                    .bind(control.changed_at.as_micros())
                    .bind(control.changed_by.as_str())
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn endpoint_controls(
                &self,
            ) -> Result<Vec<$crate::domain::EndpointControl>, StoreError> {
                use sqlx::Row;
                let rows = sqlx::query($crate::store::common::SELECT_ENDPOINT_CONTROLS)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let endpoint: String = row.try_get(0)?;
                        let paused: i64 = row.try_get(1)?;
                        let dry_run: i64 = row.try_get(2)?;
                        Ok($crate::domain::EndpointControl {
                            endpoint: $crate::store::common::parse_endpoint(&endpoint)?,
                            paused: paused != 0,
                            dry_run: dry_run != 0,
                            changed_at: $crate::domain::Timestamp::from_micros(row.try_get(3)?),
                            changed_by: row.try_get(4)?,
                        })
                    })
                    .collect()
            }

            async fn acquire_lease(
                &self,
                job: &str,
                holder: &str,
                until: $crate::domain::Timestamp,
                now: $crate::domain::Timestamp,
            ) -> Result<bool, StoreError> {
                let row = sqlx::query($crate::store::common::ACQUIRE_LEASE)
                    .bind(job)
                    .bind(holder)
                    .bind(until.as_micros())
                    .bind(now.as_micros())
                    .fetch_optional(self.writer())
                    .await?;
                Ok(row.is_some())
            }

            async fn release_lease(&self, job: &str, holder: &str) -> Result<(), StoreError> {
                sqlx::query($crate::store::common::RELEASE_LEASE)
                    .bind(job)
                    .bind(holder)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn lease(
                &self,
                job: &str,
            ) -> Result<Option<(String, $crate::domain::Timestamp)>, StoreError> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::common::SELECT_LEASE)
                    .bind(job)
                    .fetch_optional(self.writer())
                    .await?;
                row.map(|r| {
                    Ok((
                        r.try_get(0)?,
                        $crate::domain::Timestamp::from_micros(r.try_get(1)?),
                    ))
                })
                .transpose()
            }

            async fn job_mark(
                &self,
                job: &str,
            ) -> Result<Option<$crate::domain::Timestamp>, StoreError> {
                let mark: Option<i64> = sqlx::query_scalar($crate::store::common::SELECT_JOB_MARK)
                    .bind(job)
                    .fetch_optional(self.writer())
                    .await?;
                Ok(mark.map($crate::domain::Timestamp::from_micros))
            }

            async fn advance_job_mark(
                &self,
                job: &str,
                mark: $crate::domain::Timestamp,
            ) -> Result<(), StoreError> {
                sqlx::query($crate::store::common::ADVANCE_JOB_MARK)
                    .bind(job)
                    .bind(mark.as_micros())
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn claim_job_slot(
                &self,
                claim: &$crate::store::SlotClaim<'_>,
            ) -> Result<bool, StoreError> {
                // Without a share, every slot is within it (no instance holds `i64::MAX` of them).
                let (endpoints, slots, instances, starved_before) = match claim.share {
                    Some(share) => (
                        i64::try_from(share.endpoints).unwrap_or(i64::MAX),
                        share.slots,
                        share.instances,
                        share.starved_before.as_micros(),
                    ),
                    None => (i64::MAX, "", "", i64::MIN),
                };
                let holder: Option<Option<String>> =
                    sqlx::query_scalar($crate::store::common::CLAIM_JOB_SLOT)
                        .bind(claim.job)
                        .bind(claim.next.as_micros())
                        .bind(claim.holder)
                        .bind(claim.now.as_micros())
                        .bind(claim.overdue_before.as_micros())
                        .bind(claim.lease)
                        .bind(endpoints)
                        .bind(slots)
                        .bind(instances)
                        .bind(starved_before)
                        .fetch_optional(self.writer())
                        .await?;
                // A first slot refused for the share comes back stored free (no holder).
                Ok(holder.flatten().as_deref() == Some(claim.holder))
            }

            async fn release_job_slot(&self, job: &str, holder: &str) -> Result<(), StoreError> {
                sqlx::query($crate::store::common::RELEASE_JOB_SLOT)
                    .bind(job)
                    .bind(holder)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn held_job_slots(
                &self,
                holder: &str,
                jobs: &str,
            ) -> Result<Vec<String>, StoreError> {
                let mut held: Vec<String> =
                    sqlx::query_scalar($crate::store::common::SELECT_HELD_JOB_SLOTS)
                        .bind(holder)
                        .bind(jobs)
                        .fetch_all(self.writer())
                        .await?;
                // Sorted here, not by the database's collation: both backends agree on the order.
                held.sort();
                Ok(held)
            }

            async fn live_leases(
                &self,
                jobs: &str,
                now: $crate::domain::Timestamp,
            ) -> Result<usize, StoreError> {
                let n: i64 = sqlx::query_scalar($crate::store::common::COUNT_LIVE_LEASES)
                    .bind(jobs)
                    .bind(now.as_micros())
                    .fetch_one(self.writer())
                    .await?;
                Ok(usize::try_from(n).unwrap_or(0))
            }

            async fn keep_job_slot(
                &self,
                job: &str,
                holder: &str,
                next: $crate::domain::Timestamp,
            ) -> Result<(), StoreError> {
                sqlx::query($crate::store::common::KEEP_JOB_SLOT)
                    .bind(job)
                    .bind(next.as_micros())
                    .bind(holder)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn ensure_event_partitions(
                &self,
                from: $crate::domain::Timestamp,
                months: u32,
            ) -> Result<Vec<String>, StoreError> {
                self.ensure_partitions(from, months).await
            }

            async fn event_partitions(
                &self,
            ) -> Result<Vec<$crate::store::EventPartition>, StoreError> {
                self.partitions().await
            }

            async fn drop_event_partition(
                &self,
                partition: &$crate::store::EventPartition,
                archived: i64,
            ) -> Result<(), StoreError> {
                self.drop_partition(partition, archived).await
            }

            async fn create_token(
                &self,
                name: &str,
                role: $crate::domain::Role,
                token_hash: &str,
                created_at: $crate::domain::Timestamp,
                expires_at: Option<$crate::domain::Timestamp>,
            ) -> Result<i64, StoreError> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::common::INSERT_TOKEN)
                    .bind(name)
                    .bind(role.as_str())
                    .bind(token_hash)
                    .bind(created_at.as_micros())
                    .bind(expires_at.map(|t| t.as_micros()))
                    .fetch_one(self.writer())
                    .await?;
                Ok(row.try_get(0)?)
            }

            async fn token_by_hash(
                &self,
                token_hash: &str,
            ) -> Result<Option<$crate::domain::ApiToken>, StoreError> {
                sqlx::query($crate::store::common::SELECT_TOKEN_BY_HASH)
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map($crate::store::common::token_from_row)
                    .transpose()
            }

            async fn tokens(&self) -> Result<Vec<$crate::domain::ApiToken>, StoreError> {
                sqlx::query($crate::store::common::SELECT_TOKENS)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map($crate::store::common::token_from_row)
                    .collect()
            }

            async fn revoke_token(
                &self,
                id: i64,
                at: $crate::domain::Timestamp,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query($crate::store::common::REVOKE_TOKEN)
                    .bind(at.as_micros())
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn upsert_finding(
                &self,
                finding: &$crate::monitor::NewFinding,
            ) -> Result<$crate::monitor::Finding, StoreError> {
                let row = sqlx::query($crate::store::common::UPSERT_FINDING)
                    .bind(finding.kind.as_str())
                    .bind(finding.severity.as_str())
                    .bind(finding.fingerprint.as_str())
                    .bind(finding.title.as_str())
                    .bind(finding.evidence.to_string())
                    .bind(finding.started_at.as_micros())
                    .bind(finding.detected_at.as_micros())
                    .fetch_one(self.writer())
                    .await?;
                Self::finding_from_row(&row)
            }

            async fn acknowledge_finding(
                &self,
                id: i64,
                at: $crate::domain::Timestamp,
            ) -> Result<Option<$crate::monitor::Finding>, StoreError> {
                self.finding_transition($crate::store::common::ACKNOWLEDGE_FINDING, id, at)
                    .await
            }

            async fn resolve_finding(
                &self,
                id: i64,
                at: $crate::domain::Timestamp,
            ) -> Result<Option<$crate::monitor::Finding>, StoreError> {
                self.finding_transition($crate::store::common::RESOLVE_FINDING, id, at)
                    .await
            }

            async fn finding(
                &self,
                id: i64,
            ) -> Result<Option<$crate::monitor::Finding>, StoreError> {
                sqlx::query($crate::store::common::SELECT_FINDING)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(Self::finding_from_row)
                    .transpose()
            }

            async fn findings(
                &self,
                state: Option<$crate::monitor::FindingState>,
            ) -> Result<Vec<$crate::monitor::Finding>, StoreError> {
                sqlx::query($crate::store::common::SELECT_FINDINGS)
                    .bind(state.map(|s| s.as_str()))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::finding_from_row)
                    .collect()
            }

            async fn save_dedup_proposals(
                &self,
                proposals: &[$crate::domain::NewDedupProposal],
            ) -> Result<usize, StoreError> {
                use $crate::store::common::to_json;
                let mut tx = self.begin_write().await?;
                let mut added = 0;
                for p in proposals {
                    added += sqlx::query($crate::store::common::INSERT_DEDUP_PROPOSAL)
                        .bind(p.endpoint.as_str())
                        .bind(to_json(&p.members)?)
                        .bind(p.survivor.as_str())
                        .bind(to_json(&p.fields)?)
                        .bind(to_json(&p.before)?)
                        .bind(p.min_probability)
                        .bind(p.created_at.as_micros())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected() as usize;
                }
                tx.commit().await?;
                Ok(added)
            }

            async fn dedup_proposals(
                &self,
                endpoint: Option<$crate::domain::Endpoint>,
                status: Option<$crate::domain::ProposalStatus>,
            ) -> Result<Vec<$crate::domain::DedupProposal>, StoreError> {
                sqlx::query($crate::store::common::SELECT_DEDUP_PROPOSALS)
                    .bind(endpoint.map(|e| e.as_str()))
                    .bind(status.map(|s| s.as_str()))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::proposal_from_row)
                    .collect()
            }

            async fn decide_dedup_proposal(
                &self,
                id: i64,
                status: $crate::domain::ProposalStatus,
                by: &str,
                at: $crate::domain::Timestamp,
            ) -> Result<Option<$crate::domain::DedupProposal>, StoreError> {
                sqlx::query($crate::store::common::DECIDE_DEDUP_PROPOSAL)
                    .bind(id)
                    .bind(status.as_str())
                    .bind(at.as_micros())
                    .bind(by)
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(Self::proposal_from_row)
                    .transpose()
            }

            async fn dedup_proposal(
                &self,
                id: i64,
            ) -> Result<Option<$crate::domain::DedupProposal>, StoreError> {
                sqlx::query($crate::store::common::SELECT_DEDUP_PROPOSAL)
                    .bind(id)
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(Self::proposal_from_row)
                    .transpose()
            }

            async fn enqueue_merge_job(
                &self,
                proposal_id: i64,
                kind: $crate::domain::MergeKind,
                plan: &serde_json::Value,
                by: &str,
                at: $crate::domain::Timestamp,
            ) -> Result<Option<i64>, StoreError> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::common::INSERT_MERGE_JOB)
                    .bind(proposal_id)
                    .bind(kind.as_str())
                    .bind($crate::store::common::to_json(plan)?)
                    .bind(by)
                    .bind(at.as_micros())
                    .fetch_optional(self.writer())
                    .await?;
                Ok(row.map(|r| r.try_get(0)).transpose()?)
            }

            async fn claim_merge_job(
                &self,
                holder: &str,
                until: $crate::domain::Timestamp,
                now: $crate::domain::Timestamp,
            ) -> Result<Option<$crate::domain::MergeJob>, StoreError> {
                sqlx::query($crate::store::common::CLAIM_MERGE_JOB)
                    .bind(holder)
                    .bind(until.as_micros())
                    .bind(now.as_micros())
                    .fetch_optional(self.writer())
                    .await?
                    .as_ref()
                    .map(Self::merge_job_from_row)
                    .transpose()
            }

            async fn advance_merge_job(
                &self,
                step: &$crate::store::MergeProgress,
                recorded_at: $crate::domain::Timestamp,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let moved = sqlx::query($crate::store::common::ADVANCE_MERGE_JOB)
                    .bind(step.job)
                    .bind(step.holder.as_str())
                    .bind(step.next_step as i64)
                    .bind($crate::store::common::to_json(&step.results)?)
                    .bind(step.claimed_until.as_micros())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0;
                if !moved {
                    return Ok(false);
                }
                Self::append_in(&mut tx, &step.events, recorded_at).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn finish_merge_job(
                &self,
                id: i64,
                holder: &str,
                finish: &$crate::store::MergeFinish,
                at: $crate::domain::Timestamp,
            ) -> Result<bool, StoreError> {
                use $crate::store::common as q;
                let mut tx = self.begin_write().await?;
                let ended = sqlx::query(q::FINISH_MERGE_JOB)
                    .bind(id)
                    .bind(holder)
                    .bind(finish.status.as_str())
                    .bind(finish.error.as_deref())
                    .bind(at.as_micros())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0;
                if !ended {
                    return Ok(false);
                }
                Self::append_in(&mut tx, &finish.events, at).await?;
                for s in &finish.states {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(q::UPSERT_STATES_HEAD);
                    qb.push_values(std::iter::once(s), |mut row, s| {
                        row.push_bind(s.endpoint.as_str())
                            .push_bind(s.key.clone())
                            .push_bind(s.crm_id.clone())
                            .push_bind(s.erp_id.clone())
                            .push_bind(q::fields_to_json(&s.fields))
                            .push_bind(s.synced_at.as_micros());
                    });
                    qb.push(q::UPSERT_STATES_TAIL);
                    qb.build().execute(&mut *tx).await?;
                }
                for (endpoint, key) in &finish.dropped_states {
                    sqlx::query(q::DELETE_STATE)
                        .bind(endpoint.as_str())
                        .bind(key.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some((proposal, status, by)) = &finish.proposal {
                    sqlx::query(q::SET_PROPOSAL_STATUS)
                        .bind(*proposal)
                        .bind(status.as_str())
                        .bind(at.as_micros())
                        .bind(by.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn retry_merge_job(
                &self,
                id: i64,
                holder: &str,
                error: &str,
                not_before: $crate::domain::Timestamp,
            ) -> Result<(), StoreError> {
                sqlx::query($crate::store::common::RETRY_MERGE_JOB)
                    .bind(id)
                    .bind(holder)
                    .bind(error)
                    .bind(not_before.as_micros())
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn merge_jobs(
                &self,
                proposal_id: i64,
            ) -> Result<Vec<$crate::domain::MergeJob>, StoreError> {
                sqlx::query($crate::store::common::SELECT_MERGE_JOBS)
                    .bind(proposal_id)
                    .fetch_all(self.writer())
                    .await?
                    .iter()
                    .map(Self::merge_job_from_row)
                    .collect()
            }

            async fn upsert_alert(&self, alert: &$crate::alert::Alert) -> Result<(), StoreError> {
                use $crate::store::common::json_text as to_json;
                sqlx::query($crate::store::common::UPSERT_ALERT)
                    .bind(alert.fingerprint.as_str())
                    .bind(alert.finding_id)
                    .bind(to_json(&alert.labels))
                    .bind(to_json(&alert.annotations))
                    .bind(alert.status.as_str())
                    .bind(alert.starts_at.as_micros())
                    .bind(alert.ends_at.map(|t| t.as_micros()))
                    .bind(alert.updated_at.as_micros())
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn alerts(
                &self,
                resolved_since: $crate::domain::Timestamp,
            ) -> Result<Vec<$crate::alert::Alert>, StoreError> {
                use sqlx::Row;
                use $crate::store::common::{corrupt, from_json};
                let rows = sqlx::query($crate::store::common::SELECT_ALERTS)
                    .bind(resolved_since.as_micros())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let labels: String = row.try_get(2)?;
                        let annotations: String = row.try_get(3)?;
                        let status: String = row.try_get(4)?;
                        let ends_at: Option<i64> = row.try_get(6)?;
                        Ok($crate::alert::Alert {
                            fingerprint: row.try_get(0)?,
                            finding_id: row.try_get(1)?,
                            labels: from_json("labels", &labels)?,
                            annotations: from_json("annotations", &annotations)?,
                            status: $crate::alert::AlertStatus::parse(&status)
                                .ok_or_else(|| corrupt("status", &status))?,
                            starts_at: $crate::domain::Timestamp::from_micros(row.try_get(5)?),
                            ends_at: ends_at.map($crate::domain::Timestamp::from_micros),
                            updated_at: $crate::domain::Timestamp::from_micros(row.try_get(7)?),
                            muted_by: row.try_get(8)?,
                        })
                    })
                    .collect()
            }

            async fn set_alert_muted(
                &self,
                fingerprint: &str,
                muted_by: Option<&str>,
            ) -> Result<(), StoreError> {
                sqlx::query($crate::store::common::SET_ALERT_MUTED)
                    .bind(fingerprint)
                    .bind(muted_by)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn set_alert_annotations(
                &self,
                fingerprint: &str,
                updated_at: $crate::domain::Timestamp,
                annotations: &$crate::alert::Labels,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query($crate::store::common::SET_ALERT_ANNOTATIONS)
                    .bind(fingerprint)
                    .bind($crate::store::common::to_json(annotations)?)
                    .bind(updated_at.as_micros())
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn notification_log(
                &self,
            ) -> Result<Vec<$crate::alert::NotificationLogEntry>, StoreError> {
                use sqlx::Row;
                use $crate::store::common::from_json;
                let rows = sqlx::query($crate::store::common::SELECT_NOTIFICATION_LOG)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let firing: String = row.try_get(3)?;
                        let resolved: String = row.try_get(4)?;
                        Ok($crate::alert::NotificationLogEntry {
                            receiver: row.try_get(0)?,
                            group_key: row.try_get(1)?,
                            hash: row.try_get(2)?,
                            firing: from_json("firing", &firing)?,
                            resolved: from_json("resolved", &resolved)?,
                            sent_at: $crate::domain::Timestamp::from_micros(row.try_get(5)?),
                        })
                    })
                    .collect()
            }

            async fn record_notification(
                &self,
                log: &$crate::alert::NotificationLogEntry,
                notification: Option<&$crate::alert::NewNotification>,
                at: $crate::domain::Timestamp,
            ) -> Result<Option<i64>, StoreError> {
                use sqlx::Row;
                use $crate::store::common::json_text as to_json;
                let mut tx = self.begin_write().await?;
                sqlx::query($crate::store::common::UPSERT_NOTIFICATION_LOG)
                    .bind(log.receiver.as_str())
                    .bind(log.group_key.as_str())
                    .bind(log.hash.as_str())
                    .bind(to_json(&log.firing))
                    .bind(to_json(&log.resolved))
                    .bind(log.sent_at.as_micros())
                    .execute(&mut *tx)
                    .await?;
                let id = match notification {
                    Some(n) => {
                        let row = sqlx::query($crate::store::common::INSERT_NOTIFICATION)
                            .bind(n.receiver.as_str())
                            .bind(n.group_key.as_str())
                            .bind(n.payload.to_string())
                            .bind(at.as_micros())
                            .fetch_one(&mut *tx)
                            .await?;
                        Some(row.try_get::<i64, _>(0)?)
                    }
                    None => None,
                };
                tx.commit().await?;
                Ok(id)
            }

            async fn claim_notifications(
                &self,
                worker: &str,
                now: $crate::domain::Timestamp,
                claim_until: $crate::domain::Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::alert::OutboxEntry>, StoreError> {
                let rows = sqlx::query(Self::CLAIM_NOTIFICATIONS)
                    .bind(worker)
                    .bind(claim_until.as_micros())
                    .bind(now.as_micros())
                    .bind(i64::from(limit))
                    .fetch_all(self.writer())
                    .await?;
                let mut claimed = rows
                    .iter()
                    .map(Self::outbox_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                // RETURNING follows no ORDER BY: send the oldest first all the same.
                claimed.sort_by_key(|e| (e.next_attempt_at, e.id));
                Ok(claimed)
            }

            async fn finish_notification(
                &self,
                worker: &str,
                attempt: &$crate::alert::Attempt,
                next_attempt_at: $crate::domain::Timestamp,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let status = $crate::store::outcome_status(attempt.outcome);
                let sent_at = (attempt.outcome == $crate::alert::AttemptOutcome::Sent)
                    .then_some(attempt.attempted_at.as_micros());
                let done = sqlx::query($crate::store::common::FINISH_NOTIFICATION)
                    .bind(attempt.outbox_id)
                    .bind(worker)
                    .bind(status.as_str())
                    .bind(next_attempt_at.as_micros())
                    .bind(sent_at)
                    .bind(attempt.error.as_deref())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($crate::store::common::INSERT_NOTIFICATION_ATTEMPT)
                    .bind(attempt.outbox_id)
                    .bind(attempt.receiver.as_str())
                    .bind(attempt.attempted_at.as_micros())
                    .bind(attempt.outcome.as_str())
                    .bind(attempt.error.as_deref())
                    .bind(attempt.latency_ms)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn outbox(
                &self,
                status: Option<$crate::alert::OutboxStatus>,
            ) -> Result<Vec<$crate::alert::OutboxEntry>, StoreError> {
                sqlx::query($crate::store::common::SELECT_OUTBOX)
                    .bind(status.map(|s| s.as_str()))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::outbox_from_row)
                    .collect()
            }

            async fn notification_attempts(
                &self,
                receiver: &str,
            ) -> Result<Vec<$crate::alert::Attempt>, StoreError> {
                use sqlx::Row;
                use $crate::store::common::corrupt;
                let rows = sqlx::query($crate::store::common::SELECT_NOTIFICATION_ATTEMPTS)
                    .bind(receiver)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let outcome: String = row.try_get(3)?;
                        Ok($crate::alert::Attempt {
                            outbox_id: row.try_get(0)?,
                            receiver: row.try_get(1)?,
                            attempted_at: $crate::domain::Timestamp::from_micros(row.try_get(2)?),
                            outcome: $crate::alert::AttemptOutcome::parse(&outcome)
                                .ok_or_else(|| corrupt("outcome", &outcome))?,
                            error: row.try_get(4)?,
                            latency_ms: row.try_get(5)?,
                        })
                    })
                    .collect()
            }

            async fn receiver_failures(&self, receiver: &str) -> Result<i64, StoreError> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::common::COUNT_RECEIVER_FAILURES)
                    .bind(receiver)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get(0)?)
            }

            async fn add_silence(
                &self,
                silence: &$crate::alert::NewSilence,
                at: $crate::domain::Timestamp,
            ) -> Result<$crate::alert::Silence, StoreError> {
                let row = sqlx::query($crate::store::common::INSERT_SILENCE)
                    .bind($crate::store::common::json_text(&silence.matchers))
                    .bind(silence.starts_at.as_micros())
                    .bind(silence.ends_at.as_micros())
                    .bind(silence.author.as_str())
                    .bind(silence.comment.as_str())
                    .bind(at.as_micros())
                    .fetch_one(self.writer())
                    .await?;
                Self::silence_from_row(&row)
            }

            async fn silences(&self) -> Result<Vec<$crate::alert::Silence>, StoreError> {
                sqlx::query($crate::store::common::SELECT_SILENCES)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::silence_from_row)
                    .collect()
            }

            async fn save_policy_change(
                &self,
                change: &$crate::domain::PolicyChange,
            ) -> Result<i64, StoreError> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::common::INSERT_POLICY_CHANGE)
                    .bind(change.endpoint.as_str())
                    .bind(change.settings.to_string())
                    .bind(change.changed_at.as_micros())
                    .bind(change.changed_by.as_str())
                    .fetch_one(self.writer())
                    .await?;
                Ok(row.try_get(0)?)
            }

            async fn policy_changes(
                &self,
            ) -> Result<Vec<$crate::domain::PolicyChange>, StoreError> {
                sqlx::query($crate::store::common::SELECT_POLICY_CHANGES)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::policy_change_from_row)
                    .collect()
            }

            async fn record_api_calls(
                &self,
                system: $crate::domain::System,
                tallies: &[$crate::sync::connectors::CallTally],
                at: $crate::domain::Timestamp,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                for t in tallies {
                    sqlx::query($crate::store::common::INSERT_API_CALLS)
                        .bind(at.as_micros())
                        .bind(system.as_str())
                        .bind(t.endpoint.map(|e| e.as_str()))
                        .bind(i64::try_from(t.attempted).unwrap_or(i64::MAX))
                        .bind(i64::try_from(t.succeeded).unwrap_or(i64::MAX))
                        .bind($crate::store::common::latencies_json(&t.latencies_ms))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn api_calls_after(
                &self,
                after: Option<i64>,
            ) -> Result<Vec<$crate::monitor::rollup::ApiCalls>, StoreError> {
                sqlx::query($crate::store::common::SELECT_API_CALLS_AFTER)
                    .bind(after.unwrap_or(0))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map($crate::store::common::api_calls_from_row)
                    .collect()
            }

            async fn api_calls_between(
                &self,
                from: $crate::domain::Timestamp,
                to: $crate::domain::Timestamp,
            ) -> Result<Vec<$crate::monitor::rollup::ApiCalls>, StoreError> {
                sqlx::query($crate::store::common::SELECT_API_CALLS_BETWEEN)
                    .bind(from.as_micros())
                    .bind(to.as_micros())
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map($crate::store::common::api_calls_from_row)
                    .collect()
            }

            async fn upsert_rollups(
                &self,
                rows: &[$crate::monitor::rollup::RollupRow],
            ) -> Result<(), StoreError> {
                use $crate::store::common::latencies_json;
                let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                let mut tx = self.begin_write().await?;
                for r in rows {
                    let v = &r.values;
                    sqlx::query($crate::store::common::UPSERT_ROLLUP)
                        .bind(r.resolution.as_str())
                        .bind(r.scope.as_str())
                        .bind(r.start.as_micros())
                        .bind(big(v.api_attempted))
                        .bind(big(v.api_succeeded))
                        .bind(latencies_json(&v.api_latencies))
                        .bind(big(v.writes_attempted))
                        .bind(big(v.writes_failed))
                        .bind(big(v.events))
                        .bind(big(v.records))
                        .bind(big(v.conflicts_opened))
                        .bind(big(v.conflicts_resolved))
                        .bind(big(v.reconcile_differences))
                        .bind(v.duplicates.map(big))
                        .bind(v.last_success_at.map(|t| t.as_micros()))
                        .bind(latencies_json(&v.sync_latencies))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn rollups(
                &self,
                resolution: $crate::monitor::rollup::Resolution,
                from: $crate::domain::Timestamp,
                to: $crate::domain::Timestamp,
            ) -> Result<Vec<$crate::monitor::rollup::RollupRow>, StoreError> {
                sqlx::query($crate::store::common::SELECT_ROLLUPS)
                    .bind(resolution.as_str())
                    .bind(from.as_micros())
                    .bind(to.as_micros())
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map($crate::store::common::rollup_from_row)
                    .collect()
            }

            async fn rollup_progress(&self, job: &str) -> Result<Option<i64>, StoreError> {
                use sqlx::Row;
                sqlx::query($crate::store::common::SELECT_ROLLUP_PROGRESS)
                    .bind(job)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|row| row.try_get(0))
                    .transpose()
                    .map_err(StoreError::from)
            }

            async fn set_rollup_progress(&self, job: &str, last_id: i64) -> Result<(), StoreError> {
                sqlx::query($crate::store::common::UPSERT_ROLLUP_PROGRESS)
                    .bind(job)
                    .bind(last_id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
                self.writer().close().await;
            }
        }

        impl $store {
            fn outbox_from_row(row: &$row) -> Result<$crate::alert::OutboxEntry, StoreError> {
                use sqlx::Row;
                $crate::store::common::OutboxColumns {
                    id: row.try_get(0)?,
                    receiver: row.try_get(1)?,
                    group_key: row.try_get(2)?,
                    payload: row.try_get(3)?,
                    status: row.try_get(4)?,
                    attempts: row.try_get(5)?,
                    next_attempt_at: row.try_get(6)?,
                    created_at: row.try_get(7)?,
                    sent_at: row.try_get(8)?,
                    last_error: row.try_get(9)?,
                }
                .try_into()
            }

            fn silence_from_row(row: &$row) -> Result<$crate::alert::Silence, StoreError> {
                use sqlx::Row;
                let matchers: String = row.try_get(1)?;
                Ok($crate::alert::Silence {
                    id: row.try_get(0)?,
                    matchers: $crate::store::common::from_json("matchers", &matchers)?,
                    starts_at: $crate::domain::Timestamp::from_micros(row.try_get(2)?),
                    ends_at: $crate::domain::Timestamp::from_micros(row.try_get(3)?),
                    author: row.try_get(4)?,
                    comment: row.try_get(5)?,
                    created_at: $crate::domain::Timestamp::from_micros(row.try_get(6)?),
                })
            }
        }
    };
}

pub(super) use impl_store;

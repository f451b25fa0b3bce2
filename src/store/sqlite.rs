//! The embedded default: one SQLite file in WAL mode.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::common::{INSERT_EVENTS_HEAD, impl_store, migrator};
use super::digest::impl_digest_store;
use super::{Backend, EventPartition, StoreError};
use crate::config::DatabaseSettings;
use crate::domain::{NewFieldEvent, Timestamp};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "event log",
        include_str!("migrations/sqlite/0001_event_log.sql"),
    ),
    (
        2,
        "sync state",
        include_str!("migrations/sqlite/0002_sync_state.sql"),
    ),
    (
        3,
        "findings",
        include_str!("migrations/sqlite/0003_findings.sql"),
    ),
    (
        4,
        "dedup proposals",
        include_str!("migrations/sqlite/0004_dedup.sql"),
    ),
    (
        5,
        "alerting",
        include_str!("migrations/sqlite/0005_alerting.sql"),
    ),
    (
        6,
        "job leases",
        include_str!("migrations/sqlite/0006_leases.sql"),
    ),
    (
        7,
        "api tokens",
        include_str!("migrations/sqlite/0007_api_tokens.sql"),
    ),
    (
        8,
        "policy changes",
        include_str!("migrations/sqlite/0008_policy_changes.sql"),
    ),
    (
        9,
        "digest sends",
        include_str!("migrations/sqlite/0009_digest_sends.sql"),
    ),
    (
        10,
        "merge jobs",
        include_str!("migrations/sqlite/0010_merge_jobs.sql"),
    ),
    (
        12,
        "job marks",
        include_str!("migrations/sqlite/0012_job_marks.sql"),
    ),
    (
        13,
        "secrets and erasure",
        include_str!("migrations/sqlite/0013_security.sql"),
    ),
    (
        14,
        "metric roll-ups",
        include_str!("migrations/sqlite/0014_metric_rollups.sql"),
    ),
    (
        15,
        "job mark holders",
        include_str!("migrations/sqlite/0015_job_mark_holders.sql"),
    ),
    (
        16,
        "open row indexes",
        include_str!("migrations/sqlite/0016_open_row_indexes.sql"),
    ),
];

/// Rows per multi-row INSERT: 15 parameters each stays under SQLite's 32,766-variable limit.
const ROWS_PER_INSERT: usize = 2000;

pub struct SqliteStore {
    /// Readers.
    pool: SqlitePool,
    /// The one writer connection: SQLite serialises writers anyway, and one connection keeps its
    /// page cache warm across transactions instead of re-reading pages another writer changed.
    writer: SqlitePool,
}

impl SqliteStore {
    const CLAIM_NOTIFICATIONS: &str = include_str!("sql/claim_notifications.sql");

    /// Opens (creating when missing) the database file at `path`.
    pub async fn connect(path: &str, settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let file = Path::new(path);
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL survives a killed process (not a power cut) without an fsync per commit.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", "-65536")
            // A checkpoint every ~40 MB of WAL rather than every 4 MB: the event log's random
            // indexes dirty the same pages commit after commit, and each is then copied back to
            // the database once instead of many times.
            .pragma("wal_autocheckpoint", "10000")
            .pragma("temp_store", "memory");
        let acquire_timeout = Duration::from_secs(settings.acquire_timeout_secs);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(acquire_timeout)
            .connect_with(options.clone())
            .await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(acquire_timeout)
            .connect_with(options.pragma("query_only", "true"))
            .await?;
        Ok(Self { pool, writer })
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn migrator() -> Migrator {
        migrator(MIGRATIONS)
    }

    /// Takes the write lock up front so two writers queue on the busy timeout instead of failing.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Multi-row INSERTs that skip keys already stored; returns how many rows were inserted and,
    /// when `keys`, their keys.
    async fn insert_new(
        tx: &mut Transaction<'static, Sqlite>,
        rows: &[(usize, &NewFieldEvent)],
        recorded_at: Timestamp,
        keys: bool,
    ) -> Result<(usize, Vec<String>), StoreError> {
        let (mut inserted, mut inserted_keys) = (0, Vec::new());
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut qb = sqlx::QueryBuilder::<Sqlite>::new(INSERT_EVENTS_HEAD);
            qb.push_values(chunk, |mut row, (_, e)| {
                row.push_bind(e.idempotency_key.as_str())
                    .push_bind(e.run_id.as_deref())
                    .push_bind(e.endpoint.as_str())
                    .push_bind(e.crm_id.as_deref())
                    .push_bind(e.erp_id.as_deref())
                    .push_bind(e.field.as_str())
                    .push_bind(e.old_value.as_deref())
                    .push_bind(e.new_value.as_deref())
                    .push_bind(e.source_system.as_str())
                    .push_bind(e.target_system.as_str())
                    .push_bind(e.outcome.as_str())
                    .push_bind(e.error.as_deref())
                    .push_bind(e.latency_ms)
                    .push_bind(e.occurred_at.as_micros())
                    .push_bind(recorded_at.as_micros());
            });
            qb.push(" ON CONFLICT (idempotency_key) DO NOTHING");
            if keys {
                qb.push(" RETURNING idempotency_key");
                let got: Vec<String> = qb.build_query_scalar().fetch_all(&mut **tx).await?;
                inserted += got.len();
                inserted_keys.extend(got);
            } else {
                let done = qb.build().execute(&mut **tx).await?;
                inserted += done.rows_affected() as usize;
            }
        }
        Ok((inserted, inserted_keys))
    }
}

/// SQLite keeps the event log in one table: no partitions to make or drop.
impl SqliteStore {
    async fn ensure_partitions(
        &self,
        _from: Timestamp,
        _months: u32,
    ) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn partitions(&self) -> Result<Vec<EventPartition>, StoreError> {
        Ok(Vec::new())
    }

    async fn drop_partition(
        &self,
        partition: &EventPartition,
        _archived: i64,
    ) -> Result<(), StoreError> {
        Err(StoreError::Corrupt(format!(
            "SQLite has no event partition {}",
            partition.name
        )))
    }
}

impl_store!(SqliteStore, Sqlite, SqliteRow, Backend::Sqlite);
impl_digest_store!(SqliteStore);
super::security::impl_security_store!(SqliteStore, Sqlite, SqliteRow, Backend::Sqlite);
super::listing::impl_list_store!(SqliteStore, SqliteRow);

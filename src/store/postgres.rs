//! PostgreSQL, for production and for several instances sharing one database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgConnection, Postgres, Transaction};

use super::common::{impl_store, migrator};
use super::digest::impl_digest_store;
use super::{Backend, EventPartition, StoreError};
use crate::config::DatabaseSettings;
use crate::domain::{NewFieldEvent, Timestamp};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "event log",
        include_str!("migrations/postgres/0001_event_log.sql"),
    ),
    (
        2,
        "sync state",
        include_str!("migrations/postgres/0002_sync_state.sql"),
    ),
    (
        3,
        "findings",
        include_str!("migrations/postgres/0003_findings.sql"),
    ),
    (
        4,
        "dedup proposals",
        include_str!("migrations/postgres/0004_dedup.sql"),
    ),
    (
        5,
        "alerting",
        include_str!("migrations/postgres/0005_alerting.sql"),
    ),
    (
        6,
        "job leases",
        include_str!("migrations/postgres/0006_leases.sql"),
    ),
    (
        7,
        "api tokens",
        include_str!("migrations/postgres/0007_api_tokens.sql"),
    ),
    (
        8,
        "policy changes",
        include_str!("migrations/postgres/0008_policy_changes.sql"),
    ),
    (
        9,
        "digest sends",
        include_str!("migrations/postgres/0009_digest_sends.sql"),
    ),
    (
        10,
        "merge jobs",
        include_str!("migrations/postgres/0010_merge_jobs.sql"),
    ),
    (
        12,
        "event partitions",
        include_str!("migrations/postgres/0012_event_partitions.sql"),
    ),
    (
        13,
        "secrets and erasure",
        include_str!("migrations/postgres/0013_security.sql"),
    ),
    (
        14,
        "metric roll-ups",
        include_str!("migrations/postgres/0014_metric_rollups.sql"),
    ),
    (
        15,
        "job mark holders",
        include_str!("migrations/postgres/0015_job_mark_holders.sql"),
    ),
    (
        16,
        "open row indexes",
        include_str!("migrations/postgres/0016_open_row_indexes.sql"),
    ),
];

const INSERT_EVENTS_UNNEST: &str = include_str!("sql/insert_events_unnest.postgres.sql");
/// The same insert, answering with the keys it inserted.
const INSERT_EVENTS_UNNEST_RETURNING: &str = concat!(
    include_str!("sql/insert_events_unnest.postgres.sql"),
    "RETURNING idempotency_key"
);
const ENSURE_EVENT_PARTITIONS: &str = include_str!("sql/ensure_event_partitions.postgres.sql");
const SELECT_EVENT_PARTITIONS: &str = include_str!("sql/select_event_partitions.postgres.sql");
const COUNT_EVENT_PARTITION: &str = include_str!("sql/count_event_partition.postgres.sql");
const DROP_EVENT_PARTITION: &str = include_str!("sql/drop_event_partition.postgres.sql");

/// Rows per UNNEST insert; the arrays travel as 14 parameters whatever the row count.
const ROWS_PER_INSERT: usize = 10_000;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    const CLAIM_NOTIFICATIONS: &str = include_str!("sql/claim_notifications.postgres.sql");

    pub async fn connect(url: &str, settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    fn migrator() -> Migrator {
        migrator(MIGRATIONS)
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// UNNEST-array INSERTs that skip keys already stored; returns how many rows were inserted.
    async fn insert_new(
        tx: &mut Transaction<'static, Postgres>,
        rows: &[(usize, &NewFieldEvent)],
        recorded_at: Timestamp,
        keys: bool,
    ) -> Result<(usize, Vec<String>), StoreError> {
        let (mut inserted, mut inserted_keys) = (0, Vec::new());
        let sql = if keys {
            INSERT_EVENTS_UNNEST_RETURNING
        } else {
            INSERT_EVENTS_UNNEST
        };
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let col = |f: fn(&NewFieldEvent) -> Option<&str>| -> Vec<Option<&str>> {
                chunk.iter().map(|(_, e)| f(e)).collect()
            };
            let query = sqlx::query(sql)
                .bind(col(|e| Some(e.idempotency_key.as_str())))
                .bind(col(|e| e.run_id.as_deref()))
                .bind(col(|e| Some(e.endpoint.as_str())))
                .bind(col(|e| e.crm_id.as_deref()))
                .bind(col(|e| e.erp_id.as_deref()))
                .bind(col(|e| Some(e.field.as_str())))
                .bind(col(|e| e.old_value.as_deref()))
                .bind(col(|e| e.new_value.as_deref()))
                .bind(col(|e| Some(e.source_system.as_str())))
                .bind(col(|e| Some(e.target_system.as_str())))
                .bind(col(|e| Some(e.outcome.as_str())))
                .bind(col(|e| e.error.as_deref()))
                .bind(chunk.iter().map(|(_, e)| e.latency_ms).collect::<Vec<_>>())
                .bind(
                    chunk
                        .iter()
                        .map(|(_, e)| e.occurred_at.as_micros())
                        .collect::<Vec<_>>(),
                )
                .bind(recorded_at.as_micros());
            if keys {
                for row in query.fetch_all(&mut **tx).await? {
                    inserted_keys.push(sqlx::Row::try_get(&row, 0)?);
                    inserted += 1;
                }
            } else {
                inserted += query.execute(&mut **tx).await?.rows_affected() as usize;
            }
        }
        Ok((inserted, inserted_keys))
    }
}

/// The event log's monthly partitions.
impl PostgresStore {
    async fn ensure_partitions(
        &self,
        from: Timestamp,
        months: u32,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(ENSURE_EVENT_PARTITIONS)
            .bind(from.as_micros())
            .bind(i32::try_from(months).unwrap_or(i32::MAX))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn partitions(&self) -> Result<Vec<EventPartition>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(SELECT_EVENT_PARTITIONS)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(name, from, to)| EventPartition {
                name,
                from: Timestamp::from_micros(from),
                to: Timestamp::from_micros(to),
            })
            .collect())
    }

    async fn drop_partition(
        &self,
        partition: &EventPartition,
        archived: i64,
    ) -> Result<(), StoreError> {
        let name = &partition.name;
        // The name goes into DDL: only names the partition function makes are accepted.
        let valid = name.len() == "field_events_y0000m00".len()
            && name.starts_with("field_events_y")
            && name[14..18].bytes().all(|b| b.is_ascii_digit())
            && &name[18..19] == "m"
            && name[19..].bytes().all(|b| b.is_ascii_digit());
        if !valid {
            return Err(StoreError::Corrupt(format!(
                "not an event partition: {name}"
            )));
        }
        let sql = |template: &str| sqlx::AssertSqlSafe(template.replace("{partition}", name));
        let mut tx = self.pool.begin().await?;
        let (lock, count) = COUNT_EVENT_PARTITION
            .split_once(';')
            .unwrap_or(("", COUNT_EVENT_PARTITION));
        sqlx::raw_sql(sql(lock)).execute(&mut *tx).await?;
        let found: i64 = sqlx::query_scalar(sql(count)).fetch_one(&mut *tx).await?;
        if found != archived {
            return Err(StoreError::ArchiveMismatch {
                partition: name.clone(),
                found,
                archived,
            });
        }
        sqlx::raw_sql(sql(DROP_EVENT_PARTITION))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl_store!(PostgresStore, Postgres, PgRow, Backend::Postgres);
impl_digest_store!(PostgresStore);
super::security::impl_security_store!(PostgresStore, Postgres, PgRow, Backend::Postgres);
super::listing::impl_list_store!(PostgresStore, PgRow);

/// Creates a new empty database next to the one `admin_url` names and returns its URL; tests and
/// benchmarks use one each so they never see each other's rows.
pub async fn create_scratch_database(admin_url: &str, prefix: &str) -> Result<String, StoreError> {
    let options = PgConnectOptions::from_str(admin_url)?;
    let mut conn = options.connect().await?;
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(options.database(&name).to_url_lossy().to_string())
}

/// Drops a database made by `create_scratch_database`, disconnecting anyone still on it.
pub async fn drop_database(admin_url: &str, url: &str) -> Result<(), StoreError> {
    let name = PgConnectOptions::from_str(url)?
        .get_database()
        .map(str::to_string)
        .ok_or_else(|| StoreError::UnsupportedUrl("database url without a database".into()))?;
    let mut conn = PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

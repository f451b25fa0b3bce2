//! The store's side of the weekly digest: aggregates of the event log, sync runs and conflicts
//! over a week, and the record of which week's digest was sent, stamped per backend like the
//! shared store code.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{Endpoint, Outcome, Timestamp};

pub(super) const DIGEST_RUNS_BY_DAY: &str = include_str!("sql/digest_runs_by_day.sql");
pub(super) const DIGEST_LATENCY_BY_DAY: &str = include_str!("sql/digest_latency_by_day.sql");
pub(super) const DIGEST_RECORDS: &str = include_str!("sql/digest_records.sql");
pub(super) const DIGEST_CONFLICTS: &str = include_str!("sql/digest_conflicts.sql");
pub(super) const CLAIM_DIGEST_SEND: &str = include_str!("sql/claim_digest_send.sql");
pub(super) const FINISH_DIGEST_SEND: &str = include_str!("sql/finish_digest_send.sql");
pub(super) const FAIL_DIGEST_SEND: &str = include_str!("sql/fail_digest_send.sql");
pub(super) const SELECT_DIGEST_SEND: &str = include_str!("sql/select_digest_send.sql");

/// The edges of seven consecutive days: day `i` is `[bounds[i], bounds[i + 1])`.
pub type WeekBounds = [Timestamp; 8];

/// One day's sum of a pair of counters, or one latency value's count: (day index, a, b).
pub type DayRow = (usize, i64, i64);

/// What the store knows of one week's digest send.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DigestSend {
    pub week: String,
    pub holder: String,
    pub attempts: i64,
    pub sent_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

#[async_trait]
pub trait DigestStore: Send + Sync {
    /// API calls that succeeded and failed in the sync runs started each day: (day, ok, failed).
    async fn digest_api_calls(&self, days: &WeekBounds) -> Result<Vec<DayRow>, StoreError>;

    /// Write latencies of each day as a histogram: (day, latency_ms, writes).
    async fn digest_latencies(&self, days: &WeekBounds) -> Result<Vec<DayRow>, StoreError>;

    /// Distinct records with an `applied` or `merged` event in `[from, to)`, per endpoint.
    async fn digest_records(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(Endpoint, Outcome, i64)>, StoreError>;

    /// Conflicts opened and resolved in `[from, to)`.
    async fn digest_conflicts(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(i64, i64), StoreError>;

    /// Claims the send of `week` for `holder` until `until`; false when it was sent already or
    /// another holder's claim has not expired at `now`.
    async fn claim_digest_send(
        &self,
        week: &str,
        holder: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records that `holder` sent `week`.
    async fn finish_digest_send(
        &self,
        week: &str,
        holder: &str,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Records a failed send; the week may be claimed again from `retry_at`.
    async fn fail_digest_send(
        &self,
        week: &str,
        holder: &str,
        retry_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError>;

    async fn digest_send(&self, week: &str) -> Result<Option<DigestSend>, StoreError>;
}

macro_rules! impl_digest_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::DigestStore for $store {
            async fn digest_api_calls(
                &self,
                days: &$crate::store::WeekBounds,
            ) -> Result<Vec<$crate::store::DayRow>, StoreError> {
                self.day_rows($crate::store::digest::DIGEST_RUNS_BY_DAY, days)
                    .await
            }

            async fn digest_latencies(
                &self,
                days: &$crate::store::WeekBounds,
            ) -> Result<Vec<$crate::store::DayRow>, StoreError> {
                self.day_rows($crate::store::digest::DIGEST_LATENCY_BY_DAY, days)
                    .await
            }

            async fn digest_records(
                &self,
                from: $crate::domain::Timestamp,
                to: $crate::domain::Timestamp,
            ) -> Result<Vec<($crate::domain::Endpoint, $crate::domain::Outcome, i64)>, StoreError>
            {
                use sqlx::Row;
                let rows = sqlx::query($crate::store::digest::DIGEST_RECORDS)
                    .bind(from.as_micros())
                    .bind(to.as_micros())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let endpoint: String = row.try_get(0)?;
                        let outcome: String = row.try_get(1)?;
                        Ok((
                            $crate::store::common::parse_endpoint(&endpoint)?,
                            $crate::store::common::parse_outcome(&outcome)?,
                            row.try_get(2)?,
                        ))
                    })
                    .collect()
            }

            async fn digest_conflicts(
                &self,
                from: $crate::domain::Timestamp,
                to: $crate::domain::Timestamp,
            ) -> Result<(i64, i64), StoreError> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::digest::DIGEST_CONFLICTS)
                    .bind(from.as_micros())
                    .bind(to.as_micros())
                    .fetch_one(&self.pool)
                    .await?;
                Ok((row.try_get(0)?, row.try_get(1)?))
            }

            async fn claim_digest_send(
                &self,
                week: &str,
                holder: &str,
                until: $crate::domain::Timestamp,
                now: $crate::domain::Timestamp,
            ) -> Result<bool, StoreError> {
                let row = sqlx::query($crate::store::digest::CLAIM_DIGEST_SEND)
                    .bind(week)
                    .bind(holder)
                    .bind(until.as_micros())
                    .bind(now.as_micros())
                    .fetch_optional(self.writer())
                    .await?;
                Ok(row.is_some())
            }

            async fn finish_digest_send(
                &self,
                week: &str,
                holder: &str,
                at: $crate::domain::Timestamp,
            ) -> Result<(), StoreError> {
                sqlx::query($crate::store::digest::FINISH_DIGEST_SEND)
                    .bind(week)
                    .bind(holder)
                    .bind(at.as_micros())
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn fail_digest_send(
                &self,
                week: &str,
                holder: &str,
                retry_at: $crate::domain::Timestamp,
                error: &str,
            ) -> Result<(), StoreError> {
                sqlx::query($crate::store::digest::FAIL_DIGEST_SEND)
                    .bind(week)
                    .bind(holder)
                    .bind(retry_at.as_micros())
                    .bind(error)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn digest_send(
                &self,
                week: &str,
            ) -> Result<Option<$crate::store::DigestSend>, StoreError> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::digest::SELECT_DIGEST_SEND)
                    .bind(week)
                    .fetch_optional(self.writer())
                    .await?;
                row.map(|r| {
                    Ok($crate::store::DigestSend {
                        week: r.try_get(0)?,
                        holder: r.try_get(1)?,
                        attempts: r.try_get(2)?,
                        sent_at: r
                            .try_get::<Option<i64>, _>(3)?
                            .map($crate::domain::Timestamp::from_micros),
                        last_error: r.try_get(4)?,
                    })
                })
                .transpose()
            }
        }

        impl $store {
            /// Runs a per-day query over the seven days `days` bounds.
            async fn day_rows(
                &self,
                sql: &'static str,
                days: &$crate::store::WeekBounds,
            ) -> Result<Vec<$crate::store::DayRow>, StoreError> {
                use sqlx::Row;
                let mut query = sqlx::query(sql);
                for edge in days {
                    query = query.bind(edge.as_micros());
                }
                let rows = query.fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|row| {
                        let day: i64 = row.try_get(0)?;
                        let a: Option<i64> = row.try_get(1)?;
                        let b: Option<i64> = row.try_get(2)?;
                        let day = usize::try_from(day)
                            .map_err(|_| $crate::store::common::corrupt("day", &day.to_string()))?;
                        Ok((day, a.unwrap_or(0), b.unwrap_or(0)))
                    })
                    .collect()
            }
        }
    };
}

pub(super) use impl_digest_store;

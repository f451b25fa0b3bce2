//! The store's part of security: the secret vault's table and GDPR erasure (see `crate::privacy`
//! for why the append-only event log allows it). Kept apart from `common.rs`; stamped per backend
//! by `impl_security_store!` the way `impl_store!` stamps the rest.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::Endpoint;
use crate::privacy::{Erasure, ErasureCounts};
use crate::vault::SealedSecret;

pub(super) const UPSERT_SECRET: &str = include_str!("sql/upsert_secret.sql");
pub(super) const SELECT_SECRET: &str = include_str!("sql/select_secret.sql");
pub(super) const SELECT_SECRETS: &str = include_str!("sql/select_secrets.sql");
pub(super) const DELETE_SECRET: &str = include_str!("sql/delete_secret.sql");
pub(super) const SELECT_RECORDS_WITH_VALUE: &str =
    include_str!("sql/select_records_with_value.sql");
pub(super) const INSERT_ERASURE: &str = include_str!("sql/insert_erasure.sql");
pub(super) const BEGIN_ERASURE_POSTGRES: &str = include_str!("sql/begin_erasure.postgres.sql");
pub(super) const COMPLETE_ERASURE: &str = include_str!("sql/complete_erasure.sql");
pub(super) const ERASE_EVENTS_HEAD: &str = include_str!("sql/erase_events_head.sql");
pub(super) const ERASE_CONFLICTS_HEAD: &str = include_str!("sql/erase_conflicts_head.sql");
pub(super) const SELECT_STATES_BY_IDS_HEAD: &str =
    include_str!("sql/select_states_by_ids_head.sql");
pub(super) const UPDATE_STATE_FIELDS: &str = include_str!("sql/update_state_fields.sql");
pub(super) const SELECT_DEAD_LETTERS_BY_IDS_HEAD: &str =
    include_str!("sql/select_dead_letters_by_ids_head.sql");
pub(super) const UPDATE_DEAD_LETTER_FIELDS: &str =
    include_str!("sql/update_dead_letter_fields.sql");

#[async_trait]
pub trait SecurityStore {
    /// Stores secrets (sealed by the vault), replacing those of the same name, in one
    /// transaction.
    async fn put_secrets(&self, secrets: &[SealedSecret]) -> Result<(), StoreError>;

    async fn secret(&self, name: &str) -> Result<Option<SealedSecret>, StoreError>;

    /// Every secret, by name.
    async fn secrets(&self) -> Result<Vec<SealedSecret>, StoreError>;

    /// Deletes a secret; false when there was none of that name.
    async fn delete_secret(&self, name: &str) -> Result<bool, StoreError>;

    /// Ids (either side) of the records of `endpoint` whose `field` ever held `value` (JSON
    /// text, compared case-blind).
    async fn records_with_value(
        &self,
        endpoint: Endpoint,
        field: &str,
        value: &str,
    ) -> Result<Vec<String>, StoreError>;

    /// Carries out an erasure in one transaction: tombstones the personal values of its targets
    /// in the event log and every snapshot, appends its `erased` events and records it.
    async fn erase(&self, erasure: &Erasure) -> Result<ErasureCounts, StoreError>;
}

/// Replaces the personal fields of a field map; true when one changed.
pub(super) fn erase_fields(
    fields: &mut std::collections::BTreeMap<String, String>,
    personal: &[String],
) -> bool {
    let mut changed = false;
    for field in personal {
        if let Some(value) = fields.get_mut(field)
            && value != crate::privacy::ERASED
        {
            *value = crate::privacy::ERASED.to_string();
            changed = true;
        }
    }
    changed
}

/// ` AND <column> IN (...)` over `values`.
pub(super) fn push_in<DB: sqlx::Database>(
    qb: &mut sqlx::QueryBuilder<DB>,
    column: &str,
    values: impl IntoIterator<Item = String>,
) where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    qb.push(format!(" {column} IN ("));
    let mut list = qb.separated(", ");
    for value in values {
        list.push_bind(value);
    }
    qb.push(")");
}

macro_rules! impl_security_store {
    ($store:ty, $db:ty, $row:ty, $backend:expr) => {
        impl $store {
            fn secret_from_row(row: &$row) -> Result<$crate::vault::SealedSecret, StoreError> {
                use sqlx::Row;
                Ok($crate::vault::SealedSecret {
                    name: row.try_get(0)?,
                    nonce: row.try_get(1)?,
                    ciphertext: row.try_get(2)?,
                    key_id: row.try_get(3)?,
                    created_at: $crate::domain::Timestamp::from_micros(row.try_get(4)?),
                    updated_at: $crate::domain::Timestamp::from_micros(row.try_get(5)?),
                })
            }

            /// Tombstones one target's personal values everywhere; returns what it replaced.
            async fn erase_target(
                tx: &mut sqlx::Transaction<'static, $db>,
                target: &$crate::privacy::ErasureTarget,
            ) -> Result<$crate::privacy::ErasureCounts, StoreError> {
                use $crate::store::security as q;
                let endpoint = target.endpoint.as_str();
                let ids = || target.ids.iter().cloned();
                let mut counts = $crate::privacy::ErasureCounts::default();

                let mut qb = sqlx::QueryBuilder::<$db>::new(q::ERASE_EVENTS_HEAD);
                qb.push(" AND endpoint = ").push_bind(endpoint);
                q::push_in(&mut qb.push(" AND"), "field", target.fields.iter().cloned());
                q::push_in(&mut qb.push(" AND ("), "crm_id", ids());
                q::push_in(&mut qb.push(" OR"), "erp_id", ids());
                qb.push(")");
                counts.events = qb.build().execute(&mut **tx).await?.rows_affected();

                let mut qb = sqlx::QueryBuilder::<$db>::new(q::ERASE_CONFLICTS_HEAD);
                qb.push(" AND endpoint = ").push_bind(endpoint);
                q::push_in(&mut qb.push(" AND"), "field", target.fields.iter().cloned());
                q::push_in(&mut qb.push(" AND"), "record_key", ids());
                counts.conflicts = qb.build().execute(&mut **tx).await?.rows_affected();

                let mut qb = sqlx::QueryBuilder::<$db>::new(q::SELECT_STATES_BY_IDS_HEAD);
                qb.push(" AND endpoint = ").push_bind(endpoint);
                q::push_in(&mut qb.push(" AND ("), "record_key", ids());
                q::push_in(&mut qb.push(" OR"), "crm_id", ids());
                q::push_in(&mut qb.push(" OR"), "erp_id", ids());
                qb.push(")");
                let rows = qb.build().fetch_all(&mut **tx).await?;
                for row in &rows {
                    let mut state = Self::state_from_row(row)?;
                    if q::erase_fields(&mut state.fields, &target.fields) {
                        sqlx::query(q::UPDATE_STATE_FIELDS)
                            .bind(endpoint)
                            .bind(state.key.as_str())
                            .bind($crate::store::common::fields_to_json(&state.fields))
                            .execute(&mut **tx)
                            .await?;
                        counts.record_states += 1;
                    }
                }

                let mut qb = sqlx::QueryBuilder::<$db>::new(q::SELECT_DEAD_LETTERS_BY_IDS_HEAD);
                qb.push(" AND endpoint = ").push_bind(endpoint);
                q::push_in(&mut qb.push(" AND ("), "record_key", ids());
                q::push_in(&mut qb.push(" OR"), "record_id", ids());
                qb.push(")");
                let rows = qb.build().fetch_all(&mut **tx).await?;
                for row in &rows {
                    let mut letter = Self::dead_letter_from_row(row)?;
                    if q::erase_fields(&mut letter.fields, &target.fields) {
                        sqlx::query(q::UPDATE_DEAD_LETTER_FIELDS)
                            .bind(letter.id)
                            .bind($crate::store::common::fields_to_json(&letter.fields))
                            .execute(&mut **tx)
                            .await?;
                        counts.dead_letters += 1;
                    }
                }
                Ok(counts)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::SecurityStore for $store {
            async fn put_secrets(
                &self,
                secrets: &[$crate::vault::SealedSecret],
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                for s in secrets {
                    sqlx::query($crate::store::security::UPSERT_SECRET)
                        .bind(s.name.as_str())
                        .bind(s.nonce.as_slice())
                        .bind(s.ciphertext.as_slice())
                        .bind(s.key_id.as_str())
                        .bind(s.created_at.as_micros())
                        .bind(s.updated_at.as_micros())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn secret(
                &self,
                name: &str,
            ) -> Result<Option<$crate::vault::SealedSecret>, StoreError> {
                sqlx::query($crate::store::security::SELECT_SECRET)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(Self::secret_from_row)
                    .transpose()
            }

            async fn secrets(&self) -> Result<Vec<$crate::vault::SealedSecret>, StoreError> {
                sqlx::query($crate::store::security::SELECT_SECRETS)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::secret_from_row)
                    .collect()
            }

            async fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
                let done = sqlx::query($crate::store::security::DELETE_SECRET)
                    .bind(name)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn records_with_value(
                &self,
                endpoint: $crate::domain::Endpoint,
                field: &str,
                value: &str,
            ) -> Result<Vec<String>, StoreError> {
                Ok(
                    sqlx::query_scalar($crate::store::security::SELECT_RECORDS_WITH_VALUE)
                        .bind(endpoint.as_str())
                        .bind(field)
                        .bind(value)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn erase(
                &self,
                erasure: &$crate::privacy::Erasure,
            ) -> Result<$crate::privacy::ErasureCounts, StoreError> {
                use $crate::store::security as q;
                let fields: std::collections::BTreeMap<&str, &[String]> = erasure
                    .targets
                    .iter()
                    .map(|t| (t.endpoint.as_str(), t.fields.as_slice()))
                    .collect();
                let mut tx = self.begin_write().await?;
                sqlx::query(q::INSERT_ERASURE)
                    .bind(erasure.id.as_str())
                    .bind(erasure.requested_by.as_str())
                    .bind(erasure.reason.as_str())
                    .bind(erasure.subject.as_str())
                    .bind($crate::store::common::json_text(&fields))
                    .bind(erasure.at.as_micros())
                    .execute(&mut *tx)
                    .await?;
                if $backend == $crate::store::Backend::Postgres {
                    sqlx::query(q::BEGIN_ERASURE_POSTGRES)
                        .bind(erasure.id.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                let mut total = $crate::privacy::ErasureCounts::default();
                for target in &erasure.targets {
                    let counts = Self::erase_target(&mut tx, target).await?;
                    total.events += counts.events;
                    total.record_states += counts.record_states;
                    total.conflicts += counts.conflicts;
                    total.dead_letters += counts.dead_letters;
                }
                Self::append_in(&mut tx, &erasure.tombstones, erasure.at).await?;
                sqlx::query(q::COMPLETE_ERASURE)
                    .bind(erasure.id.as_str())
                    .bind(erasure.at.as_micros())
                    .bind(total.events as i64)
                    .bind((total.record_states + total.conflicts + total.dead_letters) as i64)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(total)
            }
        }
    };
}

pub(super) use impl_security_store;

//! The store's part of security: the secret vault's table and GDPR erasure (see `crate::privacy`
//! for why the append-only event log allows it). Kept apart from `common.rs`; stamped per backend
//! by `impl_security_store!` the way `impl_store!` stamps the rest.

use async_trait::async_trait;

use serde_json::Value;

use super::StoreError;
use crate::domain::{Endpoint, NewDedupProposal, NewFieldEvent};
use crate::privacy::{ERASED, Erasure, ErasureCounts, ErasureTarget, PersonalValues};
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
pub(super) const SELECT_ERASURE_EVENT_VALUES_HEAD: &str =
    include_str!("sql/select_erasure_event_values_head.sql");
pub(super) const SELECT_ERASURE_CONFLICT_VALUES_HEAD: &str =
    include_str!("sql/select_erasure_conflict_values_head.sql");
pub(super) const UPDATE_PROPOSAL_ERASED: &str = include_str!("sql/update_proposal_erased.sql");
pub(super) const SELECT_MERGE_PLANS: &str = include_str!("sql/select_merge_plans.sql");
pub(super) const UPDATE_MERGE_PLAN: &str = include_str!("sql/update_merge_plan.sql");
pub(super) const SELECT_INTENT_ROWS: &str = include_str!("sql/select_intent_rows.sql");
pub(super) const UPDATE_INTENT_EVENT: &str = include_str!("sql/update_intent_event.sql");
pub(super) const SELECT_OUTBOX_PAYLOADS: &str = include_str!("sql/select_outbox_payloads.sql");
pub(super) const UPDATE_OUTBOX_PAYLOAD: &str = include_str!("sql/update_outbox_payload.sql");
pub(super) const SELECT_ALERT_ANNOTATIONS: &str = include_str!("sql/select_alert_annotations.sql");
pub(super) const UPDATE_ALERT_ANNOTATIONS_ERASED: &str =
    include_str!("sql/update_alert_annotations_erased.sql");
pub(super) const SELECT_FINDING_EVIDENCE: &str = include_str!("sql/select_finding_evidence.sql");
pub(super) const UPDATE_FINDING_EVIDENCE: &str = include_str!("sql/update_finding_evidence.sql");

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

/// Whether a proposal member (a record key, or `crm:<id>` for a record only the CRM holds) is one
/// of the target's records.
fn is_target_member(member: &str, target: &ErasureTarget) -> bool {
    target.ids.contains(member)
        || member
            .strip_prefix(crate::dedup::merge::CRM_ONLY)
            .is_some_and(|id| target.ids.contains(id))
}

/// Adds the personal values of the target's members in a proposal to `values`.
pub(super) fn proposal_values(
    proposal: &NewDedupProposal,
    target: &ErasureTarget,
    values: &mut PersonalValues,
) {
    if proposal.endpoint != target.endpoint {
        return;
    }
    for (member, fields) in &proposal.before {
        if is_target_member(member, target) {
            for field in &target.fields {
                if let Some(v) = fields.get(field) {
                    values.add(v);
                }
            }
        }
    }
    for choice in &proposal.fields {
        if is_target_member(&choice.from, target) && target.fields.contains(&choice.field) {
            values.add(&choice.value);
        }
    }
}

/// Erases from a proposal that has one of the target's records as a member that member's
/// personal fields, and any personal field (of another member, or the survivor's choice) holding
/// one of `values`: a duplicate of the person is the person. Proposals of others are left alone,
/// even where a value is the same (another person's first name). True when one changed.
pub(super) fn erase_proposal(
    proposal: &mut NewDedupProposal,
    target: &ErasureTarget,
    values: &PersonalValues,
) -> bool {
    let involved = proposal.members.iter().any(|m| is_target_member(m, target));
    if proposal.endpoint != target.endpoint || !involved {
        return false;
    }
    let mut changed = false;
    for (member, fields) in proposal.before.iter_mut() {
        let whole = is_target_member(member, target);
        for field in &target.fields {
            if let Some(value) = fields.get_mut(field)
                && value != ERASED
                && (whole || values.contains(value))
            {
                *value = ERASED.to_string();
                changed = true;
            }
        }
    }
    for choice in &mut proposal.fields {
        let personal = target.fields.contains(&choice.field);
        if personal
            && choice.value != ERASED
            && (is_target_member(&choice.from, target) || values.contains(&choice.value))
        {
            choice.value = ERASED.to_string();
            changed = true;
        }
    }
    changed
}

/// Members of a plan's objects that name the record whose `fields` (and `old`) they hold: a
/// step's `id`/`key`/`old_id`, a state's `key`/`crm_id`/`erp_id`.
const RECORD_ID_MEMBERS: [&str; 5] = ["key", "id", "crm_id", "erp_id", "old_id"];

/// Calls `visit(names_target, field_map)` for every field map (`fields`, `old`) in a merge job's
/// plan, whatever its shape: the plan is the deduper's, read here as plain JSON.
fn visit_plan_fields(
    doc: &mut Value,
    target: &ErasureTarget,
    visit: &mut impl FnMut(bool, &mut serde_json::Map<String, Value>),
) {
    match doc {
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| visit_plan_fields(v, target, visit)),
        Value::Object(map) => {
            let names_target = RECORD_ID_MEMBERS.iter().any(|m| {
                map.get(*m)
                    .and_then(Value::as_str)
                    .is_some_and(|id| target.ids.contains(id))
            });
            for (key, value) in map.iter_mut() {
                match value {
                    Value::Object(fields) if key == "fields" || key == "old" => {
                        visit(names_target, fields)
                    }
                    _ => visit_plan_fields(value, target, visit),
                }
            }
        }
        _ => {}
    }
}

/// Adds the personal values of the target's records in a merge job's plan to `values`.
pub(super) fn plan_values(plan: &mut Value, target: &ErasureTarget, values: &mut PersonalValues) {
    if !plan_is_for(plan, target) {
        return;
    }
    visit_plan_fields(plan, target, &mut |names_target, fields| {
        if names_target {
            for field in &target.fields {
                if let Some(Value::String(v)) = fields.get(field) {
                    values.add(v);
                }
            }
        }
    });
}

/// Erases from a merge job's plan that names one of the target's records (its before-images,
/// the values its steps write and restore) the target's personal fields, and personal fields of
/// the other records it merges holding one of `values`.
pub(super) fn erase_plan(
    plan: &mut Value,
    target: &ErasureTarget,
    values: &PersonalValues,
) -> bool {
    if !plan_is_for(plan, target) || !names_target(plan, target) {
        return false;
    }
    let mut changed = false;
    visit_plan_fields(plan, target, &mut |names_target, fields| {
        for field in &target.fields {
            if let Some(Value::String(v)) = fields.get_mut(field)
                && v != ERASED
                && (names_target || values.contains(v))
            {
                *v = ERASED.to_string();
                changed = true;
            }
        }
    });
    changed
}

/// Whether any object in `doc` names one of the target's records (a merge step names its
/// records `survivor` and `loser`).
fn names_target(doc: &Value, target: &ErasureTarget) -> bool {
    match doc {
        Value::Array(items) => items.iter().any(|v| names_target(v, target)),
        Value::Object(map) => {
            RECORD_ID_MEMBERS
                .iter()
                .chain(&["survivor", "loser"])
                .any(|m| {
                    map.get(*m)
                        .and_then(Value::as_str)
                        .is_some_and(|id| target.ids.contains(id))
                })
                || map.values().any(|v| names_target(v, target))
        }
        _ => false,
    }
}

fn plan_is_for(plan: &Value, target: &ErasureTarget) -> bool {
    plan.get("endpoint")
        .and_then(Value::as_str)
        .is_none_or(|e| e == target.endpoint.as_str())
}

/// Adds the values of a write intent of one of the target's records to `values`.
pub(super) fn intent_values(
    intent: &NewFieldEvent,
    target: &ErasureTarget,
    values: &mut PersonalValues,
) {
    if intent_names_target(intent, target) {
        for text in [&intent.old_value, &intent.new_value].into_iter().flatten() {
            values.add_json_text(text);
        }
    }
}

/// Erases a write intent of a personal field of the target's records, or one writing one of
/// `values`. Its recovery then finds the write did not reach the target and plans it anew.
pub(super) fn erase_intent(
    intent: &mut NewFieldEvent,
    target: &ErasureTarget,
    values: &PersonalValues,
) -> bool {
    if intent.endpoint != target.endpoint || !target.fields.contains(&intent.field) {
        return false;
    }
    let holds = |v: &Option<String>| {
        v.as_deref()
            .is_some_and(|text| match serde_json::from_str::<Value>(text) {
                Ok(Value::String(s)) => values.contains(&s),
                _ => values.contains(text),
            })
    };
    let whole = intent_names_target(intent, target);
    let tombstone = Value::from(ERASED).to_string();
    let mut changed = false;
    for value in [&mut intent.old_value, &mut intent.new_value] {
        if value.is_some() && *value != Some(tombstone.clone()) && (whole || holds(value)) {
            *value = Some(tombstone.clone());
            changed = true;
        }
    }
    changed
}

fn intent_names_target(intent: &NewFieldEvent, target: &ErasureTarget) -> bool {
    intent.endpoint == target.endpoint
        && target.fields.contains(&intent.field)
        && [&intent.crm_id, &intent.erp_id]
            .into_iter()
            .flatten()
            .any(|id| target.ids.contains(id))
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

            /// The target's record states.
            async fn erasure_states(
                tx: &mut sqlx::Transaction<'static, $db>,
                target: &$crate::privacy::ErasureTarget,
            ) -> Result<Vec<$crate::domain::RecordState>, StoreError> {
                use $crate::store::security as q;
                let ids = || target.ids.iter().cloned();
                let mut qb = sqlx::QueryBuilder::<$db>::new(q::SELECT_STATES_BY_IDS_HEAD);
                qb.push(" AND endpoint = ")
                    .push_bind(target.endpoint.as_str());
                q::push_in(&mut qb.push(" AND ("), "record_key", ids());
                q::push_in(&mut qb.push(" OR"), "crm_id", ids());
                q::push_in(&mut qb.push(" OR"), "erp_id", ids());
                qb.push(")");
                qb.build()
                    .fetch_all(&mut **tx)
                    .await?
                    .iter()
                    .map(Self::state_from_row)
                    .collect()
            }

            /// The target's dead letters.
            async fn erasure_dead_letters(
                tx: &mut sqlx::Transaction<'static, $db>,
                target: &$crate::privacy::ErasureTarget,
            ) -> Result<Vec<$crate::domain::DeadLetter>, StoreError> {
                use $crate::store::security as q;
                let ids = || target.ids.iter().cloned();
                let mut qb = sqlx::QueryBuilder::<$db>::new(q::SELECT_DEAD_LETTERS_BY_IDS_HEAD);
                qb.push(" AND endpoint = ")
                    .push_bind(target.endpoint.as_str());
                q::push_in(&mut qb.push(" AND ("), "record_key", ids());
                q::push_in(&mut qb.push(" OR"), "record_id", ids());
                qb.push(")");
                qb.build()
                    .fetch_all(&mut **tx)
                    .await?
                    .iter()
                    .map(Self::dead_letter_from_row)
                    .collect()
            }

            /// The deduper's and the sync's copies on the target's endpoint: proposals, merge
            /// and undo jobs' plans (by job id), write intents (by key, each a record's events).
            #[allow(clippy::type_complexity)]
            async fn erasure_copies(
                tx: &mut sqlx::Transaction<'static, $db>,
                endpoint: $crate::domain::Endpoint,
            ) -> Result<
                (
                    Vec<$crate::domain::DedupProposal>,
                    Vec<(i64, serde_json::Value)>,
                    Vec<(String, Vec<$crate::domain::NewFieldEvent>)>,
                ),
                StoreError,
            > {
                use sqlx::Row;
                use $crate::store::common::from_json;
                use $crate::store::security as q;
                let endpoint = endpoint.as_str();
                let proposals = sqlx::query($crate::store::common::SELECT_DEDUP_PROPOSALS)
                    .bind(Some(endpoint))
                    .bind(None::<&str>)
                    .fetch_all(&mut **tx)
                    .await?
                    .iter()
                    .map(Self::proposal_from_row)
                    .collect::<Result<_, _>>()?;
                let mut plans = Vec::new();
                for row in sqlx::query(q::SELECT_MERGE_PLANS)
                    .bind(endpoint)
                    .fetch_all(&mut **tx)
                    .await?
                {
                    let text: String = row.try_get(1)?;
                    plans.push((row.try_get(0)?, from_json("plan", &text)?));
                }
                let mut intents = Vec::new();
                for row in sqlx::query(q::SELECT_INTENT_ROWS)
                    .bind(endpoint)
                    .fetch_all(&mut **tx)
                    .await?
                {
                    let text: String = row.try_get(1)?;
                    intents.push((
                        row.try_get(0)?,
                        $crate::store::common::intent_events(&text)?,
                    ));
                }
                Ok((proposals, plans, intents))
            }

            /// Adds every personal value the store holds for the target to `values`, before
            /// anything is replaced: a value the person gave one record (an e-mail kept by a
            /// merge's survivor, a name in an alert) is then found wherever it went.
            async fn erasure_values(
                tx: &mut sqlx::Transaction<'static, $db>,
                target: &$crate::privacy::ErasureTarget,
                values: &mut $crate::privacy::PersonalValues,
            ) -> Result<(), StoreError> {
                use sqlx::Row;
                use $crate::store::security as q;
                let ids = || target.ids.iter().cloned();
                let mut qb = sqlx::QueryBuilder::<$db>::new(q::SELECT_ERASURE_EVENT_VALUES_HEAD);
                qb.push(" AND endpoint = ")
                    .push_bind(target.endpoint.as_str());
                q::push_in(&mut qb.push(" AND"), "field", target.fields.iter().cloned());
                q::push_in(&mut qb.push(" AND ("), "crm_id", ids());
                q::push_in(&mut qb.push(" OR"), "erp_id", ids());
                qb.push(")");
                for row in qb.build().fetch_all(&mut **tx).await? {
                    for column in 0..2 {
                        let text: Option<String> = row.try_get(column)?;
                        if let Some(t) = text {
                            values.add_json_text(&t);
                        }
                    }
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(q::SELECT_ERASURE_CONFLICT_VALUES_HEAD);
                qb.push(" AND endpoint = ")
                    .push_bind(target.endpoint.as_str());
                q::push_in(&mut qb.push(" AND"), "field", target.fields.iter().cloned());
                q::push_in(&mut qb.push(" AND"), "record_key", ids());
                for row in qb.build().fetch_all(&mut **tx).await? {
                    for column in 0..3 {
                        let value: Option<String> = row.try_get(column)?;
                        if let Some(v) = value {
                            values.add(&v);
                        }
                    }
                }
                let maps = Self::erasure_states(tx, target)
                    .await?
                    .into_iter()
                    .map(|s| s.fields)
                    .chain(
                        Self::erasure_dead_letters(tx, target)
                            .await?
                            .into_iter()
                            .map(|d| d.fields),
                    );
                for fields in maps {
                    for field in &target.fields {
                        if let Some(v) = fields.get(field) {
                            values.add(v);
                        }
                    }
                }
                let (proposals, mut plans, intents) =
                    Self::erasure_copies(tx, target.endpoint).await?;
                for p in &proposals {
                    q::proposal_values(&p.proposal, target, values);
                }
                for (_, plan) in &mut plans {
                    q::plan_values(plan, target, values);
                }
                for intent in intents.iter().flat_map(|(_, events)| events) {
                    q::intent_values(intent, target, values);
                }
                Ok(())
            }

            /// Tombstones one target's personal values everywhere, and personal fields holding
            /// one of `values` in the deduper's and the sync's copies; returns what it replaced.
            async fn erase_target(
                tx: &mut sqlx::Transaction<'static, $db>,
                target: &$crate::privacy::ErasureTarget,
                values: &$crate::privacy::PersonalValues,
            ) -> Result<$crate::privacy::ErasureCounts, StoreError> {
                use $crate::store::common::{fields_to_json, json_text};
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

                for mut state in Self::erasure_states(tx, target).await? {
                    if q::erase_fields(&mut state.fields, &target.fields) {
                        sqlx::query(q::UPDATE_STATE_FIELDS)
                            .bind(endpoint)
                            .bind(state.key.as_str())
                            .bind(fields_to_json(&state.fields))
                            .execute(&mut **tx)
                            .await?;
                        counts.record_states += 1;
                    }
                }
                for mut letter in Self::erasure_dead_letters(tx, target).await? {
                    if q::erase_fields(&mut letter.fields, &target.fields) {
                        sqlx::query(q::UPDATE_DEAD_LETTER_FIELDS)
                            .bind(letter.id)
                            .bind(fields_to_json(&letter.fields))
                            .execute(&mut **tx)
                            .await?;
                        counts.dead_letters += 1;
                    }
                }

                let (proposals, plans, intents) = Self::erasure_copies(tx, target.endpoint).await?;
                for mut p in proposals {
                    if q::erase_proposal(&mut p.proposal, target, values) {
                        sqlx::query(q::UPDATE_PROPOSAL_ERASED)
                            .bind(p.id)
                            .bind(json_text(&p.proposal.fields))
                            .bind(json_text(&p.proposal.before))
                            .execute(&mut **tx)
                            .await?;
                        counts.dedup_proposals += 1;
                    }
                }
                for (id, mut plan) in plans {
                    if q::erase_plan(&mut plan, target, values) {
                        sqlx::query(q::UPDATE_MERGE_PLAN)
                            .bind(id)
                            .bind(json_text(&plan))
                            .execute(&mut **tx)
                            .await?;
                        counts.merge_jobs += 1;
                    }
                }
                for (key, mut events) in intents {
                    // One row holds a record's write: every event of it is looked at.
                    let erased = events
                        .iter_mut()
                        .fold(false, |any, e| q::erase_intent(e, target, values) | any);
                    if erased {
                        sqlx::query(q::UPDATE_INTENT_EVENT)
                            .bind(key)
                            .bind(json_text(&events))
                            .execute(&mut **tx)
                            .await?;
                        counts.intents += 1;
                    }
                }
                Ok(counts)
            }

            /// Replaces `values` wherever alerting keeps free text about records: notification
            /// payloads in the outbox (sent or not), alert annotations and finding evidence.
            async fn erase_free_text(
                tx: &mut sqlx::Transaction<'static, $db>,
                values: &$crate::privacy::PersonalValues,
                counts: &mut $crate::privacy::ErasureCounts,
            ) -> Result<(), StoreError> {
                use sqlx::Row;
                use $crate::store::security as q;
                if values.is_empty() {
                    return Ok(());
                }
                let tables: [(&'static str, &'static str, &mut u64); 3] = [
                    (
                        q::SELECT_OUTBOX_PAYLOADS,
                        q::UPDATE_OUTBOX_PAYLOAD,
                        &mut counts.notifications,
                    ),
                    (
                        q::SELECT_ALERT_ANNOTATIONS,
                        q::UPDATE_ALERT_ANNOTATIONS_ERASED,
                        &mut counts.alerts,
                    ),
                    (
                        q::SELECT_FINDING_EVIDENCE,
                        q::UPDATE_FINDING_EVIDENCE,
                        &mut counts.findings,
                    ),
                ];
                for (select, update, count) in tables {
                    let rows = sqlx::query(select).fetch_all(&mut **tx).await?;
                    for row in &rows {
                        let text: String = row.try_get(1)?;
                        let mut doc: serde_json::Value =
                            $crate::store::common::from_json("payload", &text)?;
                        if !values.scrub_json(&mut doc) {
                            continue;
                        }
                        let key: String = row.try_get(0)?;
                        sqlx::query(update)
                            .bind(key)
                            .bind($crate::store::common::json_text(&doc))
                            .execute(&mut **tx)
                            .await?;
                        *count += 1;
                    }
                }
                Ok(())
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
                let mut values = $crate::privacy::PersonalValues::default();
                for target in &erasure.targets {
                    Self::erasure_values(&mut tx, target, &mut values).await?;
                }
                for target in &erasure.targets {
                    let counts = Self::erase_target(&mut tx, target, &values).await?;
                    total.add(&counts);
                }
                Self::erase_free_text(&mut tx, &values, &mut total).await?;
                Self::append_in(&mut tx, &erasure.tombstones, erasure.at).await?;
                sqlx::query(q::COMPLETE_ERASURE)
                    .bind(erasure.id.as_str())
                    .bind(erasure.at.as_micros())
                    .bind(total.events as i64)
                    .bind(total.snapshots() as i64)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(total)
            }
        }
    };
}

pub(super) use impl_security_store;

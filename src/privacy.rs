//! Personal data: which fields hold it, masking them for roles that do not need them, and GDPR
//! erasure.
//!
//! Erasure and the append-only event log. The log refuses UPDATE and DELETE in the database. An
//! overlay (an erasure table the read path consults) would leave the personal values on disk, and
//! moving personal values out of every event into a side table would slow every write and read
//! of the log for a rare operation. So erasure is one narrow, audited exception in the trigger
//! itself (migration 0013): inside the transaction that writes an uncompleted `erasures` row
//! (and, on PostgreSQL, names it in the transaction-local setting `syncwarden.erasure`), an UPDATE
//! may replace `old_value` / `new_value` with the tombstone `"[erased]"` and change nothing else.
//! The same transaction tombstones the snapshots (record states, conflicts, dead letters), appends
//! one `erased` event per record (who, when, which fields, why) and completes the `erasures` row,
//! so the exception never outlives it. DELETE stays refused.
//!
//! Erasure covers syncwarden's own copies; the CRM and ERP are erased by their owners. A record
//! they still hold is read again by the next sync (both sides agreeing, it is no conflict).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::domain::{
    Endpoint, FieldEvent, NewDedupProposal, NewFieldEvent, Outcome, Role, System, Timestamp,
};
use crate::store::{Store, StoreError};

/// What an erased value becomes (JSON text in the event log, plain in snapshots).
pub const ERASED: &str = "[erased]";
/// The pseudo-field of the event recording an erasure of a record; its run is `erasure-<id>`.
pub const ERASURE_FIELD: &str = "erasure";
/// What a masked value shows.
pub const MASKED: &str = "[masked]";

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("name a record (endpoint and key) or an email, not both")]
    AmbiguousSubject,
    #[error("name a record (endpoint and key) or an email")]
    NoSubject,
    #[error("no personal fields are configured for {0} (privacy.personal_fields)")]
    NoPersonalFields(&'static str),
    #[error("nothing in the store matches {0}")]
    NotFound(String),
    #[error("the reason must not be empty")]
    NoReason,
    #[error("the {0} must not be empty")]
    Blank(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacySettings {
    /// Roles that see personal values; the others see `[masked]`.
    pub reveal_to: Vec<Role>,
    /// Per endpoint, the fields holding personal data (exact field names).
    pub personal_fields: BTreeMap<Endpoint, Vec<String>>,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        let fields = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        Self {
            reveal_to: vec![Role::Approver, Role::Admin],
            personal_fields: BTreeMap::from([
                (
                    Endpoint::Accounts,
                    fields(&[
                        "phone",
                        "billing_street",
                        "billing_city",
                        "billing_postcode",
                    ]),
                ),
                (
                    Endpoint::Contacts,
                    fields(&["first_name", "last_name", "email", "phone"]),
                ),
            ]),
        }
    }
}

impl PrivacySettings {
    pub fn is_personal(&self, endpoint: Endpoint, field: &str) -> bool {
        self.personal_fields
            .get(&endpoint)
            .is_some_and(|f| f.iter().any(|p| p == field))
    }

    /// Whether `role` sees personal values.
    pub fn reveals_to(&self, role: Role) -> bool {
        self.reveal_to.contains(&role)
    }

    /// Masks the values of a personal field's event.
    pub fn mask_event(&self, event: &mut FieldEvent) {
        let e = &mut event.event;
        if self.is_personal(e.endpoint, &e.field) {
            let masked = serde_json::Value::from(MASKED).to_string();
            for value in [&mut e.old_value, &mut e.new_value].into_iter().flatten() {
                *value = masked.clone();
            }
        }
    }

    /// Masks a value of `field` (a snapshot's plain value).
    pub fn mask_value(&self, endpoint: Endpoint, field: &str, value: &mut Option<String>) {
        if self.is_personal(endpoint, field) && value.is_some() {
            *value = Some(MASKED.to_string());
        }
    }

    /// Masks the personal fields of a record's field map.
    pub fn mask_fields(&self, endpoint: Endpoint, fields: &mut BTreeMap<String, String>) {
        for (field, value) in fields.iter_mut() {
            if self.is_personal(endpoint, field) {
                *value = MASKED.to_string();
            }
        }
    }

    /// Masks a merge proposal: the members' fields side by side and the survivor's choices.
    pub fn mask_proposal(&self, proposal: &mut NewDedupProposal) {
        let endpoint = proposal.endpoint;
        for fields in proposal.before.values_mut() {
            self.mask_fields(endpoint, fields);
        }
        for choice in &mut proposal.fields {
            if self.is_personal(endpoint, &choice.field) {
                choice.value = MASKED.to_string();
            }
        }
    }

    /// Masks personal values anywhere in a free-form JSON document (a finding's evidence, a merge
    /// job's plan): a member named after a personal field, and the value members of an object
    /// whose `field` is personal. The endpoint is the one the nearest `endpoint` member names,
    /// else `endpoint`; when neither is known, a field personal on any endpoint counts.
    pub fn mask_json(&self, endpoint: Option<Endpoint>, doc: &mut serde_json::Value) {
        use serde_json::Value;
        match doc {
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask_json(endpoint, v)),
            Value::Object(map) => {
                let endpoint = map
                    .get("endpoint")
                    .and_then(Value::as_str)
                    .and_then(|e| Endpoint::parse(e).ok())
                    .or(endpoint);
                let personal = |field: &str| match endpoint {
                    Some(e) => self.is_personal(e, field),
                    None => self
                        .personal_fields
                        .values()
                        .any(|fields| fields.iter().any(|f| f == field)),
                };
                let names_personal = map
                    .get("field")
                    .and_then(Value::as_str)
                    .is_some_and(personal);
                for (key, value) in map.iter_mut() {
                    let holds = personal(key)
                        || (names_personal && FIELD_VALUE_MEMBERS.contains(&key.as_str()));
                    match value {
                        Value::String(_) | Value::Number(_) | Value::Bool(_) if holds => {
                            *value = Value::from(MASKED);
                        }
                        _ => self.mask_json(endpoint, value),
                    }
                }
            }
            _ => {}
        }
    }
}

/// The members of an object naming a `field` that hold that field's values (events, conflicts,
/// a survivor's per-field choices, evidence).
const FIELD_VALUE_MEMBERS: [&str; 8] = [
    "value",
    "old_value",
    "new_value",
    "base_value",
    "crm_value",
    "erp_value",
    "old",
    "new",
];

/// Free text is searched for a personal value only when it is at least this long: shorter ones
/// (initials) would match inside unrelated words' neighbours too often to mean anything.
const MIN_TEXT_MATCH: usize = 2;

/// The personal values an erasure found for its records (as stored, compared case-blind), to
/// find them again where no field names them: notification payloads, alert annotations, finding
/// evidence, and the field maps of records merged with an erased one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonalValues(BTreeSet<String>);

impl PersonalValues {
    /// Adds a plain value (a snapshot's); tombstones and masks are not values.
    pub fn add(&mut self, value: &str) {
        let value = value.trim();
        if !value.is_empty() && value != ERASED && value != MASKED {
            self.0.insert(value.to_lowercase());
        }
    }

    /// Adds a value as the event log holds it (JSON text; a string is taken unquoted).
    pub fn add_json_text(&mut self, text: &str) {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::String(s)) => self.add(&s),
            Ok(serde_json::Value::Null) => {}
            _ => self.add(text),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `value` is one of them (the whole value, case-blind).
    pub fn contains(&self, value: &str) -> bool {
        self.0.contains(&value.trim().to_lowercase())
    }

    /// Replaces each of them found in `text` as a whole word (not inside a longer word: `Ana`
    /// is erased from `Ana Silva`, not from `Canada`) by the tombstone; `None` when there is none.
    pub fn scrub_text(&self, text: &str) -> Option<String> {
        let lower = text.to_lowercase();
        // Lower-casing can change lengths outside ASCII; then only whole values are replaced.
        if lower.len() != text.len() {
            return self.contains(text).then(|| ERASED.to_string());
        }
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for value in self
            .0
            .iter()
            .filter(|v| v.chars().count() >= MIN_TEXT_MATCH)
        {
            let mut from = 0;
            while let Some(at) = lower[from..].find(value.as_str()) {
                let (start, end) = (from + at, from + at + value.len());
                let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
                if !word(lower[..start].chars().next_back()) && !word(lower[end..].chars().next()) {
                    spans.push((start, end));
                }
                from = end;
            }
        }
        if spans.is_empty() {
            return None;
        }
        spans.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut done = 0;
        for (start, end) in spans {
            if start < done {
                // Overlaps one already replaced: extend it.
                done = done.max(end);
                continue;
            }
            out.push_str(&text[done..start]);
            out.push_str(ERASED);
            done = end;
        }
        out.push_str(&text[done..]);
        Some(out)
    }

    /// Scrubs every string of a JSON document; true when one changed.
    pub fn scrub_json(&self, doc: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match doc {
            Value::String(s) => match self.scrub_text(s) {
                Some(scrubbed) => {
                    *s = scrubbed;
                    true
                }
                None => false,
            },
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| self.scrub_json(v) | changed),
            Value::Object(map) => map
                .values_mut()
                .fold(false, |changed, v| self.scrub_json(v) | changed),
            _ => false,
        }
    }
}

/// Whose data to erase: a record (its key or id on either side) or every record holding an email.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    pub endpoint: Option<Endpoint>,
    pub key: Option<String>,
    pub email: Option<String>,
    pub reason: String,
}

/// In the API contract: a record (`endpoint` and `key`) or an e-mail address, with a reason, and
/// nothing else; `endpoint` is one with personal fields (`personal_fields`, the ones configured).
pub fn request_schema(
    personal_fields: &BTreeMap<Endpoint, Vec<String>>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
    let text = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .pattern(Some("\\S"))
            .description(Some(description))
    };
    let subject = |name: &str, described: &str| {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(name, text(described))
            .property("reason", text("Why (recorded with the erasure)"))
            .required(name)
            .required("reason")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
    };
    let endpoints: Vec<&str> = personal_fields
        .iter()
        .filter(|(_, fields)| !fields.is_empty())
        .map(|(endpoint, _)| endpoint.as_str())
        .collect();
    let mut one_of = OneOfBuilder::new().item(
        subject("email", "Every record that holds or held this address")
            .description(Some("Every record holding an e-mail address")),
    );
    if !endpoints.is_empty() {
        let endpoint = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(endpoints))
            .description(Some("An endpoint with personal fields"));
        one_of = one_of.item(
            subject("key", "The record's key, or its id on either side")
                .property("endpoint", endpoint)
                .required("endpoint")
                .description(Some("One record")),
        );
    }
    one_of.into()
}

/// The contract of the default personal fields; the served document states the configured ones.
impl utoipa::PartialSchema for ErasureRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        request_schema(&PrivacySettings::default().personal_fields)
    }
}

impl utoipa::ToSchema for ErasureRequest {}

/// One record whose personal fields are erased: every id it has on either side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureTarget {
    pub endpoint: Endpoint,
    /// The record's ids as its state or link knows them, for the tombstone event.
    pub crm_id: Option<String>,
    pub erp_id: Option<String>,
    pub ids: BTreeSet<String>,
    pub fields: Vec<String>,
}

/// An erasure as the store carries it out in one transaction.
#[derive(Debug, Clone)]
pub struct Erasure {
    pub id: String,
    pub requested_by: String,
    pub reason: String,
    /// What the request named, for the `erasures` row.
    pub subject: String,
    pub targets: Vec<ErasureTarget>,
    /// The `erased` events recorded with it.
    pub tombstones: Vec<NewFieldEvent>,
    pub at: Timestamp,
}

/// What an erasure replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErasureCounts {
    pub events: u64,
    pub record_states: u64,
    pub conflicts: u64,
    pub dead_letters: u64,
    /// Merge proposals whose members' fields or survivor's choices held the values.
    pub dedup_proposals: u64,
    /// Merge and undo jobs whose plans (before-images) held them.
    pub merge_jobs: u64,
    /// Sync write intents (writes of an interrupted run) that held them.
    pub intents: u64,
    /// Notifications in the outbox whose payload held them.
    pub notifications: u64,
    pub alerts: u64,
    pub findings: u64,
}

impl ErasureCounts {
    pub fn add(&mut self, other: &Self) {
        self.events += other.events;
        self.record_states += other.record_states;
        self.conflicts += other.conflicts;
        self.dead_letters += other.dead_letters;
        self.dedup_proposals += other.dedup_proposals;
        self.merge_jobs += other.merge_jobs;
        self.intents += other.intents;
        self.notifications += other.notifications;
        self.alerts += other.alerts;
        self.findings += other.findings;
    }

    /// Rows replaced outside the event log.
    pub fn snapshots(&self) -> u64 {
        self.record_states
            + self.conflicts
            + self.dead_letters
            + self.dedup_proposals
            + self.merge_jobs
            + self.intents
            + self.notifications
            + self.alerts
            + self.findings
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErasureReport {
    /// The erasure's id; its `erased` events are of the run `erasure-<id>`.
    pub id: String,
    /// Records whose personal fields were erased.
    pub records: usize,
    pub erased: ErasureCounts,
}

/// Erases the personal values of what `request` names, recording it as done by `by`.
pub async fn erase(
    store: &dyn Store,
    settings: &PrivacySettings,
    clock: &Clock,
    request: &ErasureRequest,
    by: &str,
) -> Result<ErasureReport, PrivacyError> {
    if request.reason.trim().is_empty() {
        return Err(PrivacyError::NoReason);
    }
    let (subject, targets) = match (&request.endpoint, &request.key, &request.email) {
        (Some(_), Some(key), None) if key.trim().is_empty() => {
            return Err(PrivacyError::Blank("key"));
        }
        (None, None, Some(email)) if email.trim().is_empty() => {
            return Err(PrivacyError::Blank("email"));
        }
        (Some(endpoint), Some(key), None) => {
            let fields = personal_fields(settings, *endpoint)?;
            let target = target(store, *endpoint, key, fields).await?;
            (format!("{}/{key}", endpoint.as_str()), vec![target])
        }
        (None, None, Some(email)) => {
            let targets = email_targets(store, settings, email).await?;
            if targets.is_empty() {
                return Err(PrivacyError::NotFound(format!("email {email}")));
            }
            (email_subject(email), targets)
        }
        (None, None, None) => return Err(PrivacyError::NoSubject),
        _ => return Err(PrivacyError::AmbiguousSubject),
    };
    if targets.is_empty() {
        return Err(PrivacyError::NotFound(subject));
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let at = clock.now();
    let note = format!("erased by {by}: {}", request.reason.trim());
    let tombstones = targets
        .iter()
        .enumerate()
        .map(|(n, t)| tombstone(&id, n, t, &note, at))
        .collect();
    let erasure = Erasure {
        id: id.clone(),
        requested_by: by.to_string(),
        reason: request.reason.trim().to_string(),
        subject,
        targets,
        tombstones,
        at,
    };
    let erased = store.erase(&erasure).await?;
    tracing::info!(erasure = %id, by, records = erasure.targets.len(), events = erased.events, "personal data erased");
    Ok(ErasureReport {
        id,
        records: erasure.targets.len(),
        erased,
    })
}

/// How the `erasures` row names an erased e-mail: by its digest, so the record of an erasure
/// does not keep the address it erased, yet a later request for the same address can be matched.
fn email_subject(email: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    format!("email sha256:{}", hex::encode(digest))
}

fn personal_fields(
    settings: &PrivacySettings,
    endpoint: Endpoint,
) -> Result<Vec<String>, PrivacyError> {
    settings
        .personal_fields
        .get(&endpoint)
        .filter(|f| !f.is_empty())
        .cloned()
        .ok_or(PrivacyError::NoPersonalFields(endpoint.as_str()))
}

/// The record `key` names (its key or its id on either side), with every id it has: what its
/// state and its link know.
async fn target(
    store: &dyn Store,
    endpoint: Endpoint,
    key: &str,
    fields: Vec<String>,
) -> Result<ErasureTarget, PrivacyError> {
    let mut target = ErasureTarget {
        endpoint,
        crm_id: None,
        erp_id: None,
        ids: BTreeSet::from([key.to_string()]),
        fields,
    };
    let states = store.record_states(endpoint).await?;
    for state in states.values() {
        let named = state.key == key
            || state.crm_id.as_deref() == Some(key)
            || state.erp_id.as_deref() == Some(key);
        if named {
            target.ids.insert(state.key.clone());
            target.crm_id = target.crm_id.or(state.crm_id.clone());
            target.erp_id = target.erp_id.or(state.erp_id.clone());
        }
    }
    if let Some(link) = store.link_by_crm_id(endpoint, key).await? {
        target.crm_id = Some(link.crm_id);
        target.erp_id = Some(link.erp_id);
    }
    if let Some(link) = store.link_by_erp_id(endpoint, key).await? {
        target.crm_id = Some(link.crm_id);
        target.erp_id = Some(link.erp_id);
    }
    target.ids.extend(target.crm_id.clone());
    target.ids.extend(target.erp_id.clone());
    Ok(target)
}

/// Every record, on every endpoint with an `email` personal field, that holds or held `email`.
async fn email_targets(
    store: &dyn Store,
    settings: &PrivacySettings,
    email: &str,
) -> Result<Vec<ErasureTarget>, PrivacyError> {
    let email = email.trim();
    let mut targets = Vec::new();
    for (endpoint, fields) in &settings.personal_fields {
        if !fields.iter().any(|f| f == "email") {
            continue;
        }
        let mut keys: BTreeSet<String> = store
            .records_with_value(
                *endpoint,
                "email",
                &serde_json::Value::from(email).to_string(),
            )
            .await?
            .into_iter()
            .collect();
        let states = store.record_states(*endpoint).await?;
        keys.extend(
            states
                .values()
                .filter(|s| {
                    s.fields
                        .get("email")
                        .is_some_and(|v| v.eq_ignore_ascii_case(email))
                })
                .map(|s| s.key.clone()),
        );
        // A record only the CRM holds (or one merged away) may be known only to the deduper.
        for proposal in store.dedup_proposals(Some(*endpoint), None).await? {
            let members = proposal.proposal.before.iter().filter(|(_, fields)| {
                fields
                    .get("email")
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case(email))
            });
            keys.extend(members.map(|(member, _)| {
                member
                    .strip_prefix(crate::dedup::merge::CRM_ONLY)
                    .unwrap_or(member)
                    .to_string()
            }));
        }
        let mut seen = BTreeSet::new();
        for key in keys {
            if seen.contains(&key) {
                continue;
            }
            let target = target(store, *endpoint, &key, fields.clone()).await?;
            seen.extend(target.ids.iter().cloned());
            targets.push(target);
        }
    }
    Ok(targets)
}

/// The `erased` event of one record: which fields, by whom and why (in `error`, as a conflict
/// resolution notes who settled it).
fn tombstone(
    id: &str,
    n: usize,
    target: &ErasureTarget,
    note: &str,
    at: Timestamp,
) -> NewFieldEvent {
    NewFieldEvent {
        idempotency_key: format!("sw-erasure-{id}-{n}"),
        run_id: Some(format!("erasure-{id}")),
        endpoint: target.endpoint,
        crm_id: target.crm_id.clone(),
        erp_id: target
            .erp_id
            .clone()
            .or_else(|| target.ids.first().cloned()),
        field: ERASURE_FIELD.into(),
        old_value: None,
        new_value: Some(serde_json::Value::from(target.fields.clone()).to_string()),
        source_system: System::Crm,
        target_system: System::Erp,
        outcome: Outcome::Erased,
        error: Some(note.to_string()),
        latency_ms: None,
        occurred_at: at,
    }
}

/// `syncwarden erase`: a record (`--endpoint E --key K`) or every record holding `--email`.
#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    #[arg(long, value_parser = parse_endpoint, requires = "key", conflicts_with = "email")]
    endpoint: Option<Endpoint>,
    /// The record's key, or its id on either side.
    #[arg(long, requires = "endpoint")]
    key: Option<String>,
    #[arg(long)]
    email: Option<String>,
    /// Why (recorded with the erasure).
    #[arg(long)]
    reason: String,
    /// Who asked (recorded with the erasure).
    #[arg(long, default_value = "cli")]
    by: String,
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    Endpoint::parse(s).map_err(|e| e.to_string())
}

pub async fn run_erase(settings: &crate::config::Settings, args: EraseArgs) -> anyhow::Result<()> {
    let store = crate::startup::open_store(settings).await?;
    let request = ErasureRequest {
        endpoint: args.endpoint,
        key: args.key,
        email: args.email,
        reason: args.reason,
    };
    let report = erase(
        store.as_ref(),
        &settings.privacy,
        &Clock::system(),
        &request,
        &args.by,
    )
    .await;
    store.close().await;
    println!("{}", serde_json::to_string_pretty(&report?)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_fields_are_masked_for_the_configured_endpoint_only() {
        let settings = PrivacySettings::default();
        assert!(settings.is_personal(Endpoint::Contacts, "email"));
        assert!(!settings.is_personal(Endpoint::Items, "email"));
        assert!(!settings.reveals_to(Role::Viewer));
        assert!(settings.reveals_to(Role::Admin));
        let mut fields = BTreeMap::from([
            ("email".to_string(), "a@b.c".to_string()),
            ("owner".to_string(), "7".to_string()),
        ]);
        settings.mask_fields(Endpoint::Contacts, &mut fields);
        assert_eq!(fields["email"], MASKED);
        assert_eq!(fields["owner"], "7");
    }

    #[test]
    fn free_form_documents_are_masked_by_field_name_and_named_field() {
        let settings = PrivacySettings::default();
        let mut doc = serde_json::json!({
            "endpoint": "contacts",
            "examples": [{"record": "C1", "field": "email", "crm_value": "a@b.c", "count": 2}],
            "before": [{"key": "C1", "fields": {"first_name": "Ana", "owner": "7"}}],
            "items": {"endpoint": "items", "phone": "kept: not personal for items"},
        });
        settings.mask_json(None, &mut doc);
        assert_eq!(doc["examples"][0]["crm_value"], MASKED);
        assert_eq!(doc["examples"][0]["record"], "C1");
        assert_eq!(
            doc["examples"][0]["count"], 2,
            "only value members are masked"
        );
        assert_eq!(doc["before"][0]["fields"]["first_name"], MASKED);
        assert_eq!(doc["before"][0]["fields"]["owner"], "7");
        assert_eq!(doc["items"]["phone"], "kept: not personal for items");
        // Without an endpoint, a field personal anywhere is masked.
        let mut doc = serde_json::json!({"contact": {"email": "a@b.c", "city": "Lisbon"}});
        settings.mask_json(None, &mut doc);
        assert_eq!(doc["contact"]["email"], MASKED);
        assert_eq!(doc["contact"]["city"], "Lisbon");
    }

    #[test]
    fn an_erased_email_is_recorded_by_its_digest_only() {
        let subject = email_subject(" Ana.Silva@Example.com ");
        assert_eq!(subject, email_subject("ana.silva@example.com"));
        assert!(subject.starts_with("email sha256:") && !subject.contains("ana"));
    }

    #[test]
    fn personal_values_are_scrubbed_from_free_text_as_whole_words() {
        let mut values = PersonalValues::default();
        values.add("Ana");
        values.add_json_text("\"Ana.Silva@example.com\"");
        values.add("+351 222");
        values.add(ERASED);
        values.add("");
        assert!(values.contains(" ana.silva@EXAMPLE.com"));
        assert!(!values.contains(ERASED));
        assert_eq!(
            values.scrub_text("ANA (ana.silva@example.com, +351 222) and Canada, Banana"),
            Some("[erased] ([erased], [erased]) and Canada, Banana".to_string())
        );
        assert_eq!(values.scrub_text("Canada"), None);
        let mut doc = serde_json::json!({"a": ["Ana wrote", {"b": "nothing"}], "n": 3});
        assert!(values.scrub_json(&mut doc));
        assert_eq!(doc["a"][0], "[erased] wrote");
        assert_eq!(doc["a"][1]["b"], "nothing");
        assert!(!values.scrub_json(&mut doc), "nothing left the second time");
    }
}

//! The sync engine: for one endpoint, pull what changed on both sides since the cursors, compare
//! each field with the last agreed value (three-way), apply ownership and conflict policy, write
//! through the connectors, and store the events with the new base values of the records they
//! belong to, chunk by chunk (each chunk in one transaction), and the cursors with the last.
//!
//! Crash safety: the intents of a chunk's writes are stored before its writes go out, and settled
//! in the transaction that stores the chunk's events. Writes are idempotent (upsert by the ERP
//! key, updates by id) and every event's idempotency key is derived from what it records, so a run
//! interrupted after some writes is simply run again: the cursors have not moved, the committed
//! chunks' records are found agreed (no events), the written ones are recorded from their intents
//! (stored once) and the rest are planned anew.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::Clock;
use crate::domain::{
    Conflict, DeadLetter, Endpoint, NewFieldEvent, Outcome, RecordState, RunStatus, SyncRun,
    SyncRunCounts, System, Timestamp,
};
use crate::lease::{DEFAULT_LEASE, LeaseError, Leases};
use crate::store::{SlotClaim, SlotShare, Store, StoreError, SyncCommit, WriteIntent};
use crate::sync::connectors::{
    Connector, ConnectorError, WriteResult, calls_in_scope, scope_calls,
};
use crate::sync::documents::FieldSet;
use crate::sync::linking;
use crate::sync::record::{Fields, Record, Rejected, Write, is_archived};
use crate::sync::rules::{ConflictPolicy, Direction, EndpointSettings};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{system} connector: {source}")]
    Connector {
        system: System,
        #[source]
        source: ConnectorError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("endpoint {0} is not configured for sync")]
    NotConfigured(Endpoint),
    #[error("endpoint {0} is paused")]
    Paused(Endpoint),
    #[error("no conflict has id {0}")]
    UnknownConflict(i64),
    #[error("conflict {id} was resolved at {at}")]
    ConflictResolved { id: i64, at: Timestamp },
    #[error("the run's commits stopped: {0}")]
    CommitStopped(String),
    #[error("rules of {endpoint}: {message}")]
    InvalidPolicy { endpoint: Endpoint, message: String },
    #[error(
        "endpoint {endpoint} is being synced by {holder} (lease until {until}); try again later"
    )]
    Busy {
        endpoint: Endpoint,
        holder: String,
        until: Timestamp,
    },
}

/// What one run of one endpoint did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub dry_run: bool,
    pub records_read: usize,
    /// Events by the endpoint they belong to (item prices count under `pricebook`) and outcome.
    pub events: EventCounts,
    pub api_calls_ok: u64,
    pub api_calls_failed: u64,
    pub conflicts: usize,
    pub failed_writes: usize,
    /// Records created or updated on either side.
    pub records_written: usize,
    /// Of those, the records created.
    pub records_created: usize,
    /// Records read that were malformed and left out (each recorded as a failed event).
    pub rejected: usize,
    /// CRM records linked to their ERP record by name at go-live.
    pub linked: usize,
    /// CRM records without the ERP key that matched no ERP record, or several: left for review.
    pub unlinked: usize,
}

/// Events by endpoint and outcome.
pub type EventCounts = BTreeMap<Endpoint, BTreeMap<Outcome, usize>>;

/// Adds `from`'s counts to `into`'s.
pub fn add_event_counts(into: &mut EventCounts, from: &EventCounts) {
    for (endpoint, outcomes) in from {
        let slot = into.entry(*endpoint).or_default();
        for (outcome, n) in outcomes {
            *slot.entry(*outcome).or_default() += n;
        }
    }
}

impl RunSummary {
    /// Adds a second pass of the same run.
    fn absorb(mut self, other: RunSummary) -> RunSummary {
        add_event_counts(&mut self.events, &other.events);
        self.records_read += other.records_read;
        self.conflicts += other.conflicts;
        self.failed_writes += other.failed_writes;
        self.records_written += other.records_written;
        self.records_created += other.records_created;
        self.rejected += other.rejected;
        self.linked += other.linked;
        self.unlinked = other.unlinked;
        self
    }
}

/// A slot of a schedule this instance took ([`Engine::take_slot`]): the schedule's name and
/// interval. The work run for it moves the next slot before the endpoint's lease goes.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    pub job: &'a str,
    pub every: Duration,
}

pub struct Engine {
    store: Arc<dyn Store>,
    crm: Arc<dyn Connector>,
    erp: Arc<dyn Connector>,
    endpoints: BTreeMap<Endpoint, EndpointSettings>,
    clock: Clock,
    /// This engine's leases on endpoints: another instance takes an endpoint over one lease
    /// length after its holder died.
    leases: Leases,
    /// Every finished reconciliation, for the live monitor's drift check (a check that found
    /// nothing leaves no event in the log, yet it is what resolves a drift finding).
    reconciled: tokio::sync::broadcast::Sender<Reconciled>,
    /// Records per chunk of a run's writes and commits.
    chunk_records: usize,
    /// Held while this instance claims a shared slot: its claims count the slots it holds, so
    /// they go one at a time (see [`Engine::take_shared_slot`]).
    shared_claims: tokio::sync::Mutex<()>,
}

/// One finished reconciliation of an endpoint: when, and the differences it recorded.
#[derive(Debug, Clone)]
pub struct Reconciled {
    pub endpoint: Endpoint,
    pub at: Timestamp,
    pub differences: Arc<Vec<NewFieldEvent>>,
}

/// How far behind its start an incremental run leaves the cursor (at most at the newest record
/// it read). A record changed while a run pages through the results moves and may make offset
/// paging skip another; a search may show a change late. Re-reading the last minutes is cheap
/// (unchanged records produce no events) and catches both. It also absorbs clock skew.
const CURSOR_OVERLAP: Duration = Duration::from_secs(300);

/// How far behind its start a full read leaves the cursor: the servers' clocks may lag ours a
/// little, and SAP stamps whole seconds, so a change made as the read began may carry an
/// instant just before it.
const FULL_READ_MARGIN: Duration = Duration::from_secs(10);

/// The pseudo-field of the events that record a CRM record getting its ERP key at go-live.
const LINK_FIELD: &str = "erp_number";

/// Records per chunk of a run's writes. A chunk's events, states and settled intents are
/// committed while the next chunk's writes are in flight, so a run takes about the longer of
/// its writes and its commits rather than their sum.
const RECORDS_PER_CHUNK: usize = 1000;

/// An event and the write it depends on, if any: it fails when that write fails.
struct Planned {
    event: NewFieldEvent,
    /// The record's key: which chunk the event is committed with.
    key: String,
    /// The side whose write the event records.
    write: Option<System>,
}

/// The part of a plan that covers one range of record keys.
#[derive(Default)]
struct Chunk {
    writes: HashMap<System, Vec<Write>>,
    /// Shared with the committer while it stores the chunk's intents.
    events: Arc<Vec<Planned>>,
    states: BTreeMap<String, RecordState>,
    conflicts: Vec<Conflict>,
}

/// Everything one run decides before it touches either system.
struct Plan<'a> {
    endpoint: Endpoint,
    run_id: &'a str,
    rules: &'a EndpointSettings,
    now: Timestamp,
    /// Every event becomes `dry_run`, saying in its error what would have happened.
    dry_run: bool,
    /// Fields held for manual resolution: left alone until a person settles them.
    held: HashSet<(String, String)>,
    /// (key, field) of writes an interrupted run made, recorded from its intents already.
    recovered: HashSet<(String, String)>,
    writes: HashMap<System, BTreeMap<String, Write>>,
    events: Vec<Planned>,
    states: BTreeMap<String, RecordState>,
    conflicts: Vec<Conflict>,
    /// Keys of CRM records linked by name this run: they must be written back with their key.
    links: HashSet<String>,
}

/// One record as seen on both sides and in the last agreed state.
struct Sides<'r> {
    key: &'r str,
    crm: Option<&'r Record>,
    erp: Option<&'r Record>,
    base: Option<&'r RecordState>,
}

impl Sides<'_> {
    fn record(&self, system: System) -> Option<&Record> {
        match system {
            System::Crm => self.crm,
            System::Erp => self.erp,
        }
    }

    fn id(&self, system: System) -> Option<String> {
        let from_base = self.base.and_then(|b| match system {
            System::Crm => b.crm_id.clone(),
            System::Erp => b.erp_id.clone(),
        });
        self.record(system).map(|r| r.id.clone()).or(from_base)
    }

    /// The values a side holds now: pulled this run, or unchanged since the last agreed state.
    fn values(&self, system: System) -> Option<&Fields> {
        self.record(system)
            .map(|r| &r.fields)
            .or(self.base.map(|b| &b.fields))
    }

    fn modified_at(&self, system: System) -> Timestamp {
        self.record(system)
            .map(|r| r.modified_at)
            .or(self.base.map(|b| b.synced_at))
            .unwrap_or(Timestamp::from_micros(0))
    }
}

fn json_text(value: Option<&String>) -> Option<String> {
    value.map(|v| serde_json::Value::String(v.clone()).to_string())
}

/// FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Item prices are the pricebook endpoint's events.
fn event_endpoint(endpoint: Endpoint, field: &str) -> Endpoint {
    if endpoint == Endpoint::Items && field.starts_with("price.") {
        Endpoint::Pricebook
    } else {
        endpoint
    }
}

impl Plan<'_> {
    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        sides: &Sides<'_>,
        field: &str,
        old: Option<&String>,
        new: Option<&String>,
        source: System,
        outcome: Outcome,
        error: Option<String>,
        write: Option<System>,
    ) {
        let (outcome, error) = if self.dry_run {
            (
                Outcome::DryRun,
                Some(format!("dry run: would be {outcome}")),
            )
        } else {
            (outcome, error)
        };
        let occurred_at = sides.modified_at(source);
        let (old_text, new_text) = (json_text(old), json_text(new));
        // The key names the change itself (the field, both values, both sides' versions), so a
        // re-run after a crash reproduces it and distinct changes never share it.
        let versions =
            [System::Crm, System::Erp].map(|s| sides.modified_at(s).as_micros().to_string());
        let hash = fnv1a(&[
            self.endpoint.as_str(),
            sides.key,
            field,
            source.as_str(),
            outcome.as_str(),
            old_text.as_deref().unwrap_or("null"),
            new_text.as_deref().unwrap_or("null"),
            &versions[0],
            &versions[1],
        ]);
        let event = NewFieldEvent {
            idempotency_key: format!("sw-{}-{hash:016x}", self.endpoint.as_str()),
            run_id: Some(self.run_id.to_string()),
            endpoint: event_endpoint(self.endpoint, field),
            crm_id: sides.id(System::Crm),
            erp_id: sides
                .id(System::Erp)
                .or_else(|| Some(sides.key.to_string())),
            field: field.to_string(),
            old_value: old_text,
            new_value: new_text,
            source_system: source,
            target_system: source.other(),
            outcome,
            error,
            latency_ms: None,
            occurred_at,
        };
        self.events.push(Planned {
            event,
            key: sides.key.to_string(),
            write,
        });
    }

    /// Queues `field = value` on `target` and the event that says so.
    fn write(
        &mut self,
        sides: &Sides<'_>,
        target: System,
        field: &str,
        value: Option<&String>,
        outcome: Outcome,
    ) {
        let old = sides.values(target).and_then(|v| v.get(field));
        let writes = self.writes.entry(target).or_default();
        if !writes.contains_key(sides.key) {
            let write = Write {
                id: sides.id(target),
                key: sides.key.to_string(),
                fields: Fields::new(),
            };
            writes.insert(sides.key.to_string(), write);
        }
        if let Some(write) = writes.get_mut(sides.key) {
            write
                .fields
                .insert(field.to_string(), value.cloned().unwrap_or_default());
        }
        self.event(
            sides,
            field,
            old,
            value,
            target.other(),
            outcome,
            None,
            Some(target),
        );
    }

    /// A change made on `from` only: it travels when `from` owns the field, otherwise it is
    /// refused and the owner's value is put back.
    fn propagate(
        &mut self,
        sides: &Sides<'_>,
        field: &str,
        from: System,
        owner: System,
    ) -> Option<String> {
        let value = sides.values(from).and_then(|v| v.get(field)).cloned();
        if owner == from {
            self.write(sides, from.other(), field, value.as_ref(), Outcome::Applied);
            return value;
        }
        let owner_value = sides.values(owner).and_then(|v| v.get(field)).cloned();
        self.event(
            sides,
            field,
            owner_value.as_ref(),
            value.as_ref(),
            from,
            Outcome::SkippedNotOwner,
            None,
            None,
        );
        self.write(sides, from, field, owner_value.as_ref(), Outcome::Applied);
        owner_value
    }

    /// Both sides changed the field to different values since the last sync.
    fn conflict(
        &mut self,
        sides: &Sides<'_>,
        field: &str,
        policy: ConflictPolicy,
        owner: System,
    ) -> Option<String> {
        let value = |s: System| sides.values(s).and_then(|v| v.get(field)).cloned();
        let winner = match policy {
            ConflictPolicy::OwnerWins => owner,
            ConflictPolicy::NewestWins
                if sides.modified_at(System::Crm) > sides.modified_at(System::Erp) =>
            {
                System::Crm
            }
            ConflictPolicy::NewestWins => System::Erp,
            ConflictPolicy::Manual => {
                let base = sides.base.and_then(|b| b.fields.get(field)).cloned();
                self.conflicts.push(Conflict {
                    id: 0,
                    endpoint: self.endpoint,
                    key: sides.key.to_string(),
                    field: field.to_string(),
                    base_value: base.clone(),
                    crm_value: value(System::Crm),
                    erp_value: value(System::Erp),
                    opened_at: self.now,
                    resolved_at: None,
                    resolution: None,
                });
                self.event(
                    sides,
                    field,
                    value(System::Erp).as_ref(),
                    value(System::Crm).as_ref(),
                    System::Crm,
                    Outcome::Conflict,
                    Some("both systems changed this field; held for manual resolution".into()),
                    None,
                );
                return base;
            }
        };
        let won = value(winner);
        self.write(
            sides,
            winner.other(),
            field,
            won.as_ref(),
            Outcome::ConflictResolved,
        );
        won
    }

    fn compare(&mut self, sides: &Sides<'_>, fields: &FieldSet) {
        self.compare_values(sides, fields);
        if self.links.contains(sides.key) {
            // The CRM record gets its ERP key: a field change like any other, with its event.
            let (key, id) = (sides.key.to_string(), sides.id(System::Crm));
            self.writes
                .entry(System::Crm)
                .or_default()
                .entry(key.clone())
                .or_insert_with(|| Write {
                    id,
                    key: key.clone(),
                    fields: Fields::new(),
                });
            self.event(
                sides,
                LINK_FIELD,
                None,
                Some(&key),
                System::Erp,
                Outcome::Applied,
                None,
                Some(System::Crm),
            );
        }
    }

    fn compare_values(&mut self, sides: &Sides<'_>, fields: &FieldSet) {
        let direction = Direction::of(self.endpoint);
        let (crm_values, erp_values) = (sides.values(System::Crm), sides.values(System::Erp));
        let mut merged = Fields::new();
        match (crm_values, erp_values) {
            (None, None) => return,
            // A record archived before the other side ever had it is not created there.
            (None, Some(values)) | (Some(values), None) if is_archived(values) => return,
            (None, Some(values)) if direction != Direction::CrmToErp => {
                self.create(sides, System::Crm, values, fields, &mut merged)
            }
            (Some(values), None) if direction != Direction::ErpToCrm => {
                self.create(sides, System::Erp, values, fields, &mut merged)
            }
            (Some(crm), Some(erp)) => {
                let base = sides.base.map(|b| &b.fields);
                for field in fields.expand([crm, erp].into_iter().chain(base)) {
                    if let Some(v) = self.compare_field(sides, field) {
                        merged.insert(field.to_string(), v);
                    }
                }
            }
            _ => return,
        }
        let state = RecordState {
            endpoint: self.endpoint,
            key: sides.key.to_string(),
            crm_id: sides.id(System::Crm),
            erp_id: sides
                .id(System::Erp)
                .or_else(|| Some(sides.key.to_string())),
            fields: merged,
            synced_at: self.now,
        };
        let unchanged = sides.base.is_some_and(|b| {
            b.fields == state.fields && b.crm_id == state.crm_id && b.erp_id == state.erp_id
        });
        if !unchanged {
            self.states.insert(state.key.clone(), state);
        }
    }

    /// A record one side has never had: create it there with every mapped field.
    fn create(
        &mut self,
        sides: &Sides<'_>,
        target: System,
        values: &Fields,
        fields: &FieldSet,
        merged: &mut Fields,
    ) {
        for (field, value) in values.iter().filter(|(f, _)| fields.contains(f)) {
            self.write(sides, target, field, Some(value), Outcome::Applied);
            merged.insert(field.clone(), value.clone());
        }
    }

    /// Settles one field of a record both sides hold; returns the value both will hold.
    fn compare_field(&mut self, sides: &Sides<'_>, field: &str) -> Option<String> {
        let get = |s: System| sides.values(s).and_then(|v| v.get(field));
        let (crm, erp) = (get(System::Crm), get(System::Erp));
        let base = sides.base.map(|b| b.fields.get(field));
        if marked(&self.held, sides.key, field) {
            return base.flatten().cloned();
        }
        if crm == erp {
            // Both sides already agree on a new value: a write of ours whose commit was lost, or
            // the same edit made twice. Record it once, as coming from the side changed first
            // (unless the interrupted run's intent recorded it already).
            let recovered = marked(&self.recovered, sides.key, field);
            if let Some(base) = base.filter(|b| *b != crm && !recovered) {
                let source = if sides.modified_at(System::Crm) <= sides.modified_at(System::Erp) {
                    System::Crm
                } else {
                    System::Erp
                };
                self.event(
                    sides,
                    field,
                    base,
                    crm,
                    source,
                    Outcome::Applied,
                    None,
                    None,
                );
            }
            return crm.cloned();
        }
        let changed = |s: System, value: Option<&String>| match base {
            Some(b) => sides.record(s).is_some() && value != b,
            None => true,
        };
        let rule = self.rules.rule_for(self.endpoint, field);
        match (changed(System::Crm, crm), changed(System::Erp, erp)) {
            (true, false) => self.propagate(sides, field, System::Crm, rule.owner),
            (false, true) => self.propagate(sides, field, System::Erp, rule.owner),
            // Records first seen together (go-live) that differ: the owner's value is the truth.
            (true, true) if base.is_none() => self.propagate(sides, field, rule.owner, rule.owner),
            (true, true) => self.conflict(sides, field, rule.conflict, rule.owner),
            (false, false) => base.flatten().cloned(),
        }
    }
}

/// Whether `(key, field)` is in `set`, without building the pair for the empty set that runs
/// almost always have: this is asked for every field of every record.
fn marked(set: &HashSet<(String, String)>, key: &str, field: &str) -> bool {
    !set.is_empty() && set.contains(&(key.to_string(), field.to_string()))
}

impl Plan<'_> {
    /// How many things the plan holds: it grows when a record needs writing, events, a new
    /// state or a conflict.
    fn size(&self) -> usize {
        self.events.len()
            + self.states.len()
            + self.conflicts.len()
            + self.writes.values().map(BTreeMap::len).sum::<usize>()
    }

    /// Takes what is planned so far as one chunk.
    fn take_chunk(&mut self) -> Chunk {
        Chunk {
            writes: std::mem::take(&mut self.writes)
                .into_iter()
                .map(|(system, writes)| (system, writes.into_values().collect()))
                .collect(),
            events: Arc::new(std::mem::take(&mut self.events)),
            states: std::mem::take(&mut self.states),
            conflicts: std::mem::take(&mut self.conflicts),
        }
    }
}

/// What a run's planning needs, owned, so it can run on a thread of its own.
struct PlanInput {
    endpoint: Endpoint,
    run_id: String,
    rules: EndpointSettings,
    now: Timestamp,
    dry_run: bool,
    fields: FieldSet,
    /// Each side's records by key, as [`by_key`] keeps them.
    crm: HashMap<String, Record>,
    erp: HashMap<String, Record>,
    states: HashMap<String, RecordState>,
    held: HashSet<(String, String)>,
    recovered: HashSet<(String, String)>,
    links: HashSet<String>,
}

/// Compares every record in key order and hands over a chunk each time `records` more keys
/// have something to write, record or commit (the last chunk fewer). The chunks are those a
/// plan of the whole run cut by key would give; planning them one by one lets the first
/// chunk's writes go out while the rest is still being compared. Stops early when the run
/// stops listening.
fn plan_in_chunks(input: PlanInput, records: usize, chunks: tokio::sync::mpsc::Sender<Chunk>) {
    let (crm, erp) = (&input.crm, &input.erp);
    let mut plan = Plan {
        endpoint: input.endpoint,
        run_id: &input.run_id,
        rules: &input.rules,
        now: input.now,
        dry_run: input.dry_run,
        held: input.held,
        recovered: input.recovered,
        writes: HashMap::new(),
        events: Vec::new(),
        states: BTreeMap::new(),
        conflicts: Vec::new(),
        links: input.links,
    };
    let keys: BTreeSet<&String> = crm.keys().chain(erp.keys()).collect();
    let mut touched = 0;
    for key in keys {
        let size = plan.size();
        let sides = Sides {
            key,
            crm: crm.get(key),
            erp: erp.get(key),
            base: input.states.get(key),
        };
        plan.compare(&sides, &input.fields);
        touched += usize::from(plan.size() > size);
        if touched == records {
            touched = 0;
            if chunks.blocking_send(plan.take_chunk()).is_err() {
                return;
            }
        }
    }
    if plan.size() > 0 {
        let _ = chunks.blocking_send(plan.take_chunk());
    }
}

/// The intents of the writes among `planned`: one per record and side written, named by its
/// events' keys.
fn write_intents(endpoint: Endpoint, planned: &[Planned]) -> Vec<WriteIntent<'_>> {
    let mut by_write: HashMap<(System, &str), Vec<&NewFieldEvent>> = HashMap::new();
    for p in planned {
        if let Some(system) = p.write {
            by_write
                .entry((system, p.key.as_str()))
                .or_default()
                .push(&p.event);
        }
    }
    by_write
        .into_values()
        .map(|events| {
            let keys: Vec<&str> = events.iter().map(|e| e.idempotency_key.as_str()).collect();
            WriteIntent {
                key: format!("sw-intent-{}-{:016x}", endpoint.as_str(), fnv1a(&keys)),
                events,
            }
        })
        .collect()
}

/// A chunk's events, once the committer has let go of them (it has once their intents are
/// stored); copied if it still holds them.
fn take_events(planned: Arc<Vec<Planned>>) -> Vec<Planned> {
    Arc::try_unwrap(planned).unwrap_or_else(|shared| {
        shared
            .iter()
            .map(|p| Planned {
                event: p.event.clone(),
                key: p.key.clone(),
                write: p.write,
            })
            .collect()
    })
}

/// What the committer does, in the order it is asked.
enum Job {
    /// Stores the intents of a chunk's writes, then says so.
    Intents(Arc<Vec<Planned>>, tokio::sync::oneshot::Sender<()>),
    Commit(Box<SyncCommit>),
}

/// Stores a run's intents and commits its chunks, in order, on a task of its own, so that the
/// store's work overlaps the writes in flight: the next chunk's intents and this chunk's
/// commit are stored while this chunk's writes are out. Dropped before `finish` (a lost lease,
/// a shutdown) it stops as a crash would: the job in progress is rolled back.
struct Committer {
    sender: Option<tokio::sync::mpsc::Sender<Job>>,
    task: tokio::task::JoinHandle<Result<EventCounts, SyncError>>,
}

impl Committer {
    fn start(store: Arc<dyn Store>, endpoint: Endpoint, now: Timestamp) -> Self {
        // Room for the next chunk's intents and this chunk's commit.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Job>(2);
        let task = tokio::spawn(async move {
            let mut counts = EventCounts::new();
            while let Some(job) = receiver.recv().await {
                match job {
                    Job::Intents(planned, stored) => {
                        let intents = write_intents(endpoint, &planned);
                        store.save_intents(endpoint, &intents, now).await?;
                        // The run takes the events back once its intents are stored.
                        drop(intents);
                        drop(planned);
                        // The run may have stopped waiting; nothing is lost if so.
                        let _ = stored.send(());
                    }
                    Job::Commit(commit) => {
                        // A refusal or a conflict seen again (the inclusive cursor reads its
                        // record again) is the same event, already in the log: not counted.
                        let recorded = store.commit_run(&commit, now).await?;
                        let new = commit.events.iter().zip(recorded).filter(|(_, r)| *r);
                        count(&mut counts, new.map(|(e, _)| e));
                    }
                }
            }
            Ok(counts)
        });
        Self {
            sender: Some(sender),
            task,
        }
    }

    /// Queues a job; false when the committer has stopped on an error (`finish` returns it).
    async fn send(&self, job: Job) -> bool {
        match &self.sender {
            Some(sender) => sender.send(job).await.is_ok(),
            None => false,
        }
    }

    /// Queues the intents of a chunk's writes; the answer comes once they are stored (an error
    /// when the committer stopped first).
    async fn save_intents(&self, chunk: &Chunk) -> tokio::sync::oneshot::Receiver<()> {
        let (stored, answer) = tokio::sync::oneshot::channel();
        self.send(Job::Intents(chunk.events.clone(), stored)).await;
        answer
    }

    /// Waits until every queued job is done; returns the events the commits recorded.
    async fn finish(mut self) -> Result<EventCounts, SyncError> {
        // A closed channel ends the task once it has done what is queued.
        self.sender = None;
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(SyncError::CommitStopped(e.to_string())),
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every page of what changed since `since`: the records, and those that could not be read.
async fn pull_all(
    connector: &dyn Connector,
    endpoint: Endpoint,
    since: Option<Timestamp>,
) -> Result<(Vec<Record>, Vec<Rejected>), SyncError> {
    let system = connector.system();
    let (mut records, mut rejected) = (Vec::new(), Vec::new());
    let mut page = None;
    loop {
        let p = connector
            .pull(endpoint, since, page)
            .await
            .map_err(|source| SyncError::Connector { system, source })?;
        for record in p.records {
            match oversized(&record) {
                Some(error) => rejected.push(Rejected {
                    id: record.id,
                    error,
                }),
                None => records.push(record),
            }
        }
        rejected.extend(p.rejected);
        match p.next {
            Some(next) => page = Some(next),
            None => return Ok((records, rejected)),
        }
    }
}

/// The longest field value taken from either system, in characters: a longer one is a data
/// accident (a pasted file, a runaway import), not a name or an address.
const MAX_FIELD_CHARS: usize = 10_000;

fn oversized(record: &Record) -> Option<String> {
    record
        .fields
        .iter()
        .find(|(_, v)| v.chars().count() > MAX_FIELD_CHARS)
        .map(|(field, v)| {
            format!(
                "{field}: {} characters, more than the {MAX_FIELD_CHARS} accepted",
                v.chars().count()
            )
        })
}

/// A record a connector could not read, as a failed event: visible, never stored as good data.
fn rejected_event(
    endpoint: Endpoint,
    system: System,
    rejected: &Rejected,
    run_id: &str,
    now: Timestamp,
) -> NewFieldEvent {
    let hash = fnv1a(&[
        endpoint.as_str(),
        system.as_str(),
        &rejected.id,
        &rejected.error,
    ]);
    let id = Some(rejected.id.clone());
    NewFieldEvent {
        idempotency_key: format!("sw-rejected-{hash:016x}"),
        run_id: Some(run_id.to_string()),
        endpoint,
        crm_id: (system == System::Crm).then(|| rejected.id.clone()),
        erp_id: if system == System::Erp { id } else { None },
        field: "*".into(),
        old_value: None,
        new_value: None,
        source_system: system,
        target_system: system.other(),
        outcome: Outcome::Failed,
        error: Some(format!("record rejected as malformed: {}", rejected.error)),
        latency_ms: None,
        occurred_at: now,
    }
}

/// Where a side's cursor goes after a run that started at `started` and read from `since`
/// (none: a full read) records up to the `newest` last-modified time. `moved`: a record was
/// read twice, so records moved while the pages were read.
///
/// A full read saw every record that existed when it started, unless records moved under its
/// offset paging (one moving back makes the pages skip another, at any instant): its cursor is
/// its start, less a margin, however old the records, so the next run reads only what changed
/// since rather than everything the full read did. Any other read keeps `CURSOR_OVERLAP` behind
/// its start, as far as the newest record read, and never moves the cursor back (the run before
/// chose `since` with the same care).
fn next_cursor(
    since: Option<Timestamp>,
    newest: Timestamp,
    started: Timestamp,
    moved: bool,
) -> Timestamp {
    if since.is_none() && !moved {
        return started - FULL_READ_MARGIN;
    }
    let behind = newest.min(started - CURSOR_OVERLAP);
    since.map_or(behind, |since| behind.max(since))
}

/// Whether a record was read twice (by id) in one read.
fn read_twice(records: &[Record]) -> bool {
    let mut ids = HashSet::with_capacity(records.len());
    records.iter().any(|r| !ids.insert(r.id.as_str()))
}

/// Keeps the latest version of each key (of two as new, the one read last): a record read
/// twice (at a window's edge, or moved while the pages were read) counts once.
fn by_key(records: Vec<Record>) -> HashMap<String, Record> {
    let mut map: HashMap<String, Record> = HashMap::with_capacity(records.len());
    for record in records {
        let Some(key) = record.key.clone() else {
            continue;
        };
        match map.get(&key) {
            Some(seen) if seen.modified_at > record.modified_at => {}
            _ => {
                map.insert(key, record);
            }
        }
    }
    map
}

/// The lease an endpoint's runs (and reconciliations) are made under.
fn lease_job(endpoint: Endpoint) -> String {
    format!("sync:{}", endpoint.as_str())
}

/// The heartbeats of the live instances: leases named `instance:<holder>`.
const HEARTBEATS: &str = "instance:%";

fn heartbeat_job(holder: &str) -> String {
    format!("instance:{holder}")
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        crm: Arc<dyn Connector>,
        erp: Arc<dyn Connector>,
        endpoints: BTreeMap<Endpoint, EndpointSettings>,
        clock: Clock,
    ) -> Self {
        Self {
            leases: Leases::new(store.clone(), clock.clone(), DEFAULT_LEASE),
            store,
            crm,
            erp,
            endpoints,
            clock,
            reconciled: tokio::sync::broadcast::channel(64).0,
            chunk_records: RECORDS_PER_CHUNK,
            shared_claims: tokio::sync::Mutex::new(()),
        }
    }

    /// This instance's name in the store: the holder of its leases and of the slots it took.
    pub fn holder(&self) -> &str {
        self.leases.holder()
    }

    /// How long this engine's leases last without renewal: a heartbeat ([`Engine::beat`]) must be
    /// renewed well within it.
    pub fn lease_length(&self) -> Duration {
        self.leases.ttl()
    }

    /// Says this instance is alive for one lease length: the live instances are those whose
    /// heartbeat has not expired, and each takes its share of the endpoints (see
    /// [`Engine::take_shared_slot`]). A dead instance drops out one lease length after its last
    /// beat, as its runs' leases do.
    pub async fn beat(&self) -> Result<(), SyncError> {
        match self.leases.take(&heartbeat_job(self.holder())).await {
            Ok(()) => Ok(()),
            Err(LeaseError::Store(e)) => Err(SyncError::Store(e)),
            // The name is this instance's alone, so nobody else holds it.
            Err(e @ LeaseError::Busy { .. }) => {
                tracing::warn!(error = %e, "the heartbeat is held by another");
                Ok(())
            }
        }
    }

    /// Stops counting as a live instance at once (a clean stop), so the others' shares grow now.
    pub async fn stop_beating(&self) {
        self.leases.release(&heartbeat_job(self.holder())).await;
    }

    /// Leaves the instances that share the schedules (a clean stop, after the scheduler ended):
    /// hands back every sync schedule this instance holds, each next slot staying due when it
    /// was, and stops its heartbeat. The others then take them at their next slot, not only once
    /// a whole interval overdue as after a crash.
    pub async fn leave(&self) {
        match self
            .store
            .held_job_slots(self.holder(), super::service::SYNC_SLOTS)
            .await
        {
            Ok(held) => {
                for job in held {
                    if let Err(e) = self.store.release_job_slot(&job, self.holder()).await {
                        tracing::warn!(job, error = %e, "could not hand the schedule back");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the schedules this instance holds")
            }
        }
        self.stop_beating().await;
    }

    /// Sets how many records a chunk of a run's writes and commits holds (at least one).
    pub fn with_chunk_records(mut self, records: usize) -> Self {
        self.chunk_records = records.max(1);
        self
    }

    /// Hears every reconciliation this engine finishes from now on.
    pub fn subscribe_reconciliations(&self) -> tokio::sync::broadcast::Receiver<Reconciled> {
        self.reconciled.subscribe()
    }

    /// Every record of `endpoint` on one side, read in full (the price check's view).
    pub async fn read_all(
        &self,
        system: System,
        endpoint: Endpoint,
    ) -> Result<Vec<Record>, SyncError> {
        let read = pull_all(self.connector(system).as_ref(), endpoint, None);
        let (records, _) = scope_calls(endpoint, read).await?;
        self.record_calls().await;
        Ok(records)
    }

    /// The canonical fields one side's connector maps for `endpoint`.
    pub fn mapped_fields(
        &self,
        system: System,
        endpoint: Endpoint,
    ) -> Result<Vec<String>, SyncError> {
        self.connector(system)
            .fields(endpoint)
            .map_err(|source| SyncError::Connector { system, source })
    }

    /// Stores the API calls both connectors made since the last time, for the metric roll-ups.
    /// A failure to store them is logged, never fails the run that made them.
    async fn record_calls(&self) {
        let at = self.clock.now();
        for (system, connector) in [(System::Crm, &self.crm), (System::Erp, &self.erp)] {
            let tallies = connector.take_call_tallies();
            if tallies.is_empty() {
                continue;
            }
            if let Err(e) = self.store.record_api_calls(system, &tallies, at).await {
                tracing::warn!(%system, error = %e, "could not store the API call counts");
            }
        }
    }

    /// Sets how long this engine's lease on an endpoint lasts without renewal.
    pub fn with_lease(mut self, lease: std::time::Duration) -> Self {
        self.leases = self.leases.with_ttl(lease);
        self
    }

    /// Runs `work` under the endpoint's lease (see [`Leases::hold`]); for a `slot`, then moves
    /// its next slot while the lease is still held: released first, a run longer than the grace
    /// would leave the slot overdue and free, for another instance to take and run again.
    async fn leased<T>(
        &self,
        endpoint: Endpoint,
        slot: Option<Slot<'_>>,
        work: impl std::future::Future<Output = Result<T, SyncError>>,
    ) -> Result<T, SyncError> {
        let work = async {
            let output = work.await;
            if let Some(slot) = slot {
                self.keep_slot(endpoint, slot).await;
            }
            output
        };
        match self.leases.hold(&lease_job(endpoint), work).await {
            Ok(result) => result,
            Err(LeaseError::Busy { holder, until }) => Err(SyncError::Busy {
                endpoint,
                holder,
                until,
            }),
            Err(LeaseError::Store(e)) => Err(SyncError::Store(e)),
        }
    }

    /// Takes the slot of the schedule `job` (one every `every`) for `endpoint` when it is due:
    /// true for the one instance on this store that took it. The first slot is now with
    /// `first_now`, else `every` from now. With several instances each endpoint then runs once an
    /// interval in all, not once an interval per instance. The instance that took the last slot
    /// keeps the schedule; another takes it only once a slot is `grace` overdue (the last one
    /// stopped) and no other instance holds the endpoint's lease (a long run is not a missed slot),
    /// so an endpoint's runs stay on one instance rather than alternating.
    pub async fn take_slot(
        &self,
        endpoint: Endpoint,
        job: &str,
        every: Duration,
        grace: Duration,
        first_now: bool,
    ) -> Result<bool, SyncError> {
        self.claim_slot(endpoint, job, every, grace, first_now, None)
            .await
    }

    /// [`Engine::take_slot`] (first slot now) for one of `endpoints` schedules that the live
    /// instances share out (issue 8): besides its own slots, this instance takes one (never
    /// taken, handed back, or overdue) only while it holds fewer than its share,
    /// `ceil(endpoints / live instances)` of the schedules whose names match the `LIKE` pattern
    /// `slots`. Live instances are the unexpired heartbeats ([`Engine::beat`]). So instances
    /// that start together split the endpoints, and one that joins later gets those the others
    /// hand back ([`Engine::hand_back_excess`]).
    pub async fn take_shared_slot(
        &self,
        endpoint: Endpoint,
        job: &str,
        every: Duration,
        grace: Duration,
        endpoints: usize,
        slots: &str,
    ) -> Result<bool, SyncError> {
        // The claim counts the slots this instance holds; its endpoints' loops claim at the same
        // moments, and two claims beside each other would each count the slots before the other.
        let _one_at_a_time = self.shared_claims.lock().await;
        self.claim_slot(endpoint, job, every, grace, true, Some((endpoints, slots)))
            .await
    }

    /// After a run of the shared schedule `job`: hands it back when this instance holds more than
    /// its share of the `endpoints` schedules matching `slots` (another instance joined) and `job`
    /// is among the excess, the last ones by name, so each instance gives up the same ones
    /// whichever runs first, and only as many as it holds too many. An instance below its share
    /// takes it when due; this one, at its share, does not take it back. True when handed back.
    pub async fn hand_back_excess(
        &self,
        job: &str,
        endpoints: usize,
        slots: &str,
    ) -> Result<bool, SyncError> {
        let held = self.store.held_job_slots(self.holder(), slots).await?;
        let live = self
            .store
            .live_leases(HEARTBEATS, self.clock.now())
            .await?
            .max(1);
        let share = endpoints.div_ceil(live);
        if !held
            .get(share..)
            .unwrap_or_default()
            .iter()
            .any(|j| j == job)
        {
            return Ok(false);
        }
        self.store.release_job_slot(job, self.holder()).await?;
        tracing::info!(
            job,
            held = held.len(),
            share,
            live,
            "handed a schedule back"
        );
        Ok(true)
    }

    async fn claim_slot(
        &self,
        endpoint: Endpoint,
        job: &str,
        every: Duration,
        grace: Duration,
        first_now: bool,
        share: Option<(usize, &str)>,
    ) -> Result<bool, SyncError> {
        let now = self.clock.now();
        // A slot nobody took for a lease length past the grace (every live instance holding its
        // share, and none scheduling it below) is anyone's: balance never starves an endpoint.
        let share = share.map(|(endpoints, slots)| SlotShare {
            endpoints,
            slots,
            instances: HEARTBEATS,
            starved_before: now - grace - self.leases.ttl(),
        });
        if !first_now && self.store.job_mark(job).await?.is_none() {
            self.store.advance_job_mark(job, now + every).await?;
            return Ok(false);
        }
        let claim = SlotClaim {
            job,
            holder: self.leases.holder(),
            lease: &lease_job(endpoint),
            now,
            overdue_before: now - grace,
            next: now + every,
            share,
        };
        Ok(self.store.claim_job_slot(&claim).await?)
    }

    /// After the run of a slot this instance took: the next slot is `every` from now, not from
    /// the run's start, so a run longer than `every` leaves no overdue slot behind.
    async fn keep_slot(&self, endpoint: Endpoint, slot: Slot<'_>) {
        let next = self.clock.now() + slot.every;
        let kept = self
            .store
            .keep_job_slot(slot.job, self.leases.holder(), next)
            .await;
        if let Err(e) = kept {
            tracing::warn!(%endpoint, job = slot.job, error = %e, "could not move the next slot");
        }
    }

    /// The CRM and ERP connectors, for work beside the sync (merges of duplicates).
    pub fn connectors(&self) -> (Arc<dyn Connector>, Arc<dyn Connector>) {
        (self.crm.clone(), self.erp.clone())
    }

    pub fn endpoints(&self) -> impl Iterator<Item = (&Endpoint, &EndpointSettings)> {
        self.endpoints.iter()
    }

    fn connector(&self, system: System) -> &Arc<dyn Connector> {
        match system {
            System::Crm => &self.crm,
            System::Erp => &self.erp,
        }
    }

    /// Sends one side's writes of a chunk: each write's result (the call's failure for each when
    /// the call failed as a whole) and how long it took.
    async fn send_writes(
        &self,
        endpoint: Endpoint,
        system: System,
        writes: Vec<Write>,
    ) -> (System, Vec<Write>, Vec<WriteResult>, Duration) {
        let started = Instant::now();
        let results = match self.connector(system).write(endpoint, &writes).await {
            Ok(results) => results,
            Err(e) => writes.iter().map(|_| Err(e.clone())).collect(),
        };
        (system, writes, results, started.elapsed())
    }

    /// Sends one write to one side: its result, or the call's failure.
    async fn write_one(&self, system: System, endpoint: Endpoint, write: &Write) -> WriteResult {
        self.connector(system)
            .write(endpoint, std::slice::from_ref(write))
            .await
            .and_then(|mut r| {
                r.pop()
                    .unwrap_or_else(|| Err(ConnectorError::malformed(system, "no result")))
            })
    }

    /// Runs one endpoint once; `dry_run` (or the endpoint's setting) writes nothing. Only one
    /// engine at a time runs an endpoint (a lease in the store): another gets `SyncError::Busy`.
    pub async fn run_endpoint(
        &self,
        endpoint: Endpoint,
        dry_run: bool,
    ) -> Result<RunSummary, SyncError> {
        self.run_endpoint_in(endpoint, dry_run, None).await
    }

    /// Runs one endpoint for a `slot` of its schedule this instance took, then moves the next
    /// slot an interval past the run's end (see [`Engine::leased`]).
    pub async fn run_slot(
        &self,
        endpoint: Endpoint,
        slot: Slot<'_>,
    ) -> Result<RunSummary, SyncError> {
        self.run_endpoint_in(endpoint, false, Some(slot)).await
    }

    async fn run_endpoint_in(
        &self,
        endpoint: Endpoint,
        dry_run: bool,
        slot: Option<Slot<'_>>,
    ) -> Result<RunSummary, SyncError> {
        let run = self.leased(
            endpoint,
            slot,
            self.run_endpoint_unleased(endpoint, dry_run),
        );
        let result = scope_calls(endpoint, run).await;
        self.record_calls().await;
        result
    }

    async fn run_endpoint_unleased(
        &self,
        endpoint: Endpoint,
        dry_run: bool,
    ) -> Result<RunSummary, SyncError> {
        let rules = &self.rules(endpoint).await?;
        // Operators' run-time switches add to the configuration's.
        let control = self
            .store
            .endpoint_controls()
            .await?
            .into_iter()
            .find(|c| c.endpoint == endpoint);
        if rules.paused || control.as_ref().is_some_and(|c| c.paused) {
            return Err(SyncError::Paused(endpoint));
        }
        let dry_run = dry_run || rules.dry_run || control.is_some_and(|c| c.dry_run);
        let run = SyncRun {
            id: uuid::Uuid::new_v4().to_string(),
            endpoint: Some(endpoint),
            started_at: self.clock.now(),
            ended_at: None,
            status: RunStatus::Running,
            counts: SyncRunCounts::default(),
            error: None,
        };
        self.store.start_run(&run).await?;
        // This run's calls only: other endpoints' runs may be going on beside it.
        let before = calls_in_scope();
        let mut result = self.sync(endpoint, rules, dry_run, &run.id).await;
        if let Ok(first) = &result
            && first.records_created > 0
            && !dry_run
            && Direction::has_write_back(endpoint)
        {
            // What the receiving side made on create (a quote's ERP number) goes back in the
            // same run rather than one interval later.
            let first = first.clone();
            result = self
                .sync(endpoint, rules, dry_run, &run.id)
                .await
                .map(|second| first.absorb(second));
        }
        let after = calls_in_scope();
        let (calls_ok, calls_failed) = (after.0 - before.0, after.1 - before.1);
        let mut counts = SyncRunCounts {
            api_calls_ok: calls_ok as i64,
            api_calls_failed: calls_failed as i64,
            ..Default::default()
        };
        match result {
            Ok(mut summary) => {
                summary.api_calls_ok = calls_ok;
                summary.api_calls_failed = calls_failed;
                counts.records_read = summary.records_read as i64;
                counts.events = summary
                    .events
                    .values()
                    .flat_map(|o| o.values())
                    .sum::<usize>() as i64;
                counts.records_written = summary.records_written as i64;
                let status = if summary.failed_writes + summary.rejected > 0 {
                    RunStatus::Partial
                } else {
                    RunStatus::Succeeded
                };
                self.store
                    .finish_run(&run.id, self.clock.now(), status, &counts, None)
                    .await?;
                Ok(summary)
            }
            Err(e) => {
                let message = e.to_string();
                tracing::warn!(endpoint = %endpoint, error = %message, "sync run failed");
                self.store
                    .finish_run(
                        &run.id,
                        self.clock.now(),
                        RunStatus::Failed,
                        &counts,
                        Some(&message),
                    )
                    .await?;
                Err(e)
            }
        }
    }

    async fn sync(
        &self,
        endpoint: Endpoint,
        rules: &EndpointSettings,
        dry_run: bool,
        run_id: &str,
    ) -> Result<RunSummary, SyncError> {
        let mut summary = RunSummary {
            run_id: run_id.to_string(),
            dry_run,
            ..Default::default()
        };
        let mut cursors = Vec::new();
        let mut rejected_events = Vec::new();
        let started = self.clock.now();
        // Both sides are read at once: each side's pages are decoded while the other's answer,
        // and the last agreed states are loaded meanwhile.
        let (crm_pull, erp_pull, states) = tokio::try_join!(
            self.pull_since_cursor(endpoint, System::Crm),
            self.pull_since_cursor(endpoint, System::Erp),
            async { Ok(self.store.record_states(endpoint).await?) },
        )?;
        let [crm_records, erp_records] = [(System::Crm, crm_pull), (System::Erp, erp_pull)].map(
            |(system, (since, records, rejected))| {
                summary.rejected += rejected.len();
                rejected_events.extend(
                    rejected
                        .iter()
                        .map(|r| rejected_event(endpoint, system, r, run_id, self.clock.now())),
                );
                if let Some(newest) = records.iter().map(|r| r.modified_at).max() {
                    let moved = read_twice(&records);
                    let cursor = next_cursor(since, newest, started, moved);
                    cursors.push((endpoint, system, cursor));
                }
                summary.records_read += records.len();
                records
            },
        );
        let fields = self.shared_fields(endpoint)?;
        let erp = by_key(erp_records);
        let (mut crm_linked, unlinked): (Vec<Record>, Vec<Record>) =
            crm_records.into_iter().partition(|r| r.key.is_some());
        let taken: HashSet<String> = crm_linked
            .iter()
            .filter_map(|r| r.key.clone())
            .chain(
                states
                    .values()
                    .filter(|s| s.crm_id.is_some())
                    .map(|s| s.key.clone()),
            )
            .collect();
        let erp_refs: Vec<&Record> = erp.values().collect();
        let linking = linking::link(endpoint, unlinked, &erp_refs, &taken);
        summary.unlinked = linking.ambiguous.len() + linking.unmatched.len();
        summary.linked = linking.linked.len();
        let links: HashSet<String> = linking.linked.iter().map(|(_, k)| k.clone()).collect();
        crm_linked.extend(linking.linked.into_iter().map(|(mut r, key)| {
            r.key = Some(key);
            r
        }));
        // Built once: intent recovery and the planner both look records up by key.
        let crm = by_key(crm_linked);
        let recovered = if dry_run {
            Vec::new()
        } else {
            self.recover_intents(endpoint, &crm, &erp).await?
        };
        let held = self
            .store
            .open_conflicts()
            .await?
            .into_iter()
            .filter(|c| c.endpoint == endpoint)
            .map(|c| (c.key, c.field))
            .collect();
        let now = self.clock.now();
        let input = PlanInput {
            endpoint,
            run_id: run_id.to_string(),
            rules: rules.clone(),
            now,
            dry_run,
            fields,
            crm,
            erp,
            states,
            held,
            recovered: recovered
                .iter()
                .filter_map(|e| Some((e.erp_id.clone()?, e.field.clone())))
                .collect(),
            links,
        };
        let (sender, mut chunks) = tokio::sync::mpsc::channel(2);
        let records = self.chunk_records;
        let planner = tokio::task::spawn_blocking(move || plan_in_chunks(input, records, sender));
        let committer = Committer::start(self.store.clone(), endpoint, now);
        let mut last = SyncCommit::default();
        if dry_run {
            while let Some(chunk) = chunks.recv().await {
                summary.conflicts += chunk.conflicts.len();
                last.events
                    .extend(take_events(chunk.events).into_iter().map(|p| p.event));
            }
        } else {
            self.execute(endpoint, now, chunks, &committer, &mut summary)
                .await?;
            // The cursors move only once every chunk is in: a crash before leaves them behind,
            // and the next run reads the records again.
            last.cursors = cursors;
            last.events = recovered;
            last.clear_intents = Some(endpoint);
        }
        // A planner that died midway planned only some of the records: the cursors must not
        // move past the others.
        if let Err(e) = planner.await {
            return Err(match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => SyncError::CommitStopped(e.to_string()),
            });
        }
        last.events.extend(rejected_events);
        committer.send(Job::Commit(Box::new(last))).await;
        add_event_counts(&mut summary.events, &committer.finish().await?);
        Ok(summary)
    }

    /// Every page of what changed on one side since its cursor (returned with them).
    async fn pull_since_cursor(
        &self,
        endpoint: Endpoint,
        system: System,
    ) -> Result<(Option<Timestamp>, Vec<Record>, Vec<Rejected>), SyncError> {
        let since = self.store.cursor(endpoint, system).await?;
        let (records, rejected) =
            pull_all(self.connector(system).as_ref(), endpoint, since).await?;
        Ok((since, records, rejected))
    }

    /// The intents a crashed run left: those whose value reached the target are recorded now
    /// (with their original idempotency key); the others were never written and are planned anew.
    async fn recover_intents(
        &self,
        endpoint: Endpoint,
        crm: &HashMap<String, Record>,
        erp: &HashMap<String, Record>,
    ) -> Result<Vec<NewFieldEvent>, SyncError> {
        let intents = self.store.intents(endpoint).await?;
        if !intents.is_empty() {
            tracing::info!(%endpoint, intents = intents.len(), "settling the writes of an interrupted run");
        }
        Ok(intents
            .into_iter()
            .filter(|e| {
                let side = match e.target_system {
                    System::Crm => crm,
                    System::Erp => erp,
                };
                // A write that reached its target changed the record there, so it was read again.
                let Some(record) = e.erp_id.as_ref().and_then(|key| side.get(key)) else {
                    return false;
                };
                let value = match e.field.as_str() {
                    LINK_FIELD => record.key.as_ref(),
                    field => record.fields.get(field),
                };
                json_text(value) == e.new_value
            })
            .collect())
    }

    /// The fields both connectors map for an endpoint: only those can be kept in sync.
    fn shared_fields(&self, endpoint: Endpoint) -> Result<FieldSet, SyncError> {
        let mut sets = Vec::new();
        for system in [System::Crm, System::Erp] {
            let fields = self
                .connector(system)
                .fields(endpoint)
                .map_err(|source| SyncError::Connector { system, source })?;
            sets.push(fields.into_iter().collect::<BTreeSet<_>>());
        }
        Ok(FieldSet::new(
            sets[0].intersection(&sets[1]).cloned().collect(),
        ))
    }

    /// Sends the planned writes chunk by chunk, as the planner hands them over, and hands each
    /// chunk, settled, to the committer.
    async fn execute(
        &self,
        endpoint: Endpoint,
        now: Timestamp,
        mut chunks: tokio::sync::mpsc::Receiver<Chunk>,
        committer: &Committer,
        summary: &mut RunSummary,
    ) -> Result<(), SyncError> {
        let open_letters: Vec<DeadLetter> = self
            .store
            .open_dead_letters()
            .await?
            .into_iter()
            .filter(|d| d.endpoint == endpoint)
            .collect();
        let Some(mut chunk) = chunks.recv().await else {
            return Ok(());
        };
        let mut stored = committer.save_intents(&chunk).await;
        loop {
            // A write goes out only once its intent is stored.
            if stored.await.is_err() {
                // The committer failed; `finish` says why.
                break;
            }
            summary.conflicts += chunk.conflicts.len();
            // The next chunk is planned, and its intents stored, while this one's writes are out.
            let next = async {
                let next = chunks.recv().await?;
                let stored = committer.save_intents(&next).await;
                Some((next, stored))
            };
            let (commit, next) = tokio::join!(
                self.execute_chunk(endpoint, now, chunk, &open_letters, summary),
                next
            );
            if !committer.send(Job::Commit(Box::new(commit))).await {
                break;
            }
            match next {
                Some(next) => (chunk, stored) = next,
                None => break,
            }
        }
        Ok(())
    }

    /// Sends one chunk's writes and turns the chunk into what gets committed.
    async fn execute_chunk(
        &self,
        endpoint: Endpoint,
        now: Timestamp,
        chunk: Chunk,
        open_letters: &[DeadLetter],
        summary: &mut RunSummary,
    ) -> SyncCommit {
        let Chunk {
            writes,
            events: planned,
            mut states,
            conflicts,
        } = chunk;
        let mut failed: HashMap<(System, String), String> = HashMap::new();
        let mut created: HashMap<(System, String), String> = HashMap::new();
        let mut latency: HashMap<System, i64> = HashMap::new();
        let mut dead_letters = Vec::new();
        let mut failed_creates: HashSet<String> = HashSet::new();
        let mut superseded = Vec::new();
        // Both sides are written at once: their records are different ones.
        let sent = futures_util::future::join_all(
            writes
                .into_iter()
                .map(|(system, writes)| self.send_writes(endpoint, system, writes)),
        )
        .await;
        for (system, writes, results, took) in sent {
            latency.insert(system, took.as_millis() as i64);
            for (write, result) in writes.into_iter().zip(results) {
                match result {
                    Ok(id) => {
                        if write.id.is_none() {
                            summary.records_created += 1;
                        }
                        // An older failed write of the same fields is now out of date: re-driving
                        // it later would put stale values back.
                        superseded.extend(
                            open_letters
                                .iter()
                                .filter(|d| d.target == system && d.key == write.key)
                                .filter(|d| d.fields.keys().all(|f| write.fields.contains_key(f)))
                                .map(|d| d.id),
                        );
                        created.insert((system, write.key.clone()), id);
                    }
                    Err(e) => {
                        if write.id.is_none() {
                            // A record that could not be created has no agreed state yet.
                            failed_creates.insert(write.key.clone());
                        }
                        failed.insert((system, write.key.clone()), e.to_string());
                        dead_letters.push(DeadLetter {
                            id: 0,
                            endpoint,
                            target: system,
                            key: write.key,
                            record_id: write.id,
                            fields: write.fields,
                            error: e.to_string(),
                            attempts: 1,
                            created_at: now,
                            resolved_at: None,
                        });
                    }
                }
            }
        }
        summary.failed_writes += dead_letters.len();
        summary.records_written += created.len();
        let settled_intents = write_intents(endpoint, &planned)
            .into_iter()
            .map(|i| i.key)
            .collect();
        let planned = take_events(planned);
        let mut events = Vec::with_capacity(planned.len());
        for Planned {
            mut event,
            key,
            write,
        } in planned
        {
            if let Some(system) = write {
                event.latency_ms = latency.get(&system).copied();
                let target = (system, key);
                if let Some(error) = failed.get(&target) {
                    event.outcome = Outcome::Failed;
                    event.error = Some(error.clone());
                    // The record keeps its old base for this field, so the change is not lost.
                    if let Some(state) = states.get_mut(&target.1) {
                        revert_field(state, &event);
                    }
                }
            }
            events.push(event);
        }
        for key in &failed_creates {
            states.remove(key);
        }
        for ((system, key), id) in created {
            if let Some(state) = states.get_mut(&key) {
                match system {
                    System::Crm => state.crm_id = Some(id),
                    System::Erp => state.erp_id = Some(id),
                }
            }
        }
        SyncCommit {
            events,
            states: states.into_values().collect(),
            dead_letters,
            conflicts,
            resolved_dead_letters: superseded,
            settled_intents,
            ..Default::default()
        }
    }
}

/// What re-driving the dead letters did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct RedriveSummary {
    pub attempted: usize,
    pub succeeded: usize,
    pub still_failing: usize,
}

impl Engine {
    /// Sends every open dead letter (of `endpoint`, or of all) again, one by one. A success is
    /// recorded as applied events and closes the letter; a failure keeps it open with the new error.
    pub async fn retry_failed(
        &self,
        endpoint: Option<Endpoint>,
    ) -> Result<RedriveSummary, SyncError> {
        let letters: Vec<DeadLetter> = self
            .store
            .open_dead_letters()
            .await?
            .into_iter()
            .filter(|d| endpoint.is_none_or(|e| e == d.endpoint))
            .collect();
        let now = self.clock.now();
        let mut summary = RedriveSummary {
            attempted: letters.len(),
            ..Default::default()
        };
        let mut commit = SyncCommit::default();
        let mut states: HashMap<Endpoint, HashMap<String, RecordState>> = HashMap::new();
        let mut touched: BTreeSet<(Endpoint, String)> = BTreeSet::new();
        for letter in letters {
            let write = Write {
                id: letter.record_id.clone(),
                key: letter.key.clone(),
                fields: letter.fields.clone(),
            };
            let started = Instant::now();
            let result = self.write_one(letter.target, letter.endpoint, &write).await;
            let latency = started.elapsed().as_millis() as i64;
            match result {
                Err(e) => {
                    summary.still_failing += 1;
                    commit.retried_dead_letters.push((letter.id, e.to_string()));
                }
                Ok(id) => {
                    summary.succeeded += 1;
                    commit.resolved_dead_letters.push(letter.id);
                    if let std::collections::hash_map::Entry::Vacant(slot) =
                        states.entry(letter.endpoint)
                    {
                        slot.insert(self.store.record_states(letter.endpoint).await?);
                    }
                    if let Some(state) = states
                        .get_mut(&letter.endpoint)
                        .and_then(|s| s.get_mut(&letter.key))
                    {
                        state.fields.extend(letter.fields.clone());
                        match letter.target {
                            System::Crm => state.crm_id = Some(id.clone()),
                            System::Erp => state.erp_id = Some(id.clone()),
                        }
                        state.synced_at = now;
                        touched.insert((letter.endpoint, letter.key.clone()));
                    }
                    for (field, value) in &letter.fields {
                        let hash = fnv1a(&["redrive", &letter.id.to_string(), field]);
                        commit.events.push(NewFieldEvent {
                            idempotency_key: format!("sw-redrive-{hash:016x}"),
                            run_id: None,
                            endpoint: event_endpoint(letter.endpoint, field),
                            crm_id: (letter.target == System::Crm).then(|| id.clone()),
                            erp_id: Some(letter.key.clone()),
                            field: field.clone(),
                            old_value: None,
                            new_value: json_text(Some(value)),
                            source_system: letter.target.other(),
                            target_system: letter.target,
                            outcome: Outcome::Applied,
                            error: None,
                            latency_ms: Some(latency),
                            occurred_at: now,
                        });
                    }
                }
            }
        }
        // One row per record, however many of its letters succeeded.
        commit.states = touched
            .iter()
            .filter_map(|(e, k)| states.get(e).and_then(|s| s.get(k)).cloned())
            .collect();
        self.store.commit_sync(&commit, now).await?;
        Ok(summary)
    }
}

/// What a reconciliation found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileSummary {
    pub records_compared: usize,
    /// Records one side lacks although the sync should have put them there.
    pub missing: usize,
    /// Records whose synced fields differ between the sides.
    pub different: usize,
}

impl ReconcileSummary {
    pub fn differences(&self) -> usize {
        self.missing + self.different
    }
}

impl Engine {
    /// Reads both sides in full and records (as `missing` and `drift` events) every record that
    /// is missing or different on one side, so a silent loss is caught even when every call
    /// succeeded. It changes nothing on either side.
    /// Under the endpoint's lease, like a sync run.
    pub async fn reconcile(&self, endpoint: Endpoint) -> Result<ReconcileSummary, SyncError> {
        self.reconcile_in(endpoint, None).await
    }

    /// Reconciles an endpoint for a `slot` of its reconciliation schedule this instance took,
    /// then moves the next slot (see [`Engine::leased`]).
    pub async fn reconcile_slot(
        &self,
        endpoint: Endpoint,
        slot: Slot<'_>,
    ) -> Result<ReconcileSummary, SyncError> {
        self.reconcile_in(endpoint, Some(slot)).await
    }

    async fn reconcile_in(
        &self,
        endpoint: Endpoint,
        slot: Option<Slot<'_>>,
    ) -> Result<ReconcileSummary, SyncError> {
        let check = self.leased(endpoint, slot, self.reconcile_unleased(endpoint));
        let result = scope_calls(endpoint, check).await;
        self.record_calls().await;
        result
    }

    async fn reconcile_unleased(&self, endpoint: Endpoint) -> Result<ReconcileSummary, SyncError> {
        let rules = &self.rules(endpoint).await?;
        let (crm_records, _) = pull_all(self.crm.as_ref(), endpoint, None).await?;
        let (erp_records, _) = pull_all(self.erp.as_ref(), endpoint, None).await?;
        let fields = self.shared_fields(endpoint)?;
        let (crm, erp) = (by_key(crm_records), by_key(erp_records));
        let now = self.clock.now();
        let check = uuid::Uuid::new_v4().to_string();
        let direction = Direction::of(endpoint);
        let mut summary = ReconcileSummary::default();
        let mut events = Vec::new();
        let keys: BTreeSet<&String> = crm.keys().chain(erp.keys()).collect();
        for key in keys {
            summary.records_compared += 1;
            let finding = |field: &str,
                           source: System,
                           outcome: Outcome,
                           old: Option<&String>,
                           new: Option<&String>,
                           error: String| {
                let hash = fnv1a(&[&check, key, field]);
                NewFieldEvent {
                    idempotency_key: format!("sw-reconcile-{hash:016x}"),
                    run_id: Some(check.clone()),
                    endpoint: event_endpoint(endpoint, field),
                    crm_id: crm.get(key).map(|r| r.id.clone()),
                    erp_id: Some(key.clone()),
                    field: field.to_string(),
                    old_value: json_text(old),
                    new_value: json_text(new),
                    source_system: source,
                    target_system: source.other(),
                    outcome,
                    error: Some(error),
                    latency_ms: None,
                    occurred_at: now,
                }
            };
            match (crm.get(key), erp.get(key)) {
                // An archived record is expected to be gone from the other side.
                (None, Some(e)) if is_archived(&e.fields) => {}
                (Some(c), None) if is_archived(&c.fields) => {}
                (None, Some(_)) if direction != Direction::CrmToErp => {
                    summary.missing += 1;
                    events.push(finding(
                        "*",
                        System::Erp,
                        Outcome::Missing,
                        None,
                        None,
                        "record missing in the CRM".into(),
                    ));
                }
                (Some(_), None) if direction != Direction::ErpToCrm => {
                    summary.missing += 1;
                    events.push(finding(
                        "*",
                        System::Crm,
                        Outcome::Missing,
                        None,
                        None,
                        "record missing in the ERP".into(),
                    ));
                }
                (Some(c), Some(e)) => {
                    let mut differs = false;
                    for field in fields.expand([&c.fields, &e.fields]) {
                        let (cv, ev) = (c.fields.get(field), e.fields.get(field));
                        if cv != ev {
                            differs = true;
                            let owner = rules.rule_for(endpoint, field).owner;
                            let (old, new) = if owner == System::Crm {
                                (ev, cv)
                            } else {
                                (cv, ev)
                            };
                            events.push(finding(
                                field,
                                owner,
                                Outcome::Drift,
                                old,
                                new,
                                format!("{field} differs between the CRM and the ERP"),
                            ));
                        }
                    }
                    summary.different += usize::from(differs);
                }
                _ => {}
            }
        }
        let mut commit = SyncCommit {
            events,
            ..Default::default()
        };
        self.store.commit_sync(&commit, now).await?;
        // No one listening (no live monitor) is fine.
        let _ = self.reconciled.send(Reconciled {
            endpoint,
            at: now,
            differences: Arc::new(std::mem::take(&mut commit.events)),
        });
        Ok(summary)
    }
}

/// Puts back the pre-run value of the field a failed write was carrying.
fn revert_field(state: &mut RecordState, event: &NewFieldEvent) {
    let old: Option<String> = event
        .old_value
        .as_deref()
        .and_then(|v| serde_json::from_str(v).ok());
    match old {
        Some(v) => state.fields.insert(event.field.clone(), v),
        None => state.fields.remove(&event.field),
    };
}

fn count<'a>(counts: &mut EventCounts, events: impl IntoIterator<Item = &'a NewFieldEvent>) {
    for e in events {
        *counts
            .entry(e.endpoint)
            .or_default()
            .entry(e.outcome)
            .or_default() += 1;
    }
}

/// A person's decision on a held conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "choice", content = "value")]
pub enum Resolution {
    /// The CRM's value, as held in the conflict.
    Crm,
    /// The ERP's value, as held in the conflict.
    Erp,
    /// A value of the person's own (empty: the field is cleared).
    Value(String),
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resolution::Crm => f.write_str("the CRM's value"),
            Resolution::Erp => f.write_str("the ERP's value"),
            Resolution::Value(v) => write!(f, "the value {v:?}"),
        }
    }
}

impl Engine {
    /// Settles a held conflict: the chosen value is written to each side that holds another one,
    /// recorded as `conflict_resolved` events naming who decided, and becomes the agreed value;
    /// the conflict closes only when every write succeeded.
    pub async fn resolve_conflict(
        &self,
        id: i64,
        resolution: Resolution,
        by: &str,
    ) -> Result<Conflict, SyncError> {
        let conflict = self
            .store
            .conflict(id)
            .await?
            .ok_or(SyncError::UnknownConflict(id))?;
        if let Some(at) = conflict.resolved_at {
            return Err(SyncError::ConflictResolved { id, at });
        }
        let endpoint = conflict.endpoint;
        self.leased(
            endpoint,
            None,
            self.resolve_unleased(conflict, resolution, by),
        )
        .await
    }

    async fn resolve_unleased(
        &self,
        mut conflict: Conflict,
        resolution: Resolution,
        by: &str,
    ) -> Result<Conflict, SyncError> {
        let value = match &resolution {
            Resolution::Crm => conflict.crm_value.clone(),
            Resolution::Erp => conflict.erp_value.clone(),
            Resolution::Value(v) => Some(v.clone()).filter(|v| !v.is_empty()),
        };
        let now = self.clock.now();
        let mut state = self
            .store
            .record_states(conflict.endpoint)
            .await?
            .remove(&conflict.key);
        let note = format!("resolved by {by}: {resolution}");
        let mut events = Vec::new();
        let mut failed = None;
        for system in [System::Crm, System::Erp] {
            let current = match system {
                System::Crm => &conflict.crm_value,
                System::Erp => &conflict.erp_value,
            };
            if *current == value {
                continue;
            }
            let record_id = state.as_ref().and_then(|s| match system {
                System::Crm => s.crm_id.clone(),
                System::Erp => s.erp_id.clone(),
            });
            let write = Write {
                id: record_id.clone(),
                key: conflict.key.clone(),
                fields: Fields::from([(conflict.field.clone(), value.clone().unwrap_or_default())]),
            };
            let started = Instant::now();
            let result = self.write_one(system, conflict.endpoint, &write).await;
            let hash = fnv1a(&["resolve", &conflict.id.to_string(), system.as_str()]);
            let (outcome, error) = match &result {
                Ok(_) => (Outcome::ConflictResolved, note.clone()),
                Err(e) => (Outcome::Failed, format!("{note}; the write failed: {e}")),
            };
            events.push(NewFieldEvent {
                idempotency_key: format!("sw-resolve-{hash:016x}-{}", now.as_micros()),
                run_id: None,
                endpoint: event_endpoint(conflict.endpoint, &conflict.field),
                crm_id: state.as_ref().and_then(|s| s.crm_id.clone()),
                erp_id: Some(conflict.key.clone()),
                field: conflict.field.clone(),
                old_value: json_text(current.as_ref()),
                new_value: json_text(value.as_ref()),
                source_system: system.other(),
                target_system: system,
                outcome,
                error: Some(error),
                latency_ms: Some(started.elapsed().as_millis() as i64),
                occurred_at: now,
            });
            if let Err(e) = result {
                failed = Some(SyncError::Connector { system, source: e });
            }
        }
        let mut commit = SyncCommit {
            events,
            ..Default::default()
        };
        if failed.is_none() {
            if let Some(state) = state.as_mut() {
                match &value {
                    Some(v) => state.fields.insert(conflict.field.clone(), v.clone()),
                    None => state.fields.remove(&conflict.field),
                };
                state.synced_at = now;
                commit.states.push(state.clone());
            }
            commit.resolved_conflicts.push((conflict.id, note.clone()));
        }
        self.store.commit_sync(&commit, now).await?;
        match failed {
            Some(e) => Err(e),
            None => {
                conflict.resolved_at = Some(now);
                conflict.resolution = Some(note);
                Ok(conflict)
            }
        }
    }
}

impl Engine {
    /// An endpoint's rules now: the configured ones, replaced as a whole by the newest change
    /// made at run time, if any.
    pub async fn rules(&self, endpoint: Endpoint) -> Result<EndpointSettings, SyncError> {
        let configured = self
            .endpoints
            .get(&endpoint)
            .ok_or(SyncError::NotConfigured(endpoint))?;
        let newest = self
            .store
            .policy_changes()
            .await?
            .into_iter()
            .rev()
            .find(|c| c.endpoint == endpoint);
        match newest.map(|c| serde_json::from_value::<EndpointSettings>(c.settings)) {
            Some(Ok(changed)) => Ok(changed),
            Some(Err(e)) => {
                // Only validated settings are stored; one that no longer reads (an older
                // version's) leaves the configured rules in force rather than stopping the sync.
                tracing::error!(%endpoint, error = %e, "stored rules unreadable; using the configured ones");
                Ok(configured.clone())
            }
            None => Ok(configured.clone()),
        }
    }

    /// Every configured endpoint's rules now.
    pub async fn all_rules(&self) -> Result<BTreeMap<Endpoint, EndpointSettings>, SyncError> {
        let mut all = BTreeMap::new();
        for endpoint in self.endpoints.keys() {
            all.insert(*endpoint, self.rules(*endpoint).await?);
        }
        Ok(all)
    }

    /// Replaces an endpoint's rules as a whole (the shape of its `[sync.endpoints.<name>]`
    /// table), recording who changed them and when; the next run uses them. Settings that do
    /// not read are refused naming the member.
    pub async fn change_rules(
        &self,
        endpoint: Endpoint,
        settings: serde_json::Value,
        by: &str,
    ) -> Result<EndpointSettings, SyncError> {
        if !self.endpoints.contains_key(&endpoint) {
            return Err(SyncError::NotConfigured(endpoint));
        }
        let parsed: EndpointSettings =
            serde_path_to_error::deserialize(settings.clone()).map_err(|e| {
                SyncError::InvalidPolicy {
                    endpoint,
                    message: format!("{}: {}", e.path(), e.inner()),
                }
            })?;
        let change = crate::domain::PolicyChange {
            id: 0,
            endpoint,
            settings: serde_json::to_value(&parsed).unwrap_or(settings),
            changed_at: self.clock.now(),
            changed_by: by.to_string(),
        };
        self.store.save_policy_change(&change).await?;
        tracing::info!(%endpoint, by, "rules changed");
        Ok(parsed)
    }
}

#[cfg(test)]
mod cursor_tests {
    use super::*;

    fn at(minutes: u64) -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-23T08:00:00Z").unwrap()
            + Duration::from_secs(minutes * 60)
    }

    #[test]
    fn a_clean_full_read_leaves_the_cursor_at_its_start_however_old_its_records() {
        // Records last changed at 08:00, read in full at 09:00: the next run starts just
        // before 09:00, not at 08:00 (which would read them all again).
        assert_eq!(
            next_cursor(None, at(0), at(60), false),
            at(60) - FULL_READ_MARGIN
        );
        // A change made as the read began, stamped by a server clock a little behind, is
        // still after the cursor.
        assert!(next_cursor(None, at(0), at(60), false) < at(60) - Duration::from_secs(5));
    }

    #[test]
    fn a_full_read_that_saw_records_move_keeps_the_overlap() {
        // Something moved under the offset paging, so something may have been skipped.
        assert_eq!(next_cursor(None, at(0), at(60), true), at(0));
        assert_eq!(next_cursor(None, at(58), at(60), true), at(55));
    }

    #[test]
    fn an_incremental_read_stays_behind_its_start_and_never_moves_back() {
        // Changes up to 09:00 read at 09:02: five minutes behind the start.
        assert_eq!(next_cursor(Some(at(50)), at(60), at(62), false), at(57));
        // Only old changes read: the cursor goes no further than the newest.
        assert_eq!(next_cursor(Some(at(10)), at(20), at(62), false), at(20));
        // Right after a full read (cursor 08:59:50), a run at 09:01 re-reads from there, not
        // five minutes before.
        let after_full = at(60) - FULL_READ_MARGIN;
        assert_eq!(
            next_cursor(Some(after_full), at(61), at(61), false),
            after_full
        );
    }

    #[test]
    fn a_record_read_twice_is_seen() {
        let record = |id: &str| Record {
            id: id.to_string(),
            key: None,
            fields: Fields::new(),
            modified_at: at(0),
        };
        assert!(!read_twice(&[record("1"), record("2")]));
        assert!(read_twice(&[record("1"), record("2"), record("1")]));
    }
}

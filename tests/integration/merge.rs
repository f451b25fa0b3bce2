//! Merges of duplicates through the sandbox CRM and ERP: the store scan finds the planted
//! duplicates, the policy decides what the agent merges on its own, approve merges, undo puts
//! every record back byte for byte, a merge interrupted mid-way finishes exactly once, and the
//! admin API drives it all with roles.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use syncwarden::api::auth::{hash_token, new_token};
use syncwarden::clock::Clock;
use syncwarden::config::Settings;
use syncwarden::dedup::merge::{CRM_ONLY, Merger};
use syncwarden::dedup::policy::MergePolicy;
use syncwarden::dedup::profile::Profile;
use syncwarden::dedup::service::{self as dedup_service, AGENT, Dedup, PassReport};
use syncwarden::domain::{
    DedupProposal, Endpoint, JobStatus, MergeKind, Outcome, ProposalStatus, RecordState, Role,
};
use syncwarden::lease::Leases;
use syncwarden::privacy::ERASED;
use syncwarden::sandbox::{Sandbox, SeedScale};
use syncwarden::startup::Application;
use syncwarden::store::{EventQuery, Store, SyncCommit};
use syncwarden::sync::engine::Engine;
use syncwarden::sync::service;

use crate::helpers::TestDb;

struct World {
    settings: Settings,
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    sandbox: Sandbox,
    clock: Clock,
    dir: tempfile::TempDir,
    db: TestDb,
}

/// The small sandbox synced once (every endpoint), with the planted duplicate companies given a
/// newer phone, so a merge writes the survivor on both sides.
async fn world(db: TestDb, tweak: impl FnOnce(&mut Settings)) -> World {
    let clock = Clock::system();
    let sandbox = Sandbox::start(clock.clone(), &SeedScale::small())
        .await
        .unwrap();
    let store = db.open().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = db.settings();
    settings.data_dir = dir.path().to_path_buf();
    sandbox.configure(&mut settings);
    tweak(&mut settings);
    let engine = Arc::new(service::engine(&settings, store.clone(), clock.clone()).unwrap());
    let cycle = service::run_cycle(&engine, None, false).await;
    assert!(cycle.errors.is_empty(), "{:?}", cycle.errors);
    World {
        settings,
        store,
        engine,
        sandbox,
        clock,
        dir,
        db,
    }
}

impl World {
    fn dedup(&self) -> Dedup {
        dedup_service::build(
            &self.settings,
            self.store.clone(),
            Some(&self.engine),
            self.clock.clone(),
        )
    }

    async fn pass(&self, endpoint: Endpoint) -> PassReport {
        let profile = Profile::load(std::path::Path::new(&format!(
            "config/dedup/{endpoint}.toml"
        )))
        .unwrap();
        let model = syncwarden::dedup::load_model(&profile).unwrap();
        self.dedup()
            .scan_and_merge(endpoint, &profile, &model, None)
            .await
            .unwrap()
    }

    async fn proposals(&self, endpoint: Endpoint) -> Vec<DedupProposal> {
        self.store
            .dedup_proposals(Some(endpoint), None)
            .await
            .unwrap()
    }

    fn companies(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let crm = self.sandbox.crm_data.lock().unwrap();
        crm.all("companies")
            .into_iter()
            .map(|o| (o.id.to_string(), o.properties.clone()))
            .collect()
    }

    fn partners(&self) -> BTreeMap<String, serde_json::Map<String, Value>> {
        let erp = self.sandbox.erp_data.lock().unwrap();
        erp.all("BusinessPartners")
            .into_iter()
            .map(|e| {
                let mut e = e.clone();
                // When it changed is not what it holds.
                e.remove("UpdateDate");
                e.remove("UpdateTime");
                (e["CardCode"].as_str().unwrap().to_string(), e)
            })
            .collect()
    }

    /// Gives the CRM's unlinked companies a newer phone than their originals.
    fn touch_planted_companies(&self) {
        let mut crm = self.sandbox.crm_data.lock().unwrap();
        let planted: Vec<u64> = crm
            .all("companies")
            .into_iter()
            .filter(|o| !o.properties.contains_key("erp_number") && o.properties.len() == 1)
            .map(|o| o.id)
            .collect();
        for (n, id) in planted.into_iter().enumerate() {
            let phone = BTreeMap::from([("phone".to_string(), format!("+49 40 555 01{n:02}"))]);
            crm.update("companies", id, phone, self.clock.now());
        }
    }
}

/// The app over a world's store and sandbox, stopped when dropped, with a token per role held
/// by the name given.
struct Api {
    base: String,
    client: reqwest::Client,
    tokens: BTreeMap<Role, String>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Api {
    async fn start(w: &World, holders: &[(Role, &str)]) -> Self {
        let app = Application::with_store(
            &w.settings,
            w.clock.clone(),
            w.store.clone(),
            Some(w.engine.clone()),
        )
        .await
        .unwrap();
        let base = format!("http://{}", app.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let mut tokens = BTreeMap::new();
        for (role, name) in holders {
            let token = new_token();
            w.store
                .create_token(name, *role, &hash_token(&token), w.clock.now(), None)
                .await
                .unwrap();
            tokens.insert(*role, token);
        }
        Self {
            base,
            client: reqwest::Client::new(),
            tokens,
            _stop: stop,
        }
    }

    /// A GET, or a POST with an empty object.
    async fn call(&self, role: Role, method: &str, path: String) -> (u16, Value) {
        self.send(role, method, path, json!({})).await
    }

    async fn send(&self, role: Role, method: &str, path: String, body: Value) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "POST" => self.client.post(url).json(&body),
            _ => self.client.get(url),
        };
        let response = request
            .bearer_auth(&self.tokens[&role])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    }
}

fn crm_only_member(p: &DedupProposal) -> Option<&String> {
    p.proposal.members.iter().find(|m| m.starts_with(CRM_ONLY))
}

/// The periodic pass runs on one instance at a time: while another instance holds the
/// `dedup:scan` lease it does nothing, and it gives the lease up when it ends.
#[tokio::test]
async fn the_dedup_pass_runs_on_one_instance_at_a_time() {
    let w = world(TestDb::sqlite(), |_| {}).await;
    let profile = Profile::load(std::path::Path::new("config/dedup/accounts.toml")).unwrap();
    let model = syncwarden::dedup::load_model(&profile).unwrap();
    let scans = [(Endpoint::Accounts, profile, model)];
    let lease = std::time::Duration::from_secs(30);
    let other = Leases::new(w.store.clone(), w.clock.clone(), lease);
    let mine = Leases::new(w.store.clone(), w.clock.clone(), lease);

    other.take(dedup_service::LEASE_JOB).await.unwrap();
    let busy = w.dedup().pass(&scans, None, &mine).await.unwrap();
    assert!(busy.is_none(), "ran beside the lease holder");
    assert!(w.proposals(Endpoint::Accounts).await.is_empty());

    other.release(dedup_service::LEASE_JOB).await;
    let reports = w.dedup().pass(&scans, None, &mine).await.unwrap();
    let reports = reports.expect("the lease was free");
    assert!(reports[0].scan.new_proposals > 0, "{:?}", reports[0].scan);
    other
        .take(dedup_service::LEASE_JOB)
        .await
        .expect("the pass gave the lease up when it ended");
    w.db.cleanup().await;
}

#[tokio::test]
async fn scan_finds_the_planted_duplicates_and_policy_decides_what_the_agent_merges() {
    for db in TestDb::all("merge_policy").await {
        let w = world(db, |s| {
            // Accounts merge on their own here, except where an invoice is open.
            s.dedup.policy.insert(
                Endpoint::Accounts,
                MergePolicy {
                    auto_merge: false,
                    min_probability: 0.0,
                    same_fields: Vec::new(),
                    unless_open_invoices: true,
                },
            );
        })
        .await;
        // A contact typed into the CRM twice with the same e-mail: the agent may merge it.
        let twin = {
            let mut crm = w.sandbox.crm_data.lock().unwrap();
            let original = crm
                .all("contacts")
                .into_iter()
                .find(|o| o.properties.contains_key("erp_number"))
                .unwrap()
                .clone();
            let mut props = original.properties.clone();
            props.remove("erp_number");
            crm.insert("contacts", props, w.clock.now())
        };

        let contacts = w.pass(Endpoint::Contacts).await;
        assert!(contacts.crm_only_records >= 5, "{contacts:?}");
        let proposals = w.proposals(Endpoint::Contacts).await;
        let twin_member = format!("{CRM_ONLY}{twin}");
        let merged = proposals
            .iter()
            .find(|p| p.proposal.members.contains(&twin_member))
            .expect("the same-e-mail twin is proposed");
        assert_eq!(merged.status, ProposalStatus::Applied);
        assert_eq!(merged.decided_by.as_deref(), Some(AGENT));
        assert!(
            w.sandbox
                .crm_data
                .lock()
                .unwrap()
                .get("contacts", twin)
                .is_none()
        );
        // The planted contacts (a typo in the name and in the e-mail) wait for a person.
        let waiting: Vec<&DedupProposal> = proposals
            .iter()
            .filter(|p| p.status == ProposalStatus::Open)
            .collect();
        assert!(waiting.len() >= 3, "planted contacts found: {proposals:#?}");
        for p in &waiting {
            let why = &contacts.waiting[&p.id];
            assert!(
                why.contains("email") || why.contains("probability"),
                "{why}"
            );
        }

        // Accounts: every planted duplicate company is proposed, each with its original.
        let accounts = w.pass(Endpoint::Accounts).await;
        let proposals = w.proposals(Endpoint::Accounts).await;
        assert!(proposals.len() >= 3, "{accounts:?}");
        assert!(proposals.iter().all(|p| crm_only_member(p).is_some()));
        assert!(accounts.auto_merged.is_empty(), "auto_merge is off");

        // An open invoice on the first proposal's account; then the agent may merge accounts.
        let first = &proposals[0];
        let account = first
            .proposal
            .members
            .iter()
            .find(|m| !m.starts_with(CRM_ONLY))
            .unwrap();
        let invoice = RecordState {
            endpoint: Endpoint::Invoices,
            key: "900001".into(),
            crm_id: None,
            erp_id: Some("900001".into()),
            fields: BTreeMap::from([
                ("account".to_string(), account.clone()),
                ("status".to_string(), "open".to_string()),
            ]),
            synced_at: w.clock.now(),
        };
        w.store
            .commit_sync(
                &SyncCommit {
                    states: vec![invoice],
                    ..Default::default()
                },
                w.clock.now(),
            )
            .await
            .unwrap();
        let mut settings = w.settings.clone();
        settings
            .dedup
            .policy
            .get_mut(&Endpoint::Accounts)
            .unwrap()
            .auto_merge = true;
        let dedup =
            dedup_service::build(&settings, w.store.clone(), Some(&w.engine), w.clock.clone());
        let profile = Profile::load(std::path::Path::new("config/dedup/accounts.toml")).unwrap();
        let model = syncwarden::dedup::load_model(&profile).unwrap();
        let report = dedup
            .scan_and_merge(Endpoint::Accounts, &profile, &model, None)
            .await
            .unwrap();
        assert_eq!(report.waiting[&first.id], "open invoice 900001");
        // The sandbox's own open invoices hold their accounts back too.
        let invoiced: HashSet<String> = w
            .store
            .record_states(Endpoint::Invoices)
            .await
            .unwrap()
            .into_values()
            .filter(|i| i.fields.get("status").map(String::as_str) == Some("open"))
            .filter_map(|i| i.fields.get("account").cloned())
            .collect();
        let free: Vec<i64> = proposals
            .iter()
            .filter(|p| !p.proposal.members.iter().any(|m| invoiced.contains(m)))
            .map(|p| p.id)
            .collect();
        assert!(!free.is_empty());
        assert_eq!(report.auto_merged, free);
        for p in proposals.iter().filter(|p| !free.contains(&p.id)) {
            assert!(
                report.waiting[&p.id].starts_with("open invoice"),
                "{report:?}"
            );
        }
        let actions = w
            .store
            .dedup_proposals(Some(Endpoint::Accounts), Some(ProposalStatus::Applied))
            .await
            .unwrap();
        assert_eq!(actions.len(), free.len());
        let companies = w.companies();
        for p in &actions {
            assert_eq!(p.decided_by.as_deref(), Some(AGENT));
            let loser = crm_only_member(p).unwrap().strip_prefix(CRM_ONLY).unwrap();
            assert!(!companies.contains_key(loser), "{loser} still in the CRM");
        }
        w.db.cleanup().await;
    }
}

#[tokio::test]
async fn merge_through_both_sandboxes_then_undo_restores_every_record_byte_for_byte() {
    for db in TestDb::all("merge_undo").await {
        let w = world(db, |_| {}).await;
        w.touch_planted_companies();
        let report = w.pass(Endpoint::Accounts).await;
        assert!(
            report.auto_merged.is_empty(),
            "accounts never merge alone by default"
        );
        let proposal = w.proposals(Endpoint::Accounts).await.remove(0);
        let loser = crm_only_member(&proposal)
            .unwrap()
            .strip_prefix(CRM_ONLY)
            .unwrap()
            .to_string();
        let key = proposal
            .proposal
            .members
            .iter()
            .find(|m| !m.starts_with(CRM_ONLY))
            .unwrap()
            .clone();
        let (crm_before, erp_before) = (w.companies(), w.partners());
        let state_before = w.store.record_states(Endpoint::Accounts).await.unwrap()[&key].clone();
        let survivor_crm = state_before.crm_id.clone().unwrap();

        let dedup = w.dedup();
        let action = dedup.approve(proposal.id, "ann").await.unwrap();
        assert_eq!(action.proposal.status, ProposalStatus::Applied);
        assert_eq!(action.jobs[0].status, JobStatus::Done);
        // The loser is merged away; the survivor holds the chosen (newer) name and phone on both
        // sides and in the agreed state.
        let crm = w.companies();
        assert!(!crm.contains_key(&loser));
        let chosen: BTreeMap<&str, &str> = proposal
            .proposal
            .fields
            .iter()
            .map(|f| (f.field.as_str(), f.value.as_str()))
            .collect();
        assert_eq!(crm[&survivor_crm]["phone"], chosen["phone"]);
        assert_eq!(crm[&survivor_crm]["name"], chosen["name"]);
        assert_ne!(
            crm[&survivor_crm]["phone"],
            crm_before[&survivor_crm]["phone"]
        );
        let erp = w.partners();
        assert_eq!(erp[&key]["Phone1"], chosen["phone"]);
        assert_eq!(erp[&key]["CardName"], chosen["name"]);
        let state = w.store.record_states(Endpoint::Accounts).await.unwrap()[&key].clone();
        assert_eq!(state.fields["phone"], chosen["phone"]);
        // Every step is in the event log as `merged`.
        let events = w
            .store
            .query_events(&EventQuery {
                run_id: Some(format!("merge-{}", action.jobs[0].id)),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(events.iter().all(|e| e.event.outcome == Outcome::Merged));
        assert!(
            events.iter().any(|e| e.event.field == "merged_into"
                && e.event.crm_id.as_deref() == Some(loser.as_str()))
        );
        assert!(
            events.iter().any(
                |e| e.event.field == "phone" && e.event.erp_id.as_deref() == Some(key.as_str())
            )
        );

        // The next sync neither recreates the loser nor puts the old values back.
        let cycle = service::run_cycle(&w.engine, Some(Endpoint::Accounts), false).await;
        assert!(cycle.errors.is_empty(), "{:?}", cycle.errors);
        assert_eq!(w.companies(), crm);
        assert_eq!(w.partners()[&key], erp[&key]);

        // Undo: the survivor back as it was on both sides, the loser created again with its
        // values, and re-linked nowhere (it never had an ERP record).
        let undone = dedup.undo(proposal.id, "ann").await.unwrap();
        assert_eq!(undone.proposal.status, ProposalStatus::Undone);
        assert_eq!(undone.jobs[1].kind, MergeKind::Undo);
        let crm = w.companies();
        assert_eq!(crm[&survivor_crm], crm_before[&survivor_crm]);
        assert_eq!(w.partners(), erp_before);
        let restored: Vec<&BTreeMap<String, String>> = crm
            .iter()
            .filter(|(id, _)| !crm_before.contains_key(*id))
            .map(|(_, p)| p)
            .collect();
        assert_eq!(restored.len(), 1, "one record created again");
        let mut expected = crm_before[&loser].clone();
        expected.insert(
            "syncwarden_restore_key".into(),
            format!("undo-{}-{loser}", proposal.id),
        );
        assert_eq!(restored[0], &expected);
        assert_eq!(
            w.store.record_states(Endpoint::Accounts).await.unwrap()[&key].fields,
            state_before.fields
        );
        // An undone merge cannot be undone again.
        assert!(dedup.undo(proposal.id, "ann").await.is_err());
        w.db.cleanup().await;
    }
}

#[tokio::test]
async fn a_merge_interrupted_mid_way_is_taken_over_and_finishes_exactly_once() {
    let w = world(TestDb::sqlite(), |_| {}).await;
    w.touch_planted_companies();
    w.pass(Endpoint::Accounts).await;
    let proposal = w.proposals(Endpoint::Accounts).await.remove(0);
    let loser = crm_only_member(&proposal)
        .unwrap()
        .strip_prefix(CRM_ONLY)
        .unwrap()
        .to_string();
    // A store-only deduper queues the merge (no connectors: nothing runs yet).
    let queued = Dedup::new(
        w.store.clone(),
        None,
        &w.settings.dedup,
        w.dir.path(),
        w.clock.clone(),
    )
    .approve(proposal.id, "ann")
    .await
    .unwrap();
    assert_eq!(queued.jobs[0].status, JobStatus::Pending);
    // A worker claims it, sends its first step (the HubSpot merge) and dies before recording
    // it: its claim runs out.
    let now = w.clock.now();
    let claimed = w
        .store
        .claim_merge_job("dead-worker", now, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.next_step, 0);
    let (crm, _) = w.engine.connectors();
    let survivor = w.store.record_states(Endpoint::Accounts).await.unwrap()[proposal
        .proposal
        .members
        .iter()
        .find(|m| !m.starts_with(CRM_ONLY))
        .unwrap()]
    .crm_id
    .clone()
    .unwrap();
    crm.merge(Endpoint::Accounts, &survivor, &loser)
        .await
        .unwrap();

    let (crm, erp) = w.engine.connectors();
    let merger = Merger::new(
        w.store.clone(),
        crm,
        erp,
        w.clock.clone(),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(merger.run_pending().await.unwrap(), 1);
    assert_eq!(
        merger.run_pending().await.unwrap(),
        0,
        "nothing left to run"
    );
    let jobs = w.store.merge_jobs(proposal.id).await.unwrap();
    assert_eq!(
        (jobs.len(), jobs[0].status, jobs[0].attempts),
        (1, JobStatus::Done, 2)
    );
    let p = w.store.dedup_proposal(proposal.id).await.unwrap().unwrap();
    assert_eq!(p.status, ProposalStatus::Applied);
    assert!(!w.companies().contains_key(&loser));
    let events = w
        .store
        .query_events(&EventQuery {
            run_id: Some(format!("merge-{}", jobs[0].id)),
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: HashSet<&str> = events
        .iter()
        .map(|e| e.event.idempotency_key.as_str())
        .collect();
    assert_eq!(keys.len(), events.len(), "no step recorded twice");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event.field == "merged_into")
            .count(),
        1
    );
}

#[tokio::test]
async fn the_admin_api_approves_into_the_sandbox_and_undoes_with_roles() {
    let w = world(TestDb::sqlite(), |_| {}).await;
    w.pass(Endpoint::Accounts).await;
    let proposals = w.proposals(Endpoint::Accounts).await;
    let api = Api::start(&w, &[(Role::Viewer, "vic"), (Role::Approver, "ann")]).await;
    let call =
        |role: Role, method: &'static str, path: &str| api.call(role, method, path.to_string());
    let id = proposals[0].id;
    let loser = crm_only_member(&proposals[0])
        .unwrap()
        .strip_prefix(CRM_ONLY)
        .unwrap()
        .to_string();

    // The action side by side: every member's fields, the survivor, the choice per field.
    let (status, body) = call(Role::Viewer, "GET", &format!("/v1/actions/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let action = &body["action"];
    assert_eq!(action["members"].as_array().unwrap().len(), 2);
    assert!(action["before"][format!("{CRM_ONLY}{loser}")]["name"].is_string());
    assert!(action["fields"][0]["why"].is_string());
    assert_eq!(action["jobs"], json!([]));

    let (status, _) = call(Role::Viewer, "POST", &format!("/v1/actions/{id}/approve")).await;
    assert_eq!(status, 403);
    let (status, body) = call(Role::Approver, "POST", &format!("/v1/actions/{id}/approve")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["action"]["status"], "applied");
    assert_eq!(body["action"]["decided_by"], "ann");
    assert!(
        !w.companies().contains_key(&loser),
        "merged in the sandbox CRM"
    );
    // The approval is a labelled training pair now.
    let feedback = w.dir.path().join("dedup-feedback").join("accounts.csv");
    let pairs = syncwarden::dedup::read_pairs(
        &Profile::load(std::path::Path::new("config/dedup/accounts.toml")).unwrap(),
        &feedback,
    )
    .unwrap();
    assert_eq!(pairs.labels, Some(vec![true]));

    let (status, body) = call(Role::Viewer, "POST", &format!("/v1/actions/{id}/undo")).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(Role::Approver, "POST", &format!("/v1/actions/{id}/undo")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["action"]["status"], "undone");
    assert_eq!(body["action"]["jobs"][1]["created_by"], "ann");
    let (status, body) = call(Role::Approver, "POST", &format!("/v1/actions/{id}/undo")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("wrong_state"))
    );
    let (status, _) = call(Role::Viewer, "GET", "/v1/actions/999999").await;
    assert_eq!(status, 404);
    // The undo is in the audit trail with who did it.
    let undo_events = w
        .store
        .query_events(&EventQuery {
            run_id: Some(format!("undo-{}", body_id(&w, id).await)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!undo_events.is_empty());
    assert!(
        undo_events
            .iter()
            .all(|e| e.event.outcome == Outcome::Unmerged
                && e.event.error.as_deref() == Some("undo by ann"))
    );
}

/// The id of a proposal's undo job.
async fn body_id(w: &World, proposal: i64) -> i64 {
    w.store
        .merge_jobs(proposal)
        .await
        .unwrap()
        .iter()
        .find(|j| j.kind == MergeKind::Undo)
        .unwrap()
        .id
}

/// The member of a proposal that is linked to the ERP (its key).
fn erp_member(p: &DedupProposal) -> String {
    p.proposal
        .members
        .iter()
        .find(|m| !m.starts_with(CRM_ONLY))
        .unwrap()
        .clone()
}

/// No CRM company or ERP partner holds the erasure tombstone.
fn assert_no_tombstone(w: &World) {
    for (id, props) in w.companies() {
        assert!(
            !props.values().any(|v| v.contains(ERASED)),
            "CRM company {id}: {props:?}"
        );
    }
    for (code, partner) in w.partners() {
        assert!(
            !Value::Object(partner.clone()).to_string().contains(ERASED),
            "ERP partner {code}: {partner:?}"
        );
    }
}

/// Undoing a merge whose before-image was erased since (GDPR) would write the tombstone back into
/// the CRM and ERP: the API refuses it with a 409 naming the erasure, the record and the field,
/// an undo queued before the erasure fails when it runs, and approving a merge whose chosen value
/// was erased is refused the same way. The CRM and ERP keep what they hold throughout.
#[tokio::test]
async fn erased_personal_data_is_never_written_back_by_an_undo_or_a_merge() {
    for db in TestDb::all("merge_erased").await {
        let w = world(db, |_| {}).await;
        w.touch_planted_companies();
        w.pass(Endpoint::Accounts).await;
        let proposals = w.proposals(Endpoint::Accounts).await;
        assert!(proposals.len() >= 2, "{proposals:#?}");
        let api = Api::start(&w, &[(Role::Approver, "ann"), (Role::Admin, "ada")]).await;
        let (id, key) = (proposals[0].id, erp_member(&proposals[0]));
        let (status, body) = api
            .call(Role::Approver, "POST", format!("/v1/actions/{id}/approve"))
            .await;
        assert_eq!(
            (status, body["action"]["status"].as_str()),
            (200, Some("applied")),
            "{body}"
        );
        // An instance without connectors queues an undo before the erasure; it has not run.
        let queued = Dedup::new(
            w.store.clone(),
            None,
            &w.settings.dedup,
            w.dir.path(),
            w.clock.clone(),
        )
        .undo(id, "ann")
        .await
        .unwrap();
        assert_eq!(queued.jobs[1].status, JobStatus::Pending);

        let erase = json!({"endpoint": "accounts", "key": key, "reason": "the customer asked"});
        let (status, report) = api
            .send(Role::Admin, "POST", "/v1/erasure".into(), erase)
            .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            report["erased"]["merge_jobs"], 2,
            "merge and undo: {report}"
        );
        let erasure = report["id"].as_str().unwrap().to_string();
        let (crm, erp) = (w.companies(), w.partners());

        let (status, body) = api
            .call(Role::Approver, "POST", format!("/v1/actions/{id}/undo"))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("erased")),
            "{body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        for named in [
            erasure.as_str(),
            &format!("accounts {key}: "),
            "phone",
            ERASED,
        ] {
            assert!(message.contains(named), "{named} not in {message}");
        }
        // The undo queued before the erasure fails when a worker runs it, sending nothing.
        assert_eq!(w.dedup().run_merges().await, 1);
        let jobs = w.store.merge_jobs(id).await.unwrap();
        assert_eq!(jobs.len(), 2, "the refused undo queued no job: {jobs:?}");
        assert_eq!(jobs[1].status, JobStatus::Failed);
        let why = jobs[1].last_error.clone().unwrap_or_default();
        assert!(why.contains("tombstone") && why.contains(&key), "{why}");
        assert_eq!(w.companies(), crm);
        assert_eq!(w.partners(), erp);
        let (status, body) = api
            .call(Role::Approver, "GET", format!("/v1/actions/{id}"))
            .await;
        assert_eq!(
            (status, body["action"]["status"].as_str()),
            (200, Some("applied"))
        );

        // The next proposal's duplicate (only the CRM holds it, its newer phone chosen) is erased:
        // approving would write the tombstone as the survivor's phone.
        let next = &proposals[1];
        let duplicate = crm_only_member(next)
            .unwrap()
            .strip_prefix(CRM_ONLY)
            .unwrap();
        let erase = json!({"endpoint": "accounts", "key": duplicate, "reason": "asked too"});
        let (status, report) = api
            .send(Role::Admin, "POST", "/v1/erasure".into(), erase)
            .await;
        assert_eq!(status, 200, "{report}");
        let (status, body) = api
            .call(
                Role::Approver,
                "POST",
                format!("/v1/actions/{}/approve", next.id),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("erased")),
            "{body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        let erasure = report["id"].as_str().unwrap();
        assert!(
            message.contains(erasure) && message.contains("phone"),
            "{message}"
        );
        assert!(w.store.merge_jobs(next.id).await.unwrap().is_empty());
        let (_, body) = api
            .call(Role::Approver, "GET", format!("/v1/actions/{}", next.id))
            .await;
        assert_eq!(body["action"]["status"], "open", "{body}");
        assert_eq!(w.companies(), crm);
        assert_eq!(w.partners(), erp);
        assert_no_tombstone(&w);
        drop(api);
        w.db.cleanup().await;
    }
}

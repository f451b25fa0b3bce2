//! The web UI in real headless Chromium (Debian `chromium`, driven by `playwright-core` from npm
//! through tests/browser/ui.cjs) when `SW_TEST_BROWSER=1`: sign in, the dashboard, approving a
//! merge (applied in the sandbox CRM and ERP) and undoing it, rejecting one, acknowledging a
//! finding, paging through a long list, the audit trail, resolving a conflict, and a viewer who is
//! offered no decision its role cannot make; a screenshot of
//! each page goes to target/ui-artefacts/.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use syncwarden::clock::Clock;
use syncwarden::domain::{
    DedupProposal, Endpoint, MergeField, NewDedupProposal, ProposalStatus, Role,
};
use syncwarden::monitor::{FindingState, NewFinding, Severity};

use crate::api::Admin;
use crate::helpers::skip_notice;

pub const BROWSER_VAR: &str = "SW_TEST_BROWSER";
/// Where `.ci/run` installs playwright-core; another place can be named by this variable.
pub const NODE_PATH_VAR: &str = "SW_TEST_BROWSER_NODE_PATH";

/// What the UI tests act on, besides the synced sandbox data: a held conflict, an open finding
/// and three merge proposals built from real synced accounts.
pub(crate) async fn seed(app: &Admin) {
    let held = app.conflict().await;
    let now = app.clock.now();
    app.store
        .upsert_finding(&NewFinding {
            kind: "price_mismatch".into(),
            severity: Severity::Critical,
            fingerprint: "price_mismatch:items:A00001".into(),
            title: "Item A00001 costs 12.50 in the CRM and 10.90 in the ERP".into(),
            evidence: json!({"endpoint": "items", "item": "A00001", "crm_price": "12.50", "erp_price": "10.90"}),
            started_at: now,
            detected_at: now,
        })
        .await
        .unwrap();
    // The roll-up pass `serve` runs every minute, so the dashboard has series to chart.
    syncwarden::monitor::rollup::run_once(app.store.as_ref(), Clock::system().now())
        .await
        .unwrap();
    let states = app.store.record_states(Endpoint::Accounts).await.unwrap();
    // Not the record whose conflict the browser resolves: the undo's check compares the merged
    // records' values with those before the merge.
    let mut keys: Vec<&String> = states.keys().filter(|k| **k != held).collect();
    keys.sort();
    let proposals: Vec<NewDedupProposal> = keys
        .chunks(2)
        .take(3)
        .map(|pair| {
            let (a, b) = (&states[pair[0]], &states[pair[1]]);
            NewDedupProposal {
                endpoint: Endpoint::Accounts,
                members: vec![a.key.clone(), b.key.clone()],
                survivor: a.key.clone(),
                fields: a
                    .fields
                    .iter()
                    .map(|(field, value)| MergeField {
                        field: field.clone(),
                        value: value.clone(),
                        from: a.key.clone(),
                        why: "most_complete".into(),
                    })
                    .collect(),
                before: BTreeMap::from([
                    (a.key.clone(), a.fields.clone()),
                    (b.key.clone(), b.fields.clone()),
                ]),
                min_probability: 0.91,
                created_at: now,
            }
        })
        .collect();
    assert_eq!(app.store.save_dedup_proposals(&proposals).await.unwrap(), 3);
}

#[tokio::test]
async fn people_use_the_web_ui_in_a_real_browser() {
    if std::env::var(BROWSER_VAR).is_err() {
        skip_notice(
            "browser::people_use_the_web_ui_in_a_real_browser",
            BROWSER_VAR,
            "1 (needs /usr/bin/chromium and playwright-core, see .ci/run)",
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let node_path = std::env::var(NODE_PATH_VAR).unwrap_or_else(|_| {
        root.join("target/ci-tools/browser/node_modules")
            .display()
            .to_string()
    });
    assert!(
        Path::new(&node_path).join("playwright-core").exists(),
        "playwright-core is not in {node_path}: `npm install --prefix target/ci-tools/browser \
         playwright-core`, or set {NODE_PATH_VAR}"
    );
    let artefacts = root.join("target/ui-artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let app = crate::api::admin_app_with(|_| {}).await;
    seed(&app).await;
    // More resolved findings than a page holds, for the "More" button.
    for i in 0..120 {
        let finding = app
            .store
            .upsert_finding(&NewFinding {
                kind: "freshness".into(),
                severity: Severity::Info,
                fingerprint: format!("freshness:paging:{i}"),
                title: format!("old incident {i}"),
                evidence: json!({}),
                started_at: app.clock.now(),
                detected_at: app.clock.now(),
            })
            .await
            .unwrap();
        app.store
            .resolve_finding(finding.id, app.clock.now())
            .await
            .unwrap();
    }
    let mut command = std::process::Command::new("node");
    command
        .arg(root.join("tests/browser/ui.cjs"))
        .env("NODE_PATH", &node_path)
        .env("SW_BASE", &app.base)
        .env("SW_APPROVER_TOKEN", &app.tokens[&Role::Approver])
        .env("SW_VIEWER_TOKEN", &app.tokens[&Role::Viewer])
        .env("SW_ARTEFACTS", &artefacts);
    // Off the runtime's thread: the app under test is served from it meanwhile.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser script failed:\n{stdout}\n{stderr}"
    );

    // What the clicks did, read back from the store rather than from the page.
    let actions = app.store.dedup_proposals(None, None).await.unwrap();
    let statuses: Vec<ProposalStatus> = actions.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [
            ProposalStatus::Undone,
            ProposalStatus::Rejected,
            ProposalStatus::Open
        ]
    );
    assert_eq!(actions[0].decided_by.as_deref(), Some("approver"));
    records_are_back(&app, &actions[0]).await;
    assert!(
        actions[1]
            .decided_by
            .as_deref()
            .unwrap()
            .contains("not the same company"),
        "{:?}",
        actions[1].decided_by
    );
    let findings = app.store.findings(None).await.unwrap();
    let price = findings
        .iter()
        .find(|f| f.kind == "price_mismatch")
        .unwrap();
    assert_eq!(price.state, FindingState::Acknowledged);
    assert!(app.store.open_conflicts().await.unwrap().is_empty());
    for page in [
        "signin",
        "dashboard",
        "actions",
        "action-applied",
        "action-undone",
        "findings",
        "audit",
        "conflicts",
        "findings-paged",
        "viewer-read-only",
    ] {
        assert!(
            artefacts.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
}

/// The merge the browser approved and undid, checked through the API (both jobs done) and in the
/// sandbox CRM and the sync state: every member is a record of its own again, with the values it
/// had before the merge.
async fn records_are_back(app: &Admin, action: &DedupProposal) {
    let response = app
        .client
        .get(format!("{}/v1/actions/{}", app.base, action.id))
        .bearer_auth(&app.tokens[&Role::Approver])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["action"]["status"], "undone", "{body}");
    let jobs: Vec<(&str, &str)> = body["action"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["kind"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    assert_eq!(jobs, [("merge", "done"), ("undo", "done")], "{body}");

    let states = app.store.record_states(Endpoint::Accounts).await.unwrap();
    let crm = app.sandbox.crm_data.lock().unwrap();
    let companies = crm.all("companies");
    for member in &action.proposal.members {
        let before = &action.proposal.before[member];
        let state = states
            .get(member)
            .unwrap_or_else(|| panic!("{member} has no sync state after the undo"));
        assert_eq!(&state.fields, before, "{member}'s agreed values");
        let crm_id = state.crm_id.as_deref().unwrap();
        let company = companies
            .iter()
            .find(|c| c.id.to_string() == crm_id)
            .unwrap_or_else(|| panic!("{member} ({crm_id}) is not in the CRM after the undo"));
        assert_eq!(
            company.properties.get("erp_number"),
            Some(member),
            "{member}'s CRM record lost its ERP key"
        );
        assert_eq!(
            company.properties.get("name"),
            before.get("name"),
            "{member}'s name in the CRM"
        );
    }
}

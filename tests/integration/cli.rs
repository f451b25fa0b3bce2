//! The binary as a user runs it: default config, migrate, environment overrides.

use std::process::Command;

use syncwarden::config::Settings;

fn syncwarden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_syncwarden"))
}

#[test]
fn default_config_prints_a_file_that_loads_to_the_defaults() {
    let out = syncwarden().arg("default-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let parsed = Settings::from_toml_str(&text).unwrap();
    assert_eq!(format!("{parsed:?}"), format!("{:?}", Settings::default()));
    for key in [
        "data_dir",
        "[database]",
        "url",
        "[server]",
        "listen",
        "[ingest]",
        "token",
    ] {
        assert!(text.contains(key), "default config lacks {key}");
    }
}

#[test]
fn migrate_uses_the_data_dir_flag_and_env_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let out = syncwarden()
        .arg("migrate")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("syncwarden.db").exists());

    let other = dir.path().join("elsewhere.db");
    let out = syncwarden()
        .arg("migrate")
        .env(
            "SYNCWARDEN_DATABASE__URL",
            format!("sqlite://{}", other.display()),
        )
        .env("SYNCWARDEN_DATA_DIR", dir.path().join("unused"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(other.exists());
}

#[test]
fn bad_configuration_is_reported_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nlisten = \"not an address\"\n").unwrap();
    let out = syncwarden()
        .arg("migrate")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen"), "{err}");

    let out = syncwarden()
        .arg("migrate")
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let out = syncwarden()
        .arg("migrate")
        .env(
            "SYNCWARDEN_DATABASE__URL",
            "postgres://sw:hunter2@127.0.0.1:1/nodb",
        )
        .env("SYNCWARDEN_DATABASE__ACQUIRE_TIMEOUT_SECS", "1")
        .env("SYNCWARDEN_INGEST__TOKEN", "tok-hunter3")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains("hunter2") && !all.contains("hunter3"),
        "{all}"
    );
}

#[test]
fn demo_once_json_syncs_the_sandbox_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = syncwarden()
            .args(["demo", "--once", "--json"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let summary = run();
    let events = summary["events"].as_object().unwrap();
    for endpoint in [
        "accounts",
        "contacts",
        "pricebook",
        "items",
        "quotes",
        "sales_orders",
        "invoices",
    ] {
        assert!(
            events.contains_key(endpoint),
            "{endpoint} missing from {summary}"
        );
    }
    assert!(events["accounts"]["applied"].as_u64().unwrap() > 0);
    assert!(
        events["pricebook"]["applied"].as_u64().unwrap() > 0,
        "planted price drift is fixed"
    );
    assert!(summary["api_calls"]["ok"].as_u64().unwrap() > 0);
    assert_eq!(summary["api_calls"]["failed"], 0);
    assert_eq!(summary["reconcile_differences"], 0);
    assert!(
        summary["unlinked"].as_u64().unwrap() > 0,
        "planted duplicates are left for review"
    );
    assert!(dir.path().join("syncwarden-data/syncwarden.db").exists());
    // A second demo starts a fresh sandbox and does the same again: the store is the demo's.
    assert_eq!(run()["events"], summary["events"]);
}

#[test]
fn endpoint_switches_persist_in_the_demo_store() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = syncwarden()
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["endpoint", "pause", "contacts"]);
    run(&["endpoint", "dry-run", "contacts"]);
    let listed: serde_json::Value = serde_json::from_str(&run(&["endpoint", "list"])).unwrap();
    assert_eq!(listed[0]["endpoint"], "contacts");
    assert_eq!(
        (
            listed[0]["paused"].as_bool(),
            listed[0]["dry_run"].as_bool()
        ),
        (Some(true), Some(true))
    );
    let bad = syncwarden()
        .args(["endpoint", "pause", "deals"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown endpoint `deals`"));
}

/// `connectors check`, `sync --once` and `reconcile` as an operator runs them, against the
/// sandbox servers (which run in this test's process, hence their own threads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_commands_against_the_sandbox() {
    use syncwarden::clock::Clock;
    use syncwarden::sandbox::{self, Sandbox, SeedScale};
    let sandbox = Sandbox::start(Clock::system(), &SeedScale::small())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: Vec<&str>, token: &str| {
        let mut command = syncwarden();
        command
            .args(&args)
            .current_dir(dir.path())
            .envs(sandbox.env())
            .env("SYNCWARDEN_CRM__TOKEN", token)
            .env("SYNCWARDEN_SYNC__RETRY__MAX_ATTEMPTS", "1");
        tokio::task::spawn_blocking(move || command.output().unwrap())
    };
    let ok = run(vec!["connectors", "check"], sandbox::HUBSPOT_TOKEN)
        .await
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(
        stdout.contains("crm (HubSpot): ok") && stdout.contains("erp (SAP Business One): ok"),
        "{stdout}"
    );
    let bad = run(vec!["connectors", "check"], "pat-wrong").await.unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).contains("crm (HubSpot): FAILED"));

    let synced = run(
        vec!["sync", "--once", "--endpoint", "accounts"],
        sandbox::HUBSPOT_TOKEN,
    )
    .await
    .unwrap();
    assert!(
        synced.status.success(),
        "{}",
        String::from_utf8_lossy(&synced.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&synced.stdout).unwrap();
    assert!(
        summary["events"]["accounts"]["applied"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert_eq!(summary["reconcile_differences"], 0);

    let reconciled = run(
        vec!["reconcile", "--endpoint", "accounts"],
        sandbox::HUBSPOT_TOKEN,
    )
    .await
    .unwrap();
    assert!(reconciled.status.success());
    let report: serde_json::Value = serde_json::from_slice(&reconciled.stdout).unwrap();
    assert_eq!(report["accounts"]["missing"], 0);
    assert!(report["accounts"]["records_compared"].as_u64().unwrap() > 0);

    let unconfigured = syncwarden()
        .args(["sync", "--once"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!unconfigured.status.success());
    assert!(String::from_utf8_lossy(&unconfigured.stderr).contains("crm.token"));
}

//! Soak: a bounded number of sync cycles against the sandbox with random faults (errors, write
//! errors, lost write answers, 429 bursts, latency, session expiry, outages) and random ERP
//! changes, from a seeded RNG; then the faults stop, the failed writes are re-driven, and the
//! invariant checker compares both systems and the event log.

use std::time::Duration;

use syncwarden::clock::Clock;
use syncwarden::domain::Endpoint;
use syncwarden::sandbox::faults::FaultConfig;
use syncwarden::sandbox::{Sandbox, SeedScale};
use syncwarden::sync::service;

use crate::helpers::{TestDb, all_events};
use crate::invariants::{check_accounts, crm_account_keys};

const CYCLES: usize = 24;
const SEED: u64 = 8;

/// One cycle's faults, drawn from `rng`.
fn random_faults(rng: &mut fastrand::Rng) -> FaultConfig {
    let mut faults = FaultConfig::default();
    match rng.u8(0..7) {
        0 => faults.error_rate = 0.2,
        1 => faults.write_error_rate = 0.5,
        2 => faults.lose_write_answers = rng.u32(1..4),
        3 => faults.burst_429 = rng.u32(1..4),
        4 => faults.expire_sessions = true,
        5 => faults.outage = true,
        _ => {}
    }
    faults.latency_ms = rng.u64(0..5);
    faults
}

#[tokio::test]
async fn soak_under_random_faults_then_both_systems_agree() {
    for db in TestDb::all("soak::soak_under_random_faults_then_both_systems_agree").await {
        let scale = SeedScale {
            accounts: 120,
            items: 5,
            crm_overlap: 0.2,
            duplicate_accounts: 0,
            ..SeedScale::small()
        };
        let clock = Clock::system();
        let sandbox = Sandbox::start(clock.clone(), &scale).await.unwrap();
        let keyed_before = crm_account_keys(&sandbox);
        let mut settings = db.settings();
        sandbox.configure(&mut settings);
        settings.sync.retry.base_delay_ms = 1;
        settings.sync.retry.max_delay_ms = 10;
        let store = db.open().await;
        let engine = service::engine(&settings, store.clone(), clock.clone()).unwrap();
        let codes: Vec<String> = sandbox
            .erp_data
            .lock()
            .unwrap()
            .all("BusinessPartners")
            .iter()
            .map(|p| p["CardCode"].as_str().unwrap().to_string())
            .collect();

        let mut rng = fastrand::Rng::with_seed(SEED);
        let mut failed_runs = 0;
        for cycle in 0..CYCLES {
            // ERP users rename a few partners (the ERP owns the name), each to a new name.
            for _ in 0..rng.usize(0..4) {
                let code = &codes[rng.usize(..codes.len())];
                let mut patch = serde_json::Map::new();
                patch.insert("CardName".into(), format!("Renamed {code} {cycle}").into());
                sandbox.erp_data.lock().unwrap().update(
                    "BusinessPartners",
                    code,
                    patch,
                    clock.now(),
                );
            }
            let faults = random_faults(&mut rng);
            sandbox.crm.faults.set(faults.clone());
            sandbox.erp.faults.set(faults);
            if engine
                .run_endpoint(Endpoint::Accounts, false)
                .await
                .is_err()
            {
                failed_runs += 1;
            }
        }
        assert!(
            failed_runs > 0 && failed_runs < CYCLES,
            "{failed_runs} of {CYCLES} runs failed: the faults must bite, not stop everything"
        );

        sandbox.crm.faults.set(FaultConfig::default());
        sandbox.erp.faults.set(FaultConfig::default());
        // Changes stamped within the last run's second are read again by the next (the cursor
        // boundary is inclusive); a clean run then settles everything.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        engine.retry_failed(Some(Endpoint::Accounts)).await.unwrap();
        engine
            .run_endpoint(Endpoint::Accounts, false)
            .await
            .unwrap();
        assert!(store.open_dead_letters().await.unwrap().is_empty());
        assert!(store.intents(Endpoint::Accounts).await.unwrap().is_empty());
        let events = all_events(store.as_ref()).await;
        check_accounts(&sandbox, &events, &keyed_before);
        store.close().await;
        db.cleanup().await;
    }
}

//! Wiring the sync from settings, a full cycle over every endpoint, and the scheduler.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::Endpoint;
use crate::store::Store;
use crate::sync::connectors::hubspot::HubSpotConnector;
use crate::sync::connectors::sap_b1::SapB1Connector;
use crate::sync::connectors::tryton::TrytonConnector;
use crate::sync::connectors::{Connector, ConnectorError, RetryPolicy};
use crate::sync::engine::{Engine, EventCounts, RunSummary, Slot, SyncError, add_event_counts};
use crate::sync::rules::ErpKind;

/// Whether both connectors have credentials, so `serve` should run the sync.
pub fn is_configured(settings: &Settings) -> bool {
    missing_credentials(settings).is_none()
}

/// The settings the sync still lacks, named for the person who has to fill them in.
pub fn missing_credentials(settings: &Settings) -> Option<String> {
    let crm = (settings.crm.token.expose_secret().is_empty()
        && settings.crm.oauth_refresh_token.expose_secret().is_empty())
    .then_some("crm.token or crm.oauth_refresh_token");
    let erp = match settings.sync.erp {
        ErpKind::SapB1 => settings
            .erp
            .company_db
            .is_empty()
            .then_some("erp.company_db"),
        ErpKind::Tryton => settings
            .tryton
            .database
            .is_empty()
            .then_some("tryton.database (with sync.erp = \"tryton\")"),
    };
    let missing: Vec<&str> = [crm, erp].into_iter().flatten().collect();
    (!missing.is_empty()).then(|| missing.join(" and "))
}

pub fn connectors(settings: &Settings) -> Result<[Arc<dyn Connector>; 2], ConnectorError> {
    let retry = RetryPolicy::from(&settings.sync.retry);
    let erp: Arc<dyn Connector> = match settings.sync.erp {
        ErpKind::SapB1 => Arc::new(SapB1Connector::new(settings.erp.clone(), retry.clone())?),
        ErpKind::Tryton => Arc::new(TrytonConnector::new(
            settings.tryton.clone(),
            retry.clone(),
        )?),
    };
    Ok([
        Arc::new(HubSpotConnector::new(settings.crm.clone(), retry)?),
        erp,
    ])
}

pub fn engine(
    settings: &Settings,
    store: Arc<dyn Store>,
    clock: Clock,
) -> Result<Engine, ConnectorError> {
    let [crm, erp] = connectors(settings)?;
    Ok(
        Engine::new(store, crm, erp, settings.sync.endpoints.clone(), clock)
            .with_lease(Duration::from_secs(settings.sync.lease_secs.max(1))),
    )
}

/// One pass over endpoints, as `syncwarden demo --once --json` and `sync --once` print it.
#[derive(Debug, Default, Serialize)]
pub struct CycleSummary {
    /// Every endpoint's events by outcome (all seven endpoints are always listed).
    pub events: EventCounts,
    pub api_calls: ApiCalls,
    pub conflicts: usize,
    pub failed_writes: usize,
    pub records_read: usize,
    pub linked: usize,
    pub unlinked: usize,
    pub reconcile_differences: usize,
    /// Endpoints whose run failed, with the reason.
    pub errors: BTreeMap<Endpoint, String>,
}

#[derive(Debug, Default, Serialize)]
pub struct ApiCalls {
    pub ok: u64,
    pub failed: u64,
}

impl CycleSummary {
    fn new() -> Self {
        Self {
            events: Endpoint::ALL
                .into_iter()
                .map(|e| (e, BTreeMap::new()))
                .collect(),
            ..Default::default()
        }
    }

    fn add(&mut self, run: &RunSummary) {
        add_event_counts(&mut self.events, &run.events);
        self.api_calls.ok += run.api_calls_ok;
        self.api_calls.failed += run.api_calls_failed;
        self.conflicts += run.conflicts;
        self.failed_writes += run.failed_writes;
        self.records_read += run.records_read;
        self.linked += run.linked;
        self.unlinked += run.unlinked;
    }
}

/// The wave of a cycle an endpoint runs in. The ERP takes a contact, a quote or a document line
/// only for a partner and items it already holds, so accounts and items (with their prices) go
/// first; the rest name partners and items only (the ERP's orders and invoices reach the CRM as
/// they are) and go next.
fn wave(endpoint: Endpoint) -> usize {
    match endpoint {
        Endpoint::Accounts | Endpoint::Items | Endpoint::Pricebook => 0,
        Endpoint::Contacts | Endpoint::Quotes | Endpoint::SalesOrders | Endpoint::Invoices => 1,
    }
}

/// `endpoints` cut into the waves of a cycle, in order: those of one wave run at once (as the
/// scheduler runs them), those of the next once the wave has ended.
pub fn waves(endpoints: impl IntoIterator<Item = Endpoint>) -> Vec<Vec<Endpoint>> {
    let mut waves: Vec<Vec<Endpoint>> = vec![Vec::new(); 2];
    for endpoint in endpoints {
        waves[wave(endpoint)].push(endpoint);
    }
    waves.retain(|w| !w.is_empty());
    waves
}

/// Runs each configured endpoint (or only `only`) once, then reconciles it; wave by wave (see
/// [`waves`]), the endpoints of a wave at once.
pub async fn run_cycle(engine: &Engine, only: Option<Endpoint>, dry_run: bool) -> CycleSummary {
    let mut summary = CycleSummary::new();
    let endpoints = engine
        .endpoints()
        .map(|(e, _)| *e)
        .filter(|e| only.is_none_or(|o| o == *e));
    for wave in waves(endpoints) {
        let done = futures_util::future::join_all(
            wave.iter()
                .map(|&endpoint| run_and_reconcile(engine, endpoint, dry_run)),
        )
        .await;
        for (endpoint, result) in wave.into_iter().zip(done) {
            match result {
                Ok((run, Ok(differences))) => {
                    summary.add(&run);
                    summary.reconcile_differences += differences;
                }
                Ok((run, Err(error))) => {
                    summary.add(&run);
                    summary
                        .errors
                        .insert(endpoint, format!("reconcile: {error}"));
                }
                Err(error) => {
                    summary.errors.insert(endpoint, error.to_string());
                }
            }
        }
    }
    summary
}

/// One endpoint's run and then, if it ran, its reconciliation: the run, and the differences
/// found.
async fn run_and_reconcile(
    engine: &Engine,
    endpoint: Endpoint,
    dry_run: bool,
) -> Result<(RunSummary, Result<usize, SyncError>), SyncError> {
    let run = engine.run_endpoint(endpoint, dry_run).await?;
    let reconciled = engine.reconcile(endpoint).await.map(|r| r.differences());
    Ok((run, reconciled))
}

/// The endpoints' sync schedules (`sync-due:<endpoint>`), as a `LIKE` pattern: the ones the live
/// instances share out.
pub(crate) const SYNC_SLOTS: &str = "sync-due:%";

/// Runs every endpoint that is not paused on its own interval, and reconciles each one every
/// `reconcile_every` (after a sync run, in the same task, so the two never overlap), until `stop`
/// turns true. The intervals are kept in the store, so several instances share one schedule, and
/// each instance keeps a heartbeat there, so the live instances share the endpoints out.
pub async fn run_scheduler(
    engine: Arc<Engine>,
    clock: Clock,
    reconcile_every: Duration,
    stop: watch::Receiver<bool>,
) {
    let scheduled: Vec<(Endpoint, Duration)> = engine
        .endpoints()
        .filter(|(_, settings)| !settings.paused)
        .map(|(e, settings)| (*e, Duration::from_secs(settings.interval_secs.max(1))))
        .collect();
    let Some(shortest) = scheduled.iter().map(|(_, interval)| *interval).min() else {
        return;
    };
    // The first beat goes before the first claim, so an instance starting beside others is
    // counted by them as soon as it can be; the loops re-check their share every interval.
    // Renewed every interval, and at least three times per lease length (an interval may be
    // longer than the lease), so a live instance's heartbeat never lapses between renewals.
    if let Err(e) = engine.beat().await {
        tracing::warn!(error = %e, "could not announce this instance");
    }
    let heartbeat = tokio::spawn(beat_until_stopped(
        engine.clone(),
        clock.clone(),
        shortest.min(engine.lease_length() / 3),
        stop.clone(),
    ));
    let endpoints = scheduled.len();
    let mut tasks = Vec::new();
    for (endpoint, interval) in scheduled {
        tasks.push(tokio::spawn(schedule_endpoint(
            engine.clone(),
            clock.clone(),
            endpoint,
            [interval, reconcile_every],
            endpoints,
            stop.clone(),
        )));
    }
    for task in tasks {
        let _ = task.await;
    }
    let _ = heartbeat.await;
    engine.stop_beating().await;
}

/// Renews this instance's heartbeat every `every` until `stop`.
async fn beat_until_stopped(
    engine: Arc<Engine>,
    clock: Clock,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = clock.sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = engine.beat().await {
            tracing::warn!(error = %e, "could not renew this instance's heartbeat");
        }
    }
}

/// One endpoint's loop: once an interval, its sync if this instance takes the slot (within its
/// share of the `endpoints` scheduled), handing the schedule back after the run if it holds more
/// than its share; then its reconciliation if that slot is due too.
async fn schedule_endpoint(
    engine: Arc<Engine>,
    clock: Clock,
    endpoint: Endpoint,
    [interval, reconcile_every]: [Duration; 2],
    endpoints: usize,
    mut stop: watch::Receiver<bool>,
) {
    let (sync_job, reconcile_job) = (
        format!("sync-due:{endpoint}"),
        format!("reconcile-due:{endpoint}"),
    );
    // Each instance looks at the schedule once an interval, so a slot left alone by the instance
    // that took the last one for a whole interval more is another's to take.
    let grace = interval;
    loop {
        let take =
            engine.take_shared_slot(endpoint, &sync_job, interval, grace, endpoints, SYNC_SLOTS);
        match take.await {
            Ok(true) => {
                let slot = Slot {
                    job: &sync_job,
                    every: interval,
                };
                run_scheduled(&engine, endpoint, slot).await;
                // After the run, not before: the slot it moved goes with the schedule.
                let hand_back = engine.hand_back_excess(&sync_job, endpoints, SYNC_SLOTS);
                if let Err(e) = hand_back.await {
                    tracing::warn!(%endpoint, error = %e, "could not weigh this instance's share");
                }
            }
            Ok(false) => tracing::debug!(%endpoint, "not this instance's slot"),
            Err(e) => tracing::warn!(%endpoint, error = %e, "could not read the schedule"),
        }
        let reconcile = engine.take_slot(endpoint, &reconcile_job, reconcile_every, grace, false);
        match reconcile.await {
            Ok(true) => {
                let slot = Slot {
                    job: &reconcile_job,
                    every: reconcile_every,
                };
                reconcile_scheduled(&engine, endpoint, slot).await;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(%endpoint, error = %e, "could not read the reconciliation schedule")
            }
        }
        tokio::select! {
            () = clock.sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn reconcile_scheduled(engine: &Engine, endpoint: Endpoint, slot: Slot<'_>) {
    match engine.reconcile_slot(endpoint, slot).await {
        Ok(r) => {
            tracing::info!(%endpoint, missing = r.missing, different = r.different, "reconciled")
        }
        Err(SyncError::Busy { .. }) => {}
        Err(e) => tracing::warn!(%endpoint, error = %e, "reconciliation failed"),
    }
}

async fn run_scheduled(engine: &Engine, endpoint: Endpoint, slot: Slot<'_>) {
    match engine.run_slot(endpoint, slot).await {
        Ok(run) => {
            tracing::info!(%endpoint, records = run.records_read, conflicts = run.conflicts, failed_writes = run.failed_writes, "sync run done")
        }
        Err(SyncError::Paused(_)) => tracing::debug!(%endpoint, "paused"),
        Err(SyncError::Busy { holder, .. }) => {
            tracing::debug!(%endpoint, %holder, "another instance holds this endpoint");
        }
        Err(e) => tracing::warn!(%endpoint, error = %e, "sync run failed"),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn a_cycle_takes_partners_and_items_before_what_names_them() {
        use Endpoint::*;
        let all = [Invoices, Quotes, Accounts, SalesOrders, Contacts, Items];
        assert_eq!(
            waves(all),
            [
                vec![Accounts, Items],
                vec![Invoices, Quotes, SalesOrders, Contacts]
            ]
        );
        assert_eq!(waves([Contacts]), [vec![Contacts]]);
        assert!(waves([]).is_empty());
    }

    #[test]
    fn missing_credentials_name_the_settings_to_fill_in() {
        let mut settings = Settings::default();
        assert_eq!(
            missing_credentials(&settings).as_deref(),
            Some("crm.token or crm.oauth_refresh_token and erp.company_db")
        );
        settings.crm.oauth_refresh_token = SecretString::from("refresh");
        settings.sync.erp = ErpKind::Tryton;
        assert_eq!(
            missing_credentials(&settings).as_deref(),
            Some("tryton.database (with sync.erp = \"tryton\")")
        );
        settings.tryton.database = "sales".into();
        assert_eq!(missing_credentials(&settings), None);
        assert!(is_configured(&settings));
    }
}

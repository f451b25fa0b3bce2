//! The alerting loop of `serve`: evaluate the groups, then deliver what is due, every
//! `evaluation_interval_secs`, until told to stop.

use std::sync::Arc;
use std::time::Duration;

use super::AlertError;
use super::evaluate::Alerting;
use super::notifiers::build_notifiers;
use super::settings::AlertingSettings;
use super::worker::DeliveryWorker;
use crate::clock::Clock;
use crate::dedup::llm::LlmSettings;
use crate::lease::{LeaseError, Leases};
use crate::store::Store;

/// The lease job of the alert evaluation.
const EVALUATION_JOB: &str = "alert:evaluate";

/// Builds the evaluator and the worker; `None` when no receiver is configured (nothing to tell).
/// Alerts are explained by the LLM of `llm` when one is configured.
pub fn build(
    settings: &AlertingSettings,
    llm: &LlmSettings,
    store: Arc<dyn Store>,
    clock: Clock,
) -> Result<Option<(Alerting, DeliveryWorker)>, AlertError> {
    if settings.receivers.is_empty() {
        return Ok(None);
    }
    let alerting = Alerting::new(settings, store.clone())?.with_llm(llm)?;
    let notifiers = build_notifiers(
        &settings.receivers,
        Duration::from_secs(settings.delivery.timeout_secs),
    )?;
    let worker = DeliveryWorker::new(store, notifiers, settings.delivery.clone(), clock);
    Ok(Some((alerting, worker)))
}

/// Runs until `stop` turns true; a failed pass is logged and the next one tries again, since the
/// outbox and the notification log keep whatever was decided. The evaluation runs under a lease,
/// so of several instances on one database only one decides at a time (two deciding at once
/// would both enqueue a due group); delivery runs on every instance, its claims keep a
/// notification to one sender.
pub async fn run(
    alerting: Alerting,
    worker: DeliveryWorker,
    clock: Clock,
    leases: Leases,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match leases
            .hold(EVALUATION_JOB, alerting.run_once(clock.now()))
            .await
        {
            Ok(Ok(_)) | Err(LeaseError::Busy { .. }) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "alert evaluation failed"),
            Err(LeaseError::Store(e)) => tracing::error!(error = %e, "alert evaluation lease"),
        }
        if let Err(e) = worker.run_once().await {
            tracing::error!(error = %e, "notification delivery failed");
        }
        tokio::select! {
            () = clock.sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Evaluates and delivers until nothing due is left (at most `passes` rounds), for a run that
/// exits right after its work (`demo --once`).
pub async fn flush(alerting: &Alerting, worker: &DeliveryWorker, clock: &Clock, passes: usize) {
    for _ in 0..passes {
        let enqueued = match alerting.run_once(clock.now()).await {
            Ok(report) => report.enqueued,
            Err(e) => {
                tracing::error!(error = %e, "alert evaluation failed");
                0
            }
        };
        match worker.run_once().await {
            Ok(report) if enqueued == 0 && report.sent + report.retried + report.failed == 0 => {
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "notification delivery failed");
                return;
            }
        }
    }
}

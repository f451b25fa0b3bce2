//! The delivery worker: claims due notifications from the outbox, sends each through its
//! receiver, records the attempt and settles the row in one transaction. Retryable failures come
//! back with jittered exponential backoff; a receiver failing again and again raises a finding.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::AlertError;
use super::model::{Attempt, AttemptOutcome, OutboxEntry};
use super::notifiers::{Notification, Notifier, NotifyError};
use super::settings::DeliverySettings;
use crate::clock::Clock;
use crate::monitor::{FindingState, NewFinding, Severity};
use crate::store::Store;

pub const RECEIVER_FAILING_KIND: &str = "receiver_failing";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

/// Time for a worker to record what its sends did once they are over.
const SETTLE_MARGIN: Duration = Duration::from_secs(5);

/// How long a claim holds: `claim_secs`, but never less than a send may take plus the margin
/// to record it, or a second worker could take (and send) a notification still being sent.
fn claim_length(settings: &DeliverySettings) -> Duration {
    Duration::from_secs(settings.claim_secs)
        .max(Duration::from_secs(settings.timeout_secs) + SETTLE_MARGIN)
}

pub struct DeliveryWorker {
    store: Arc<dyn Store>,
    notifiers: HashMap<String, Arc<dyn Notifier>>,
    settings: DeliverySettings,
    clock: Clock,
    /// Names this worker's claims, so several workers or instances never send one row twice.
    id: String,
}

impl DeliveryWorker {
    pub fn new(
        store: Arc<dyn Store>,
        notifiers: HashMap<String, Arc<dyn Notifier>>,
        settings: DeliverySettings,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            notifiers,
            settings,
            clock,
            id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// One pass: claims what is due and sends it, concurrently.
    pub async fn run_once(&self) -> Result<DeliveryReport, AlertError> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_notifications(
                &self.id,
                now,
                now + claim_length(&self.settings),
                self.settings.batch_size,
            )
            .await?;
        let outcomes = join_all(claimed.iter().map(|entry| self.deliver(entry))).await;
        let mut report = DeliveryReport::default();
        let mut failing: HashMap<&str, String> = HashMap::new();
        let mut delivered: Vec<&str> = Vec::new();
        for (entry, outcome) in claimed.iter().zip(outcomes) {
            let (outcome, error) = outcome?;
            match outcome {
                AttemptOutcome::Sent => {
                    report.sent += 1;
                    delivered.push(&entry.receiver);
                }
                AttemptOutcome::Retry => report.retried += 1,
                AttemptOutcome::Failed => report.failed += 1,
            }
            if let Some(error) = error {
                failing.insert(&entry.receiver, error);
            }
        }
        for (receiver, error) in failing {
            self.check_receiver(receiver, &error).await?;
        }
        delivered.sort_unstable();
        delivered.dedup();
        for receiver in delivered {
            self.clear_receiver_finding(receiver).await?;
        }
        Ok(report)
    }

    async fn deliver(
        &self,
        entry: &OutboxEntry,
    ) -> Result<(AttemptOutcome, Option<String>), AlertError> {
        let started = Instant::now();
        let result = match self.notifiers.get(&entry.receiver) {
            None => Err(NotifyError::Permanent(format!(
                "no receiver named `{}` is configured",
                entry.receiver
            ))),
            Some(notifier) => match serde_json::from_value::<Notification>(entry.payload.clone()) {
                Err(e) => Err(NotifyError::Permanent(format!("unreadable payload: {e}"))),
                Ok(mut notification) => {
                    notification.delivery_key = Some(delivery_key(entry.id));
                    let timeout = Duration::from_secs(self.settings.timeout_secs);
                    tokio::time::timeout(timeout, notifier.notify(&notification))
                        .await
                        .unwrap_or_else(|_| {
                            Err(NotifyError::Retryable(format!(
                                "timed out after {}s",
                                timeout.as_secs()
                            )))
                        })
                }
            },
        };
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let now = self.clock.now();
        let (outcome, error, next) = match result {
            Ok(()) => (AttemptOutcome::Sent, None, entry.next_attempt_at),
            Err(e) => {
                let out_of_attempts = entry.attempts >= i64::from(self.settings.max_attempts);
                let outcome = if e.is_retryable() && !out_of_attempts {
                    AttemptOutcome::Retry
                } else {
                    AttemptOutcome::Failed
                };
                tracing::warn!(
                    receiver = %entry.receiver,
                    outbox_id = entry.id,
                    attempt = entry.attempts,
                    outcome = outcome.as_str(),
                    error = %e,
                    "notification not delivered"
                );
                (
                    outcome,
                    Some(e.to_string()),
                    now + self.backoff(entry.attempts),
                )
            }
        };
        crate::telemetry::count(
            crate::telemetry::NOTIFICATIONS,
            &[("receiver", &entry.receiver), ("outcome", outcome.as_str())],
        );
        let attempt = Attempt {
            outbox_id: entry.id,
            receiver: entry.receiver.clone(),
            attempted_at: now,
            outcome,
            error: error.clone(),
            latency_ms,
        };
        if !self
            .store
            .finish_notification(&self.id, &attempt, next)
            .await?
        {
            tracing::warn!(
                outbox_id = entry.id,
                "claim expired before the attempt was recorded; another worker holds it now"
            );
        }
        Ok((outcome, error))
    }

    /// Full jitter over an exponential step: between half and all of base * 2^(attempt-1).
    fn backoff(&self, attempt: i64) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let ceiling = self
            .settings
            .base_delay_ms
            .saturating_mul(1u64 << exponent)
            .min(self.settings.max_delay_ms);
        Duration::from_millis(ceiling / 2 + fastrand::u64(0..=ceiling / 2))
    }

    /// A receiver with `failing_after` failed attempts in a row since its last delivery raises
    /// (or refreshes) its own finding, so the admin learns alerts are not arriving.
    async fn check_receiver(&self, receiver: &str, error: &str) -> Result<(), AlertError> {
        let failures = self.store.receiver_failures(receiver).await?;
        if failures < i64::from(self.settings.failing_after) {
            return Ok(());
        }
        let now = self.clock.now();
        let since = self
            .store
            .notification_attempts(receiver)
            .await?
            .iter()
            .rev()
            .take_while(|a| a.outcome != AttemptOutcome::Sent)
            .last()
            .map(|a| a.attempted_at)
            .unwrap_or(now);
        self.store
            .upsert_finding(&NewFinding {
                kind: RECEIVER_FAILING_KIND.into(),
                severity: Severity::Critical,
                fingerprint: receiver_fingerprint(receiver),
                title: format!(
                    "Alert receiver `{receiver}` keeps failing: notifications are not arriving"
                ),
                evidence: serde_json::json!({
                    "receiver": receiver,
                    "failed_attempts": failures,
                    "last_error": error,
                }),
                started_at: since,
                detected_at: now,
            })
            .await?;
        Ok(())
    }

    async fn clear_receiver_finding(&self, receiver: &str) -> Result<(), AlertError> {
        let fingerprint = receiver_fingerprint(receiver);
        let open = self
            .store
            .findings(None)
            .await?
            .into_iter()
            .find(|f| f.fingerprint == fingerprint && f.state != FindingState::Resolved);
        if let Some(finding) = open {
            self.store
                .resolve_finding(finding.id, self.clock.now())
                .await?;
        }
        Ok(())
    }
}

/// One finding per failing receiver; the `connector` part lets routes send it elsewhere.
fn receiver_fingerprint(receiver: &str) -> String {
    format!("{RECEIVER_FAILING_KIND}:alerting:{receiver}")
}

/// The key every attempt at outbox entry `id` carries; outbox ids are unique in the database, so
/// the key is unique across instances.
pub fn delivery_key(id: i64) -> String {
    format!("syncwarden-outbox-{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_outlasts_the_send_it_covers() {
        let settings = |claim_secs, timeout_secs| DeliverySettings {
            claim_secs,
            timeout_secs,
            ..DeliverySettings::default()
        };
        assert_eq!(claim_length(&settings(60, 10)), Duration::from_secs(60));
        assert_eq!(claim_length(&settings(2, 10)), Duration::from_secs(15));
        assert_eq!(claim_length(&settings(2, 1)), Duration::from_secs(6));
    }
}

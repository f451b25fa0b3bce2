//! A short explanation on each alert (what happened, the likely cause, the suggested action):
//! asked of the LLM in the background as soon as the alert fires, with personal data redacted
//! and a strict timeout, and stored on the alert when it arrives. The notification never waits
//! for it: a group due before the answer (at `group_wait`) or without an LLM carries the
//! deterministic template instead.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::AlertError;
use super::model::{Alert, AlertStatus};
use crate::dedup::llm::{LlmClient, LlmSettings, Redactor, accept_prose, read_template};
use crate::store::Store;

/// The annotations an explanation is kept in.
pub const EXPLANATION: &str = "explanation";
/// `llm` or `template`.
pub const EXPLANATION_SOURCE: &str = "explanation_source";

/// Longest explanation accepted from the LLM: a few lines in a chat message.
const EXPLANATION_LIMIT: usize = 600;

/// The likely cause and the suggested action for a kind of finding.
fn advice(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "success_rate_drop" => (
            "the connector's API is failing: an outage, expired credentials or rate limiting",
            "check the connector (`syncwarden connectors check`) and the dead-letter list; failed writes are re-driven once it answers",
        ),
        "latency_p95" => (
            "the other system is slow or throttling, or the batches grew",
            "check the other system's status and the sync's retry and batch settings",
        ),
        "freshness" => (
            "no data is moving: the sync is paused, stopped or its cursor is stuck",
            "check that the endpoint is not paused and that `serve` is running its sync",
        ),
        "price_mismatch" => (
            "a price changed on one side only, or a price list is not synced",
            "compare the price lists and fix the price on the side that does not own it",
        ),
        "reconciliation_drift" => (
            "records were changed on both sides or written outside the sync",
            "review the drifted records and the ownership rules of the endpoint",
        ),
        "receiver_failing" => (
            "the alert receiver is unreachable or refuses the notifications",
            "check the receiver's URL or SMTP settings and credentials (`syncwarden alert test`)",
        ),
        _ => (
            "see the finding's evidence",
            "open the finding in the admin UI and follow its evidence",
        ),
    }
}

fn label<'a>(alert: &'a Alert, name: &str) -> &'a str {
    alert.labels.get(name).map(String::as_str).unwrap_or("")
}

/// The deterministic explanation, from the alert's labels alone.
pub fn template(alert: &Alert) -> String {
    let kind = label(alert, "type");
    let summary = alert
        .annotations
        .get("summary")
        .map(String::as_str)
        .unwrap_or(&alert.fingerprint);
    let place = [label(alert, "endpoint"), label(alert, "connector")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let place = if place.is_empty() {
        String::new()
    } else {
        format!(" on {place}")
    };
    if alert.status == AlertStatus::Resolved {
        let at = alert.ends_at.unwrap_or(alert.updated_at);
        return format!(
            "What happened: {summary}{place}, since {}, resolved at {at}. Likely cause: no longer \
             present. Suggested action: none.",
            alert.starts_at
        );
    }
    let (cause, action) = advice(kind);
    format!(
        "What happened: {summary}{place} ({} severity), since {}. Likely cause: {cause}. \
         Suggested action: {action}.",
        label(alert, "severity"),
        alert.starts_at
    )
}

/// An LLM client, the prompt template and a bound on requests in flight.
struct Asker {
    llm: LlmClient,
    template: String,
    permits: Semaphore,
}

impl Asker {
    /// The alert as the prompt shows it, personal data redacted unless configured otherwise.
    fn prompt(&self, alert: &Alert) -> String {
        let evidence: serde_json::Value = alert
            .annotations
            .get("evidence")
            .and_then(|e| serde_json::from_str(e).ok())
            .unwrap_or(serde_json::Value::Null);
        let facts = serde_json::json!({
            "labels": alert.labels,
            "summary": alert.annotations.get("summary"),
            "since": alert.starts_at,
            "evidence": evidence,
        });
        let facts = if self.llm.redact {
            Redactor::default().json(&facts)
        } else {
            facts
        };
        self.template.replace(
            "{{alert}}",
            &serde_json::to_string_pretty(&facts).unwrap_or_default(),
        )
    }

    async fn explain(&self, store: &dyn Store, mut alert: Alert) {
        let Ok(_permit) = self.permits.acquire().await else {
            return;
        };
        let answer = match self.llm.complete(self.prompt(&alert)).await {
            Ok(reply) => accept_prose(&reply, EXPLANATION_LIMIT),
            Err(e) => Err(e),
        };
        let text = match answer {
            Ok(text) => text,
            Err(error) => {
                tracing::warn!(fingerprint = %alert.fingerprint, error = %error, "LLM explanation failed; the template one is used");
                return;
            }
        };
        alert.annotations.insert(EXPLANATION.into(), text);
        alert
            .annotations
            .insert(EXPLANATION_SOURCE.into(), "llm".into());
        match store
            .set_alert_annotations(&alert.fingerprint, alert.updated_at, &alert.annotations)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(fingerprint = %alert.fingerprint, "alert changed before its explanation arrived");
            }
            Err(error) => {
                tracing::warn!(fingerprint = %alert.fingerprint, error = %error, "explanation not stored");
            }
        }
    }
}

pub struct Explainer {
    asker: Option<Arc<Asker>>,
    store: Arc<dyn Store>,
    tasks: Mutex<JoinSet<()>>,
}

impl Explainer {
    /// Explains with the template only.
    pub fn template_only(store: Arc<dyn Store>) -> Self {
        Self {
            asker: None,
            store,
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// Asks the LLM of `[llm]` too, when one is configured.
    pub fn new(
        llm: &LlmSettings,
        prompt: &Path,
        store: Arc<dyn Store>,
    ) -> Result<Self, AlertError> {
        let asker = match LlmClient::from_settings(llm) {
            None => None,
            Some(client) => Some(Arc::new(Asker {
                llm: client,
                template: read_template(prompt)?,
                permits: Semaphore::new(llm.concurrency.max(1)),
            })),
        };
        Ok(Self {
            asker,
            ..Self::template_only(store)
        })
    }

    /// Starts asking for the explanation of an alert that just fired, in the background.
    pub fn request(&self, alert: &Alert) {
        let Some(asker) = &self.asker else {
            return;
        };
        if alert.status != AlertStatus::Firing {
            return;
        }
        let (asker, store, alert) = (asker.clone(), self.store.clone(), alert.clone());
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move { asker.explain(store.as_ref(), alert).await });
    }

    /// Waits until every explanation asked for so far has arrived or failed.
    pub async fn settle(&self) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        while tasks.join_next().await.is_some() {}
    }
}

/// Gives an alert about to be notified its explanation: the stored one, or the template.
pub fn explained(alert: &Alert) -> super::model::Labels {
    let mut annotations = alert.annotations.clone();
    if !annotations.contains_key(EXPLANATION) {
        annotations.insert(EXPLANATION.into(), template(alert));
        annotations.insert(EXPLANATION_SOURCE.into(), "template".into());
    }
    annotations
}

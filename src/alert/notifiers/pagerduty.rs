//! PagerDuty Events API v2: one trigger or resolve event per alert, deduplicated by fingerprint,
//! so resending a group after a failure part-way through opens nothing twice.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::{
    HEALTH_TIMEOUT, Notification, NotifiedAlert, Notifier, NotifyError, check_reachable, post,
    truncate_with_notice,
};
use crate::alert::model::AlertStatus;
use crate::alert::settings::PagerDutySettings;

pub const SUMMARY_LIMIT: usize = 1024;
const DEDUP_KEY_LIMIT: usize = 255;

pub struct PagerDutyNotifier {
    url: String,
    routing_key: SecretString,
    client: reqwest::Client,
}

impl PagerDutyNotifier {
    pub fn new(settings: &PagerDutySettings, client: reqwest::Client) -> Self {
        Self {
            url: settings.url.clone(),
            routing_key: settings.routing_key.clone(),
            client,
        }
    }

    pub fn event(&self, alert: &NotifiedAlert) -> serde_json::Value {
        let action = match alert.status {
            AlertStatus::Firing => "trigger",
            AlertStatus::Resolved => "resolve",
        };
        let severity = match alert.label("severity") {
            "critical" => "critical",
            "warning" => "warning",
            _ => "info",
        };
        serde_json::json!({
            "routing_key": self.routing_key.expose_secret(),
            "event_action": action,
            "dedup_key": dedup_key(&alert.fingerprint),
            "payload": {
                "summary": truncate_with_notice(alert.summary(), SUMMARY_LIMIT),
                "severity": severity,
                "source": "syncwarden",
                "timestamp": alert.starts_at,
                "component": alert.label("connector"),
                "group": alert.label("endpoint"),
                "class": alert.label("type"),
                "custom_details": alert.annotations,
            },
            "links": [{"href": alert.generator_url, "text": "Finding"}],
        })
    }
}

/// The fingerprint, or its SHA-256 when it is longer than PagerDuty takes.
fn dedup_key(fingerprint: &str) -> String {
    if fingerprint.len() <= DEDUP_KEY_LIMIT {
        fingerprint.to_string()
    } else {
        hex::encode(Sha256::digest(fingerprint.as_bytes()))
    }
}

#[async_trait]
impl Notifier for PagerDutyNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        for alert in &n.alerts {
            let body = serde_json::to_vec(&self.event(alert))
                .map_err(|e| NotifyError::Permanent(e.to_string()))?;
            post(&self.client, &self.url, body, &[]).await?;
        }
        Ok(())
    }

    async fn health_check(&self) -> Result<(), NotifyError> {
        check_reachable(&self.url, HEALTH_TIMEOUT).await
    }
}

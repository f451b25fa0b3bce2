//! Generic webhook: an Alertmanager v4-like JSON payload, signed with HMAC-SHA256 of the raw body.

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::{HEALTH_TIMEOUT, Notification, Notifier, NotifyError, check_reachable, post};
use crate::alert::settings::WebhookSettings;

pub const SIGNATURE_HEADER: &str = "X-Syncwarden-Signature";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

pub struct WebhookNotifier {
    url: SecretString,
    secret: SecretString,
    max_alerts: usize,
    client: reqwest::Client,
}

impl WebhookNotifier {
    pub fn new(settings: &WebhookSettings, client: reqwest::Client) -> Self {
        Self {
            url: settings.url.clone(),
            secret: settings.secret.clone(),
            max_alerts: settings.max_alerts,
            client,
        }
    }

    pub fn payload(&self, n: &Notification) -> serde_json::Value {
        let keep = if self.max_alerts == 0 {
            n.alerts.len()
        } else {
            self.max_alerts.min(n.alerts.len())
        };
        let alerts: Vec<serde_json::Value> = n.alerts[..keep]
            .iter()
            .map(|a| {
                serde_json::json!({
                    "status": a.status.as_str(),
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": a.starts_at,
                    "endsAt": a.ends_at,
                    "generatorURL": a.generator_url,
                    "fingerprint": a.fingerprint,
                })
            })
            .collect();
        serde_json::json!({
            "version": "4",
            "groupKey": n.group_key,
            "truncatedAlerts": n.alerts.len() - keep,
            "status": n.status.as_str(),
            "receiver": n.receiver,
            "groupLabels": n.group_labels,
            "commonLabels": n.common_labels,
            "commonAnnotations": n.common_annotations,
            "externalURL": n.external_url,
            "alerts": alerts,
        })
    }
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(&self.payload(n))
            .map_err(|e| NotifyError::Permanent(e.to_string()))?;
        let secret = self.secret.expose_secret();
        let mut headers: Vec<(&str, String)> = Vec::new();
        if !secret.is_empty() {
            headers.push((SIGNATURE_HEADER, signature(secret, &body)));
        }
        if let Some(key) = &n.delivery_key {
            headers.push((IDEMPOTENCY_HEADER, key.clone()));
        }
        post(&self.client, self.url.expose_secret(), body, &headers).await?;
        Ok(())
    }

    async fn health_check(&self) -> Result<(), NotifyError> {
        check_reachable(self.url.expose_secret(), HEALTH_TIMEOUT).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

//! Receivers: one trait, one implementation per kind, built from the serde-tagged settings.

mod email;
mod pagerduty;
mod slack;
mod teams;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::AlertError;
use super::model::{AlertStatus, Labels};
use super::settings::ReceiverSettings;
use crate::domain::Timestamp;

pub use email::EmailNotifier;
pub use pagerduty::PagerDutyNotifier;
pub use slack::SlackNotifier;
pub use teams::TeamsNotifier;
pub use webhook::WebhookNotifier;

/// What a receiver is told about one group: the payload stored in the outbox, rendered by each
/// receiver into its own format when sent (so a retry sends the same bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub receiver: String,
    pub group_key: String,
    /// Firing when any alert in it fires.
    pub status: AlertStatus,
    pub group_labels: Labels,
    pub common_labels: Labels,
    pub common_annotations: Labels,
    pub external_url: String,
    pub alerts: Vec<NotifiedAlert>,
    /// The same on every attempt at one outbox entry (set by the worker, not stored): receivers
    /// pass it on (`Idempotency-Key`, `Message-ID`) so a resend after a crash between the send
    /// and its record can be recognised by the other side.
    #[serde(skip)]
    pub delivery_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifiedAlert {
    pub status: AlertStatus,
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub fingerprint: String,
    /// The finding in the admin UI.
    pub generator_url: String,
}

impl NotifiedAlert {
    pub fn summary(&self) -> &str {
        self.annotations
            .get("summary")
            .map(String::as_str)
            .unwrap_or(&self.fingerprint)
    }

    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }

    /// What happened, the likely cause and the suggested action (from the LLM or the template).
    pub fn explanation(&self) -> Option<&str> {
        self.annotations
            .get(crate::alert::explain::EXPLANATION)
            .map(String::as_str)
    }
}

impl Notification {
    /// `[FIRING:3] success_rate_drop (items crm)`: the status, the count and the group's labels.
    pub fn title(&self) -> String {
        let firing = self
            .alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
            .count();
        let count = if self.status == AlertStatus::Firing {
            firing
        } else {
            self.alerts.len()
        };
        let labels: Vec<&str> = self.group_labels.values().map(String::as_str).collect();
        format!(
            "[{}:{count}] {}",
            self.status.as_str().to_uppercase(),
            if labels.is_empty() {
                "syncwarden".to_string()
            } else {
                labels.join(" ")
            }
        )
    }

    /// One entry per alert, for the chat receivers: a line, and its explanation below it.
    pub fn lines(&self) -> Vec<String> {
        self.alerts
            .iter()
            .map(|a| {
                let line = format!(
                    "[{}] {} ({}) {}",
                    a.status.as_str(),
                    a.summary(),
                    a.label("severity"),
                    a.generator_url
                );
                match a.explanation() {
                    Some(text) => format!("{line}\n> {text}"),
                    None => line,
                }
            })
            .collect()
    }
}

/// Why a send failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// 5xx, 429, timeouts, refused connections, transient SMTP replies.
    #[error("{0}")]
    Retryable(String),
    /// Other 4xx, permanent SMTP replies, a payload the receiver cannot take.
    #[error("{0}")]
    Permanent(String),
}

impl NotifyError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, NotifyError::Retryable(_))
    }
}

#[async_trait]
pub trait Notifier: Send + Sync {
    async fn notify(&self, notification: &Notification) -> Result<(), NotifyError>;

    /// Checks the receiver can be reached without notifying anyone.
    async fn health_check(&self) -> Result<(), NotifyError>;
}

/// Builds every configured receiver, by name.
pub fn build_notifiers(
    receivers: &[ReceiverSettings],
    timeout: Duration,
) -> Result<HashMap<String, Arc<dyn Notifier>>, AlertError> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| AlertError::Receiver {
            name: "http client".into(),
            message: e.to_string(),
        })?;
    let mut built: HashMap<String, Arc<dyn Notifier>> = HashMap::new();
    for receiver in receivers {
        let notifier: Arc<dyn Notifier> = match receiver {
            ReceiverSettings::Email(s) => Arc::new(EmailNotifier::new(s, timeout)?),
            ReceiverSettings::Webhook(s) => Arc::new(WebhookNotifier::new(s, http.clone())),
            ReceiverSettings::Slack(s) => Arc::new(SlackNotifier::new(s, http.clone())),
            ReceiverSettings::Teams(s) => Arc::new(TeamsNotifier::new(s, http.clone())),
            ReceiverSettings::Pagerduty(s) => Arc::new(PagerDutyNotifier::new(s, http.clone())),
        };
        if built
            .insert(receiver.name().to_string(), notifier)
            .is_some()
        {
            return Err(AlertError::DuplicateReceiver(receiver.name().into()));
        }
    }
    Ok(built)
}

/// POSTs a JSON body and classifies the answer: 2xx is success, 429 and 5xx are worth retrying,
/// other 4xx are not; timeouts and connection failures are retried.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<String, NotifyError> {
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.map_err(classify_reqwest)?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let snippet: String = text.chars().take(200).collect();
    if status.is_success() {
        Ok(text)
    } else if status.as_u16() == 429 || status.is_server_error() {
        Err(NotifyError::Retryable(format!("HTTP {status}: {snippet}")))
    } else {
        Err(NotifyError::Permanent(format!("HTTP {status}: {snippet}")))
    }
}

fn classify_reqwest(e: reqwest::Error) -> NotifyError {
    if e.is_timeout() || e.is_connect() || e.is_request() {
        NotifyError::Retryable(format!("request failed: {e}"))
    } else {
        NotifyError::Permanent(format!("request failed: {e}"))
    }
}

/// Opens (and drops) a TCP connection to the URL's host: reachable without posting anything.
async fn check_reachable(url: &str, timeout: Duration) -> Result<(), NotifyError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| NotifyError::Permanent(format!("bad url: {e}")))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| NotifyError::Permanent("url without a host".into()))?;
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| NotifyError::Permanent("url without a port".into()))?;
    tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| NotifyError::Retryable(format!("{host}:{port}: connect timed out")))?
        .map_err(|e| NotifyError::Retryable(format!("{host}:{port}: {e}")))?;
    Ok(())
}

/// Cuts `text` to at most `limit` characters, saying so at the end when it had to.
pub fn truncate_with_notice(text: &str, limit: usize) -> String {
    let length = text.chars().count();
    if length <= limit {
        return text.to_string();
    }
    let notice = format!("\n… truncated ({length} characters, limit {limit})");
    let keep = limit.saturating_sub(notice.chars().count());
    let mut cut: String = text.chars().take(keep).collect();
    cut.push_str(&notice);
    cut
}

const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_stays_within_the_limit_and_says_so() {
        let long = "x".repeat(5000);
        let cut = truncate_with_notice(&long, 3000);
        assert_eq!(cut.chars().count(), 3000);
        assert!(cut.ends_with("truncated (5000 characters, limit 3000)"));
        assert_eq!(truncate_with_notice("short", 3000), "short");
    }
}

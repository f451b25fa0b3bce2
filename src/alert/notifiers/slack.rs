//! Slack incoming webhook: `{"text"}`, cut to Slack's 3,000-character section limit with a notice.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{
    HEALTH_TIMEOUT, Notification, Notifier, NotifyError, check_reachable, post,
    truncate_with_notice,
};
use crate::alert::settings::ChatSettings;

pub const SLACK_TEXT_LIMIT: usize = 3000;

pub struct SlackNotifier {
    url: SecretString,
    client: reqwest::Client,
}

impl SlackNotifier {
    pub fn new(settings: &ChatSettings, client: reqwest::Client) -> Self {
        Self {
            url: settings.url.clone(),
            client,
        }
    }

    pub fn payload(n: &Notification) -> serde_json::Value {
        let text = format!("*{}*\n{}", n.title(), n.lines().join("\n"));
        serde_json::json!({ "text": truncate_with_notice(&text, SLACK_TEXT_LIMIT) })
    }
}

#[async_trait]
impl Notifier for SlackNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(&Self::payload(n))
            .map_err(|e| NotifyError::Permanent(e.to_string()))?;
        post(&self.client, self.url.expose_secret(), body, &[]).await?;
        Ok(())
    }

    async fn health_check(&self) -> Result<(), NotifyError> {
        check_reachable(self.url.expose_secret(), HEALTH_TIMEOUT).await
    }
}

//! Microsoft Teams workflow webhook: an Adaptive Card in a message envelope (the Office 365
//! connector format is retired).

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::{
    HEALTH_TIMEOUT, Notification, Notifier, NotifyError, check_reachable, post,
    truncate_with_notice,
};
use crate::alert::settings::ChatSettings;

/// Teams refuses messages over about 28 KB; the card's text stays well under it.
pub const TEAMS_TEXT_LIMIT: usize = 20_000;

pub struct TeamsNotifier {
    url: SecretString,
    client: reqwest::Client,
}

impl TeamsNotifier {
    pub fn new(settings: &ChatSettings, client: reqwest::Client) -> Self {
        Self {
            url: settings.url.clone(),
            client,
        }
    }

    pub fn payload(n: &Notification) -> serde_json::Value {
        let text = truncate_with_notice(&n.lines().join("\n\n"), TEAMS_TEXT_LIMIT);
        serde_json::json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.2",
                    "body": [
                        {"type": "TextBlock", "text": n.title(), "weight": "Bolder", "wrap": true},
                        {"type": "TextBlock", "text": text, "wrap": true}
                    ]
                }
            }]
        })
    }
}

#[async_trait]
impl Notifier for TeamsNotifier {
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

//! The demo's alerting flags: a newcomer points it at a local mail catcher or webhook and sees
//! real notifications, with short group timers.

use clap::Args;
use secrecy::SecretString;

use super::AlertError;
use super::settings::{
    AlertingSettings, EmailSettings, ReceiverSettings, RouteSettings, SmtpTls, WebhookSettings,
};

#[derive(Debug, Clone, Default, Args)]
pub struct DemoAlertArgs {
    /// SMTP server for alert emails: smtp://HOST:PORT (plain, e.g. a local mail catcher) or
    /// smtps://HOST:PORT (implicit TLS).
    #[arg(long, value_name = "URL", requires = "alert_email")]
    pub smtp_url: Option<String>,
    /// Recipient of the alert emails.
    #[arg(long, value_name = "ADDR", requires = "smtp_url")]
    pub alert_email: Option<String>,
    /// Webhook receiving the alerts as Alertmanager-like JSON.
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
}

impl DemoAlertArgs {
    /// Adds the receivers the flags name and routes every alert to each of them; no flag leaves
    /// the settings as they are.
    pub fn apply(&self, settings: &mut AlertingSettings, port: u16) -> Result<(), AlertError> {
        let mut receivers = Vec::new();
        if let (Some(url), Some(to)) = (&self.smtp_url, &self.alert_email) {
            let invalid = |message: String| AlertError::Receiver {
                name: "demo-email".into(),
                message,
            };
            let parsed = reqwest::Url::parse(url).map_err(|e| invalid(format!("{url}: {e}")))?;
            let tls = match parsed.scheme() {
                "smtp" => SmtpTls::None,
                "smtps" => SmtpTls::Tls,
                other => return Err(invalid(format!("scheme `{other}` (smtp or smtps)"))),
            };
            receivers.push(ReceiverSettings::Email(EmailSettings {
                name: "demo-email".into(),
                send_resolved: Some(true),
                host: parsed.host_str().unwrap_or("127.0.0.1").to_string(),
                port: parsed
                    .port()
                    .unwrap_or(if tls == SmtpTls::Tls { 465 } else { 25 }),
                tls,
                username: String::new(),
                password: SecretString::from(""),
                from: "syncwarden demo <syncwarden@localhost>".into(),
                to: vec![to.clone()],
            }));
        }
        if let Some(url) = &self.webhook_url {
            receivers.push(ReceiverSettings::Webhook(WebhookSettings {
                name: "demo-webhook".into(),
                send_resolved: None,
                url: SecretString::from(url.clone()),
                secret: SecretString::from(""),
                max_alerts: 0,
            }));
        }
        if receivers.is_empty() {
            return Ok(());
        }
        settings.base_url = format!("http://127.0.0.1:{port}");
        settings.evaluation_interval_secs = 2;
        settings.route = RouteSettings {
            receiver: Some(receivers[0].name().to_string()),
            group_by: Some(vec!["type".into()]),
            group_wait_secs: Some(0),
            group_interval_secs: Some(30),
            repeat_interval_secs: Some(3600),
            routes: receivers
                .iter()
                .map(|r| RouteSettings {
                    receiver: Some(r.name().to_string()),
                    continue_matching: true,
                    ..RouteSettings::default()
                })
                .collect(),
            ..RouteSettings::default()
        };
        settings.receivers.extend(receivers);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_receivers_routed_to_each() {
        let args = DemoAlertArgs {
            smtp_url: Some("smtp://127.0.0.1:1025".into()),
            alert_email: Some("me@example.test".into()),
            webhook_url: Some("http://127.0.0.1:9000/hook".into()),
        };
        let mut settings = AlertingSettings::default();
        args.apply(&mut settings, 8080).unwrap();
        assert_eq!(settings.receivers.len(), 2);
        let ReceiverSettings::Email(email) = &settings.receivers[0] else {
            panic!("email first");
        };
        assert_eq!((email.host.as_str(), email.port), ("127.0.0.1", 1025));
        assert_eq!(email.tls, SmtpTls::None);
        assert_eq!(settings.route.routes.len(), 2);
        assert!(settings.route.routes.iter().all(|r| r.continue_matching));
        assert_eq!(settings.route.group_wait_secs, Some(0));

        let mut untouched = AlertingSettings::default();
        DemoAlertArgs::default()
            .apply(&mut untouched, 8080)
            .unwrap();
        assert!(untouched.receivers.is_empty());
        let bad = DemoAlertArgs {
            smtp_url: Some("http://x:1".into()),
            alert_email: Some("a@b.c".into()),
            webhook_url: None,
        };
        assert!(bad.apply(&mut AlertingSettings::default(), 8080).is_err());
    }
}

//! Email over SMTP with lettre: STARTTLS, implicit TLS or (for a local relay) plain; optional
//! authentication; a multipart message with a plain-text and an HTML part carrying each finding's
//! evidence and its link in the admin UI.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::{Notification, NotifiedAlert, Notifier, NotifyError};
use crate::alert::AlertError;
use crate::alert::settings::{EmailSettings, SmtpTls};

pub struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl EmailNotifier {
    pub fn new(settings: &EmailSettings, timeout: Duration) -> Result<Self, AlertError> {
        let invalid = |message: String| AlertError::Receiver {
            name: settings.name.clone(),
            message,
        };
        let mut builder = match settings.tls {
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
                    .map_err(|e| invalid(e.to_string()))?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)
                .map_err(|e| invalid(e.to_string()))?,
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
        }
        .port(settings.port)
        .timeout(Some(timeout));
        if !settings.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                settings.username.clone(),
                settings.password.expose_secret().to_string(),
            ));
        }
        let from = settings
            .from
            .parse()
            .map_err(|e| invalid(format!("from `{}`: {e}", settings.from)))?;
        let to = settings
            .to
            .iter()
            .map(|addr| {
                addr.parse()
                    .map_err(|e| invalid(format!("to `{addr}`: {e}")))
            })
            .collect::<Result<Vec<Mailbox>, _>>()?;
        if to.is_empty() {
            return Err(invalid("no recipient (`to` is empty)".into()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            to,
        })
    }

    /// The same SMTP server and sender, writing to `to` instead (the weekly digest's readers).
    pub fn with_recipients(
        settings: &EmailSettings,
        to: &[String],
        timeout: Duration,
    ) -> Result<Self, AlertError> {
        let settings = EmailSettings {
            to: to.to_vec(),
            ..settings.clone()
        };
        Self::new(&settings, timeout)
    }

    pub fn message(&self, n: &Notification) -> Result<Message, NotifyError> {
        let mut builder = self.builder(format!("syncwarden {}", n.title()));
        if let Some(key) = &n.delivery_key {
            // One Message-ID per outbox entry: a resend is the same message to mail clients.
            builder = builder.message_id(Some(format!("<{key}@syncwarden>")));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(plain_text(n), html(n)))
            .map_err(|e| NotifyError::Permanent(format!("cannot build the email: {e}")))
    }

    fn compose(&self, subject: String, body: MultiPart) -> Result<Message, NotifyError> {
        self.builder(subject)
            .multipart(body)
            .map_err(|e| NotifyError::Permanent(format!("cannot build the email: {e}")))
    }

    fn builder(&self, subject: String) -> lettre::message::MessageBuilder {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(header::MIME_VERSION_1_0);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
    }

    /// Sends any message from this receiver's sender to its recipients.
    pub async fn send(&self, subject: String, body: MultiPart) -> Result<(), NotifyError> {
        let message = self.compose(subject, body)?;
        self.deliver(message).await
    }

    async fn deliver(&self, message: Message) -> Result<(), NotifyError> {
        self.transport.send(message).await.map_err(|e| {
            // Only a 5xx reply is final; connection failures and 4xx replies may pass later.
            if e.is_permanent() {
                NotifyError::Permanent(format!("SMTP: {e}"))
            } else {
                NotifyError::Retryable(format!("SMTP: {e}"))
            }
        })?;
        Ok(())
    }
}

fn evidence_lines(alert: &NotifiedAlert) -> Vec<(String, String)> {
    let evidence: serde_json::Value = alert
        .annotations
        .get("evidence")
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or(serde_json::Value::Null);
    match evidence {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| {
                let value = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, value)
            })
            .collect(),
        serde_json::Value::Null => Vec::new(),
        other => vec![("evidence".into(), other.to_string())],
    }
}

fn plain_text(n: &Notification) -> String {
    let mut out = format!("{}\n\n", n.title());
    for alert in &n.alerts {
        out.push_str(&format!(
            "[{}] {}\n  severity: {}  type: {}  endpoint: {}  connector: {}\n  since: {}\n",
            alert.status.as_str().to_uppercase(),
            alert.summary(),
            alert.label("severity"),
            alert.label("type"),
            alert.label("endpoint"),
            alert.label("connector"),
            alert.starts_at,
        ));
        if let Some(ended) = alert.ends_at {
            out.push_str(&format!("  resolved: {ended}\n"));
        }
        if let Some(text) = alert.explanation() {
            out.push_str(&format!("  {text}\n"));
        }
        for (key, value) in evidence_lines(alert) {
            out.push_str(&format!("  {key}: {value}\n"));
        }
        out.push_str(&format!("  {}\n\n", alert.generator_url));
    }
    out
}

/// Inline styles only: mail clients drop style sheets and scripts.
fn html(n: &Notification) -> String {
    let mut out = format!(
        "<!DOCTYPE html><html><body style=\"font-family:Arial,sans-serif;color:#222\">\
         <h2 style=\"margin:0 0 12px\">{}</h2>",
        escape(&n.title())
    );
    for alert in &n.alerts {
        let colour = match (alert.status, alert.label("severity")) {
            (crate::alert::AlertStatus::Resolved, _) => "#2e7d32",
            (_, "critical") => "#c62828",
            (_, "warning") => "#ef6c00",
            _ => "#1565c0",
        };
        out.push_str(&format!(
            "<div style=\"border-left:4px solid {colour};padding:4px 12px;margin:12px 0\">\
             <p style=\"margin:0\"><strong>[{}] {}</strong></p>\
             <p style=\"margin:4px 0;color:#555\">severity {} &middot; {} &middot; {} {} &middot; since {}</p>\
             {}<table style=\"border-collapse:collapse;font-size:13px\">",
            alert.status.as_str().to_uppercase(),
            escape(alert.summary()),
            escape(alert.label("severity")),
            escape(alert.label("type")),
            escape(alert.label("endpoint")),
            escape(alert.label("connector")),
            alert.starts_at,
            alert.explanation().map_or_else(String::new, |text| format!(
                "<p style=\"margin:4px 0;font-style:italic\">{}</p>",
                escape(text)
            )),
        ));
        for (key, value) in evidence_lines(alert) {
            out.push_str(&format!(
                "<tr><td style=\"padding:2px 8px 2px 0;color:#555\">{}</td><td style=\"padding:2px 0\">{}</td></tr>",
                escape(&key),
                escape(&value)
            ));
        }
        out.push_str(&format!(
            "</table><p style=\"margin:6px 0\"><a href=\"{0}\">{0}</a></p></div>",
            escape(&alert.generator_url)
        ));
    }
    out.push_str("</body></html>");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[async_trait]
impl Notifier for EmailNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), NotifyError> {
        self.deliver(self.message(n)?).await
    }

    async fn health_check(&self) -> Result<(), NotifyError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(NotifyError::Retryable(
                "SMTP server did not answer NOOP".into(),
            )),
            Err(e) => Err(NotifyError::Retryable(format!("SMTP: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_what_it_quotes() {
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}

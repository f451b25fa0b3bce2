//! `syncwarden alert ...`: operator commands.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use super::model::{AlertStatus, Labels};
use super::notifiers::{Notification, NotifiedAlert, build_notifiers};
use crate::config::Settings;
use crate::domain::Timestamp;

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Check a configured receiver can be reached, then send it a test notification directly
    /// (not through the outbox).
    Test {
        /// The receiver's `name` in [[alerting.receivers]].
        #[arg(long)]
        receiver: String,
    },
}

pub async fn run_command(settings: &Settings, command: AlertCommand) -> anyhow::Result<()> {
    match command {
        AlertCommand::Test { receiver } => {
            let alerting = &settings.alerting;
            let notifiers = build_notifiers(
                &alerting.receivers,
                Duration::from_secs(alerting.delivery.timeout_secs),
            )?;
            let notifier = notifiers.get(&receiver).with_context(|| {
                let names: Vec<&str> = alerting.receivers.iter().map(|r| r.name()).collect();
                format!("no receiver named `{receiver}` (configured: {names:?})")
            })?;
            notifier
                .health_check()
                .await
                .with_context(|| format!("receiver `{receiver}` is not reachable"))?;
            notifier
                .notify(&test_notification(&receiver, &alerting.base_url))
                .await
                .with_context(|| format!("receiver `{receiver}` refused the test notification"))?;
            println!("test notification delivered to `{receiver}`");
            Ok(())
        }
    }
}

fn test_notification(receiver: &str, base_url: &str) -> Notification {
    let labels: Labels = [
        ("type", "test"),
        ("severity", "info"),
        ("endpoint", "none"),
        ("connector", "none"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut annotations = Labels::new();
    annotations.insert(
        "summary".into(),
        "Test notification from `syncwarden alert test`: this receiver works".into(),
    );
    annotations.insert(
        "evidence".into(),
        r#"{"note":"no finding behind it"}"#.into(),
    );
    Notification {
        receiver: receiver.to_string(),
        group_key: "test".into(),
        status: AlertStatus::Firing,
        group_labels: Labels::from([("type".to_string(), "test".to_string())]),
        common_labels: labels.clone(),
        common_annotations: annotations.clone(),
        external_url: base_url.to_string(),
        alerts: vec![NotifiedAlert {
            status: AlertStatus::Firing,
            labels,
            annotations,
            starts_at: Timestamp::now_utc(),
            ends_at: None,
            fingerprint: "test".into(),
            generator_url: format!("{}/ui/findings", base_url.trim_end_matches('/')),
        }],
    }
}

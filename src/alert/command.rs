//! `syncwarden alert ...`: operator commands (test a receiver, list alerts, manage silences).

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use super::matcher::Matcher;
use super::model::{AlertStatus, Labels, NewSilence};
use super::notifiers::{Notification, NotifiedAlert, build_notifiers};
use crate::config::Settings;
use crate::domain::Timestamp;

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Firing alerts and those resolved in the last day, with why each muted one is muted.
    List,
    /// Silences: mute alerts matching labels for a while, with an author and a reason.
    Silence {
        #[command(subcommand)]
        which: SilenceCommand,
    },
    /// Check a configured receiver can be reached, then send it a test notification directly
    /// (not through the outbox).
    Test {
        /// The receiver's `name` in [[alerting.receivers]].
        #[arg(long)]
        receiver: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Add a silence starting now.
    Add {
        /// A label matcher (name=value, name!=value, name=~regex, name!~regex); repeat for more,
        /// all must hold.
        #[arg(long = "matcher", required = true)]
        matchers: Vec<String>,
        /// How long it lasts, in minutes.
        #[arg(long, default_value_t = 120)]
        minutes: u64,
        #[arg(long)]
        author: String,
        /// Why (a ticket, a maintenance window).
        #[arg(long)]
        comment: String,
    },
    /// Every silence: active, pending or expired, and how many alerts each mutes now (an active
    /// silence matching nothing is flagged, so stale ones do not pile up).
    List,
}

pub async fn run_command(settings: &Settings, command: AlertCommand) -> anyhow::Result<()> {
    match command {
        AlertCommand::List => {
            let store = crate::startup::open_store(settings).await?;
            let since = Timestamp::now_utc() - Duration::from_secs(24 * 3600);
            for alert in store.alerts(since).await? {
                let labels: Vec<String> = alert
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                println!(
                    "{:<8} {:<40} {}  since {}{}",
                    alert.status.as_str(),
                    alert.fingerprint,
                    labels.join(","),
                    alert.starts_at,
                    alert
                        .muted_by
                        .map(|why| format!("  MUTED: {why}"))
                        .unwrap_or_default()
                );
            }
            store.close().await;
            Ok(())
        }
        AlertCommand::Silence {
            which:
                SilenceCommand::Add {
                    matchers,
                    minutes,
                    author,
                    comment,
                },
        } => {
            let matchers = matchers
                .iter()
                .map(|m| Matcher::parse(m))
                .collect::<Result<Vec<_>, _>>()?;
            anyhow::ensure!(!author.trim().is_empty(), "--author must not be empty");
            anyhow::ensure!(!comment.trim().is_empty(), "--comment must not be empty");
            let store = crate::startup::open_store(settings).await?;
            let now = Timestamp::now_utc();
            let silence = store
                .add_silence(
                    &NewSilence {
                        matchers,
                        starts_at: now,
                        ends_at: now + Duration::from_secs(minutes * 60),
                        author,
                        comment,
                    },
                    now,
                )
                .await?;
            store.close().await;
            println!("{}", serde_json::to_string(&silence)?);
            Ok(())
        }
        AlertCommand::Silence {
            which: SilenceCommand::List,
        } => {
            let store = crate::startup::open_store(settings).await?;
            let now = Timestamp::now_utc();
            let firing: Vec<_> = store
                .alerts(now)
                .await?
                .into_iter()
                .filter(|a| a.status == AlertStatus::Firing)
                .collect();
            for silence in store.silences().await? {
                let matching = firing.iter().filter(|a| silence.matches(&a.labels)).count();
                let state = if silence.is_active(now) {
                    "active"
                } else if now < silence.starts_at {
                    "pending"
                } else {
                    "expired"
                };
                let matchers: Vec<String> =
                    silence.matchers.iter().map(ToString::to_string).collect();
                println!(
                    "{:<4} {:<8} {}  until {}  by {}: {}  mutes {matching}{}",
                    silence.id,
                    state,
                    matchers.join(","),
                    silence.ends_at,
                    silence.author,
                    silence.comment,
                    if state == "active" && matching == 0 {
                        "  (matches nothing)"
                    } else {
                        ""
                    }
                );
            }
            store.close().await;
            Ok(())
        }
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
            generator_url: format!("{}/ui/#/findings", base_url.trim_end_matches('/')),
        }],
        delivery_key: None,
    }
}

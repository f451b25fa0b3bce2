//! Alerting: findings become alerts, alerts are routed, grouped, silenced and inhibited, and the
//! notifications due are stored in an outbox before a delivery worker sends them through the
//! receivers (email, webhook, Slack, Teams, PagerDuty) with retries, recording every attempt.

mod bench;
mod command;
mod demo;
mod evaluate;
pub mod explain;
mod matcher;
mod model;
pub mod notifiers;
mod routing;
pub mod service;
mod settings;
mod worker;

pub use bench::{AlertBenchOptions, AlertBenchReport, run_alert_bench};
pub use command::{AlertCommand, SilenceCommand, run_command};
pub use demo::DemoAlertArgs;
pub use evaluate::{Alerting, EvaluationReport};
pub use matcher::{MatchOp, Matcher};
pub use model::{
    Alert, AlertStatus, Attempt, AttemptOutcome, Labels, NewNotification, NewSilence,
    NotificationLogEntry, OutboxEntry, OutboxStatus, Silence,
};
pub use notifiers::{Notification, NotifiedAlert, Notifier, NotifyError, build_notifiers};
pub use settings::{
    AlertingSettings, ChatSettings, DeliverySettings, EmailSettings, InhibitRule,
    PagerDutySettings, ReceiverSettings, RouteSettings, SmtpTls, TimeInterval, WebhookSettings,
};
pub use worker::{DeliveryReport, DeliveryWorker};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("invalid matcher `{0}` (expected name=value, name!=value, name=~regex or name!~regex)")]
    InvalidMatcher(String),
    #[error("route {route} has no receiver (set one on it or on a parent route)")]
    RouteWithoutReceiver { route: String },
    #[error("route {route} names the unknown receiver `{receiver}`")]
    UnknownReceiver { route: String, receiver: String },
    #[error("route {route} names the unknown time interval `{name}`")]
    UnknownTimeInterval { route: String, name: String },
    #[error("time interval `{name}`: {message}")]
    InvalidTimeInterval { name: String, message: String },
    #[error("two receivers are named `{0}`")]
    DuplicateReceiver(String),
    #[error("receiver `{name}`: {message}")]
    Receiver { name: String, message: String },
    #[error("stored notification {id} is not readable: {source}")]
    Payload { id: i64, source: serde_json::Error },
    #[error(transparent)]
    Llm(#[from] crate::dedup::llm::LlmError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

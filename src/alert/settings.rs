//! Alerting configuration: the routing tree, receivers, inhibition rules and delivery.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::matcher::Matcher;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingSettings {
    /// The admin UI's address, for the link to each finding (`<base_url>/ui/#/findings/<id>`).
    pub base_url: String,
    /// Seconds between evaluations of the groups (and polls of the outbox) in `serve`.
    pub evaluation_interval_secs: u64,
    /// A resolved finding's alert keeps firing this long, so one that flaps is not told resolved
    /// and firing again each time; 0 tells resolutions at once.
    pub keep_firing_for_secs: u64,
    /// Prompt template of the LLM's explanation of each alert (the LLM of `[llm]`; without one,
    /// alerts carry a template explanation).
    pub explanation_prompt: PathBuf,
    pub route: RouteSettings,
    pub receivers: Vec<ReceiverSettings>,
    pub inhibit_rules: Vec<InhibitRule>,
    /// Named recurring windows that routes can be muted in (`mute_time_intervals`).
    pub time_intervals: Vec<TimeInterval>,
    pub delivery: DeliverySettings,
}

impl Default for AlertingSettings {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8080".into(),
            evaluation_interval_secs: 5,
            keep_firing_for_secs: 0,
            explanation_prompt: PathBuf::from("prompts/alert_explain.md"),
            route: RouteSettings {
                group_by: Some(vec!["type".into()]),
                group_wait_secs: Some(30),
                group_interval_secs: Some(300),
                repeat_interval_secs: Some(14_400),
                ..RouteSettings::default()
            },
            receivers: Vec::new(),
            inhibit_rules: Vec::new(),
            time_intervals: Vec::new(),
            delivery: DeliverySettings::default(),
        }
    }
}

/// A node of the routing tree. Unset fields are inherited from the parent; the root's defaults
/// are those of `AlertingSettings::default`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteSettings {
    pub receiver: Option<String>,
    /// All must hold (`name=value`, `!=`, `=~`, `!~`); none: matches every alert.
    pub matchers: Vec<Matcher>,
    pub group_by: Option<Vec<String>>,
    /// Wait before the first notification of a new group, for more alerts to join it.
    pub group_wait_secs: Option<u64>,
    /// Wait between notifications of a group whose firing alerts changed.
    pub group_interval_secs: Option<u64>,
    /// Re-send an unchanged firing group after this long.
    pub repeat_interval_secs: Option<u64>,
    /// After matching, go on trying the next siblings.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    /// Names of `time_intervals` during which this route notifies nothing (not inherited).
    pub mute_time_intervals: Vec<String>,
    pub routes: Vec<RouteSettings>,
}

/// Mutes target alerts while a source alert fires, when both carry the `equal` labels with the
/// same values (a label missing on either side never counts as equal).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InhibitRule {
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    pub equal: Vec<String>,
}

/// A recurring window in UTC: on `weekdays` (`monday` ... `sunday`; none: every day), from
/// `start_time` to `end_time` (`HH:MM`, end exclusive, `24:00` for the end of the day).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeInterval {
    pub name: String,
    #[serde(default)]
    pub weekdays: Vec<String>,
    #[serde(default = "day_start")]
    pub start_time: String,
    #[serde(default = "day_end")]
    pub end_time: String,
}

fn day_start() -> String {
    "00:00".into()
}

fn day_end() -> String {
    "24:00".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Attempts per notification, the first included, before it is marked failed.
    pub max_attempts: u32,
    /// Jittered exponential backoff between attempts.
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Per attempt (SMTP conversation or HTTP request).
    pub timeout_secs: u64,
    /// How long a worker's claim on a notification holds; past it another worker may take it.
    /// Never less than `timeout_secs` + 5: a send still going on is not another's to take.
    pub claim_secs: u64,
    /// Notifications claimed per pass.
    pub batch_size: u32,
    /// Failed attempts in a row after which the receiver raises its own finding.
    pub failing_after: u32,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base_delay_ms: 1_000,
            max_delay_ms: 300_000,
            timeout_secs: 10,
            claim_secs: 60,
            batch_size: 100,
            failing_after: 3,
        }
    }
}

/// A receiver: where notifications go. `send_resolved` unset means the Alertmanager default
/// (false for email, true for the others).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ReceiverSettings {
    Email(EmailSettings),
    Webhook(WebhookSettings),
    Slack(ChatSettings),
    Teams(ChatSettings),
    Pagerduty(PagerDutySettings),
}

impl ReceiverSettings {
    pub fn name(&self) -> &str {
        match self {
            ReceiverSettings::Email(s) => &s.name,
            ReceiverSettings::Webhook(s) => &s.name,
            ReceiverSettings::Slack(s) | ReceiverSettings::Teams(s) => &s.name,
            ReceiverSettings::Pagerduty(s) => &s.name,
        }
    }

    pub fn send_resolved(&self) -> bool {
        match self {
            ReceiverSettings::Email(s) => s.send_resolved.unwrap_or(false),
            ReceiverSettings::Webhook(s) => s.send_resolved.unwrap_or(true),
            ReceiverSettings::Slack(s) | ReceiverSettings::Teams(s) => {
                s.send_resolved.unwrap_or(true)
            }
            ReceiverSettings::Pagerduty(s) => s.send_resolved.unwrap_or(true),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server cannot.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a local relay or tests.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub name: String,
    #[serde(default)]
    pub send_resolved: Option<bool>,
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: SmtpTls,
    /// Empty: no authentication.
    #[serde(default)]
    pub username: String,
    #[serde(default = "empty_secret")]
    pub password: SecretString,
    pub from: String,
    pub to: Vec<String>,
}

fn default_smtp_port() -> u16 {
    587
}

fn empty_secret() -> SecretString {
    SecretString::from("")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub name: String,
    #[serde(default)]
    pub send_resolved: Option<bool>,
    pub url: SecretString,
    /// Key of the `X-Syncwarden-Signature` HMAC; empty: the header is not sent.
    #[serde(default = "empty_secret")]
    pub secret: SecretString,
    /// Alerts per payload at most (the rest are counted in `truncatedAlerts`); 0: no limit.
    #[serde(default)]
    pub max_alerts: usize,
}

/// Slack incoming webhook or Teams workflow webhook: the URL is the credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSettings {
    pub name: String,
    #[serde(default)]
    pub send_resolved: Option<bool>,
    pub url: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutySettings {
    pub name: String,
    #[serde(default)]
    pub send_resolved: Option<bool>,
    pub routing_key: SecretString,
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
}

fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}

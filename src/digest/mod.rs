//! The weekly KPI digest for managers: the KPIs of one ISO week (boundaries in the configured
//! time zone) beside the week before, computed from the store; charts drawn with plotters; a
//! three-sentence summary written by the LLM or, when it is off or fails, by a template; rendered
//! as JSON, plain text or mail-client-safe HTML and sent by email on a schedule from `serve`, at
//! most once per week across restarts and instances.

mod bench;
mod charts;
pub mod command;
mod kpis;
mod render;
pub mod schedule;
mod summary;
mod week;

use std::path::PathBuf;

use serde::Deserialize;

pub use bench::{DigestBenchOptions, DigestBenchReport, run_digest_bench};
pub use charts::{Chart, charts};
pub use command::{DigestArgs, Format, resolve_week};
pub use kpis::{Day, Digest, Kpi, TopFinding, build};
pub use render::{Images, email_body, html, text};
pub use schedule::{DigestScheduler, Digester};
pub use summary::{Summarizer, template_summary};
pub use week::{IsoWeek, Zone};

use crate::alert::AlertError;
use crate::dedup::llm::LlmError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("week `{0}`: expected an ISO week like 2026-W47, `current` or `last`")]
    InvalidWeek(String),
    #[error(
        "digest.time_zone `{0}`: expected UTC, an offset like +02:00 or an IANA name like Europe/Berlin"
    )]
    InvalidTimeZone(String),
    #[error("digest.send_day `{0}`: expected monday ... sunday")]
    InvalidDay(String),
    #[error("digest.send_hour {0}: expected 0-23")]
    InvalidHour(u32),
    #[error("digest.recipients is empty: nobody to send the digest to")]
    NoRecipients,
    #[error("{0}")]
    NoEmailReceiver(String),
    #[error("cannot draw the {chart} chart: {message}")]
    Chart { chart: String, message: String },
    #[error("the digest email was not sent: {0}")]
    Send(String),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Alert(#[from] AlertError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `[digest]`: when and to whom the weekly digest goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DigestSettings {
    /// Week boundaries and the send time are in this zone.
    pub time_zone: String,
    pub send_day: String,
    pub send_hour: u32,
    /// Empty: no scheduled send.
    pub recipients: Vec<String>,
    /// The email receiver of `[alerting]` whose SMTP server and sender the digest uses; empty:
    /// the first email receiver.
    pub email_receiver: String,
    /// Prompt template of the summary, asked of the LLM of `[llm]`.
    pub summary_prompt: PathBuf,
    pub top_findings: usize,
    /// Seconds between checks whether a send is due, in `serve`.
    pub check_interval_secs: u64,
}

impl Default for DigestSettings {
    fn default() -> Self {
        Self {
            time_zone: "UTC".into(),
            send_day: "monday".into(),
            send_hour: 8,
            recipients: Vec::new(),
            email_receiver: String::new(),
            summary_prompt: PathBuf::from("prompts/digest_summary.md"),
            top_findings: 5,
            check_interval_secs: 60,
        }
    }
}

impl DigestSettings {
    pub fn zone(&self) -> Result<Zone, DigestError> {
        Zone::parse(&self.time_zone)
    }

    pub fn weekday(&self) -> Result<chrono::Weekday, DigestError> {
        self.send_day
            .parse()
            .map_err(|_| DigestError::InvalidDay(self.send_day.clone()))
    }
}

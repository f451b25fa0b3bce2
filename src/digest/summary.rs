//! The digest's three-sentence summary: written by the LLM from the week's numbers (personal data
//! redacted, strict timeout), or by a template when the LLM is off, fails or answers nonsense.

use super::kpis::{Digest, Kpi};
use crate::dedup::llm::{LlmClient, LlmError, LlmSettings, Redactor, accept_prose, read_template};

/// Longest summary accepted from the LLM: three sentences, not an essay.
const SUMMARY_LIMIT: usize = 900;

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |r| format!("{:.1}%", r * 100.0))
}

fn num<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".into(), |x| x.to_string())
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |s| format!("{s:.0} s"))
}

fn change(kpi: &Kpi<i64>) -> String {
    match (kpi.value, kpi.previous) {
        (Some(v), Some(p)) if v > p => format!("up from {p}"),
        (Some(v), Some(p)) if v < p => format!("down from {p}"),
        (Some(_), Some(_)) => "as the week before".into(),
        _ => "no comparison".into(),
    }
}

/// Three sentences from the numbers alone.
pub fn template_summary(d: &Digest) -> String {
    format!(
        "In {} syncwarden synced {} records ({}) with an API call success rate of {} (the week \
         before: {}). Sync latency was {} ms at p50 and {} ms at p95; {} findings were opened, \
         detected after {} and resolved after {} on average. {} duplicates were found and {} \
         merges applied, {} price mismatches are open and {} conflicts were opened.",
        d.week,
        num(d.records_synced.value),
        change(&d.records_synced),
        pct(d.api_call_success_rate.value),
        pct(d.api_call_success_rate.previous),
        num(d.sync_latency_p50_ms.value),
        num(d.sync_latency_p95_ms.value),
        num(d.findings_opened.value),
        secs(d.mttd_seconds.value),
        secs(d.mttr_seconds.value),
        num(d.duplicates_found.value),
        num(d.merges_applied.value),
        num(d.price_mismatches_open.value),
        num(d.conflicts_opened.value),
    )
}

/// Asks the LLM for the summary.
pub struct Summarizer {
    llm: LlmClient,
    template: String,
}

impl Summarizer {
    /// `None` when no LLM is configured; an error when it is but the template cannot be read.
    pub fn from_settings(
        llm: &LlmSettings,
        prompt: &std::path::Path,
    ) -> Result<Option<Self>, LlmError> {
        let Some(client) = LlmClient::from_settings(llm) else {
            return Ok(None);
        };
        Ok(Some(Self {
            llm: client,
            template: read_template(prompt)?,
        }))
    }

    /// The numbers (and the top findings' titles, redacted) as the prompt shows them.
    fn prompt(&self, d: &Digest) -> String {
        let mut kpis = serde_json::to_value(d).unwrap_or_default();
        if let Some(map) = kpis.as_object_mut() {
            for key in ["summary", "summary_source", "daily", "from", "to"] {
                map.remove(key);
            }
        }
        let kpis = if self.llm.redact {
            Redactor::default().json(&kpis)
        } else {
            kpis
        };
        self.template.replace("{{week}}", &d.week).replace(
            "{{kpis}}",
            &serde_json::to_string_pretty(&kpis).unwrap_or_default(),
        )
    }

    async fn ask(&self, d: &Digest) -> Result<String, LlmError> {
        accept_prose(&self.llm.complete(self.prompt(d)).await?, SUMMARY_LIMIT)
    }

    /// Replaces the template summary with the LLM's; keeps the template on any failure.
    pub async fn summarize(&self, d: &mut Digest) {
        match self.ask(d).await {
            Ok(text) => {
                d.summary = text;
                d.summary_source = "llm";
            }
            Err(error) => {
                tracing::warn!(week = %d.week, error = %error, "LLM summary failed; the template one is used");
            }
        }
    }
}

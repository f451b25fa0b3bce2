//! LLM adjudication of the uncertain band: a pair the classifier is unsure about is shown to an
//! OpenAI-compatible model, which answers same/different with a confidence and a reason. Any
//! failure (timeout, HTTP error, unparsable answer, low confidence) leaves the pair for a person.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, ChatCompletionRequestUserMessageContent,
    CreateChatCompletionRequest,
};
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::normalise;
use super::profile::Profile;
use super::{Decision, DedupSettings, ScoredPair};

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("prompt template {path}")]
    Template {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("LLM request failed: {0}")]
    Api(String),
    #[error("unparsable LLM answer: {0}")]
    Unparsable(String),
}

/// Settings of the LLM endpoint (`[llm]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmSettings {
    /// An OpenAI-compatible API base, e.g. `https://api.openai.com/v1`. Empty: no LLM, and
    /// uncertain pairs wait for review.
    pub base_url: String,
    pub model: String,
    pub api_key: SecretString,
    /// The whole request, answer included, must finish within this.
    pub timeout_ms: u64,
    /// Prompt template, read at start of each run so it can be edited without a rebuild.
    pub prompt: PathBuf,
    /// Pseudonymise fields the profile marks personal before they leave the process.
    pub redact_personal_data: bool,
    /// Answers less confident than this leave the pair for review.
    pub min_confidence: f64,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            model: "gpt-4o-mini".into(),
            api_key: SecretString::from(""),
            timeout_ms: 10_000,
            prompt: PathBuf::from("prompts/dedup_adjudicate.md"),
            redact_personal_data: true,
            min_confidence: 0.8,
            concurrency: 4,
        }
    }
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Verdict {
    pub answer: Answer,
    pub confidence: f64,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    Same,
    Different,
}

/// Parses the model's reply: a JSON object, possibly wrapped in prose or a code fence.
pub fn parse_verdict(reply: &str) -> Result<Verdict, LlmError> {
    let start = reply.find('{');
    let end = reply.rfind('}');
    let json = match (start, end) {
        (Some(s), Some(e)) if s < e => &reply[s..=e],
        _ => return Err(LlmError::Unparsable(clip(reply))),
    };
    let verdict: Verdict = serde_json::from_str(json)
        .map_err(|e| LlmError::Unparsable(format!("{e}: {}", clip(reply))))?;
    if !(0.0..=1.0).contains(&verdict.confidence) {
        return Err(LlmError::Unparsable(format!(
            "confidence {} outside [0, 1]",
            verdict.confidence
        )));
    }
    Ok(verdict)
}

/// Enough of a bad answer to recognise it in a log line, never all of it.
fn clip(s: &str) -> String {
    s.chars().take(120).collect()
}

/// One record as the prompt shows it: `field: value` lines, personal fields pseudonymised with
/// tokens shared by both sides of the pair so the model still sees whether they agree.
pub fn render_pair(
    profile: &Profile,
    left: &BTreeMap<String, String>,
    right: &BTreeMap<String, String>,
    redact: bool,
) -> (String, String) {
    let mut tokens: HashMap<(usize, String), usize> = HashMap::new();
    let mut render = |row: &BTreeMap<String, String>| {
        let mut out = String::new();
        for (i, field) in profile.fields.iter().enumerate() {
            let raw = Profile::raw_value(field, |c| row.get(c).map(String::as_str));
            if raw.is_empty() {
                continue;
            }
            let shown = if redact && field.personal {
                let next = tokens.len() + 1;
                let n = *tokens.entry((i, normalise::fold(&raw))).or_insert(next);
                format!("[redacted {} #{n}]", field.name)
            } else {
                raw.into_owned()
            };
            out.push_str(&format!("{}: {shown}\n", field.name));
        }
        out
    };
    let l = render(left);
    let r = render(right);
    (l, r)
}

/// A configured LLM endpoint and the prompt template.
pub struct Adjudicator {
    client: Client<OpenAIConfig>,
    model: String,
    template: String,
    timeout_ms: u64,
    min_confidence: f64,
    concurrency: usize,
    pub redact: bool,
}

impl Adjudicator {
    /// `None` when no LLM is configured.
    pub fn from_settings(settings: &LlmSettings) -> Result<Option<Self>, LlmError> {
        if settings.base_url.is_empty() {
            return Ok(None);
        }
        let template =
            std::fs::read_to_string(&settings.prompt).map_err(|source| LlmError::Template {
                path: settings.prompt.clone(),
                source,
            })?;
        let config = OpenAIConfig::new()
            .with_api_base(settings.base_url.trim_end_matches('/'))
            .with_api_key(settings.api_key.expose_secret());
        Ok(Some(Self {
            client: Client::with_config(config),
            model: settings.model.clone(),
            template,
            timeout_ms: settings.timeout_ms,
            min_confidence: settings.min_confidence,
            concurrency: settings.concurrency.max(1),
            redact: settings.redact_personal_data,
        }))
    }

    /// Asks about one pair. async-openai retries 429 and 5xx answers with backoff; the timeout
    /// bounds the whole exchange, retries included.
    pub async fn judge(&self, entity: &str, left: &str, right: &str) -> Result<Verdict, LlmError> {
        let prompt = self
            .template
            .replace("{{entity}}", entity)
            .replace("{{left}}", left.trim_end())
            .replace("{{right}}", right.trim_end());
        let request = CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: vec![
                ChatCompletionRequestUserMessage {
                    content: ChatCompletionRequestUserMessageContent::Text(prompt),
                    name: None,
                }
                .into(),
            ],
            temperature: Some(0.0),
            ..Default::default()
        };
        let chat = self.client.chat();
        let response =
            tokio::time::timeout(Duration::from_millis(self.timeout_ms), chat.create(request))
                .await
                .map_err(|_| LlmError::Timeout(self.timeout_ms))?
                .map_err(|e| LlmError::Api(e.to_string()))?;
        let reply = response
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| LlmError::Unparsable("no message in the answer".into()))?;
        parse_verdict(&reply)
    }

    /// Re-decides the pairs in the uncertain band: a confident answer makes a match or a
    /// non-match, anything else (failure included) makes it wait for review. `render` gives the
    /// two records of a pair as the prompt shows them. Returns how many pairs were asked about.
    pub async fn adjudicate(
        &self,
        entity: &str,
        settings: &DedupSettings,
        pairs: &mut [ScoredPair],
        render: impl Fn(&ScoredPair) -> (String, String),
    ) -> usize {
        let band: Vec<usize> = pairs
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.probability >= settings.review_below && p.probability < settings.llm_above
            })
            .map(|(i, _)| i)
            .collect();
        let asks = band.iter().map(|i| {
            let (left, right) = render(&pairs[*i]);
            async move { (*i, self.judge(entity, &left, &right).await) }
        });
        let answers: Vec<(usize, Result<Verdict, LlmError>)> = futures_util::stream::iter(asks)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (i, answer) in answers {
            let pair = &mut pairs[i];
            match answer {
                Ok(v) if v.confidence >= self.min_confidence => {
                    pair.decision = match v.answer {
                        Answer::Same => Decision::Match,
                        Answer::Different => Decision::NonMatch,
                    };
                    pair.reason = Some(format!("llm ({:.2}): {}", v.confidence, v.reason));
                }
                Ok(v) => {
                    pair.decision = Decision::Review;
                    pair.reason = Some(format!("llm unsure ({:.2}): {}", v.confidence, v.reason));
                }
                Err(error) => {
                    tracing::warn!(error = %error, "LLM adjudication failed; the pair waits for review");
                    pair.decision = Decision::Review;
                    pair.reason = Some(error.to_string());
                }
            }
        }
        band.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers_in_fences_and_refuses_garbage() {
        let v = parse_verdict(
            "```json\n{\"answer\": \"same\", \"confidence\": 0.93, \"reason\": \"same model\"}\n```",
        )
        .unwrap();
        assert_eq!(v.answer, Answer::Same);
        assert_eq!(v.confidence, 0.93);
        assert!(parse_verdict("I think they are the same").is_err());
        assert!(
            parse_verdict("{\"answer\": \"maybe\", \"confidence\": 0.5, \"reason\": \"\"}")
                .is_err()
        );
        assert!(
            parse_verdict("{\"answer\": \"same\", \"confidence\": 7, \"reason\": \"\"}").is_err()
        );
    }

    #[test]
    fn personal_fields_are_pseudonymised_consistently() {
        let profile = Profile::parse(
            r#"
entity = "contacts"
model = "m"
[[fields]]
name = "name"
kind = "name"
columns = ["name"]
[[fields]]
name = "email"
kind = "email"
columns = ["email"]
personal = true
[[fields]]
name = "phone"
kind = "phone"
columns = ["phone"]
personal = true
"#,
        )
        .unwrap();
        let row = |n: &str, e: &str, p: &str| {
            BTreeMap::from([
                ("name".to_string(), n.to_string()),
                ("email".to_string(), e.to_string()),
                ("phone".to_string(), p.to_string()),
            ])
        };
        let a = row("Jane Doe", "Jane@x.test", "0201");
        let b = row("Jane Do", "jane@x.test", "0999");
        let (l, r) = render_pair(&profile, &a, &b, true);
        assert!(!l.contains("x.test") && !r.contains("0999"), "{l}{r}");
        assert!(l.contains("name: Jane Doe"));
        // Same e-mail on both sides: same token; different phones: different tokens.
        assert_eq!(l.lines().nth(1), r.lines().nth(1));
        assert_ne!(l.lines().nth(2), r.lines().nth(2));
        let (l, _) = render_pair(&profile, &a, &b, false);
        assert!(l.contains("Jane@x.test"));
    }
}

//! LLM adjudication of the uncertain band: a pair the classifier is unsure about is shown to an
//! OpenAI-compatible model, which answers same/different with a confidence and a reason. Any
//! failure (timeout, HTTP error, unparsable answer, low confidence) leaves the pair for a person.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, ChatCompletionRequestUserMessageContent,
    CreateChatCompletionRequest,
};
use futures_util::StreamExt;
use regex::Regex;
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

/// Pseudonymises personal data in what is sent to an LLM outside the deduper's profiles: e-mail
/// addresses and phone numbers in free text, and every value of a JSON member whose name says it
/// is personal. Tokens are the deduper's `[redacted <kind> #n]`, the same value getting the same
/// token within one redactor, so the model still sees which values agree.
#[derive(Debug, Default)]
pub struct Redactor {
    tokens: HashMap<(String, String), usize>,
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}").expect("valid e-mail pattern")
});
/// Starts with `+` or a leading 0 (dates and amounts do not), at least eight digits.
static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:\+|\b0)\d[\d ()./-]{5,}\d").expect("valid phone pattern"));

/// Member names whose values are personal whatever they hold.
const PERSONAL_KEYS: [&str; 10] = [
    "email",
    "phone",
    "mobile",
    "first_name",
    "last_name",
    "firstname",
    "lastname",
    "person",
    "address",
    "birth",
];

impl Redactor {
    fn token(&mut self, kind: &str, value: &str) -> String {
        let next = self.tokens.len() + 1;
        let n = *self
            .tokens
            .entry((kind.to_string(), normalise::fold(value)))
            .or_insert(next);
        format!("[redacted {kind} #{n}]")
    }

    pub fn text(&mut self, text: &str) -> String {
        let text = EMAIL.replace_all(text, |c: &regex::Captures| self.token("email", &c[0]));
        PHONE
            .replace_all(&text, |c: &regex::Captures| self.token("phone", &c[0]))
            .into_owned()
    }

    pub fn json(&mut self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.json(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let key = k.to_ascii_lowercase();
                        let shown = if PERSONAL_KEYS.iter().any(|p| key.contains(p)) && !v.is_null()
                        {
                            let raw = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                            Value::String(self.token(k, &raw))
                        } else {
                            self.json(v)
                        };
                        (k.clone(), shown)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// A free-text reply (an explanation, a summary) fit to show: not empty, no longer than `limit`
/// characters, and prose rather than code or JSON; else why not.
pub fn accept_prose(reply: &str, limit: usize) -> Result<String, LlmError> {
    let text = reply.trim();
    let length = text.chars().count();
    if text.is_empty() {
        return Err(LlmError::Unparsable("empty answer".into()));
    }
    if length > limit {
        return Err(LlmError::Unparsable(format!(
            "{length} characters, more than {limit}"
        )));
    }
    if text.contains(['{', '}', '<', '>']) || text.contains("```") {
        return Err(LlmError::Unparsable(format!("not prose: {}", clip(text))));
    }
    Ok(text.to_string())
}

/// A configured OpenAI-compatible endpoint: one prompt in, one reply out, within a strict
/// timeout. The deduper, the alert explanations and the digest summary all ask through it.
pub struct LlmClient {
    client: Client<OpenAIConfig>,
    model: String,
    timeout_ms: u64,
    pub redact: bool,
}

impl LlmClient {
    /// `None` when no LLM is configured.
    pub fn from_settings(settings: &LlmSettings) -> Option<Self> {
        if settings.base_url.is_empty() {
            return None;
        }
        let config = OpenAIConfig::new()
            .with_api_base(settings.base_url.trim_end_matches('/'))
            .with_api_key(settings.api_key.expose_secret());
        Some(Self {
            client: Client::with_config(config),
            model: settings.model.clone(),
            timeout_ms: settings.timeout_ms,
            redact: settings.redact_personal_data,
        })
    }

    /// Sends one prompt and returns the reply's text. async-openai retries 429 and 5xx answers
    /// with backoff; the timeout bounds the whole exchange, retries included.
    pub async fn complete(&self, prompt: String) -> Result<String, LlmError> {
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
        response
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| LlmError::Unparsable("no message in the answer".into()))
    }
}

/// Reads a prompt template (at start of each run, so it can be edited without a rebuild).
pub fn read_template(path: &Path) -> Result<String, LlmError> {
    std::fs::read_to_string(path).map_err(|source| LlmError::Template {
        path: path.to_path_buf(),
        source,
    })
}

/// A configured LLM endpoint and the prompt template.
pub struct Adjudicator {
    llm: LlmClient,
    template: String,
    min_confidence: f64,
    concurrency: usize,
    pub redact: bool,
}

impl Adjudicator {
    /// `None` when no LLM is configured.
    pub fn from_settings(settings: &LlmSettings) -> Result<Option<Self>, LlmError> {
        let Some(llm) = LlmClient::from_settings(settings) else {
            return Ok(None);
        };
        Ok(Some(Self {
            llm,
            template: read_template(&settings.prompt)?,
            min_confidence: settings.min_confidence,
            concurrency: settings.concurrency.max(1),
            redact: settings.redact_personal_data,
        }))
    }

    /// Asks about one pair.
    pub async fn judge(&self, entity: &str, left: &str, right: &str) -> Result<Verdict, LlmError> {
        let prompt = self
            .template
            .replace("{{entity}}", entity)
            .replace("{{left}}", left.trim_end())
            .replace("{{right}}", right.trim_end());
        parse_verdict(&self.llm.complete(prompt).await?)
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
        // Collected first: a lazy map held across the await would make this future not `Send`
        // (it runs inside spawned tasks in `serve`).
        let asks: Vec<_> = band
            .iter()
            .map(|i| {
                let (left, right) = render(&pairs[*i]);
                async move { (*i, self.judge(entity, &left, &right).await) }
            })
            .collect();
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
    fn free_text_and_personal_members_are_pseudonymised() {
        let mut r = Redactor::default();
        let text = r.text("mail Jane@X.test or jane@x.test, call +49 30 1234567 on 2026-11-23");
        assert_eq!(
            text,
            "mail [redacted email #1] or [redacted email #1], call [redacted phone #2] on 2026-11-23"
        );
        let json = r.json(&serde_json::json!({
            "contact_email": "a@b.test", "calls": 120, "note": "ring 0201 5550 123",
            "Phone": 12345678, "items": [{"person": "Jane Doe"}]
        }));
        let shown = json.to_string();
        assert!(!shown.contains("a@b.test") && !shown.contains("Jane") && !shown.contains("5550"));
        assert_eq!(json["calls"], 120);
        assert!(
            json["Phone"]
                .as_str()
                .unwrap()
                .starts_with("[redacted Phone #")
        );
    }

    #[test]
    fn prose_answers_are_accepted_and_code_refused() {
        assert_eq!(accept_prose("  All good.  ", 100).unwrap(), "All good.");
        assert!(accept_prose("", 100).is_err());
        assert!(accept_prose("{\"answer\": 1}", 100).is_err());
        assert!(accept_prose(&"word ".repeat(50), 100).is_err());
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

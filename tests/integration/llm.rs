//! A local OpenAI-compatible chat server: it records every prompt and answers the deduper's
//! questions by a marker in the prompt, or whatever a test tells it to (text, garbage, slowness,
//! errors).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// How the server answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// By a marker in the prompt, as the dedup tests expect.
    ByMarker,
    Text(String),
    /// An answer that is not what was asked for.
    Garbage,
    /// No answer for five seconds.
    Slow,
    /// HTTP 500.
    Broken,
}

#[derive(Clone)]
pub struct LlmServer {
    pub base_url: String,
    pub prompts: Arc<Mutex<Vec<String>>>,
    reply: Arc<Mutex<Reply>>,
}

impl LlmServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Self {
            base_url: format!("http://{}/v1", listener.local_addr().unwrap()),
            prompts: Arc::default(),
            reply: Arc::new(Mutex::new(Reply::ByMarker)),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    pub fn reply(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    pub fn prompts(&self) -> Vec<String> {
        self.prompts.lock().unwrap().clone()
    }

    /// `[llm]` settings pointing here, with the key the server accepts.
    pub fn settings(&self, prompt: std::path::PathBuf) -> syncwarden::dedup::llm::LlmSettings {
        syncwarden::dedup::llm::LlmSettings {
            base_url: self.base_url.clone(),
            api_key: "test-key".to_string().into(),
            timeout_ms: 500,
            prompt,
            ..Default::default()
        }
    }
}

/// The deduper's answer to a prompt by its marker; `None`: answer HTTP 500.
fn by_marker(prompt: &str) -> Option<String> {
    Some(if prompt.contains("garbage") {
        "they look alike to me".to_string()
    } else if prompt.contains("broken") {
        return None;
    } else if prompt.contains("unsure") {
        json!({"answer": "same", "confidence": 0.4, "reason": "hard to say"}).to_string()
    } else if prompt.contains("different") {
        json!({"answer": "different", "confidence": 0.9, "reason": "other birth date"}).to_string()
    } else {
        format!(
            "```json\n{}\n```",
            json!({"answer": "same", "confidence": 0.95, "reason": "typo in the surname"})
        )
    })
}

async fn chat(
    State(server): State<LlmServer>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer test-key") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let prompt = body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    server.prompts.lock().unwrap().push(prompt.clone());
    let reply = server.reply.lock().unwrap().clone();
    let slow = reply == Reply::Slow || (reply == Reply::ByMarker && prompt.contains("slow"));
    if slow {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let content = match reply {
        Reply::ByMarker if slow => Some(String::new()),
        Reply::ByMarker => by_marker(&prompt),
        Reply::Text(text) => Some(text),
        Reply::Garbage => Some(json!({"oops": "not prose"}).to_string()),
        Reply::Slow => Some(String::new()),
        Reply::Broken => None,
    };
    let Some(content) = content else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response();
    };
    Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }))
    .into_response()
}

//! The field-level event log: parsing events from other integration platforms and appending batches.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::clock::Clock;
use crate::domain::{Endpoint, NewFieldEvent, Outcome, System, Timestamp};
use crate::store::{AppendResult, Store, StoreError};

/// Longest accepted idempotency key, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// Why an ingested batch was refused. `line` is the 1-based NDJSON line or array position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidEvent {
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub line: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    JsonArray,
    Ndjson,
}

impl BatchFormat {
    /// From the Content-Type when it says, otherwise from the first non-blank byte of the body.
    pub fn detect(content_type: Option<&str>, body: &[u8]) -> Self {
        let mime = content_type
            .and_then(|ct| ct.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        match mime.as_deref() {
            Some("application/x-ndjson" | "application/ndjson" | "application/jsonl") => {
                BatchFormat::Ndjson
            }
            _ => match body.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'[') => BatchFormat::JsonArray,
                _ => BatchFormat::Ndjson,
            },
        }
    }
}

/// One event as other platforms send it (the wire shape of `POST /v1/events`). The schema names
/// the types the texts must parse as.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventInput {
    idempotency_key: String,
    #[schema(value_type = crate::domain::Endpoint)]
    endpoint: String,
    #[serde(default)]
    crm_id: Option<String>,
    #[serde(default)]
    erp_id: Option<String>,
    field: String,
    /// Any JSON value, kept exactly as sent.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    old_value: Option<Box<RawValue>>,
    /// Any JSON value, kept exactly as sent.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    new_value: Option<Box<RawValue>>,
    #[schema(value_type = crate::domain::System)]
    source_system: String,
    #[schema(value_type = crate::domain::System)]
    target_system: String,
    /// Any outcome but `erased`, which only syncwarden's own erasure records (422).
    #[schema(value_type = crate::domain::Outcome)]
    outcome: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    latency_ms: Option<i64>,
    #[schema(value_type = crate::domain::Timestamp)]
    occurred_at: String,
    #[serde(default)]
    run_id: Option<String>,
}

fn invalid(field: &str, message: String, line: usize) -> InvalidEvent {
    InvalidEvent {
        code: "invalid_event",
        message,
        field: Some(field.to_string()),
        line: Some(line),
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl EventInput {
    /// The first text member holding a NUL character, if any.
    fn field_with_nul(&self) -> Option<&'static str> {
        let optional = |v: &Option<String>| v.as_deref().is_some_and(|v| v.contains('\0'));
        [
            ("idempotency_key", self.idempotency_key.contains('\0')),
            ("endpoint", self.endpoint.contains('\0')),
            ("crm_id", optional(&self.crm_id)),
            ("erp_id", optional(&self.erp_id)),
            ("field", self.field.contains('\0')),
            ("error", optional(&self.error)),
            ("run_id", optional(&self.run_id)),
        ]
        .into_iter()
        .find_map(|(name, has)| has.then_some(name))
    }

    fn into_event(self, line: usize) -> Result<NewFieldEvent, InvalidEvent> {
        let bad = |field: &str, message: String| invalid(field, message, line);
        if let Some(field) = self.field_with_nul() {
            // PostgreSQL text cannot hold one; values are kept as JSON text, where it stays escaped.
            return Err(bad(
                field,
                format!("{field} must not contain a NUL character (\\u0000)"),
            ));
        }
        if self.idempotency_key.is_empty() || self.idempotency_key.len() > MAX_KEY_LEN {
            return Err(bad(
                "idempotency_key",
                format!("idempotency_key must be 1 to {MAX_KEY_LEN} bytes"),
            ));
        }
        let endpoint =
            Endpoint::parse(&self.endpoint).map_err(|e| bad("endpoint", e.to_string()))?;
        let crm_id = non_empty(self.crm_id);
        let erp_id = non_empty(self.erp_id);
        if crm_id.is_none() && erp_id.is_none() {
            return Err(bad(
                "crm_id",
                "an event needs the record's crm_id, erp_id or both".into(),
            ));
        }
        if self.field.is_empty() {
            return Err(bad("field", "field must not be empty".into()));
        }
        let source_system =
            System::parse(&self.source_system).map_err(|e| bad("source_system", e.to_string()))?;
        let target_system =
            System::parse(&self.target_system).map_err(|e| bad("target_system", e.to_string()))?;
        let outcome = Outcome::parse(&self.outcome).map_err(|e| bad("outcome", e.to_string()))?;
        // An erasure event is the proof that a person's data was erased; only syncwarden's own
        // erasure may write one, or a forged one could stand in the audit log as that proof.
        if outcome == Outcome::Erased {
            return Err(bad(
                "outcome",
                "outcome erased is recorded only by syncwarden's own erasure (POST /v1/erasure)"
                    .into(),
            ));
        }
        if let Some(ms) = self.latency_ms.filter(|ms| *ms < 0) {
            return Err(bad(
                "latency_ms",
                format!("latency_ms must not be negative, got {ms}"),
            ));
        }
        let occurred_at = Timestamp::parse_rfc3339(&self.occurred_at)
            .map_err(|e| bad("occurred_at", e.to_string()))?;
        Ok(NewFieldEvent {
            idempotency_key: self.idempotency_key,
            run_id: non_empty(self.run_id),
            endpoint,
            crm_id,
            erp_id,
            field: self.field,
            old_value: self.old_value.map(|v| v.get().to_string()),
            new_value: self.new_value.map(|v| v.get().to_string()),
            source_system,
            target_system,
            outcome,
            error: non_empty(self.error),
            latency_ms: self.latency_ms,
            occurred_at,
        })
    }
}

/// Parses a whole batch; the first bad event refuses all of it.
pub fn parse_batch(body: &[u8], format: BatchFormat) -> Result<Vec<NewFieldEvent>, InvalidEvent> {
    match format {
        BatchFormat::JsonArray => parse_array(body),
        BatchFormat::Ndjson => parse_ndjson(body),
    }
}

fn parse_array(body: &[u8]) -> Result<Vec<NewFieldEvent>, InvalidEvent> {
    let inputs: Vec<EventInput> = match serde_json::from_slice(body) {
        Ok(inputs) => inputs,
        Err(_) => return Err(locate_array_error(body)),
    };
    inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| input.into_event(i + 1))
        .collect()
}

fn parse_ndjson(body: &[u8]) -> Result<Vec<NewFieldEvent>, InvalidEvent> {
    let mut events = Vec::new();
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut de = serde_json::Deserializer::from_slice(raw);
        let input: EventInput = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| describe(e.inner(), Some(e.path()), Some(line)))?;
        de.end().map_err(|e| describe(&e, None, Some(line)))?;
        events.push(input.into_event(line)?);
    }
    Ok(events)
}

/// Re-reads a JSON array that failed to parse, tracking the path, to say which element and field.
fn locate_array_error(body: &[u8]) -> InvalidEvent {
    let mut de = serde_json::Deserializer::from_slice(body);
    let err = match serde_path_to_error::deserialize::<_, Vec<EventInput>>(&mut de) {
        Ok(_) => match de.end() {
            Ok(()) => return malformed("the body is not a JSON array of events".into(), None),
            Err(e) => return describe(&e, None, None),
        },
        Err(e) => e,
    };
    let line = err.path().iter().find_map(|seg| match seg {
        serde_path_to_error::Segment::Seq { index } => Some(index + 1),
        _ => None,
    });
    describe(err.inner(), Some(err.path()), line)
}

fn malformed(message: String, line: Option<usize>) -> InvalidEvent {
    InvalidEvent {
        code: "malformed_json",
        message,
        field: None,
        line,
    }
}

/// Turns a serde error into the API's error: missing, unknown and mistyped fields are named.
fn describe(
    inner: &serde_json::Error,
    path: Option<&serde_path_to_error::Path>,
    line: Option<usize>,
) -> InvalidEvent {
    let message = inner.to_string();
    if inner.is_syntax() || inner.is_eof() {
        return malformed(format!("malformed JSON: {message}"), line);
    }
    let from_path = path.and_then(|p| {
        p.iter().rev().find_map(|seg| match seg {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            _ => None,
        })
    });
    let field = from_path.or_else(|| quoted_name(&message));
    let code = if message.starts_with("missing field") {
        "missing_field"
    } else if message.starts_with("unknown field") {
        "unknown_field"
    } else {
        "invalid_type"
    };
    let message = match &field {
        Some(f) if code == "invalid_type" => format!("field `{f}`: {message}"),
        _ => message,
    };
    InvalidEvent {
        code,
        message,
        field,
        line,
    }
}

/// The first name in backticks of a serde message ("missing field `endpoint`").
fn quoted_name(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

/// The wire form of an event, as `POST /v1/events` takes it (one NDJSON line, no newline).
pub fn to_wire_json(event: &NewFieldEvent) -> String {
    #[derive(serde::Serialize)]
    struct Wire<'a> {
        idempotency_key: &'a str,
        endpoint: Endpoint,
        #[serde(skip_serializing_if = "Option::is_none")]
        crm_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        erp_id: Option<&'a str>,
        field: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        old_value: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        new_value: Option<&'a RawValue>,
        source_system: System,
        target_system: System,
        outcome: Outcome,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        latency_ms: Option<i64>,
        occurred_at: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        run_id: Option<&'a str>,
    }
    // Stored values are always JSON text, so they go out exactly as they came in.
    fn raw(v: &str) -> Option<&RawValue> {
        serde_json::from_str(v).ok()
    }
    let wire = Wire {
        idempotency_key: &event.idempotency_key,
        endpoint: event.endpoint,
        crm_id: event.crm_id.as_deref(),
        erp_id: event.erp_id.as_deref(),
        field: &event.field,
        old_value: event.old_value.as_deref().and_then(raw),
        new_value: event.new_value.as_deref().and_then(raw),
        source_system: event.source_system,
        target_system: event.target_system,
        outcome: event.outcome,
        error: event.error.as_deref(),
        latency_ms: event.latency_ms,
        occurred_at: event.occurred_at.to_string(),
        run_id: event.run_id.as_deref(),
    };
    serde_json::to_string(&wire).unwrap_or_default()
}

/// Appends batches to the store, stamping them with the clock's time.
#[derive(Clone)]
pub struct EventLog {
    store: Arc<dyn Store>,
    clock: Clock,
}

impl EventLog {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        Self { store, clock }
    }

    pub async fn append(&self, batch: &[NewFieldEvent]) -> Result<AppendResult, StoreError> {
        self.store.append_events(batch, self.clock.now()).await
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"idempotency_key":"k1","endpoint":"items","erp_id":"A-1","field":"price","old_value":"12.50","new_value":12.75,"source_system":"erp","target_system":"crm","outcome":"applied","latency_ms":40,"occurred_at":"2026-11-23T10:00:00Z","run_id":"r1"}"#;

    #[test]
    fn parses_a_full_event_keeping_value_text() {
        let events = parse_batch(format!("[{GOOD}]").as_bytes(), BatchFormat::JsonArray).unwrap();
        let e = &events[0];
        assert_eq!(e.endpoint, Endpoint::Items);
        assert_eq!(e.old_value.as_deref(), Some("\"12.50\""));
        assert_eq!(e.new_value.as_deref(), Some("12.75"));
        assert_eq!(e.crm_id, None);
        assert_eq!(e.run_id.as_deref(), Some("r1"));
        assert_eq!(e.latency_ms, Some(40));
    }

    #[test]
    fn a_nul_in_a_text_member_is_refused_by_name_but_not_in_a_value() {
        let bad = format!("[{GOOD},{}]", GOOD.replace("\"A-1\"", "\"A\\u0000\""));
        let err = parse_batch(bad.as_bytes(), BatchFormat::JsonArray).unwrap_err();
        assert_eq!(
            (err.code, err.field.as_deref(), err.line),
            ("invalid_event", Some("erp_id"), Some(2))
        );
        let in_value = GOOD.replace("12.75", "\"a\\u0000b\"");
        let events = parse_batch(in_value.as_bytes(), BatchFormat::Ndjson).unwrap();
        assert_eq!(events[0].new_value.as_deref(), Some("\"a\\u0000b\""));
    }

    #[test]
    fn ndjson_skips_blank_lines_and_counts_them() {
        let body = format!("{GOOD}\n\n{}\n", GOOD.replace("k1", "k2"));
        let events = parse_batch(body.as_bytes(), BatchFormat::Ndjson).unwrap();
        assert_eq!(events.len(), 2);
        let bad = format!("{GOOD}\n\n{}\n", GOOD.replace("\"items\"", "\"orders\""));
        let err = parse_batch(bad.as_bytes(), BatchFormat::Ndjson).unwrap_err();
        assert_eq!(
            (err.field.as_deref(), err.line),
            (Some("endpoint"), Some(3))
        );
    }

    #[test]
    fn names_missing_unknown_and_mistyped_fields() {
        let missing = GOOD.replace(r#""field":"price","#, "");
        let err = parse_batch(
            format!("[{GOOD},{missing}]").as_bytes(),
            BatchFormat::JsonArray,
        )
        .unwrap_err();
        assert_eq!(err.code, "missing_field");
        assert_eq!((err.field.as_deref(), err.line), (Some("field"), Some(2)));

        let unknown = GOOD.replace(r#""field":"#, r#""feild":"x","field":"#);
        let err = parse_batch(unknown.as_bytes(), BatchFormat::Ndjson).unwrap_err();
        assert_eq!(
            (err.code, err.field.as_deref()),
            ("unknown_field", Some("feild"))
        );

        let mistyped = GOOD.replace(r#""latency_ms":40"#, r#""latency_ms":"fast""#);
        let err = parse_batch(mistyped.as_bytes(), BatchFormat::Ndjson).unwrap_err();
        assert_eq!(
            (err.code, err.field.as_deref()),
            ("invalid_type", Some("latency_ms"))
        );
        assert!(err.message.contains("latency_ms"), "{}", err.message);
    }

    #[test]
    fn rejects_bad_values_naming_the_field() {
        let cases = [
            (r#""outcome":"applied""#, r#""outcome":"done""#, "outcome"),
            (r#""outcome":"applied""#, r#""outcome":"erased""#, "outcome"),
            (
                r#""source_system":"erp""#,
                r#""source_system":"sap""#,
                "source_system",
            ),
            (
                r#""occurred_at":"2026-11-23T10:00:00Z""#,
                r#""occurred_at":"yesterday""#,
                "occurred_at",
            ),
            (r#""latency_ms":40"#, r#""latency_ms":-1"#, "latency_ms"),
            (r#""erp_id":"A-1","#, "", "crm_id"),
            (
                r#""idempotency_key":"k1""#,
                r#""idempotency_key":"""#,
                "idempotency_key",
            ),
        ];
        for (from, to, field) in cases {
            let body = GOOD.replace(from, to);
            let err = parse_batch(body.as_bytes(), BatchFormat::Ndjson).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{body}: {err:?}");
            assert_eq!(err.line, Some(1));
        }
    }

    #[test]
    fn malformed_json_is_reported_with_its_line() {
        let err =
            parse_batch(format!("{GOOD}\n{{\"idem").as_bytes(), BatchFormat::Ndjson).unwrap_err();
        assert_eq!((err.code, err.line), ("malformed_json", Some(2)));
        let err = parse_batch(b"[{]", BatchFormat::JsonArray).unwrap_err();
        assert_eq!(err.code, "malformed_json");
        let err = parse_batch(b"{}", BatchFormat::JsonArray).unwrap_err();
        assert_eq!(err.code, "invalid_type");
    }

    #[test]
    fn wire_json_round_trips() {
        let events = parse_batch(GOOD.as_bytes(), BatchFormat::Ndjson).unwrap();
        let again = parse_batch(to_wire_json(&events[0]).as_bytes(), BatchFormat::Ndjson).unwrap();
        assert_eq!(events, again);
    }

    #[test]
    fn detects_format() {
        assert_eq!(BatchFormat::detect(None, b"  [ ]"), BatchFormat::JsonArray);
        assert_eq!(BatchFormat::detect(None, b"{}"), BatchFormat::Ndjson);
        assert_eq!(
            BatchFormat::detect(Some("application/x-ndjson; charset=utf-8"), b"[1]"),
            BatchFormat::Ndjson
        );
    }
}

//! Fault injection for the sandbox servers, switchable at run time (`PUT /_sandbox/faults`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::domain::Timestamp;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Share of calls answered 500, 0.0 to 1.0.
    pub error_rate: f64,
    /// Share of write calls (creates and updates; not reads, searches or logins) answered 500.
    pub write_error_rate: f64,
    /// The next this-many write calls are carried out, but answered 502 as if the answer was lost
    /// on the way back (the caller retries a write that already happened).
    pub lose_write_answers: u32,
    /// The next this-many calls are answered 429.
    pub burst_429: u32,
    /// Retry-After seconds sent with a 429.
    pub retry_after_secs: u32,
    /// Added to every call.
    pub latency_ms: u64,
    /// Added to write calls only, on top of `latency_ms` (a slow write path, cheap to simulate
    /// because a sync makes few writes).
    pub write_latency_ms: u64,
    /// Share of the inputs of a batch write refused one by one (answered 207 with an error per
    /// refused input) while the call itself goes through.
    pub input_error_rate: f64,
    /// Every call answered 503 while set.
    pub outage: bool,
    /// Share of successful answers whose body is cut short.
    pub malformed_rate: f64,
    /// 1-based page number of list/search answers the server silently skips.
    pub drop_page: Option<u32>,
    /// Every list answer comes back empty, without an error (a silent stop; SAP B1 server).
    pub empty_lists: bool,
    /// One-shot: the server forgets every session (SAP B1: the next call gets 401 code 301).
    pub expire_sessions: bool,
    /// Every record written while set carries the same last-modified time (the moment it was
    /// set), so many records share one timestamp across page boundaries.
    pub shared_timestamp: bool,
    /// Prices the server reports wrongly: item code -> factor in percent (110 = 10% too high).
    pub skewed_prices: std::collections::BTreeMap<String, u32>,
}

/// What one call gets.
enum Fault {
    Outage,
    RateLimited(u32),
    Error,
}

pub struct Faults {
    config: Mutex<FaultConfig>,
    rng: Mutex<fastrand::Rng>,
    /// The instant writes are stamped with while `shared_timestamp` is on.
    frozen_at: Mutex<Option<Timestamp>>,
    /// Write calls being answered now, and the most there ever were at once.
    writes_in_flight: AtomicUsize,
    peak_writes_in_flight: AtomicUsize,
}

/// One write call being answered: counted in flight until dropped.
struct WriteInFlight<'a>(&'a Faults);

impl Drop for WriteInFlight<'_> {
    fn drop(&mut self) {
        self.0.writes_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Faults {
    pub fn new(seed: u64) -> Self {
        Self {
            config: Mutex::new(FaultConfig::default()),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            frozen_at: Mutex::new(None),
            writes_in_flight: AtomicUsize::new(0),
            peak_writes_in_flight: AtomicUsize::new(0),
        }
    }

    /// The most write calls this server was ever answering at once.
    pub fn peak_writes_in_flight(&self) -> usize {
        self.peak_writes_in_flight.load(Ordering::SeqCst)
    }

    fn write_started(&self) -> WriteInFlight<'_> {
        let now = self.writes_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_writes_in_flight.fetch_max(now, Ordering::SeqCst);
        WriteInFlight(self)
    }

    pub fn set(&self, config: FaultConfig) {
        *lock(&self.config) = config;
    }

    pub fn get(&self) -> FaultConfig {
        lock(&self.config).clone()
    }

    fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && lock(&self.rng).f64() < rate
    }

    fn next_fault(&self, write: bool) -> (Option<Fault>, Duration) {
        let mut config = lock(&self.config);
        let extra = if write { config.write_latency_ms } else { 0 };
        let latency = Duration::from_millis(config.latency_ms.saturating_add(extra));
        let fault = if config.outage {
            Some(Fault::Outage)
        } else if config.burst_429 > 0 {
            config.burst_429 -= 1;
            Some(Fault::RateLimited(config.retry_after_secs))
        } else {
            let (rate, write_rate) = (config.error_rate, config.write_error_rate);
            drop(config);
            (self.roll(rate) || write && self.roll(write_rate)).then_some(Fault::Error)
        };
        (fault, latency)
    }

    /// Whether this answer's body should be cut short.
    pub fn malformed(&self) -> bool {
        let rate = lock(&self.config).malformed_rate;
        self.roll(rate)
    }

    /// Whether this input of a batch write is to be refused (`input_error_rate`).
    pub fn refuse_input(&self) -> bool {
        let rate = lock(&self.config).input_error_rate;
        self.roll(rate)
    }

    pub fn empty_lists(&self) -> bool {
        lock(&self.config).empty_lists
    }

    pub fn dropped_page(&self) -> Option<u32> {
        lock(&self.config).drop_page
    }

    /// Whether this write's answer is to be lost (counts down `lose_write_answers`).
    fn take_lost_answer(&self) -> bool {
        let mut config = lock(&self.config);
        let lose = config.lose_write_answers > 0;
        config.lose_write_answers = config.lose_write_answers.saturating_sub(1);
        lose
    }

    /// Whether sessions must be forgotten now; the flag clears itself.
    pub fn take_session_expiry(&self) -> bool {
        std::mem::take(&mut lock(&self.config).expire_sessions)
    }

    /// The last-modified time to give a record written `now`.
    pub fn stamp(&self, now: Timestamp) -> Timestamp {
        let shared = lock(&self.config).shared_timestamp;
        let mut frozen = lock(&self.frozen_at);
        if !shared {
            *frozen = None;
            return now;
        }
        *frozen.get_or_insert(now)
    }

    /// The factor (percent) by which the price of `item` is misreported, if any.
    pub fn price_skew(&self, item: &str) -> Option<u32> {
        lock(&self.config).skewed_prices.get(item).copied()
    }
}

/// The answer to send: `body`, or, when the malformed fault strikes, its first half.
pub fn answer(faults: &Faults, body: &serde_json::Value) -> Response {
    if faults.malformed() {
        let text = body.to_string();
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            text[..text.len() / 2].to_string(),
        )
            .into_response();
    }
    Json(body).into_response()
}

/// A poisoned lock only means another request panicked; the fault settings are still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How each server words an injected error in its own format.
pub type ErrorBody = fn(StatusCode, &str) -> Response;

#[derive(Clone)]
pub struct FaultLayer {
    pub faults: std::sync::Arc<Faults>,
    pub error_body: ErrorBody,
}

pub async fn inject(State(layer): State<FaultLayer>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/_sandbox") {
        return next.run(request).await;
    }
    let path = request.uri().path();
    let write = request.method() != axum::http::Method::GET
        && !path.ends_with("/search")
        && !path.ends_with("/batch/read")
        && !path.ends_with("/Login");
    let _in_flight = write.then(|| layer.faults.write_started());
    let (fault, latency) = layer.faults.next_fault(write);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        None if write && layer.faults.take_lost_answer() => {
            let _ = next.run(request).await;
            (layer.error_body)(
                StatusCode::BAD_GATEWAY,
                "bad gateway (injected: the write was made, its answer lost)",
            )
        }
        None => next.run(request).await,
        Some(Fault::Outage) => (layer.error_body)(
            StatusCode::SERVICE_UNAVAILABLE,
            "service unavailable (injected outage)",
        ),
        Some(Fault::Error) => (layer.error_body)(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (injected)",
        ),
        Some(Fault::RateLimited(after)) => {
            let mut response = (layer.error_body)(
                StatusCode::TOO_MANY_REQUESTS,
                "You have reached your secondly limit.",
            );
            let headers = response.headers_mut();
            headers.insert("retry-after", HeaderValue::from(after));
            headers.insert("x-hubspot-ratelimit-max", HeaderValue::from(190));
            headers.insert("x-hubspot-ratelimit-remaining", HeaderValue::from(0));
            headers.insert(
                "x-hubspot-ratelimit-interval-milliseconds",
                HeaderValue::from(10_000),
            );
            response
        }
    }
}

pub async fn get_faults(State(layer): State<FaultLayer>) -> Json<FaultConfig> {
    Json(layer.faults.get())
}

pub async fn put_faults(
    State(layer): State<FaultLayer>,
    Json(config): Json<FaultConfig>,
) -> impl IntoResponse {
    layer.faults.set(config);
    StatusCode::NO_CONTENT
}

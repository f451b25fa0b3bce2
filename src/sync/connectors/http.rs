//! The HTTP plumbing every connector shares: timeouts, bounded retry with jittered exponential
//! backoff on 429, 5xx and transport errors (honouring Retry-After), and per-call accounting.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, Response, StatusCode};

use super::ConnectorError;
use crate::domain::Endpoint;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a random delay up to base * 2^attempt, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_delay);
        cap.mul_f64(fastrand::f64())
    }
}

tokio::task_local! {
    /// The endpoint the calls made in this task are for: the engine sets it around each run, so
    /// every API call is counted under its endpoint without the connectors passing it around.
    static CALL_ENDPOINT: Endpoint;
    /// The calls made in this task so far, apart from those of runs going on beside it (the
    /// connectors' own totals mix every run).
    static SCOPE_CALLS: ScopeCalls;
}

#[derive(Default)]
struct ScopeCalls {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Runs `work` with its API calls counted under `endpoint`, and apart (see [`calls_in_scope`]).
pub async fn scope_calls<F: std::future::Future>(endpoint: Endpoint, work: F) -> F::Output {
    let counted = SCOPE_CALLS.scope(ScopeCalls::default(), work);
    CALL_ENDPOINT.scope(endpoint, counted).await
}

/// The calls (ok, failed) made so far inside the [`scope_calls`] this task runs in.
pub fn calls_in_scope() -> (u64, u64) {
    SCOPE_CALLS
        .try_with(|c| {
            (
                c.ok.load(Ordering::Relaxed),
                c.failed.load(Ordering::Relaxed),
            )
        })
        .unwrap_or_default()
}

/// Wall time during which at least one API call (of any connector) was in flight, since the
/// process started: the time syncwarden spent waiting on the servers. Calls overlap (both sides
/// read at once, writes to both sides at once), so the sum of their latencies overstates it.
pub fn waiting_time() -> Duration {
    CALLS_IN_FLIGHT.waiting()
}

static CALLS_IN_FLIGHT: InFlight = InFlight::new();

/// Calls in flight, and the wall time during which there was at least one.
struct InFlight(Mutex<Busy>);

struct Busy {
    calls: u32,
    /// When the number of calls in flight last rose from zero.
    since: Option<Instant>,
    total: Duration,
}

impl InFlight {
    const fn new() -> Self {
        Self(Mutex::new(Busy {
            calls: 0,
            since: None,
            total: Duration::ZERO,
        }))
    }

    fn busy(&self) -> std::sync::MutexGuard<'_, Busy> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn waiting(&self) -> Duration {
        let busy = self.busy();
        busy.total + busy.since.map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// Counts one call as in flight until the guard is dropped (also when the call's future is).
    fn start(&'static self) -> CallInFlight {
        let mut busy = self.busy();
        if busy.calls == 0 {
            busy.since = Some(Instant::now());
        }
        busy.calls += 1;
        CallInFlight(self)
    }
}

struct CallInFlight(&'static InFlight);

impl Drop for CallInFlight {
    fn drop(&mut self) {
        let mut busy = self.0.busy();
        busy.calls -= 1;
        if busy.calls == 0
            && let Some(since) = busy.since.take()
        {
            busy.total += since.elapsed();
        }
    }
}

/// API calls made by one connector: every attempt counts, a retried failure as a failure.
#[derive(Debug, Default)]
pub struct CallStats {
    /// The connector's name in the `/metrics` counters.
    connector: &'static str,
    ok: AtomicU64,
    failed: AtomicU64,
    latency_micros: AtomicU64,
    /// The calls not yet taken by [`CallStats::take_tallies`], per endpoint (none: made outside
    /// any run, e.g. a connector check).
    tallies: Mutex<BTreeMap<Option<Endpoint>, CallTally>>,
}

/// API calls of one connector for one endpoint: how many, how many succeeded, and how long each
/// took (milliseconds -> calls).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallTally {
    pub endpoint: Option<Endpoint>,
    pub attempted: u64,
    pub succeeded: u64,
    pub latencies_ms: BTreeMap<i64, u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub ok: u64,
    pub failed: u64,
    pub total_latency: Duration,
}

impl CallStats {
    pub fn new(connector: &'static str) -> Self {
        Self {
            connector,
            ..Self::default()
        }
    }

    /// The one hook every API call attempt goes through. It feeds everything that counts calls:
    /// the connector's totals (run summaries, the sync benchmark), the per-endpoint tallies the
    /// engine stores for the monitor's roll-ups (the endpoint from [`CALL_ENDPOINT`]), and the
    /// process-wide `syncwarden_sync_calls_total` of `/metrics`.
    pub fn record(&self, ok: bool, latency: Duration) {
        let outcome = if ok { "ok" } else { "failed" };
        crate::telemetry::count(
            crate::telemetry::SYNC_CALLS,
            &[("connector", self.connector), ("outcome", outcome)],
        );
        let counter = if ok { &self.ok } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
        let _ = SCOPE_CALLS.try_with(|c| {
            let counter = if ok { &c.ok } else { &c.failed };
            counter.fetch_add(1, Ordering::Relaxed);
        });
        self.latency_micros
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
        let endpoint = CALL_ENDPOINT.try_with(|e| *e).ok();
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let tally = tallies.entry(endpoint).or_insert_with(|| CallTally {
            endpoint,
            ..CallTally::default()
        });
        tally.attempted += 1;
        tally.succeeded += u64::from(ok);
        let ms = i64::try_from(latency.as_millis()).unwrap_or(i64::MAX);
        *tally.latencies_ms.entry(ms).or_default() += 1;
    }

    /// The calls made since the last take, per endpoint; the tallies start again from nothing.
    pub fn take_tallies(&self) -> Vec<CallTally> {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *tallies).into_values().collect()
    }

    pub fn snapshot(&self) -> CallCounts {
        CallCounts {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            total_latency: Duration::from_micros(self.latency_micros.load(Ordering::Relaxed)),
        }
    }
}

/// What a call that did not succeed ended with.
enum Failure {
    /// An answer that retrying will not change (or the last of the retries): the connector reads
    /// its own error body from it.
    Status(Response),
    Error(ConnectorError),
}

#[derive(Clone)]
pub struct HttpCore {
    pub client: reqwest::Client,
    pub retry: RetryPolicy,
    pub stats: Arc<CallStats>,
}

impl HttpCore {
    pub fn new(connector: &'static str, retry: RetryPolicy) -> Result<Self, ConnectorError> {
        let client = reqwest::Client::builder()
            .timeout(retry.timeout)
            .connect_timeout(retry.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| ConnectorError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            retry,
            stats: Arc::new(CallStats::new(connector)),
        })
    }

    /// Sends the request `make` builds, retrying what is worth retrying; an answer that stays an
    /// error is turned into the connector's own error by `to_error` (which reads its body).
    pub async fn call<F, Fut>(
        &self,
        make: impl Fn() -> RequestBuilder,
        to_error: F,
    ) -> Result<Response, ConnectorError>
    where
        F: FnOnce(Response) -> Fut,
        Fut: std::future::Future<Output = ConnectorError>,
    {
        self.call_attempts(self.retry.max_attempts, make, to_error)
            .await
    }

    /// As `call`, with one attempt only: for a request that is not safe to repeat blindly (a
    /// create whose answer may be lost), whose caller checks before it tries again.
    pub async fn call_once<F, Fut>(
        &self,
        make: impl Fn() -> RequestBuilder,
        to_error: F,
    ) -> Result<Response, ConnectorError>
    where
        F: FnOnce(Response) -> Fut,
        Fut: std::future::Future<Output = ConnectorError>,
    {
        self.call_attempts(1, make, to_error).await
    }

    async fn call_attempts<F, Fut>(
        &self,
        attempts: u32,
        make: impl Fn() -> RequestBuilder,
        to_error: F,
    ) -> Result<Response, ConnectorError>
    where
        F: FnOnce(Response) -> Fut,
        Fut: std::future::Future<Output = ConnectorError>,
    {
        match self.send(attempts, make).await {
            Ok(response) => Ok(response),
            Err(Failure::Error(e)) => Err(e),
            Err(Failure::Status(response)) => Err(to_error(response).await),
        }
    }

    async fn send(
        &self,
        attempts: u32,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, Failure> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let in_flight = CALLS_IN_FLIGHT.start();
            let result = match make().send().await {
                Ok(response) => buffered(response).await,
                Err(e) => Err(e),
            };
            drop(in_flight);
            let latency = started.elapsed();
            let last = attempt >= attempts;
            match result {
                Ok(response) if response.status().is_success() => {
                    self.stats.record(true, latency);
                    return Ok(response);
                }
                Ok(response) => {
                    self.stats.record(false, latency);
                    let status = response.status();
                    if last || !retryable(status) {
                        return Err(Failure::Status(response));
                    }
                    let wait =
                        retry_after(&response).unwrap_or_else(|| self.retry.backoff(attempt));
                    tracing::warn!(%status, attempt, wait_ms = wait.as_millis() as u64, "retrying call");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    self.stats.record(false, latency);
                    let error = ConnectorError::Transport(e.without_url().to_string());
                    if last {
                        return Err(Failure::Error(error));
                    }
                    tracing::warn!(%error, attempt, "retrying call");
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
            }
        }
    }
}

/// The response with its body read: a call is in flight (and its latency runs) until the
/// server has sent all of it, not just its headers, so a slow body counts as waiting on the
/// server rather than as syncwarden's own time.
async fn buffered(response: Response) -> Result<Response, reqwest::Error> {
    let (status, version) = (response.status(), response.version());
    let headers = response.headers().clone();
    let mut read = ::http::Response::new(response.bytes().await?);
    *read.status_mut() = status;
    *read.version_mut() = version;
    *read.headers_mut() = headers;
    Ok(Response::from(read))
}

/// Whether a failed call may succeed when made again (rate limit, server error, transport).
pub fn worth_retrying(error: &ConnectorError) -> bool {
    match error {
        ConnectorError::Api { status, .. } => StatusCode::from_u16(*status).is_ok_and(retryable),
        ConnectorError::Transport(_) => true,
        _ => false,
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// How long a refused call should wait: `Retry-After` (seconds), else, on a 429, HubSpot's
/// rate-limit window (`X-HubSpot-RateLimit-Interval-Milliseconds`) when the window is used up.
fn retry_after(response: &Response) -> Option<Duration> {
    wait_from(response.status(), response.headers())
}

fn wait_from(status: StatusCode, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    // An absurd value (negative, NaN, 1e20) is ignored rather than trusted or panicked on.
    let secs = |s: f64| Duration::try_from_secs_f64(s).ok();
    if let Some(after) = number("retry-after").and_then(secs) {
        return Some(after);
    }
    let exhausted = number("x-hubspot-ratelimit-remaining").is_some_and(|r| r < 1.0);
    if status == StatusCode::TOO_MANY_REQUESTS && exhausted {
        return number("x-hubspot-ratelimit-interval-milliseconds")
            .and_then(|ms| secs(ms / 1000.0));
    }
    None
}

#[cfg(test)]
mod hook_tests {
    use super::*;

    /// The value of `syncwarden_sync_calls_total` for one connector and outcome.
    fn exported(connector: &str, outcome: &str) -> u64 {
        let mut out = String::new();
        crate::telemetry::render_counters(&mut out);
        let series = format!(
            "{}{{connector=\"{connector}\",outcome=\"{outcome}\"}} ",
            crate::telemetry::SYNC_CALLS
        );
        out.lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0, |n| n.parse().unwrap())
    }

    #[tokio::test]
    async fn one_record_feeds_the_totals_the_tallies_and_the_exported_counter() {
        let stats = CallStats::new("hook-test");
        CALL_ENDPOINT
            .scope(Endpoint::Accounts, async {
                stats.record(true, Duration::from_millis(3));
                stats.record(true, Duration::from_millis(3));
                stats.record(false, Duration::from_millis(40));
            })
            .await;
        stats.record(true, Duration::from_millis(1));
        let totals = stats.snapshot();
        assert_eq!((totals.ok, totals.failed), (3, 1));
        assert_eq!(totals.total_latency, Duration::from_millis(47));
        let tallies = stats.take_tallies();
        let accounts = tallies
            .iter()
            .find(|t| t.endpoint == Some(Endpoint::Accounts))
            .unwrap();
        assert_eq!((accounts.attempted, accounts.succeeded), (3, 2));
        assert_eq!(accounts.latencies_ms, BTreeMap::from([(3, 2), (40, 1)]));
        let outside = tallies.iter().find(|t| t.endpoint.is_none()).unwrap();
        assert_eq!((outside.attempted, outside.succeeded), (1, 1));
        assert!(stats.take_tallies().is_empty(), "taken once");
        // The exported counter saw exactly the same calls.
        assert_eq!(exported("hook-test", "ok"), totals.ok);
        assert_eq!(exported("hook-test", "failed"), totals.failed);
    }
}

#[cfg(test)]
mod wait_tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn retry_after_first_then_hubspots_window_then_nothing() {
        let limited = StatusCode::TOO_MANY_REQUESTS;
        let window = [
            ("x-hubspot-ratelimit-remaining", "0"),
            ("x-hubspot-ratelimit-interval-milliseconds", "1500"),
        ];
        assert_eq!(
            wait_from(limited, &headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            wait_from(limited, &headers(&window)),
            Some(Duration::from_millis(1500))
        );
        // A window not used up, or an answer that is not a 429, says nothing about waiting.
        let open = [
            ("x-hubspot-ratelimit-remaining", "12"),
            ("x-hubspot-ratelimit-interval-milliseconds", "1500"),
        ];
        assert_eq!(wait_from(limited, &headers(&open)), None);
        assert_eq!(wait_from(StatusCode::BAD_GATEWAY, &headers(&window)), None);
        assert_eq!(wait_from(limited, &headers(&[("retry-after", "-3")])), None);
        assert_eq!(
            wait_from(limited, &headers(&[("retry-after", "1e30")])),
            None
        );
    }
}

#[cfg(test)]
mod in_flight_tests {
    use super::*;

    #[test]
    fn overlapping_calls_count_once_and_gaps_not_at_all() {
        static CLOCK: InFlight = InFlight::new();
        let pause = || std::thread::sleep(Duration::from_millis(20));
        let a_started = Instant::now();
        let a = CLOCK.start();
        pause();
        let b_started = Instant::now();
        let b = CLOCK.start();
        pause();
        drop(a);
        let a_took = a_started.elapsed();
        let overlap = b_started.elapsed();
        pause();
        drop(b);
        let b_took = b_started.elapsed();
        let waiting = CLOCK.waiting();
        pause();
        assert_eq!(CLOCK.waiting(), waiting, "no call in flight, no waiting");
        // The union of the two calls: their latencies less the time they overlapped.
        let union = a_took + b_took - overlap;
        let off = waiting.abs_diff(union);
        assert!(off < Duration::from_millis(5), "{waiting:?} vs {union:?}");
        assert!(waiting + Duration::from_millis(15) < a_took + b_took);
    }
}

#[cfg(test)]
mod body_tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const BODY_DELAY: Duration = Duration::from_millis(300);

    /// A server that answers one request with its headers at once and its body `BODY_DELAY`
    /// later, as a slow server streaming a large page would.
    async fn slow_body_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/slow", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await.unwrap();
            let body = br#"{"results":[1,2,3]}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-page: 7\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            socket.flush().await.unwrap();
            tokio::time::sleep(BODY_DELAY).await;
            socket.write_all(body).await.unwrap();
            socket.flush().await.unwrap();
        });
        url
    }

    #[tokio::test]
    async fn a_slow_body_is_waiting_on_the_server_not_syncwardens_time() {
        let url = slow_body_server().await;
        let core = HttpCore::new("slow-body-test", RetryPolicy::default()).unwrap();
        let waiting_before = waiting_time();
        let response = core
            .call(
                || core.client.get(&url),
                |r| async move { ConnectorError::Transport(r.status().to_string()) },
            )
            .await
            .unwrap();
        // The call is over once it returns: the body is already here.
        let waited = waiting_time() - waiting_before;
        let latency = core.stats.snapshot().total_latency;
        assert!(waited >= BODY_DELAY, "in flight only {waited:?}");
        assert!(latency >= BODY_DELAY, "latency {latency:?}");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-page"], "7");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"results": [1, 2, 3]}));
    }
}

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use syncwarden::api::auth::{hash_token, new_token};
use syncwarden::clock::Clock;
use syncwarden::config::{DatabaseSettings, Settings};
use syncwarden::domain::{Endpoint, NewFieldEvent, Outcome, Role, System, Timestamp};
use syncwarden::startup::Application;
use syncwarden::store::{self, Store};
use syncwarden::sync::engine::Engine;
use syncwarden::sync::rules::{ConflictPolicy, FieldRule};

pub const PG_VAR: &str = "SW_TEST_PG_URL";

/// Says a tier was skipped, bypassing libtest's output capture so it shows in a plain `cargo test`.
pub fn skip_notice(test: &str, var: &str, example: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: set {var}={example} to run it (.ci/run does)"
    );
}

/// A database of its own for one test: a SQLite file in a temp dir or a scratch PostgreSQL database.
pub struct TestDb {
    pub url: String,
    pg_admin: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: format!("sqlite://{}", dir.path().join("test.db").display()),
            pg_admin: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres(test: &str) -> Option<Self> {
        let Ok(admin) = std::env::var(PG_VAR) else {
            skip_notice(test, PG_VAR, "postgres://postgres@127.0.0.1:5432/test");
            return None;
        };
        let url = store::create_scratch_database(&admin, "sw_test")
            .await
            .unwrap();
        Some(Self {
            url,
            pg_admin: Some(admin),
            _dir: None,
        })
    }

    /// Every backend this run can test: SQLite always, PostgreSQL when configured.
    pub async fn all(test: &str) -> Vec<Self> {
        let mut dbs = vec![Self::sqlite()];
        dbs.extend(Self::postgres(test).await);
        dbs
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        let store = store::connect(&self.url.clone().into(), &DatabaseSettings::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
    }

    pub fn settings(&self) -> Settings {
        let mut settings = Settings::default();
        settings.database.url = self.url.clone().into();
        settings.server.listen = "127.0.0.1:0".parse().unwrap();
        settings
    }

    pub async fn cleanup(self) {
        if let Some(admin) = &self.pg_admin {
            store::drop_database(admin, &self.url).await.unwrap();
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn(settings: Settings) -> Self {
        if std::env::var("TEST_LOG").is_ok() {
            syncwarden::telemetry::init(&settings.log);
        }
        let app = Application::build(&settings, Clock::system())
            .await
            .unwrap();
        let base = format!("http://{}", app.local_addr());
        let store = store::connect(&settings.database_url(), &settings.database)
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self {
            base,
            client: reqwest::Client::new(),
            store,
            stop: Some(tx),
        }
    }

    pub async fn post_events(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/events", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The app served on `store` (and `engine`, when the test syncs), on a random port, until dropped.
pub struct Serving {
    /// `http://` or `https://` and the address.
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Serving {
    pub async fn start(
        settings: &Settings,
        clock: Clock,
        store: Arc<dyn Store>,
        engine: Option<Arc<Engine>>,
    ) -> Self {
        let app = Application::with_store(settings, clock, store, engine)
            .await
            .unwrap();
        let base = format!("{}://{}", app.scheme(), app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self {
            base,
            stop: Some(tx),
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An API token of `role` stored as `syncwarden token create` stores one; returns its id and
/// the token.
pub async fn issue_token(
    store: &dyn Store,
    name: &str,
    role: Role,
    now: Timestamp,
    expires: Option<Timestamp>,
) -> (i64, String) {
    let token = new_token();
    let id = store
        .create_token(name, role, &hash_token(&token), now, expires)
        .await
        .unwrap();
    (id, token)
}

/// One token per person-facing role, named by `name`.
pub async fn role_tokens(
    store: &dyn Store,
    now: Timestamp,
    name: impl Fn(Role) -> String,
) -> BTreeMap<Role, String> {
    let mut tokens = BTreeMap::new();
    for role in [Role::Viewer, Role::Approver, Role::Admin] {
        let (_, token) = issue_token(store, &name(role), role, now, None).await;
        tokens.insert(role, token);
    }
    tokens
}

/// Conflicts on `field` of `endpoint` are held for a person, the ERP owning the field.
pub fn hold_conflicts(settings: &mut Settings, endpoint: Endpoint, field: &str) {
    settings
        .sync
        .endpoints
        .get_mut(&endpoint)
        .unwrap()
        .fields
        .insert(
            field.into(),
            FieldRule {
                owner: System::Erp,
                conflict: ConflictPolicy::Manual,
            },
        );
}

/// The `n`th of the outcomes another platform may send, in turn: all but `erased`, which only
/// syncwarden's own erasure records.
fn sent_outcome(n: usize) -> Outcome {
    let sent: Vec<Outcome> = Outcome::ALL
        .into_iter()
        .filter(|o| *o != Outcome::Erased)
        .collect();
    sent[n % sent.len()]
}

/// A field event with every field set; `n` makes the key, the record and the time distinct.
pub fn event(n: usize) -> NewFieldEvent {
    NewFieldEvent {
        idempotency_key: format!("key-{n}"),
        run_id: Some(format!("run-{}", n % 3)),
        endpoint: Endpoint::ALL[n % 7],
        crm_id: Some(format!("crm-{}", n % 5)),
        erp_id: Some(format!("ERP{}", n % 5)),
        field: if n.is_multiple_of(2) {
            "price".into()
        } else {
            "name".into()
        },
        old_value: Some(format!("\"old {n}\"")),
        new_value: Some(format!("{n}.5")),
        source_system: System::Erp,
        target_system: System::Crm,
        outcome: sent_outcome(n),
        error: n.is_multiple_of(4).then(|| format!("error {n}")),
        latency_ms: Some(n as i64 * 3),
        occurred_at: Timestamp::parse_rfc3339("2026-11-23T00:00:00Z").unwrap()
            + std::time::Duration::from_secs(60 * n as u64),
    }
}

/// Every stored event, oldest first, read page by page.
pub async fn all_events(store: &dyn Store) -> Vec<syncwarden::domain::FieldEvent> {
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .query_events(&syncwarden::store::EventQuery {
                after_id: after,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else {
            return events;
        };
        after = Some(last.id);
        events.extend(page);
    }
}

pub fn events(range: std::ops::Range<usize>) -> Vec<NewFieldEvent> {
    range.map(event).collect()
}

/// `syncwarden serve` as its own process on `db_url`, with an optional config file; returns the
/// child and the API's base URL (read from its first line).
pub fn spawn_serve(
    db_url: &str,
    data_dir: &std::path::Path,
    config: Option<&std::path::Path>,
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_syncwarden"));
    command.args(["serve", "--data-dir"]).arg(data_dir);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let mut child = command
        .env("SYNCWARDEN_DATABASE__URL", db_url)
        .env("SYNCWARDEN_SERVER__LISTEN", "127.0.0.1:0")
        .env("SYNCWARDEN_LOG__LEVEL", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("syncwarden listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, base)
}

//! Wiring: open and migrate the store, build the router, bind the listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::clock::Clock;
use crate::config::Settings;
use crate::store::{self, Store, StoreError};
use crate::sync::engine::Engine;
use crate::sync::events::EventLog;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    store: Arc<dyn Store>,
    router: axum::Router,
    /// Set when `server.tls_cert` and `server.tls_key` are: then only HTTPS is served.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Opened by [`Application::build`], so closed when serving ends; a store handed in is the
    /// caller's to close, since its other users (the sync scheduler finishing a run, the alert
    /// worker, a clean stop handing endpoints back) may still write after the server stopped.
    owns_store: bool,
}

/// Opens the configured store and brings its schema up to date.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, StoreError> {
    let store = store::connect(&settings.database_url(), &settings.database).await?;
    store.migrate().await?;
    Ok(store)
}

impl Application {
    pub async fn build(settings: &Settings, clock: Clock) -> Result<Self, StartupError> {
        let store = open_store(settings).await?;
        let mut app = Self::with_store(settings, clock, store, None).await?;
        app.owns_store = true;
        Ok(app)
    }

    /// The app on an open store; `engine` (when the sync is configured) serves the operations
    /// that act on the CRM and ERP (settling conflicts, re-driving failed writes).
    pub async fn with_store(
        settings: &Settings,
        clock: Clock,
        store: Arc<dyn Store>,
        engine: Option<Arc<Engine>>,
    ) -> Result<Self, StartupError> {
        let tls = crate::tls::acceptor(&settings.server)?;
        let addr = settings.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr, source })?;
        let state = AppState {
            events: EventLog::new(store.clone(), clock.clone()),
            store: store.clone(),
            dedup: Arc::new(crate::dedup::service::build(
                settings,
                store.clone(),
                engine.as_deref(),
                clock.clone(),
            )),
            clock,
            engine,
            ingest_token: settings
                .ingest
                .required_token()
                .map(|t| SecretString::from(t.to_string())),
            body_limit: settings.server.body_limit_bytes,
            http: Default::default(),
            limits: api::auth::RateLimits::new(settings.server.requests_per_minute),
            admin_body_limit: settings.server.admin_body_limit_bytes,
            request_timeout: std::time::Duration::from_secs(
                settings.server.request_timeout_secs.max(1),
            ),
            digest: Arc::new(settings.digest.clone()),
            privacy: Arc::new(settings.privacy.clone()),
        };
        Ok(Self {
            listener,
            addr,
            store,
            router: api::router(state),
            tls,
            owns_store: false,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https` when TLS is configured, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serves until ctrl-c or SIGTERM, then finishes in-flight requests (and closes the store if
    /// it opened it).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let result = match self.tls {
            Some(acceptor) => {
                let listener = crate::tls::TlsListener::new(self.listener, acceptor, self.addr);
                axum::serve(listener, self.router)
                    .with_graceful_shutdown(stop)
                    .await
            }
            None => {
                axum::serve(self.listener, self.router)
                    .with_graceful_shutdown(stop)
                    .await
            }
        };
        if self.owns_store {
            self.store.close().await;
        }
        result
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

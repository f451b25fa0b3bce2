//! The sandbox: an in-process HubSpot CRM and SAP Business One ERP speaking the real wire formats,
//! seeded deterministically, with fault injection. The demo, the tests and the benchmarks use it.

pub mod faults;
pub mod hubspot;
pub mod sap_b1;
pub mod seed;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::clock::Clock;
use faults::{FaultLayer, Faults};
use hubspot::{HsData, HubSpotSandbox, OAuthApp};
use sap_b1::{SapB1Sandbox, SapData};

pub use seed::{SeedScale, seed};

/// Credentials the sandbox servers accept; the demo configures its connectors with them.
pub const HUBSPOT_TOKEN: &str = "pat-sandbox-0000";
pub const SAP_COMPANY_DB: &str = "SBODEMO";
pub const SAP_USER: &str = "manager";
pub const SAP_PASSWORD: &str = "sandbox";
/// The OAuth app the sandbox CRM knows (the private-app token above works too).
pub const HUBSPOT_CLIENT_ID: &str = "sandbox-client";
pub const HUBSPOT_CLIENT_SECRET: &str = "sandbox-secret";
pub const HUBSPOT_REFRESH_TOKEN: &str = "sandbox-refresh-token";

/// One running sandbox server.
pub struct SandboxServer {
    pub addr: SocketAddr,
    pub faults: Arc<Faults>,
    task: tokio::task::JoinHandle<()>,
}

impl SandboxServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for SandboxServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Sandbox {
    pub crm: SandboxServer,
    pub erp: SandboxServer,
    pub crm_data: Arc<Mutex<HsData>>,
    pub crm_oauth: Arc<Mutex<OAuthApp>>,
    pub erp_data: Arc<Mutex<SapData>>,
}

async fn serve(
    router: Router,
    faults: Arc<Faults>,
    error_body: faults::ErrorBody,
) -> std::io::Result<SandboxServer> {
    let layer = FaultLayer {
        faults: faults.clone(),
        error_body,
    };
    let control = Router::new()
        .route(
            "/_sandbox/faults",
            get(faults::get_faults).put(faults::put_faults),
        )
        .with_state(layer.clone());
    let app = router
        .merge(control)
        .layer(axum::middleware::from_fn_with_state(layer, faults::inject));
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "sandbox server stopped");
        }
    });
    Ok(SandboxServer { addr, faults, task })
}

impl Sandbox {
    /// Points the connector settings at these two servers, with the credentials they accept.
    pub fn configure(&self, settings: &mut crate::config::Settings) {
        settings.crm.base_url = self.crm.base_url();
        settings.crm.token = HUBSPOT_TOKEN.to_string().into();
        settings.erp.base_url = self.erp.base_url();
        settings.erp.company_db = SAP_COMPANY_DB.into();
        settings.erp.username = SAP_USER.into();
        settings.erp.password = SAP_PASSWORD.to_string().into();
    }

    /// The same connector settings as [`Self::configure`], as the `SYNCWARDEN_*` environment of
    /// a child process.
    pub fn env(&self) -> [(&'static str, String); 6] {
        [
            ("SYNCWARDEN_CRM__BASE_URL", self.crm.base_url()),
            ("SYNCWARDEN_CRM__TOKEN", HUBSPOT_TOKEN.into()),
            ("SYNCWARDEN_ERP__BASE_URL", self.erp.base_url()),
            ("SYNCWARDEN_ERP__COMPANY_DB", SAP_COMPANY_DB.into()),
            ("SYNCWARDEN_ERP__USERNAME", SAP_USER.into()),
            ("SYNCWARDEN_ERP__PASSWORD", SAP_PASSWORD.into()),
        ]
    }

    /// Starts both servers on loopback ports, seeded at `scale`.
    pub async fn start(clock: Clock, scale: &SeedScale) -> std::io::Result<Self> {
        let crm_data = Arc::new(Mutex::new(HsData::default()));
        let erp_data = Arc::new(Mutex::new(SapData::default()));
        {
            let mut crm = crm_data.lock().unwrap_or_else(|e| e.into_inner());
            let mut erp = erp_data.lock().unwrap_or_else(|e| e.into_inner());
            seed(scale, clock.now() - scale.age, &mut crm, &mut erp);
        }
        let crm_oauth = Arc::new(Mutex::new(OAuthApp {
            client_id: HUBSPOT_CLIENT_ID.into(),
            client_secret: HUBSPOT_CLIENT_SECRET.into(),
            refresh_token: HUBSPOT_REFRESH_TOKEN.into(),
            token_lifetime: Duration::from_secs(30 * 60),
            issued: Default::default(),
            refreshes: 0,
        }));
        let crm_faults = Arc::new(Faults::new(scale.seed));
        let erp_faults = Arc::new(Faults::new(scale.seed.wrapping_add(1)));
        let crm = serve(
            hubspot::router(HubSpotSandbox {
                data: crm_data.clone(),
                oauth: crm_oauth.clone(),
                token: HUBSPOT_TOKEN.into(),
                clock: clock.clone(),
                faults: crm_faults.clone(),
            }),
            crm_faults,
            hubspot::error_body,
        )
        .await?;
        let erp = serve(
            sap_b1::router(SapB1Sandbox {
                data: erp_data.clone(),
                company_db: SAP_COMPANY_DB.into(),
                username: SAP_USER.into(),
                password: SAP_PASSWORD.into(),
                session_timeout: Duration::from_secs(30 * 60),
                clock,
                faults: erp_faults.clone(),
            }),
            erp_faults,
            sap_b1::error_body,
        )
        .await?;
        Ok(Self {
            crm,
            erp,
            crm_data,
            crm_oauth,
            erp_data,
        })
    }
}

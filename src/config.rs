//! Typed settings: defaults in code, an optional TOML file, then `SYNCWARDEN_*` environment variables.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::alert::AlertingSettings;
use crate::dedup::DedupSettings;
use crate::dedup::llm::LlmSettings;
use crate::digest::DigestSettings;
use crate::maintenance::MaintenanceSettings;
use crate::monitor::MonitorSettings;
use crate::privacy::PrivacySettings;
use crate::sync::connectors::hubspot::HubSpotSettings;
use crate::sync::connectors::sap_b1::SapB1Settings;
use crate::sync::connectors::tryton::TrytonSettings;
use crate::sync::rules::SyncSettings;
use crate::vault::VaultSettings;

/// The annotated default configuration, printed by `syncwarden default-config`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration error: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub server: ServerSettings,
    pub ingest: IngestSettings,
    pub log: LogSettings,
    /// The CRM connector (HubSpot CRM v3).
    pub crm: HubSpotSettings,
    /// The ERP connector (SAP Business One Service Layer).
    pub erp: SapB1Settings,
    /// The ERP connector for Tryton, used when `sync.erp = "tryton"`.
    pub tryton: TrytonSettings,
    pub sync: SyncSettings,
    /// Event-log partitions and retention.
    pub maintenance: MaintenanceSettings,
    /// The deduper's decision bands and clustering.
    pub dedup: DedupSettings,
    /// The LLM that adjudicates uncertain duplicate pairs (off when `base_url` is empty).
    pub llm: LlmSettings,
    /// Alerting: routing, grouping, receivers, delivery.
    pub alerting: AlertingSettings,
    /// The weekly KPI digest: time zone, schedule, recipients.
    pub digest: DigestSettings,
    /// Where the secret vault's master key comes from.
    pub vault: VaultSettings,
    /// Personal data: which fields hold it and who sees it.
    pub privacy: PrivacySettings,
    /// The monitor: detector parameters, price checks.
    pub monitor: MonitorSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./syncwarden-data"),
            database: DatabaseSettings::default(),
            server: ServerSettings::default(),
            ingest: IngestSettings::default(),
            log: LogSettings::default(),
            crm: HubSpotSettings::default(),
            erp: SapB1Settings::default(),
            tryton: TrytonSettings::default(),
            sync: SyncSettings::default(),
            maintenance: MaintenanceSettings::default(),
            dedup: DedupSettings::default(),
            llm: LlmSettings::default(),
            alerting: AlertingSettings::default(),
            digest: DigestSettings::default(),
            vault: VaultSettings::default(),
            privacy: PrivacySettings::default(),
            monitor: MonitorSettings::default(),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Empty means the embedded SQLite file under `data_dir`.
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from(""),
            max_connections: 8,
            acquire_timeout_secs: 5,
        }
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(self.url.expose_secret()))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_secs", &self.acquire_timeout_secs)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub body_limit_bytes: usize,
    /// Largest body of the admin API's other requests, in bytes.
    pub admin_body_limit_bytes: usize,
    /// Admin API requests each token may make per minute (0: no limit).
    pub requests_per_minute: u32,
    /// Seconds an admin API request may take before it is answered 503 (ingest excluded).
    pub request_timeout_secs: u64,
    /// PEM certificate chain; with `tls_key`, the API is served over TLS only.
    pub tls_cert: PathBuf,
    /// PEM private key of `tls_cert`.
    pub tls_key: PathBuf,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 64 * 1024 * 1024,
            admin_body_limit_bytes: 1024 * 1024,
            requests_per_minute: 600,
            request_timeout_secs: 30,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    /// Empty means no token is required.
    pub token: SecretString,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            token: SecretString::from(""),
        }
    }
}

impl IngestSettings {
    pub fn required_token(&self) -> Option<&str> {
        let token = self.token.expose_secret();
        (!token.is_empty()).then_some(token)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    /// Loads defaults, then `file` (when given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_path_buf()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // The master key is read by the vault alone, never kept in the settings.
        figment = figment.merge(
            Env::prefixed("SYNCWARDEN_")
                .ignore(&["master_key"])
                .split("__"),
        );
        figment
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))
    }

    /// Parses a TOML document on top of the defaults (no environment), used to check the shipped files.
    pub fn from_toml_str(toml: &str) -> Result<Self, ConfigError> {
        Figment::new()
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))
    }

    /// The database URL in effect: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> SecretString {
        let url = self.database.url.expose_secret();
        if url.is_empty() {
            let path = self.data_dir.join("syncwarden.db");
            SecretString::from(format!("sqlite://{}", path.display()))
        } else {
            self.database.url.clone()
        }
    }
}

/// Hides the password part of `scheme://user:password@host/...`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_default_file_matches_code_defaults() {
        let from_file = Settings::from_toml_str(DEFAULT_CONFIG_TOML).unwrap();
        let defaults = Settings::default();
        assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"));
        assert_eq!(
            from_file.database.url.expose_secret(),
            defaults.database.url.expose_secret()
        );
    }

    #[test]
    fn shipped_example_file_loads() {
        let example = Settings::from_toml_str(include_str!("../config/example.toml")).unwrap();
        assert!(
            example
                .database
                .url
                .expose_secret()
                .starts_with("postgres://")
        );
        assert_eq!(example.log.format, LogFormat::Json);
        assert_eq!(example.alerting.receivers.len(), 4);
        assert_eq!(example.alerting.route.routes.len(), 2);
        assert_eq!(example.monitor.customer_price_books["C20000"], "2");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = Settings::from_toml_str("[server]\nlisten_on = \"x\"").unwrap_err();
        assert!(err.to_string().contains("listen_on"), "{err}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://sw:hunter2@db:5432/x"),
            "postgres://sw:***@db:5432/x"
        );
        assert_eq!(redact_url("sqlite://./a.db"), "sqlite://./a.db");
        let s = DatabaseSettings {
            url: SecretString::from("postgres://a:hunter2@h/db"),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn empty_url_means_sqlite_under_data_dir() {
        let s = Settings {
            data_dir: PathBuf::from("/tmp/x"),
            ..Default::default()
        };
        assert_eq!(
            s.database_url().expose_secret(),
            "sqlite:///tmp/x/syncwarden.db"
        );
    }
}

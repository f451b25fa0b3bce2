//! Connectors: one small trait, implemented over the real wire formats (HubSpot CRM v3 on the CRM
//! side, SAP Business One Service Layer on the ERP side). The sandbox servers speak the same formats.

pub mod http;
pub mod hubspot;
pub mod sap_b1;
pub mod tryton;

use async_trait::async_trait;

use crate::domain::{Endpoint, System, Timestamp};
use crate::sync::record::{Page, Write};

pub use http::{CallCounts, CallTally, RetryPolicy, calls_in_scope, scope_calls, waiting_time};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("{system} answered {status}: {message}")]
    Api {
        system: System,
        status: u16,
        message: String,
        /// The vendor's error code or category.
        code: Option<String>,
        /// HubSpot's correlationId, for support tickets.
        correlation_id: Option<String>,
    },
    #[error("transport error: {0}")]
    Transport(String),
    #[error("malformed answer from {system}: {message}")]
    Malformed { system: System, message: String },
    #[error("{system} connector does not support endpoint {endpoint}")]
    Unsupported { system: System, endpoint: Endpoint },
    #[error("connector configuration: {0}")]
    Config(String),
}

impl ConnectorError {
    pub fn malformed(system: System, message: impl Into<String>) -> Self {
        ConnectorError::Malformed {
            system,
            message: message.into(),
        }
    }
}

/// A JSON object's member as text: a non-empty string, or a number. ERP APIs send keys and
/// codes as either.
fn text(object: &serde_json::Map<String, serde_json::Value>, name: &str) -> Option<String> {
    match object.get(name)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The result of one record write: the record's id on that side, or why it failed.
pub type WriteResult = Result<String, ConnectorError>;

#[async_trait]
pub trait Connector: Send + Sync {
    fn system(&self) -> System;

    /// Verifies credentials and reachability.
    async fn check(&self) -> Result<(), ConnectorError>;

    /// Records of `endpoint` modified at or after `since` (inclusive, so records sharing the
    /// boundary timestamp are seen again rather than lost), one page at a time.
    async fn pull(
        &self,
        endpoint: Endpoint,
        since: Option<Timestamp>,
        page: Option<String>,
    ) -> Result<Page, ConnectorError>;

    /// Creates or updates records; one result per write, in order. A failure of the whole call is
    /// an `Err`; a partial failure is an `Err` in the results.
    async fn write(
        &self,
        endpoint: Endpoint,
        writes: &[Write],
    ) -> Result<Vec<WriteResult>, ConnectorError>;

    /// Merges the record `loser` into `survivor` on this side (HubSpot's merge endpoint): the
    /// loser disappears and its associations move to the survivor. Merging a record that is
    /// already gone into the survivor succeeds, so a replayed step is harmless.
    async fn merge(
        &self,
        endpoint: Endpoint,
        survivor: &str,
        loser: &str,
    ) -> Result<(), ConnectorError> {
        let _ = (survivor, loser);
        Err(ConnectorError::Unsupported {
            system: self.system(),
            endpoint,
        })
    }

    /// Creates a merged-away record again with `fields` (and its ERP `key`, if it had one), once:
    /// `marker` identifies the re-creation, so a replay finds the record made before.
    async fn restore(
        &self,
        endpoint: Endpoint,
        marker: &str,
        key: Option<&str>,
        fields: &crate::sync::record::Fields,
    ) -> WriteResult {
        let _ = (marker, key, fields);
        Err(ConnectorError::Unsupported {
            system: self.system(),
            endpoint,
        })
    }

    /// The canonical fields this connector maps for `endpoint`.
    fn fields(&self, endpoint: Endpoint) -> Result<Vec<String>, ConnectorError>;

    /// API calls made so far.
    fn calls(&self) -> CallCounts;

    /// The API calls made since the last take, per endpoint, for the metric roll-ups.
    fn take_call_tallies(&self) -> Vec<CallTally>;
}

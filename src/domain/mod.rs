//! The canonical model: the seven endpoints, the two systems, time, money and the field-level event.

mod access;
mod dedup;
mod event;
mod money;
mod records;
mod sync_state;
mod time;

pub use access::{ApiToken, Role};
pub use dedup::{
    DedupProposal, JobStatus, MergeField, MergeJob, MergeKind, NewDedupProposal, ProposalStatus,
};
pub use event::{FieldEvent, NewFieldEvent, Outcome, RunStatus, SyncRun, SyncRunCounts};
pub use money::{Currency, Money, MoneyError};
pub use records::{
    Account, Address, Contact, ErpDocument, Invoice, Item, Line, PriceBook, PriceBookEntry, Quote,
    RecordLink, SalesOrder,
};
pub use sync_state::{Conflict, DeadLetter, EndpointControl, PolicyChange, RecordState};
pub use time::Timestamp;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    #[error(
        "unknown endpoint `{0}` (expected one of accounts, contacts, pricebook, items, quotes, sales_orders, invoices)"
    )]
    UnknownEndpoint(String),
    #[error("unknown system `{0}` (expected crm or erp)")]
    UnknownSystem(String),
    #[error("unknown outcome `{0}`")]
    UnknownOutcome(String),
    #[error("invalid RFC 3339 timestamp `{0}`")]
    InvalidTimestamp(String),
    #[error("unknown role `{0}` (expected viewer, approver or admin)")]
    UnknownRole(String),
}

/// The seven synchronised endpoints of the product spec.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Accounts,
    Contacts,
    Pricebook,
    Items,
    Quotes,
    SalesOrders,
    Invoices,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Accounts,
        Endpoint::Contacts,
        Endpoint::Pricebook,
        Endpoint::Items,
        Endpoint::Quotes,
        Endpoint::SalesOrders,
        Endpoint::Invoices,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Accounts => "accounts",
            Endpoint::Contacts => "contacts",
            Endpoint::Pricebook => "pricebook",
            Endpoint::Items => "items",
            Endpoint::Quotes => "quotes",
            Endpoint::SalesOrders => "sales_orders",
            Endpoint::Invoices => "invoices",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| DomainError::UnknownEndpoint(s.to_string()))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One side of the integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Crm,
    Erp,
}

impl System {
    pub fn as_str(self) -> &'static str {
        match self {
            System::Crm => "crm",
            System::Erp => "erp",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "crm" => Ok(System::Crm),
            "erp" => Ok(System::Erp),
            other => Err(DomainError::UnknownSystem(other.to_string())),
        }
    }

    pub fn other(self) -> Self {
        match self {
            System::Crm => System::Erp,
            System::Erp => System::Crm,
        }
    }
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_round_trip() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::parse(e.as_str()), Ok(e));
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(json, format!("\"{}\"", e.as_str()));
        }
        assert!(Endpoint::parse("orders").is_err());
    }

    #[test]
    fn systems() {
        assert_eq!(System::parse("crm"), Ok(System::Crm));
        assert_eq!(System::Crm.other(), System::Erp);
        assert!(System::parse("CRM").is_err());
    }
}

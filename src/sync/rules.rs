//! Field ownership and conflict policy, per endpoint, from configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::{Endpoint, System};
use crate::sync::connectors::RetryPolicy;

/// The `[sync]` section: per-endpoint schedules and field rules, and how connectors retry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncSettings {
    /// Which ERP connector the sync uses: `sap_b1` (section `[erp]`) or `tryton` (`[tryton]`).
    pub erp: ErpKind,
    /// Each `[sync.endpoints.<name>]` table replaces that endpoint's built-in rules as a whole;
    /// endpoints not named keep theirs.
    #[serde(deserialize_with = "overlay_endpoints")]
    pub endpoints: BTreeMap<Endpoint, EndpointSettings>,
    /// Seconds between scheduled reconciliations of each endpoint (both sides read in full).
    pub reconcile_interval_secs: u64,
    /// Seconds an instance's lease on an endpoint lasts unless renewed (at a third of it): when
    /// several instances share one database, another takes a dead holder's endpoint over after it.
    pub lease_secs: u64,
    pub retry: RetrySettings,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            erp: ErpKind::SapB1,
            endpoints: default_endpoints(),
            reconcile_interval_secs: 3600,
            lease_secs: 30,
            retry: RetrySettings::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErpKind {
    SapB1,
    Tryton,
}

fn overlay_endpoints<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<Endpoint, EndpointSettings>, D::Error> {
    let configured = BTreeMap::<Endpoint, EndpointSettings>::deserialize(d)?;
    // Neither connector reads price books as records of their own, so a schedule for them
    // would only fail at every run: refuse it where the mistake is made.
    if configured.contains_key(&Endpoint::Pricebook) {
        return Err(serde::de::Error::custom(PRICEBOOK_NOT_SYNCED));
    }
    let mut endpoints = default_endpoints();
    endpoints.extend(configured);
    Ok(endpoints)
}

const PRICEBOOK_NOT_SYNCED: &str = "`sync.endpoints.pricebook` cannot be configured: price books \
     travel with items (each item's `price.<list>` fields), so their schedule and rules are those \
     of `sync.endpoints.items`; remove the section";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts per API call, the first included.
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    pub timeout_secs: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        let p = RetryPolicy::default();
        Self {
            max_attempts: p.max_attempts,
            base_delay_ms: p.base_delay.as_millis() as u64,
            max_delay_ms: p.max_delay.as_millis() as u64,
            timeout_secs: p.timeout.as_secs(),
        }
    }
}

impl From<&RetrySettings> for RetryPolicy {
    fn from(s: &RetrySettings) -> Self {
        RetryPolicy {
            max_attempts: s.max_attempts.max(1),
            base_delay: Duration::from_millis(s.base_delay_ms),
            max_delay: Duration::from_millis(s.max_delay_ms),
            timeout: Duration::from_secs(s.timeout_secs.max(1)),
        }
    }
}

/// How a field both systems changed since the last sync is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The owner system's value wins.
    OwnerWins,
    /// The value changed last wins.
    NewestWins,
    /// Both values are held for a person to choose.
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    pub owner: System,
    #[serde(default = "owner_wins")]
    pub conflict: ConflictPolicy,
}

fn owner_wins() -> ConflictPolicy {
    ConflictPolicy::OwnerWins
}

/// Which way data may flow for an endpoint (SPEC.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Both,
    ErpToCrm,
    CrmToErp,
}

impl Direction {
    pub fn of(endpoint: Endpoint) -> Self {
        match endpoint {
            Endpoint::Accounts | Endpoint::Contacts => Direction::Both,
            Endpoint::Quotes => Direction::CrmToErp,
            Endpoint::Pricebook | Endpoint::Items | Endpoint::SalesOrders | Endpoint::Invoices => {
                Direction::ErpToCrm
            }
        }
    }

    /// Fields of a one-way endpoint that flow back from the receiving side: the ERP's own
    /// number of a quote the CRM sent it.
    fn writes_back(endpoint: Endpoint, field: &str) -> bool {
        Self::has_write_back(endpoint) && field == "number"
    }

    /// Whether creating a record on the receiving side makes a value that flows back.
    pub fn has_write_back(endpoint: Endpoint) -> bool {
        endpoint == Endpoint::Quotes
    }

    /// The owner of every field when the data flows one way only.
    fn sole_owner(self) -> Option<System> {
        match self {
            Direction::Both => None,
            Direction::ErpToCrm => Some(System::Erp),
            Direction::CrmToErp => Some(System::Crm),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointSettings {
    /// Seconds between scheduled runs.
    pub interval_secs: u64,
    pub paused: bool,
    /// Compute and record what would change, write nothing.
    pub dry_run: bool,
    /// Owner of fields not listed in `fields`.
    pub default_owner: System,
    /// Per-field owner and conflict policy (`price.*` matches every price list).
    pub fields: BTreeMap<String, FieldRule>,
}

impl Default for EndpointSettings {
    fn default() -> Self {
        Self {
            interval_secs: 300,
            paused: false,
            dry_run: false,
            default_owner: System::Erp,
            fields: BTreeMap::new(),
        }
    }
}

fn rule(owner: System) -> FieldRule {
    FieldRule {
        owner,
        conflict: ConflictPolicy::OwnerWins,
    }
}

/// The shipped defaults: financial and master data owned by the ERP, contact details by the CRM.
pub fn default_endpoints() -> BTreeMap<Endpoint, EndpointSettings> {
    let accounts = EndpointSettings {
        interval_secs: 300,
        fields: BTreeMap::from([
            ("name".into(), rule(System::Erp)),
            ("phone".into(), rule(System::Crm)),
            ("industry".into(), rule(System::Crm)),
            ("billing_street".into(), rule(System::Erp)),
            ("billing_city".into(), rule(System::Erp)),
            ("billing_postcode".into(), rule(System::Erp)),
            ("billing_country".into(), rule(System::Erp)),
        ]),
        ..Default::default()
    };
    let contacts = EndpointSettings {
        interval_secs: 300,
        default_owner: System::Crm,
        fields: BTreeMap::from([("account".into(), rule(System::Erp))]),
        ..Default::default()
    };
    let every = |secs: u64| EndpointSettings {
        interval_secs: secs,
        ..Default::default()
    };
    BTreeMap::from([
        (Endpoint::Accounts, accounts),
        (Endpoint::Contacts, contacts),
        // Prices and order status near real time; quotes promptly; invoices in batches.
        (Endpoint::Items, every(60)),
        (Endpoint::Quotes, every(120)),
        (Endpoint::SalesOrders, every(60)),
        (Endpoint::Invoices, every(900)),
    ])
}

impl EndpointSettings {
    /// The rule of one field; one-way endpoints give every field to the sending side.
    pub fn rule_for(&self, endpoint: Endpoint, field: &str) -> FieldRule {
        if let Some(owner) = Direction::of(endpoint).sole_owner() {
            if Direction::writes_back(endpoint, field) {
                return rule(owner.other());
            }
            return rule(owner);
        }
        let wildcard = field
            .split_once('.')
            .map(|(prefix, _)| format!("{prefix}.*"));
        self.fields
            .get(field)
            .or_else(|| wildcard.and_then(|w| self.fields.get(&w)))
            .cloned()
            .unwrap_or_else(|| rule(self.default_owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pricebook_endpoint_section_is_refused_naming_the_key_and_why() {
        let err = crate::config::Settings::from_toml_str(
            "[sync.endpoints.pricebook]\ninterval_secs = 60",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sync.endpoints.pricebook"), "{err}");
        assert!(err.contains("travel with items"), "{err}");
        // The other endpoints' sections still load.
        let settings =
            crate::config::Settings::from_toml_str("[sync.endpoints.items]\ninterval_secs = 30")
                .unwrap();
        assert_eq!(settings.sync.endpoints[&Endpoint::Items].interval_secs, 30);
        assert!(!settings.sync.endpoints.contains_key(&Endpoint::Pricebook));
    }

    #[test]
    fn rules_resolve_exact_wildcard_default_and_direction() {
        let mut accounts = default_endpoints()[&Endpoint::Accounts].clone();
        assert_eq!(
            accounts.rule_for(Endpoint::Accounts, "phone").owner,
            System::Crm
        );
        assert_eq!(
            accounts.rule_for(Endpoint::Accounts, "name").owner,
            System::Erp
        );
        assert_eq!(
            accounts.rule_for(Endpoint::Accounts, "unknown").owner,
            System::Erp
        );
        accounts.fields.insert(
            "price.*".into(),
            FieldRule {
                owner: System::Crm,
                conflict: ConflictPolicy::Manual,
            },
        );
        assert_eq!(
            accounts.rule_for(Endpoint::Accounts, "price.2").conflict,
            ConflictPolicy::Manual
        );
        // Items flow ERP -> CRM whatever a field rule says.
        assert_eq!(
            accounts.rule_for(Endpoint::Items, "price.2").owner,
            System::Erp
        );
        assert_eq!(Direction::of(Endpoint::Quotes), Direction::CrmToErp);
        let quotes = &default_endpoints()[&Endpoint::Quotes];
        assert_eq!(
            quotes.rule_for(Endpoint::Quotes, "line.1.quantity").owner,
            System::Crm
        );
        // The ERP's quote number is the one field that flows back.
        assert_eq!(
            quotes.rule_for(Endpoint::Quotes, "number").owner,
            System::Erp
        );
    }
}

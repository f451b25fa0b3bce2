//! Contact persons in Tryton: each is a party of its own whose code is "<account code>/<n>" (as
//! SAP B1 keys a contact by CardCode and InternalCode), its e-mail and phone kept as contact
//! mechanisms. Tryton holds one name per party, "First Last": the first word is the first name.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{TrytonConnector, ids, modified_at};
use crate::domain::System;
use crate::sync::connectors::{ConnectorError, WriteResult, text};
use crate::sync::record::{Fields, Record, Rejected, Write};

/// Between the account's code and the contact's number in a contact party's code.
pub const SEPARATOR: &str = "/";

/// What a write needs of a contact as last read: its name parts and its mechanisms' ids.
#[derive(Debug, Clone, Default)]
pub(super) struct ContactParts {
    first: String,
    last: String,
    email: Option<i64>,
    phone: Option<i64>,
}

fn split_name(name: &str) -> (String, String) {
    match name.trim().split_once(' ') {
        Some((first, last)) => (first.to_string(), last.trim().to_string()),
        None => (String::new(), name.trim().to_string()),
    }
}

/// The create, write or delete of one contact mechanism, as a `contact_mechanisms` action.
fn mechanism_change(kind: &str, id: Option<i64>, value: &str) -> Option<Value> {
    match (id, value.is_empty()) {
        (Some(id), true) => Some(json!(["delete", [id]])),
        (Some(id), false) => Some(json!(["write", [id], {"value": value}])),
        (None, true) => None,
        (None, false) => Some(json!(["create", [{"type": kind, "value": value}]])),
    }
}

impl TrytonConnector {
    pub(super) async fn contacts_to_records(
        &self,
        parties: Vec<Map<String, Value>>,
    ) -> Result<(Vec<Record>, Vec<Rejected>), ConnectorError> {
        let mechanism_ids: Vec<i64> = parties
            .iter()
            .flat_map(|p| ids(p, "contact_mechanisms"))
            .collect();
        // party id -> type -> (mechanism id, value); the first of each type counts.
        let mut mechanisms: HashMap<i64, HashMap<String, (i64, String)>> = HashMap::new();
        for m in self
            .read(
                "party.contact_mechanism",
                &mechanism_ids,
                &["id", "type", "value", "party"],
            )
            .await?
        {
            let (Some(party), Some(id), Some(kind), Some(value)) = (
                m.get("party").and_then(Value::as_i64),
                m.get("id").and_then(Value::as_i64),
                text(&m, "type"),
                text(&m, "value"),
            ) else {
                continue;
            };
            mechanisms
                .entry(party)
                .or_default()
                .entry(kind)
                .or_insert((id, value));
        }
        let (mut records, mut rejected) = (Vec::new(), Vec::new());
        let mut cache = self.contact_parts.lock().unwrap_or_else(|e| e.into_inner());
        for party in parties {
            let id = party.get("id").and_then(Value::as_i64).unwrap_or_default();
            let code = text(&party, "code");
            let account = code
                .as_deref()
                .and_then(|c| c.split_once(SEPARATOR))
                .map(|(a, _)| a.to_string());
            let (Some(code), Some(account), Some(modified_at)) =
                (code, account, modified_at(&party))
            else {
                rejected.push(Rejected {
                    id: id.to_string(),
                    error: "contact party without an <account>/<n> code or dates".into(),
                });
                continue;
            };
            let (first, last) = split_name(&text(&party, "name").unwrap_or_default());
            let own = mechanisms.remove(&id).unwrap_or_default();
            let mut fields = Fields::from([("account".to_string(), account)]);
            for (field, value) in [("first_name", &first), ("last_name", &last)] {
                if !value.is_empty() {
                    fields.insert(field.into(), value.clone());
                }
            }
            for (field, kind) in [("email", "email"), ("phone", "phone")] {
                if let Some((_, value)) = own.get(kind) {
                    fields.insert(field.into(), value.clone());
                }
            }
            let parts = ContactParts {
                first,
                last,
                email: own.get("email").map(|(m, _)| *m),
                phone: own.get("phone").map(|(m, _)| *m),
            };
            cache.insert(id, parts);
            records.push(Record {
                id: id.to_string(),
                key: Some(code),
                fields,
                modified_at,
            });
        }
        Ok((records, rejected))
    }

    pub(super) async fn write_contact(&self, write: &Write) -> WriteResult {
        let id = match &write.id {
            Some(id) => Some(id.parse::<i64>().map_err(|_| {
                ConnectorError::Config(format!("Tryton party id `{id}` is not a number"))
            })?),
            None => None,
        };
        let mut parts = id
            .and_then(|id| {
                let cache = self.contact_parts.lock().unwrap_or_else(|e| e.into_inner());
                cache.get(&id).cloned()
            })
            .unwrap_or_default();
        let mut values = Map::new();
        let mut changes = Vec::new();
        let mut renamed = false;
        for (field, value) in &write.fields {
            match field.as_str() {
                "first_name" => (parts.first, renamed) = (value.clone(), true),
                "last_name" => (parts.last, renamed) = (value.clone(), true),
                "email" => changes.extend(mechanism_change("email", parts.email, value)),
                "phone" => changes.extend(mechanism_change("phone", parts.phone, value)),
                // Which account a contact belongs to is its key, not a field to move.
                "account" => {}
                _ => {
                    return Err(ConnectorError::Config(format!(
                        "Tryton contacts have no writable field `{field}`"
                    )));
                }
            }
        }
        if renamed || id.is_none() {
            let name = format!("{} {}", parts.first, parts.last);
            values.insert("name".into(), json!(name.trim()));
        }
        if !changes.is_empty() {
            values.insert("contact_mechanisms".into(), Value::Array(changes));
        }
        match id {
            None => {
                values.insert("code".into(), json!(write.key));
                let created = self
                    .rpc("model.party.party.create", json!([[values], {}]))
                    .await?;
                created
                    .get(0)
                    .and_then(Value::as_i64)
                    .map(|id| id.to_string())
                    .ok_or_else(|| {
                        ConnectorError::malformed(System::Erp, "party.create returned no id")
                    })
            }
            Some(id) => {
                if !values.is_empty() {
                    self.rpc("model.party.party.write", json!([[id], values, {}]))
                        .await?;
                }
                Ok(id.to_string())
            }
        }
    }
}

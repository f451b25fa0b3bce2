//! Tryton (JSON-RPC at `/<database>/rpc/`): a real open-source ERP on the ERP side.
//!
//! Accounts are `party.party` (code = the ERP number, first address, phone contact mechanism);
//! contacts are parties of their own coded "<account>/<n>" (see `contacts`);
//! items are `product.product` (code = the ERP number, the template's name and list price as
//! price list 1). Reads page by offset on `write_date` (or `create_date` for records never written).

mod contacts;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{Datelike, Timelike};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::http::{HttpCore, RetryPolicy};
use super::{CallCounts, Connector, ConnectorError, WriteResult, text};
use crate::domain::{Currency, Endpoint, Money, System, Timestamp};
use crate::sync::record::{Fields, Page, Record, Rejected, Write};

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrytonSettings {
    /// The server, e.g. http://127.0.0.1:8000 (the connector adds /<database>/rpc/).
    pub base_url: String,
    pub database: String,
    pub username: String,
    pub password: SecretString,
    /// The company whose prices are read (Tryton keeps list prices per company).
    pub company: i64,
    /// Currency of the company's prices.
    pub currency: String,
    /// Price lists (product.price_list ids) whose fixed per-product prices are synced as
    /// `price.<id>`; the template's list price is `price.1` unless price list 1 is listed here.
    pub price_lists: Vec<i64>,
    pub page_size: u32,
}

impl Default for TrytonSettings {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8000".into(),
            database: String::new(),
            username: "admin".into(),
            password: SecretString::from(""),
            company: 1,
            currency: "EUR".into(),
            price_lists: Vec::new(),
            page_size: 100,
        }
    }
}

impl std::fmt::Debug for TrytonSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrytonSettings")
            .field("base_url", &self.base_url)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &"***")
            .field("company", &self.company)
            .field("currency", &self.currency)
            .field("price_lists", &self.price_lists)
            .field("page_size", &self.page_size)
            .finish()
    }
}

/// (address id, phone contact-mechanism id) of a party.
type PartyParts = (Option<i64>, Option<i64>);

pub struct TrytonConnector {
    settings: TrytonSettings,
    currency: Currency,
    http: HttpCore,
    next_id: AtomicU64,
    /// Party id -> its address and phone as read: writes update those rather than add more.
    party_parts: std::sync::Mutex<HashMap<i64, PartyParts>>,
    /// Contact party id -> its name parts and mechanisms as read.
    contact_parts: std::sync::Mutex<HashMap<i64, contacts::ContactParts>>,
}

/// A Tryton datetime as JSON-RPC carries it (naive UTC).
fn to_datetime(t: Timestamp) -> Value {
    let d = t.to_datetime();
    json!({"__class__": "datetime", "year": d.year(), "month": d.month(), "day": d.day(),
           "hour": d.hour(), "minute": d.minute(), "second": d.second(),
           "microsecond": d.timestamp_subsec_micros()})
}

fn from_datetime(v: &Value) -> Option<Timestamp> {
    let part = |k: &str| v.get(k).and_then(Value::as_i64);
    let text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        part("year")?,
        part("month")?,
        part("day")?,
        part("hour")?,
        part("minute")?,
        part("second")?,
        part("microsecond").unwrap_or(0)
    );
    Timestamp::parse_rfc3339(&text).ok()
}

fn ids(record: &Map<String, Value>, name: &str) -> Vec<i64> {
    record
        .get(name)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

const ADDRESS: [(&str, &str); 3] = [
    ("billing_street", "street"),
    ("billing_city", "city"),
    ("billing_postcode", "postal_code"),
];

impl TrytonConnector {
    pub fn new(settings: TrytonSettings, retry: RetryPolicy) -> Result<Self, ConnectorError> {
        if settings.database.is_empty() {
            return Err(ConnectorError::Config("tryton.database is empty".into()));
        }
        let currency = Currency::parse(&settings.currency)
            .map_err(|e| ConnectorError::Config(format!("tryton.currency: {e}")))?;
        Ok(Self {
            settings,
            currency,
            http: HttpCore::new("tryton", retry)?,
            next_id: AtomicU64::new(1),
            party_parts: std::sync::Mutex::new(HashMap::new()),
            contact_parts: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// One JSON-RPC call; Tryton answers errors with HTTP 200 and an `error` member.
    async fn rpc(&self, method: &str, params: Value) -> Result<Value, ConnectorError> {
        let url = format!(
            "{}/{}/rpc/",
            self.settings.base_url.trim_end_matches('/'),
            self.settings.database
        );
        let body = json!({
            "id": self.next_id.fetch_add(1, Ordering::Relaxed),
            "method": method,
            "params": params,
        });
        let password = self.settings.password.expose_secret();
        // Tryton answers refusals (401, 403, 429) with HTML, so only the status says anything.
        let refused = |r: reqwest::Response| async move {
            ConnectorError::Api {
                system: System::Erp,
                status: r.status().as_u16(),
                message: format!("{method} refused"),
                code: None,
                correlation_id: None,
            }
        };
        let response = self
            .http
            .call(
                || {
                    self.http
                        .client
                        .post(&url)
                        .basic_auth(&self.settings.username, Some(password))
                        .json(&body)
                },
                refused,
            )
            .await?;
        let mut answer: Map<String, Value> = response
            .json()
            .await
            .map_err(|e| ConnectorError::malformed(System::Erp, e.to_string()))?;
        if let Some(error) = answer.remove("error") {
            // ["UserError", ["message", "description", domain]] or ["'field'", ""].
            let code = error.get(0).and_then(Value::as_str).map(str::to_string);
            let message = error
                .get(1)
                .and_then(|d| d.get(0).and_then(Value::as_str).or(d.as_str()))
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .or_else(|| code.clone())
                .unwrap_or_else(|| error.to_string());
            return Err(ConnectorError::Api {
                system: System::Erp,
                status: 200,
                message: format!("{method}: {message}"),
                code,
                correlation_id: None,
            });
        }
        answer
            .remove("result")
            .ok_or_else(|| ConnectorError::malformed(System::Erp, "JSON-RPC answer without result"))
    }

    fn context(&self) -> Value {
        json!({"company": self.settings.company})
    }

    async fn read(
        &self,
        model: &str,
        ids: &[i64],
        fields: &[&str],
    ) -> Result<Vec<Map<String, Value>>, ConnectorError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let result = self
            .rpc(
                &format!("model.{model}.read"),
                json!([ids, fields, self.context()]),
            )
            .await?;
        Ok(rows(result))
    }

    async fn parties_to_records(
        &self,
        parties: Vec<Map<String, Value>>,
    ) -> Result<(Vec<Record>, Vec<Rejected>), ConnectorError> {
        let address_ids: Vec<i64> = parties
            .iter()
            .filter_map(|p| ids(p, "addresses").first().copied())
            .collect();
        let mechanism_ids: Vec<i64> = parties
            .iter()
            .flat_map(|p| ids(p, "contact_mechanisms"))
            .collect();
        let addresses: HashMap<i64, Map<String, Value>> = self
            .read(
                "party.address",
                &address_ids,
                &["id", "street", "city", "postal_code"],
            )
            .await?
            .into_iter()
            .filter_map(|a| Some((a.get("id")?.as_i64()?, a)))
            .collect();
        let phones: HashMap<i64, (i64, String)> = self
            .read(
                "party.contact_mechanism",
                &mechanism_ids,
                &["id", "type", "value", "party"],
            )
            .await?
            .into_iter()
            .filter(|m| m.get("type").and_then(Value::as_str) == Some("phone"))
            .filter_map(|m| {
                Some((
                    m.get("party")?.as_i64()?,
                    (m.get("id")?.as_i64()?, text(&m, "value")?),
                ))
            })
            .collect();
        let (mut records, mut rejected) = (Vec::new(), Vec::new());
        let mut parts = self.party_parts.lock().unwrap_or_else(|e| e.into_inner());
        for party in parties {
            let id = party.get("id").and_then(Value::as_i64).unwrap_or_default();
            let (Some(code), Some(modified_at)) = (text(&party, "code"), modified_at(&party))
            else {
                rejected.push(Rejected {
                    id: id.to_string(),
                    error: "party without code or dates".into(),
                });
                continue;
            };
            let mut fields = Fields::new();
            if let Some(name) = text(&party, "name") {
                fields.insert("name".into(), name);
            }
            let address_id = ids(&party, "addresses").first().copied();
            if let Some(address) = address_id.and_then(|a| addresses.get(&a)) {
                for (canonical, tryton) in ADDRESS {
                    if let Some(v) = text(address, tryton) {
                        fields.insert(canonical.into(), v);
                    }
                }
            }
            let phone = phones.get(&id);
            if let Some((_, value)) = phone {
                fields.insert("phone".into(), value.clone());
            }
            parts.insert(id, (address_id, phone.map(|(m, _)| *m)));
            records.push(Record {
                id: id.to_string(),
                key: Some(code),
                fields,
                modified_at,
            });
        }
        Ok((records, rejected))
    }

    /// Adds `price.<list>` for each configured price list that has a fixed-price line for the
    /// product. Lines with a computed formula (e.g. `unit_price * 0.9`) are not prices to copy.
    async fn add_price_list_prices(&self, records: &mut [Record]) -> Result<(), ConnectorError> {
        if self.settings.price_lists.is_empty() || records.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = records.iter().filter_map(|r| r.id.parse().ok()).collect();
        let domain = json!([
            ["price_list", "in", self.settings.price_lists],
            ["product", "in", ids]
        ]);
        let lines = self
            .rpc(
                "model.product.price_list.line.search_read",
                json!([
                    domain,
                    0,
                    null,
                    [["sequence", "ASC"], ["id", "ASC"]],
                    ["price_list", "product", "formula"],
                    self.context()
                ]),
            )
            .await?;
        let mut seen: std::collections::HashSet<(i64, i64)> = Default::default();
        let by_id: HashMap<String, usize> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        for line in rows(lines) {
            let (Some(list), Some(product), Some(formula)) = (
                line.get("price_list").and_then(Value::as_i64),
                line.get("product").and_then(Value::as_i64),
                text(&line, "formula"),
            ) else {
                continue;
            };
            let Ok(money) = Money::parse_decimal(&formula, self.currency) else {
                continue;
            };
            if let Some(record) = by_id.get(&product.to_string()).map(|i| &mut records[*i]) {
                // The first matching line wins, as Tryton applies them in sequence; a price list
                // numbered 1 is more specific than the template's list price.
                let field = format!("price.{list}");
                if seen.insert((product, list)) {
                    record.fields.insert(field, money.to_decimal_string());
                }
            }
        }
        Ok(())
    }

    fn products_to_records(
        &self,
        products: Vec<Map<String, Value>>,
    ) -> (Vec<Record>, Vec<Rejected>) {
        let (mut records, mut rejected) = (Vec::new(), Vec::new());
        for product in products {
            let id = product
                .get("id")
                .and_then(Value::as_i64)
                .unwrap_or_default()
                .to_string();
            let (Some(code), Some(modified_at)) = (text(&product, "code"), modified_at(&product))
            else {
                rejected.push(Rejected {
                    id,
                    error: "product without code or dates".into(),
                });
                continue;
            };
            let mut fields = Fields::new();
            fields.insert("code".into(), code.clone());
            if let Some(name) = product
                .get("template.")
                .and_then(|t| t.get("name"))
                .and_then(Value::as_str)
            {
                fields.insert("name".into(), name.to_string());
            }
            if let Some(description) = text(&product, "description") {
                fields.insert("description".into(), description);
            }
            let price = product
                .get("list_price_used")
                .and_then(|p| p.get("decimal"))
                .and_then(Value::as_str);
            match price.map(|p| Money::parse_decimal(p, self.currency)) {
                Some(Ok(money)) => {
                    fields.insert("price.1".into(), money.to_decimal_string());
                }
                Some(Err(e)) => {
                    rejected.push(Rejected {
                        id,
                        error: format!("list price: {e}"),
                    });
                    continue;
                }
                None => {}
            }
            records.push(Record {
                id,
                key: Some(code),
                fields,
                modified_at,
            });
        }
        (records, rejected)
    }

    async fn write_party(&self, write: &Write) -> WriteResult {
        let mut values = Map::new();
        let mut address = Map::new();
        let mut phone = None;
        for (field, value) in &write.fields {
            match field.as_str() {
                "name" => {
                    values.insert("name".into(), json!(value));
                }
                "phone" => phone = Some(value.clone()),
                f => match ADDRESS.iter().find(|(c, _)| *c == f) {
                    Some((_, tryton)) => {
                        address.insert(tryton.to_string(), json!(value));
                    }
                    None => {
                        return Err(ConnectorError::Config(format!(
                            "Tryton parties have no writable field `{field}`"
                        )));
                    }
                },
            }
        }
        let id = match &write.id {
            None => {
                values.insert("code".into(), json!(write.key));
                if !address.is_empty() {
                    values.insert("addresses".into(), json!([["create", [address]]]));
                }
                if let Some(phone) = phone {
                    values.insert(
                        "contact_mechanisms".into(),
                        json!([["create", [{"type": "phone", "value": phone}]]]),
                    );
                }
                let created = self
                    .rpc("model.party.party.create", json!([[values], {}]))
                    .await?;
                return created
                    .get(0)
                    .and_then(Value::as_i64)
                    .map(|id| id.to_string())
                    .ok_or_else(|| {
                        ConnectorError::malformed(System::Erp, "party.create returned no id")
                    });
            }
            Some(id) => id.parse::<i64>().map_err(|_| {
                ConnectorError::Config(format!("Tryton party id `{id}` is not a number"))
            })?,
        };
        let (address_id, phone_id) = self
            .party_parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
            .unwrap_or((None, None));
        if !address.is_empty() {
            let change = match address_id {
                Some(a) => json!([["write", [a], address]]),
                None => json!([["create", [address]]]),
            };
            values.insert("addresses".into(), change);
        }
        if let Some(phone) = phone {
            let change = match phone_id {
                Some(m) => json!([["write", [m], {"value": phone}]]),
                None => json!([["create", [{"type": "phone", "value": phone}]]]),
            };
            values.insert("contact_mechanisms".into(), change);
        }
        self.rpc("model.party.party.write", json!([[id], values, {}]))
            .await?;
        Ok(id.to_string())
    }
}

fn rows(result: Value) -> Vec<Map<String, Value>> {
    match result {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `write_date`, or `create_date` for a record never written since it was created.
fn modified_at(record: &Map<String, Value>) -> Option<Timestamp> {
    let written = record.get("write_date").filter(|v| !v.is_null());
    written
        .or(record.get("create_date"))
        .and_then(from_datetime)
}

#[async_trait]
impl Connector for TrytonConnector {
    fn system(&self) -> System {
        System::Erp
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.rpc("model.party.party.search_count", json!([[], {}]))
            .await
            .map(|_| ())
    }

    async fn pull(
        &self,
        endpoint: Endpoint,
        since: Option<Timestamp>,
        page: Option<String>,
    ) -> Result<Page, ConnectorError> {
        let (model, fields): (&str, &[&str]) = match endpoint {
            Endpoint::Contacts => (
                "party.party",
                &[
                    "id",
                    "code",
                    "name",
                    "write_date",
                    "create_date",
                    "contact_mechanisms",
                ],
            ),
            Endpoint::Accounts => (
                "party.party",
                &[
                    "id",
                    "code",
                    "name",
                    "write_date",
                    "create_date",
                    "addresses",
                    "contact_mechanisms",
                ],
            ),
            Endpoint::Items => (
                "product.product",
                &[
                    "id",
                    "code",
                    "description",
                    "template.name",
                    "list_price_used",
                    "write_date",
                    "create_date",
                ],
            ),
            other => {
                return Err(ConnectorError::Unsupported {
                    system: System::Erp,
                    endpoint: other,
                });
            }
        };
        // Parties are accounts, or contact persons when their code is "<account>/<n>".
        let contact_code = format!("%{}%", contacts::SEPARATOR);
        let mut domain = match endpoint {
            Endpoint::Accounts => vec![json!(["code", "not like", contact_code])],
            Endpoint::Contacts => vec![json!(["code", "like", contact_code])],
            _ => Vec::new(),
        };
        if let Some(t) = since {
            domain.push(json!([
                "OR",
                ["write_date", ">=", to_datetime(t)],
                [
                    ["write_date", "=", null],
                    ["create_date", ">=", to_datetime(t)]
                ]
            ]));
        }
        let offset: u64 = page.as_deref().and_then(|p| p.parse().ok()).unwrap_or(0);
        let limit = u64::from(self.settings.page_size.max(1));
        let order = json!([["write_date", "ASC"], ["create_date", "ASC"], ["id", "ASC"]]);
        let result = self
            .rpc(
                &format!("model.{model}.search_read"),
                json!([domain, offset, limit, order, fields, self.context()]),
            )
            .await?;
        let found = rows(result);
        let next = (found.len() as u64 == limit).then(|| (offset + limit).to_string());
        let (records, rejected) = match endpoint {
            Endpoint::Accounts => self.parties_to_records(found).await?,
            Endpoint::Contacts => self.contacts_to_records(found).await?,
            _ => {
                let (mut records, rejected) = self.products_to_records(found);
                self.add_price_list_prices(&mut records).await?;
                (records, rejected)
            }
        };
        Ok(Page {
            records,
            rejected,
            next,
        })
    }

    async fn write(
        &self,
        endpoint: Endpoint,
        writes: &[Write],
    ) -> Result<Vec<WriteResult>, ConnectorError> {
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            results.push(match endpoint {
                Endpoint::Accounts => self.write_party(write).await,
                Endpoint::Contacts => self.write_contact(write).await,
                _ => {
                    return Err(ConnectorError::Unsupported {
                        system: System::Erp,
                        endpoint,
                    });
                }
            });
        }
        Ok(results)
    }

    fn fields(&self, endpoint: Endpoint) -> Result<Vec<String>, ConnectorError> {
        let fields: &[&str] = match endpoint {
            Endpoint::Accounts => &[
                "name",
                "phone",
                "billing_street",
                "billing_city",
                "billing_postcode",
            ],
            Endpoint::Contacts => &["first_name", "last_name", "email", "phone", "account"],
            Endpoint::Items => {
                let mut fields: Vec<String> = ["name", "description", "code", "price.1"]
                    .map(String::from)
                    .to_vec();
                for list in &self.settings.price_lists {
                    let field = format!("price.{list}");
                    if !fields.contains(&field) {
                        fields.push(field);
                    }
                }
                return Ok(fields);
            }
            other => {
                return Err(ConnectorError::Unsupported {
                    system: System::Erp,
                    endpoint: other,
                });
            }
        };
        Ok(fields.iter().map(|f| f.to_string()).collect())
    }

    fn calls(&self) -> CallCounts {
        self.http.stats.snapshot()
    }

    fn take_call_tallies(&self) -> Vec<super::CallTally> {
        self.http.stats.take_tallies()
    }
}

//! SAP Business One Service Layer (OData v4 under /b1s/v2): the ERP side.

mod documents;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;

use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::http::{HttpCore, RetryPolicy};
use super::{CallCounts, Connector, ConnectorError, WriteResult, text};
use crate::domain::{Currency, Endpoint, Money, System, Timestamp};
use crate::sync::record::{ARCHIVED, Fields, Page, Record, Rejected, Write};

/// The Service Layer's error code for an expired or unknown session.
const SESSION_TIMEOUT_CODE: i64 = 301;
/// Document writes sent at once (see `write`).
const DOCUMENT_WRITES_IN_FLIGHT: usize = 8;

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SapB1Settings {
    /// e.g. https://sap.example.com:50000 (the connector adds /b1s/v2).
    pub base_url: String,
    pub company_db: String,
    pub username: String,
    pub password: SecretString,
    /// Records per page, sent as `Prefer: odata.maxpagesize`.
    pub page_size: u32,
    /// Currency of prices that carry none.
    pub default_currency: String,
    /// The price lists (PriceListNo) synced as item prices.
    pub price_lists: Vec<u32>,
    /// The Service Layer reports UpdateDate/UpdateTime in its own local time: minutes ahead of UTC.
    pub utc_offset_minutes: i32,
}

impl Default for SapB1Settings {
    fn default() -> Self {
        Self {
            base_url: "https://localhost:50000".into(),
            company_db: String::new(),
            username: String::new(),
            password: SecretString::from(""),
            page_size: 100,
            default_currency: "EUR".into(),
            price_lists: vec![1, 2, 3],
            utc_offset_minutes: 0,
        }
    }
}

impl std::fmt::Debug for SapB1Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SapB1Settings")
            .field("base_url", &self.base_url)
            .field("company_db", &self.company_db)
            .field("username", &self.username)
            .field("password", &"***")
            .field("page_size", &self.page_size)
            .field("default_currency", &self.default_currency)
            .field("price_lists", &self.price_lists)
            .field("utc_offset_minutes", &self.utc_offset_minutes)
            .finish()
    }
}

pub struct SapB1Connector {
    settings: SapB1Settings,
    default_currency: Currency,
    http: HttpCore,
    /// The `Cookie` header of the current session (B1SESSION and ROUTEID).
    session: Mutex<Option<String>>,
    /// CardCode -> AddressName of its bill-to address, as read: updating an address member needs
    /// its own name, or the Service Layer appends a second one.
    bill_to_names: std::sync::Mutex<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct ODataPage {
    value: Vec<Map<String, Value>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct SapErrorBody {
    error: SapError,
}

#[derive(Deserialize)]
struct SapError {
    code: Value,
    message: SapMessage,
}

#[derive(Deserialize)]
struct SapMessage {
    value: String,
}

struct EntitySet {
    name: &'static str,
    key: &'static str,
    select: &'static str,
}

fn entity_set(endpoint: Endpoint) -> Result<EntitySet, ConnectorError> {
    match endpoint {
        Endpoint::Accounts => Ok(EntitySet {
            name: "BusinessPartners",
            key: "CardCode",
            select: "CardCode,CardName,Phone1,Industry,PriceListNum,BPAddresses,Valid,Frozen,UpdateDate,UpdateTime",
        }),
        // Contacts live inside their business partner as ContactEmployees.
        Endpoint::Contacts => Ok(EntitySet {
            name: "BusinessPartners",
            key: "CardCode",
            select: "CardCode,ContactEmployees,UpdateDate,UpdateTime",
        }),
        Endpoint::Items => Ok(EntitySet {
            name: "Items",
            key: "ItemCode",
            select: "ItemCode,ItemName,User_Text,ItemPrices,Valid,Frozen,UpdateDate,UpdateTime",
        }),
        other => match documents::set_name(other) {
            Some(name) => Ok(EntitySet {
                name,
                key: "DocEntry",
                select: documents::SELECT,
            }),
            None => Err(ConnectorError::Unsupported {
                system: System::Erp,
                endpoint: other,
            }),
        },
    }
}

/// Canonical contact field <-> ContactEmployees property.
const CONTACT: [(&str, &str); 4] = [
    ("first_name", "FirstName"),
    ("last_name", "LastName"),
    ("email", "E_Mail"),
    ("phone", "Phone1"),
];

/// A contact's key: its partner's CardCode and its InternalCode.
fn contact_key(card_code: &str, internal_code: &str) -> String {
    format!("{card_code}/{internal_code}")
}

const BILLING: [(&str, &str); 4] = [
    ("billing_street", "Street"),
    ("billing_city", "City"),
    ("billing_postcode", "ZipCode"),
    ("billing_country", "Country"),
];

impl SapB1Connector {
    pub fn new(settings: SapB1Settings, retry: RetryPolicy) -> Result<Self, ConnectorError> {
        let default_currency = Currency::parse(&settings.default_currency)
            .map_err(|e| ConnectorError::Config(format!("sap_b1.default_currency: {e}")))?;
        Ok(Self {
            settings,
            default_currency,
            http: HttpCore::new("sap_b1", retry)?,
            session: Mutex::new(None),
            bill_to_names: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/b1s/v2/{}",
            self.settings.base_url.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    async fn login(&self) -> Result<String, ConnectorError> {
        let body = json!({
            "CompanyDB": self.settings.company_db,
            "UserName": self.settings.username,
            "Password": self.settings.password.expose_secret(),
        });
        let url = self.url("Login");
        let response = self
            .http
            .call(|| self.http.client.post(&url).json(&body), api_error)
            .await?;
        let cookies: Vec<String> = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .filter(|c| c.starts_with("B1SESSION=") || c.starts_with("ROUTEID="))
            .map(str::to_string)
            .collect();
        if !cookies.iter().any(|c| c.starts_with("B1SESSION=")) {
            return Err(ConnectorError::malformed(
                System::Erp,
                "login answer without B1SESSION cookie",
            ));
        }
        Ok(cookies.join("; "))
    }

    async fn cookie(&self, renew: bool) -> Result<String, ConnectorError> {
        let mut session = self.session.lock().await;
        if renew || session.is_none() {
            *session = Some(self.login().await?);
        }
        Ok(session.clone().unwrap_or_default())
    }

    /// Sends a request with the session cookie; on a timed-out session logs in again, once.
    async fn call(
        &self,
        make: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ConnectorError> {
        self.call_with(false, make).await
    }

    /// As `call`; `once` makes a single attempt (see `HttpCore::call_once`).
    async fn call_with(
        &self,
        once: bool,
        make: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ConnectorError> {
        let mut renew = false;
        loop {
            let cookie = self.cookie(renew).await?;
            let sent = if once {
                self.http.call_once(|| make(&cookie), api_error).await
            } else {
                self.http.call(|| make(&cookie), api_error).await
            };
            match sent {
                Ok(response) => return Ok(response),
                Err(error) => {
                    let expired = matches!(&error, ConnectorError::Api { status: 401, code: Some(code), .. }
                        if code == &SESSION_TIMEOUT_CODE.to_string());
                    if expired && !renew {
                        tracing::info!("SAP B1 session expired; logging in again");
                        renew = true;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }

    /// The records one entity holds: itself, or for contacts each of its ContactEmployees.
    fn to_records(
        &self,
        endpoint: Endpoint,
        entity: &Map<String, Value>,
    ) -> Result<Vec<Record>, ConnectorError> {
        if crate::sync::documents::is_document(endpoint) {
            return Ok(vec![self.document_record(endpoint, entity)?]);
        }
        if endpoint != Endpoint::Contacts {
            return Ok(vec![self.to_record(endpoint, entity)?]);
        }
        let card_code = text(entity, "CardCode").ok_or_else(|| {
            ConnectorError::malformed(System::Erp, "BusinessPartners without CardCode")
        })?;
        let modified_at =
            modified_at(entity, self.settings.utc_offset_minutes).ok_or_else(|| {
                ConnectorError::malformed(
                    System::Erp,
                    format!("BusinessPartners {card_code}: bad UpdateDate/UpdateTime"),
                )
            })?;
        let contacts = entity
            .get("ContactEmployees")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let mut records = Vec::new();
        for contact in contacts.filter_map(Value::as_object) {
            let code = text(contact, "InternalCode").ok_or_else(|| {
                ConnectorError::malformed(
                    System::Erp,
                    format!("a contact of {card_code} without InternalCode"),
                )
            })?;
            let key = contact_key(&card_code, &code);
            let mut fields: Fields = CONTACT
                .iter()
                .filter_map(|(canonical, sap)| {
                    text(contact, sap).map(|v| (canonical.to_string(), v))
                })
                .collect();
            fields.insert("account".into(), card_code.clone());
            records.push(Record {
                id: key.clone(),
                key: Some(key),
                fields,
                modified_at,
            });
        }
        Ok(records)
    }

    fn to_record(
        &self,
        endpoint: Endpoint,
        entity: &Map<String, Value>,
    ) -> Result<Record, ConnectorError> {
        let set = entity_set(endpoint)?;
        let id = text(entity, set.key).ok_or_else(|| {
            ConnectorError::malformed(System::Erp, format!("{} without {}", set.name, set.key))
        })?;
        let modified_at =
            modified_at(entity, self.settings.utc_offset_minutes).ok_or_else(|| {
                ConnectorError::malformed(
                    System::Erp,
                    format!("{} {id}: bad UpdateDate/UpdateTime", set.name),
                )
            })?;
        let mut fields = Fields::new();
        let mut put = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                fields.insert(name.to_string(), v);
            }
        };
        // An inactive or frozen partner or item is archived: the CRM archives its copy.
        let inactive = text(entity, "Valid").as_deref() == Some("tNO")
            || text(entity, "Frozen").as_deref() == Some("tYES");
        if inactive {
            put(ARCHIVED, Some("true".into()));
        }
        match endpoint {
            Endpoint::Accounts => {
                put("name", text(entity, "CardName"));
                put("phone", text(entity, "Phone1"));
                put("industry", text(entity, "Industry"));
                put("price_book", price_list(entity));
                let billing = entity
                    .get("BPAddresses")
                    .and_then(Value::as_array)
                    .and_then(|list| {
                        list.iter().filter_map(Value::as_object).find(|a| {
                            a.get("AddressType").and_then(Value::as_str) == Some("bo_BillTo")
                        })
                    });
                if let Some(address) = billing {
                    for (canonical, sap) in BILLING {
                        put(canonical, text(address, sap));
                    }
                    if let Some(name) = text(address, "AddressName") {
                        self.bill_to_names
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id.clone(), name);
                    }
                }
            }
            Endpoint::Items => {
                put("name", text(entity, "ItemName"));
                put("description", text(entity, "User_Text"));
                put("code", Some(id.clone()));
                for price in entity
                    .get("ItemPrices")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                {
                    if let Some((list, money)) = self.item_price(price)? {
                        put(&format!("price.{list}"), Some(money.to_decimal_string()));
                    }
                }
            }
            _ => {}
        }
        Ok(Record {
            key: Some(id.clone()),
            id,
            fields,
            modified_at,
        })
    }

    fn item_price(
        &self,
        price: &Map<String, Value>,
    ) -> Result<Option<(String, Money)>, ConnectorError> {
        let (Some(list), Some(amount)) = (text(price, "PriceList"), price.get("Price")) else {
            return Ok(None);
        };
        if amount.is_null() {
            return Ok(None);
        }
        let currency = match text(price, "Currency") {
            Some(c) => Currency::parse(&c)
                .map_err(|e| ConnectorError::malformed(System::Erp, e.to_string()))?,
            None => self.default_currency,
        };
        let money = Money::parse_decimal(&amount.to_string(), currency).map_err(|e| {
            ConnectorError::malformed(System::Erp, format!("price list {list}: {e}"))
        })?;
        Ok(Some((list, money)))
    }

    fn body_for(
        &self,
        endpoint: Endpoint,
        write: &Write,
        create: bool,
    ) -> Result<Value, ConnectorError> {
        let set = entity_set(endpoint)?;
        let mut body = Map::new();
        if create {
            body.insert(set.key.into(), Value::String(write.key.clone()));
        }
        let mut address = Map::new();
        for (field, value) in &write.fields {
            let name = match (endpoint, field.as_str()) {
                (Endpoint::Accounts, "name") => "CardName",
                (Endpoint::Accounts, "phone") => "Phone1",
                (Endpoint::Accounts, "industry") => "Industry",
                (Endpoint::Accounts, f) if BILLING.iter().any(|(c, _)| *c == f) => {
                    let sap = BILLING
                        .iter()
                        .find(|(c, _)| *c == f)
                        .map(|(_, s)| *s)
                        .unwrap_or_default();
                    address.insert(sap.into(), Value::String(value.clone()));
                    continue;
                }
                (Endpoint::Items, "name") => "ItemName",
                (Endpoint::Items, "description") => "User_Text",
                (_, ARCHIVED) => {
                    let valid = if value == "true" { "tNO" } else { "tYES" };
                    body.insert("Valid".into(), Value::String(valid.into()));
                    continue;
                }
                _ => {
                    return Err(ConnectorError::Config(format!(
                        "SAP B1 {} has no writable field `{field}`",
                        set.name
                    )));
                }
            };
            body.insert(name.into(), Value::String(value.clone()));
        }
        if create && endpoint == Endpoint::Accounts {
            body.insert("CardType".into(), Value::String("cCustomer".into()));
        }
        if !address.is_empty() {
            // AddressName + AddressType identify the member, so this updates rather than appends.
            let name = self
                .bill_to_names
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&write.key)
                .cloned()
                .unwrap_or_else(|| "Bill To".into());
            address.insert("AddressName".into(), Value::String(name));
            address.insert("AddressType".into(), Value::String("bo_BillTo".into()));
            body.insert(
                "BPAddresses".into(),
                Value::Array(vec![Value::Object(address)]),
            );
        }
        Ok(Value::Object(body))
    }

    /// A contact is written as a member of its partner's ContactEmployees, identified by its
    /// InternalCode (updated in place; appended when the partner does not have it yet).
    async fn write_contact(&self, write: &Write) -> WriteResult {
        let (card_code, code) = write.key.split_once('/').ok_or_else(|| {
            ConnectorError::Config(format!(
                "contact key `{}` is not CardCode/InternalCode",
                write.key
            ))
        })?;
        let internal: i64 = code.parse().map_err(|_| {
            ConnectorError::Config(format!(
                "contact key `{}`: InternalCode must be a number",
                write.key
            ))
        })?;
        let mut member = Map::new();
        member.insert("InternalCode".into(), json!(internal));
        for (field, value) in &write.fields {
            match CONTACT.iter().find(|(c, _)| c == field) {
                Some((_, sap)) => {
                    member.insert(sap.to_string(), Value::String(value.clone()));
                }
                // The partner a contact belongs to is its key, not a field SAP lets us move.
                None if field == "account" => {}
                None => {
                    return Err(ConnectorError::Config(format!(
                        "SAP B1 contacts have no writable field `{field}`"
                    )));
                }
            }
        }
        if write.id.is_none() {
            let first = write.fields.get("first_name").cloned().unwrap_or_default();
            let last = write.fields.get("last_name").cloned().unwrap_or_default();
            member.insert(
                "Name".into(),
                Value::String(format!("{first} {last}").trim().to_string()),
            );
        }
        let body = json!({ "ContactEmployees": [Value::Object(member)] });
        let url = self.url(&format!(
            "BusinessPartners('{}')",
            card_code.replace('\'', "''")
        ));
        self.call(|cookie| {
            self.http
                .client
                .patch(&url)
                .header(reqwest::header::COOKIE, cookie)
                .json(&body)
        })
        .await?;
        Ok(write.key.clone())
    }

    async fn write_one(&self, endpoint: Endpoint, write: &Write) -> WriteResult {
        if endpoint == Endpoint::Contacts {
            return self.write_contact(write).await;
        }
        if crate::sync::documents::is_document(endpoint) {
            return self.write_document(endpoint, write).await;
        }
        let set = entity_set(endpoint)?;
        let create = write.id.is_none();
        let body = self.body_for(endpoint, write, create)?;
        let url = match &write.id {
            None => self.url(set.name),
            Some(id) => self.url(&format!("{}('{}')", set.name, id.replace('\'', "''"))),
        };
        let sent = self
            .call(|cookie| {
                let request = if create {
                    self.http.client.post(&url)
                } else {
                    self.http.client.patch(&url)
                };
                request.header(reqwest::header::COOKIE, cookie).json(&body)
            })
            .await;
        match sent {
            Ok(_) => Ok(write.id.clone().unwrap_or_else(|| write.key.clone())),
            Err(error)
                if create
                    && already_exists(&error)
                    && self.holds(set.name, &write.key, &body).await =>
            {
                // An earlier attempt of this very create went through and only its answer was
                // lost: the record is there, exactly as sent.
                Ok(write.key.clone())
            }
            Err(error) => Err(error),
        }
    }

    /// A GET of `path` (under /b1s/v2), its JSON body.
    async fn get_json(&self, path: &str) -> Result<Value, ConnectorError> {
        let url = self.url(path);
        let response = self
            .call(|cookie| {
                self.http
                    .client
                    .get(&url)
                    .header(reqwest::header::COOKIE, cookie)
            })
            .await?;
        response
            .json()
            .await
            .map_err(|e| ConnectorError::malformed(System::Erp, e.to_string()))
    }

    /// Whether the entity `key` exists and its plain fields equal those of `body`.
    async fn holds(&self, set: &str, key: &str, body: &Value) -> bool {
        let path = format!("{set}('{}')", key.replace('\'', "''"));
        let Ok(Value::Object(stored)) = self.get_json(&path).await else {
            return false;
        };
        body.as_object().is_some_and(|sent| {
            sent.iter()
                .filter(|(_, v)| !v.is_array())
                .all(|(k, v)| stored.get(k) == Some(v))
        })
    }
}

/// A partner's price list (`PriceListNum`): the price book its documents are priced from. SAP's
/// negative lists (-1 last purchase price, -2 last evaluated price) are no list an item has a
/// price in, so they are no book.
fn price_list(entity: &Map<String, Value>) -> Option<String> {
    text(entity, "PriceListNum").filter(|n| n.parse::<i64>().is_ok_and(|n| n > 0))
}

/// SAP's answer to creating a key that is taken.
fn already_exists(error: &ConnectorError) -> bool {
    matches!(error, ConnectorError::Api { status: 400, message, .. } if message.contains("already exists"))
}

/// `UpdateDate` ("2026-11-23" or "2026-11-23T00:00:00Z") plus `UpdateTime` ("10:15:00"), both in
/// the server's local time, `offset_minutes` ahead of UTC.
fn modified_at(entity: &Map<String, Value>, offset_minutes: i32) -> Option<Timestamp> {
    let date = entity.get("UpdateDate")?.as_str()?.get(..10)?;
    let time = entity
        .get("UpdateTime")
        .and_then(Value::as_str)
        .unwrap_or("00:00:00");
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let (h, m) = (
        offset_minutes.unsigned_abs() / 60,
        offset_minutes.unsigned_abs() % 60,
    );
    Timestamp::parse_rfc3339(&format!("{date}T{time}{sign}{h:02}:{m:02}")).ok()
}

async fn api_error(response: reqwest::Response) -> ConnectorError {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<SapErrorBody>(&text) {
        Ok(body) => ConnectorError::Api {
            system: System::Erp,
            status,
            message: body.error.message.value,
            code: Some(match body.error.code {
                Value::String(s) => s,
                other => other.to_string(),
            }),
            correlation_id: None,
        },
        Err(_) => ConnectorError::Api {
            system: System::Erp,
            status,
            message: text.chars().take(300).collect(),
            code: None,
            correlation_id: None,
        },
    }
}

#[async_trait]
impl Connector for SapB1Connector {
    fn system(&self) -> System {
        System::Erp
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.cookie(true).await.map(|_| ())
    }

    async fn pull(
        &self,
        endpoint: Endpoint,
        since: Option<Timestamp>,
        page: Option<String>,
    ) -> Result<Page, ConnectorError> {
        let set = entity_set(endpoint)?;
        let url = match &page {
            Some(next) => self.url(next),
            None => {
                let mut url = format!(
                    "{}?$select={}&$orderby=UpdateDate,UpdateTime,{}",
                    set.name, set.select, set.key
                );
                if let Some(since) = since {
                    // The Service Layer compares dates only; the time is filtered below.
                    url.push_str(&format!(
                        "&$filter=UpdateDate ge '{}'",
                        (since.to_datetime()
                            + chrono::Duration::minutes(i64::from(
                                self.settings.utc_offset_minutes
                            )))
                        .format("%Y-%m-%d")
                    ));
                }
                self.url(&url)
            }
        };
        let prefer = format!("odata.maxpagesize={}", self.settings.page_size);
        let response = self
            .call(|cookie| {
                self.http
                    .client
                    .get(&url)
                    .header(reqwest::header::COOKIE, cookie)
                    .header("Prefer", &prefer)
            })
            .await?;
        let body: ODataPage = response
            .json()
            .await
            .map_err(|e| ConnectorError::malformed(System::Erp, e.to_string()))?;
        let mut records = Vec::with_capacity(body.value.len());
        let mut rejected = Vec::new();
        for entity in &body.value {
            match self.to_records(endpoint, entity) {
                Ok(found) => records.extend(
                    found
                        .into_iter()
                        .filter(|r| since.is_none_or(|s| r.modified_at >= s)),
                ),
                Err(e) => rejected.push(Rejected {
                    id: text(entity, set.key).unwrap_or_else(|| "?".into()),
                    error: e.to_string(),
                }),
            }
        }
        Ok(Page {
            records,
            rejected,
            next: body.next_link,
        })
    }

    async fn write(
        &self,
        endpoint: Endpoint,
        writes: &[Write],
    ) -> Result<Vec<WriteResult>, ConnectorError> {
        entity_set(endpoint)?;
        // Each write of a document endpoint is a document of its own, so several go out at once:
        // one at a time, a first run creating thousands of quotes waits two round trips per quote
        // (the look-up for a lost create, then the create) behind all the other work the Service
        // Layer is serving. Business partners go one at a time: a contact's write rewrites its
        // partner's whole ContactEmployees collection.
        let in_flight = if crate::sync::documents::is_document(endpoint) {
            DOCUMENT_WRITES_IN_FLIGHT
        } else {
            1
        };
        let mut results = Vec::with_capacity(writes.len());
        for group in writes.chunks(in_flight) {
            let sent = group.iter().map(|write| self.write_one(endpoint, write));
            results.extend(futures_util::future::join_all(sent).await);
        }
        Ok(results)
    }

    fn fields(&self, endpoint: Endpoint) -> Result<Vec<String>, ConnectorError> {
        let mut fields: Vec<String> = match endpoint {
            Endpoint::Accounts => ["name", "phone", "industry", "price_book", ARCHIVED]
                .map(String::from)
                .to_vec(),
            Endpoint::Items => ["name", "description", "code", ARCHIVED]
                .map(String::from)
                .to_vec(),
            Endpoint::Contacts => {
                let mut fields: Vec<String> = CONTACT.iter().map(|(c, _)| c.to_string()).collect();
                fields.push("account".into());
                return Ok(fields);
            }
            e if crate::sync::documents::is_document(e) => {
                return Ok(crate::sync::documents::canonical_fields(e));
            }
            other => {
                return Err(ConnectorError::Unsupported {
                    system: System::Erp,
                    endpoint: other,
                });
            }
        };
        if endpoint == Endpoint::Accounts {
            fields.extend(BILLING.iter().map(|(c, _)| c.to_string()));
        } else {
            fields.extend(
                self.settings
                    .price_lists
                    .iter()
                    .map(|l| format!("price.{l}")),
            );
        }
        Ok(fields)
    }

    fn calls(&self) -> CallCounts {
        self.http.stats.snapshot()
    }

    fn take_call_tallies(&self) -> Vec<super::CallTally> {
        self.http.stats.take_tallies()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector() -> SapB1Connector {
        SapB1Connector::new(SapB1Settings::default(), RetryPolicy::default()).unwrap()
    }

    fn partner(price_list: Value) -> Map<String, Value> {
        let entity = json!({"CardCode": "C20000", "CardName": "Acme Trading AG",
            "PriceListNum": price_list, "UpdateDate": "2026-11-23", "UpdateTime": "10:15:00"});
        entity.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_partners_price_list_is_its_accounts_price_book() {
        let erp = connector();
        assert!(
            entity_set(Endpoint::Accounts)
                .unwrap()
                .select
                .split(',')
                .any(|p| p == "PriceListNum")
        );
        assert!(
            erp.fields(Endpoint::Accounts)
                .unwrap()
                .contains(&"price_book".to_string())
        );
        let record = erp
            .to_record(Endpoint::Accounts, &partner(json!(2)))
            .unwrap();
        assert_eq!(record.fields["price_book"], "2");
        // Last purchase price (-1) and last evaluated price (-2) are no price list.
        for none in [json!(-1), json!(-2), Value::Null] {
            let record = erp.to_record(Endpoint::Accounts, &partner(none)).unwrap();
            assert!(!record.fields.contains_key("price_book"), "{record:?}");
        }
    }
}

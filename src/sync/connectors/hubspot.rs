//! HubSpot CRM v3: the CRM side.

mod lines;
mod search;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::{HttpCore, RetryPolicy};
use super::{CallCounts, Connector, ConnectorError, WriteResult};
use crate::domain::{Currency, Endpoint, System, Timestamp};
use crate::sync::record::{ARCHIVED, Fields, Page, Record, Rejected, Write, is_archived};
use search::Cursor;

/// HubSpot's batch endpoints take at most 100 inputs.
const BATCH_LIMIT: usize = 100;
/// The last-modified property of most object types; contacts have their own.
const LAST_MODIFIED: &str = "hs_lastmodifieddate";
const CONTACT_LAST_MODIFIED: &str = "lastmodifieddate";
/// The unique property a record created again by an undo carries (the undo's marker), so
/// re-creating it is an upsert and a replay never creates it twice.
pub const RESTORE_PROPERTY: &str = "syncwarden_restore_key";

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubSpotSettings {
    pub base_url: String,
    /// Private-app access token (leave empty when using OAuth).
    pub token: SecretString,
    /// OAuth app credentials and a refresh token: access tokens are then fetched and refreshed
    /// from `<base_url>/oauth/v1/token` as they expire.
    pub oauth_client_id: String,
    pub oauth_client_secret: SecretString,
    pub oauth_refresh_token: SecretString,
    /// The unique property that holds the ERP key (CardCode, ItemCode) on every object type.
    pub erp_key_property: String,
    /// Records per page (HubSpot allows up to 100 on lists and 200 on search).
    pub page_size: u32,
    /// ERP price list number -> the product property that carries that list's price.
    pub price_properties: BTreeMap<String, String>,
    /// Currency of quotes, orders and invoices that name none.
    pub default_currency: String,
}

impl Default for HubSpotSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.hubapi.com".into(),
            token: SecretString::from(""),
            oauth_client_id: String::new(),
            oauth_client_secret: SecretString::from(""),
            oauth_refresh_token: SecretString::from(""),
            erp_key_property: "erp_number".into(),
            page_size: 100,
            price_properties: BTreeMap::from([("1".to_string(), "price".to_string())]),
            default_currency: "EUR".into(),
        }
    }
}

impl std::fmt::Debug for HubSpotSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpotSettings")
            .field("base_url", &self.base_url)
            .field("token", &"***")
            .field("oauth_client_id", &self.oauth_client_id)
            .field("erp_key_property", &self.erp_key_property)
            .field("page_size", &self.page_size)
            .field("price_properties", &self.price_properties)
            .field("default_currency", &self.default_currency)
            .finish()
    }
}

/// Canonical field <-> HubSpot property, per endpoint.
struct Mapping {
    object: &'static str,
    last_modified: &'static str,
    fields: Vec<(String, String)>,
    /// The record's key is its HubSpot id (records the CRM originates), not the ERP key property.
    key_from_id: bool,
    /// Documents: canonical line field <-> line item property.
    lines: Vec<(String, String)>,
    /// Records the ERP may archive: `archived = "true"` archives the HubSpot object.
    archivable: bool,
}

impl Mapping {
    fn new(object: &'static str, fields: &[(&str, &str)]) -> Self {
        Self {
            object,
            last_modified: LAST_MODIFIED,
            fields: fields
                .iter()
                .map(|(c, p)| (c.to_string(), p.to_string()))
                .collect(),
            key_from_id: false,
            lines: Vec::new(),
            archivable: false,
        }
    }

    /// A document type with line items; a line's fields are those `endpoint` syncs.
    fn document(object: &'static str, endpoint: Endpoint, fields: &[(&str, &str)]) -> Self {
        let wanted = crate::sync::documents::line_fields(endpoint);
        let lines = lines::LINE_PROPERTIES
            .iter()
            .filter(|(c, _)| wanted.contains(c))
            .map(|(c, p)| (c.to_string(), p.to_string()))
            .collect();
        Self {
            lines,
            key_from_id: endpoint == Endpoint::Quotes,
            ..Self::new(object, fields)
        }
    }
}

pub struct HubSpotConnector {
    settings: HubSpotSettings,
    default_currency: Currency,
    http: HttpCore,
    /// With OAuth: the current access token and when it expires.
    oauth: Option<tokio::sync::Mutex<Option<(String, Instant)>>>,
}

#[derive(Deserialize)]
struct HsObject {
    id: String,
    #[serde(default)]
    properties: HashMap<String, Option<String>>,
    #[serde(rename = "updatedAt")]
    updated_at: String,
}

#[derive(Deserialize)]
struct HsPage {
    results: Vec<HsObject>,
    #[serde(default)]
    paging: Option<HsPaging>,
}

#[derive(Deserialize)]
struct HsPaging {
    next: Option<HsNext>,
}

#[derive(Deserialize)]
struct HsNext {
    after: String,
}

#[derive(Deserialize)]
struct HsBatchResult {
    #[serde(default)]
    results: Vec<HsObject>,
    #[serde(default)]
    errors: Vec<HsError>,
}

/// HubSpot's error body, also used for each error of a 207 batch answer.
#[derive(Deserialize, Default)]
struct HsError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default, rename = "correlationId")]
    correlation_id: Option<String>,
    #[serde(default)]
    context: HashMap<String, Vec<String>>,
}

/// One input of a batch call: by HubSpot id (`update`) or by the ERP key (`upsert`).
#[derive(Serialize)]
struct BatchInput<'a> {
    id: &'a str,
    #[serde(rename = "idProperty", skip_serializing_if = "Option::is_none")]
    id_property: Option<&'a str>,
    properties: BTreeMap<&'a str, &'a str>,
}

impl HubSpotConnector {
    pub fn new(settings: HubSpotSettings, retry: RetryPolicy) -> Result<Self, ConnectorError> {
        let oauth = !settings.oauth_refresh_token.expose_secret().is_empty();
        if !oauth && settings.token.expose_secret().is_empty() {
            return Err(ConnectorError::Config(
                "crm.token is empty (or set crm.oauth_client_id, oauth_client_secret and oauth_refresh_token)".into(),
            ));
        }
        let default_currency = Currency::parse(&settings.default_currency)
            .map_err(|e| ConnectorError::Config(format!("crm.default_currency: {e}")))?;
        Ok(Self {
            settings,
            default_currency,
            http: HttpCore::new("hubspot", retry)?,
            oauth: oauth.then(|| tokio::sync::Mutex::new(None)),
        })
    }

    fn mapping(&self, endpoint: Endpoint) -> Result<Mapping, ConnectorError> {
        Ok(match endpoint {
            Endpoint::Accounts => Mapping {
                archivable: true,
                ..Mapping::new(
                    "companies",
                    &[
                        ("name", "name"),
                        ("phone", "phone"),
                        ("industry", "industry"),
                        ("billing_street", "address"),
                        ("billing_city", "city"),
                        ("billing_postcode", "zip"),
                        ("billing_country", "country"),
                    ],
                )
            },
            Endpoint::Items => {
                let mut mapping = Mapping::new(
                    "products",
                    &[
                        ("name", "name"),
                        ("description", "description"),
                        ("code", "hs_sku"),
                    ],
                );
                mapping.fields.extend(
                    self.settings
                        .price_properties
                        .iter()
                        .map(|(list, property)| (format!("price.{list}"), property.clone())),
                );
                mapping.archivable = true;
                mapping
            }
            Endpoint::Contacts => Mapping {
                last_modified: CONTACT_LAST_MODIFIED,
                ..Mapping::new(
                    "contacts",
                    &[
                        ("first_name", "firstname"),
                        ("last_name", "lastname"),
                        ("email", "email"),
                        ("phone", "phone"),
                        ("owner", "hubspot_owner_id"),
                        // The account's ERP number, kept in a contact property.
                        ("account", "erp_account_number"),
                    ],
                )
            },
            // Quotes are keyed by their HubSpot id; the ERP's quote number comes back.
            Endpoint::Quotes => Mapping::document(
                "quotes",
                endpoint,
                &[
                    ("account", "erp_account_number"),
                    ("date", "quote_date"),
                    ("valid_until", "hs_expiration_date"),
                    ("currency", "hs_currency"),
                    ("owner", "hubspot_owner_id"),
                    ("comments", "hs_comments"),
                    ("number", "erp_quote_number"),
                ],
            ),
            Endpoint::SalesOrders => Mapping::document(
                "orders",
                endpoint,
                &[
                    ("number", "erp_order_number"),
                    ("account", "erp_account_number"),
                    ("date", "order_date"),
                    ("currency", "hs_currency_code"),
                    ("owner", "hubspot_owner_id"),
                    ("total", "hs_total_price"),
                    ("based_on", "erp_based_on"),
                    ("status", "erp_order_status"),
                ],
            ),
            Endpoint::Invoices => Mapping::document(
                "invoices",
                endpoint,
                &[
                    ("number", "hs_number"),
                    ("account", "erp_account_number"),
                    ("date", "hs_invoice_date"),
                    ("due_date", "hs_due_date"),
                    ("currency", "hs_currency"),
                    ("owner", "hubspot_owner_id"),
                    ("total", "hs_amount_billed"),
                    ("based_on", "erp_based_on"),
                    ("status", "erp_invoice_status"),
                ],
            ),
            other => {
                return Err(ConnectorError::Unsupported {
                    system: System::Crm,
                    endpoint: other,
                });
            }
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/crm/v3/objects/{path}",
            self.settings.base_url.trim_end_matches('/')
        )
    }

    fn properties(&self, mapping: &Mapping) -> Vec<String> {
        let mut props: Vec<String> = mapping.fields.iter().map(|(_, p)| p.clone()).collect();
        props.push(self.settings.erp_key_property.clone());
        props.push(mapping.last_modified.into());
        props
    }

    /// Sends a request with the access token; with OAuth, an expired token is refreshed and the
    /// call made once more.
    async fn call(
        &self,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ConnectorError> {
        let mut renew = false;
        loop {
            let token = self.access_token(renew).await?;
            let error = match self
                .http
                .call(|| make().bearer_auth(&token), api_error)
                .await
            {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            let expired = matches!(&error, ConnectorError::Api { status: 401, .. });
            if expired && self.oauth.is_some() && !renew {
                tracing::info!("HubSpot access token refused; refreshing it");
                renew = true;
                continue;
            }
            return Err(error);
        }
    }

    /// The private-app token, or the current OAuth access token (refreshed when it is about to
    /// expire or `renew` says it was refused).
    async fn access_token(&self, renew: bool) -> Result<String, ConnectorError> {
        let Some(oauth) = &self.oauth else {
            return Ok(self.settings.token.expose_secret().to_string());
        };
        let mut current = oauth.lock().await;
        let fresh = current
            .as_ref()
            .is_some_and(|(_, expires)| *expires > Instant::now() + Duration::from_secs(60));
        if renew || !fresh {
            *current = Some(self.refresh().await?);
        }
        Ok(current.as_ref().map(|(t, _)| t.clone()).unwrap_or_default())
    }

    async fn refresh(&self) -> Result<(String, Instant), ConnectorError> {
        let url = format!(
            "{}/oauth/v1/token",
            self.settings.base_url.trim_end_matches('/')
        );
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.settings.oauth_client_id.as_str()),
            (
                "client_secret",
                self.settings.oauth_client_secret.expose_secret(),
            ),
            (
                "refresh_token",
                self.settings.oauth_refresh_token.expose_secret(),
            ),
        ];
        let response = self
            .http
            .call(|| self.http.client.post(&url).form(&form), api_error)
            .await?;
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            expires_in: u64,
        }
        let token: Token = response.json().await.map_err(|e| {
            ConnectorError::malformed(System::Crm, format!("OAuth token answer: {e}"))
        })?;
        Ok((
            token.access_token,
            Instant::now() + Duration::from_secs(token.expires_in),
        ))
    }

    fn to_record(&self, object: HsObject, mapping: &Mapping) -> Result<Record, ConnectorError> {
        let modified_at = Timestamp::parse_rfc3339(&object.updated_at).map_err(|_| {
            ConnectorError::malformed(System::Crm, format!("updatedAt `{}`", object.updated_at))
        })?;
        let mut props = object.properties;
        let mut take = |p: &str| props.remove(p).flatten().filter(|v| !v.is_empty());
        let key = match mapping.key_from_id {
            true => Some(object.id.clone()),
            false => take(&self.settings.erp_key_property),
        };
        let fields: Fields = mapping
            .fields
            .iter()
            .filter_map(|(canonical, property)| take(property).map(|v| (canonical.clone(), v)))
            .collect();
        Ok(Record {
            id: object.id,
            key,
            fields,
            modified_at,
        })
    }

    /// Writes records that have a HubSpot id with `batch/update` (which also links a record
    /// to its ERP key) and the others with `batch/upsert` by the ERP key, so nothing is created twice.
    async fn write_chunk(
        &self,
        mapping: &Mapping,
        writes: &[Write],
        by_id: bool,
    ) -> Result<Vec<WriteResult>, ConnectorError> {
        let by_canonical: HashMap<&str, &str> = mapping
            .fields
            .iter()
            .map(|(c, p)| (c.as_str(), p.as_str()))
            .collect();
        let key_property = self.settings.erp_key_property.as_str();
        let mut inputs = Vec::with_capacity(writes.len());
        for w in writes {
            let mut properties = BTreeMap::new();
            if !mapping.key_from_id {
                properties.insert(key_property, w.key.as_str());
            }
            for (field, value) in &w.fields {
                let property = by_canonical.get(field.as_str()).ok_or_else(|| {
                    ConnectorError::Config(format!(
                        "no HubSpot property mapped for field `{field}`"
                    ))
                })?;
                properties.insert(property, value.as_str());
            }
            inputs.push(match (&w.id, by_id) {
                (Some(id), true) => BatchInput {
                    id,
                    id_property: None,
                    properties,
                },
                _ => BatchInput {
                    id: &w.key,
                    id_property: Some(key_property),
                    properties,
                },
            });
        }
        let body = json!({ "inputs": inputs });
        let verb = if by_id { "update" } else { "upsert" };
        let url = self.url(&format!("{}/batch/{verb}", mapping.object));
        let response = self
            .call(|| self.http.client.post(&url).json(&body))
            .await?;
        let status = response.status().as_u16();
        let batch: HsBatchResult = response
            .json()
            .await
            .map_err(|e| ConnectorError::malformed(System::Crm, e.to_string()))?;
        // Results and errors are matched back by the id each input was sent with.
        let sent_id = |w: &Write| -> String {
            match (&w.id, by_id) {
                (Some(id), true) => id.clone(),
                _ => w.key.clone(),
            }
        };
        let mut ids: HashMap<String, String> = HashMap::new();
        for object in batch.results {
            let sent = if by_id {
                Some(object.id.clone())
            } else {
                object.properties.get(key_property).cloned().flatten()
            };
            if let Some(sent) = sent {
                ids.insert(sent, object.id);
            }
        }
        let mut failures: HashMap<String, ConnectorError> = HashMap::new();
        for error in batch.errors {
            let err = ConnectorError::Api {
                system: System::Crm,
                status,
                message: error.message.clone(),
                code: error.category.clone(),
                correlation_id: error.correlation_id.clone(),
            };
            for id in error.context.values().flatten() {
                failures.insert(id.clone(), err.clone());
            }
        }
        Ok(writes
            .iter()
            .map(|w| {
                let sent = sent_id(w);
                match (ids.remove(&sent), failures.remove(&sent)) {
                    (Some(id), _) => Ok(id),
                    (None, Some(err)) => Err(err),
                    (None, None) => Err(ConnectorError::malformed(
                        System::Crm,
                        format!("batch answer has no result for {sent}"),
                    )),
                }
            })
            .collect())
    }
    /// Writes records that have a HubSpot id by id and the others by the ERP key, in batches;
    /// archives those whose write says `archived = "true"`.
    async fn write_records(&self, mapping: &Mapping, writes: &[Write]) -> Vec<WriteResult> {
        let mut results: Vec<Option<WriteResult>> = vec![None; writes.len()];
        let archive: Vec<usize> = (0..writes.len())
            .filter(|i| writes[*i].fields.contains_key(ARCHIVED))
            .collect();
        for i in &archive {
            results[*i] = Some(self.archive(mapping, &writes[*i]).await);
        }
        for by_id in [true, false] {
            let picked: Vec<usize> = (0..writes.len())
                .filter(|i| writes[*i].id.is_some() == by_id && !archive.contains(i))
                .collect();
            for chunk in picked.chunks(BATCH_LIMIT) {
                let batch: Vec<Write> = chunk.iter().map(|i| writes[*i].clone()).collect();
                // A chunk that fails as a whole fails its own writes, not those already done.
                let done = match self.write_chunk(mapping, &batch, by_id).await {
                    Ok(done) => done,
                    Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
                };
                for (i, result) in chunk.iter().zip(done) {
                    results[*i] = Some(result);
                }
            }
        }
        results.into_iter().flatten().collect()
    }

    /// Archives the record a write names (`archived = "true"`); HubSpot has no API to restore an
    /// archived object, so a write that would restore one fails and says so.
    async fn archive(&self, mapping: &Mapping, write: &Write) -> WriteResult {
        let id = write.id.clone().ok_or_else(|| {
            ConnectorError::Config(format!(
                "{} {} has no HubSpot id to archive",
                mapping.object, write.key
            ))
        })?;
        if !is_archived(&write.fields) {
            return Err(ConnectorError::Config(format!(
                "{} {id} was archived in HubSpot and is active again in the ERP: restore it in HubSpot (there is no API for that)",
                mapping.object
            )));
        }
        let url = self.url(&format!("{}/batch/archive", mapping.object));
        let body = json!({ "inputs": [{ "id": id }] });
        self.call(|| self.http.client.post(&url).json(&body))
            .await?;
        Ok(id)
    }

    /// The id an object reads as now (`None` when it is gone): HubSpot answers a merged-away
    /// id with the record it was merged into.
    async fn current_id(&self, object: &str, id: &str) -> Result<Option<String>, ConnectorError> {
        let url = self.url(&format!("{object}/{id}"));
        match self.call(|| self.http.client.get(&url)).await {
            Ok(response) => Ok(Some(read_json::<HsObject>(response).await?.id)),
            Err(ConnectorError::Api { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// One page of an incremental read of the objects of a type.
    async fn search(
        &self,
        object: &str,
        last_modified: &str,
        properties: &[String],
        cursor: &Cursor,
    ) -> Result<HsPage, ConnectorError> {
        let url = self.url(&format!("{object}/search"));
        let (filter_groups, sorts) = cursor.query(last_modified);
        let mut body = json!({
            "filterGroups": filter_groups,
            "sorts": sorts,
            "properties": properties,
            "limit": self.search_page_size(),
        });
        if cursor.offset() > 0 {
            body["after"] = Value::String(cursor.offset().to_string());
        }
        let response = self
            .call(|| self.http.client.post(&url).json(&body))
            .await?;
        read_json(response).await
    }

    fn search_page_size(&self) -> u64 {
        u64::from(self.settings.page_size.min(200))
    }
}

/// The cursor of the search page after `page`, read at `cursor`.
fn next_cursor(cursor: &Cursor, page: &HsPage, page_size: u64) -> Option<Cursor> {
    let seen: Vec<(i64, u64)> = page
        .results
        .iter()
        .filter_map(|o| {
            let t = Timestamp::parse_rfc3339(&o.updated_at).ok()?;
            Some((t.as_micros().div_euclid(1000), o.id.parse().ok()?))
        })
        .collect();
    let next_offset = page
        .paging
        .as_ref()
        .and_then(|p| p.next.as_ref())
        .and_then(|n| n.after.parse().ok());
    cursor.next(next_offset, &seen, page_size)
}

async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, ConnectorError> {
    response
        .json()
        .await
        .map_err(|e| ConnectorError::malformed(System::Crm, e.to_string()))
}

async fn api_error(response: reqwest::Response) -> ConnectorError {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body: HsError = serde_json::from_str(&text).unwrap_or_else(|_| HsError {
        message: text.chars().take(300).collect(),
        ..Default::default()
    });
    ConnectorError::Api {
        system: System::Crm,
        status,
        message: body.message,
        code: body.category,
        correlation_id: body.correlation_id,
    }
}

#[async_trait]
impl Connector for HubSpotConnector {
    fn system(&self) -> System {
        System::Crm
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        let url = self.url("companies");
        self.call(|| self.http.client.get(&url).query(&[("limit", "1")]))
            .await?;
        Ok(())
    }

    async fn pull(
        &self,
        endpoint: Endpoint,
        since: Option<Timestamp>,
        page: Option<String>,
    ) -> Result<Page, ConnectorError> {
        let mapping = self.mapping(endpoint)?;
        if let (Some(since), Some(token)) = (since, page.as_deref())
            && let Some(token) = token.strip_prefix(lines::LINE_PHASE)
        {
            return self.pull_changed_lines(&mapping, since, token).await;
        }
        let properties = self.properties(&mapping);
        let cursor = since.map(|s| Cursor::parse(page.as_deref(), s));
        let page: HsPage = match &cursor {
            // A full read pages through the list endpoint (search stops at 10,000 results).
            None => {
                let url = self.url(mapping.object);
                let mut query = vec![
                    ("limit", self.settings.page_size.to_string()),
                    ("properties", properties.join(",")),
                ];
                query.extend(page.clone().map(|after| ("after", after)));
                let response = self
                    .call(|| self.http.client.get(&url).query(&query))
                    .await?;
                read_json(response).await?
            }
            Some(cursor) => {
                self.search(mapping.object, mapping.last_modified, &properties, cursor)
                    .await?
            }
        };
        let next = match &cursor {
            Some(cursor) => match next_cursor(cursor, &page, self.search_page_size()) {
                Some(next) => Some(next.token()),
                // A line item changes without its document changing: after the documents,
                // the changed line items are read and their documents with them.
                None if !mapping.lines.is_empty() => Some(lines::LINE_PHASE.to_string()),
                None => None,
            },
            None => page
                .paging
                .as_ref()
                .and_then(|p| p.next.as_ref())
                .map(|n| n.after.clone()),
        };
        let mut records = Vec::with_capacity(page.results.len());
        let mut rejected = Vec::new();
        for object in page.results {
            let id = object.id.clone();
            match self.to_record(object, &mapping) {
                Ok(record) => records.push(record),
                Err(e) => rejected.push(Rejected {
                    id,
                    error: e.to_string(),
                }),
            }
        }
        if !mapping.lines.is_empty() {
            let (complete, bad) = self.attach_lines(&mapping, records).await?;
            records = complete;
            rejected.extend(bad);
        }
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
        let mapping = self.mapping(endpoint)?;
        if mapping.lines.is_empty() {
            Ok(self.write_records(&mapping, writes).await)
        } else {
            self.write_documents(&mapping, writes).await
        }
    }

    async fn merge(
        &self,
        endpoint: Endpoint,
        survivor: &str,
        loser: &str,
    ) -> Result<(), ConnectorError> {
        let mapping = self.mapping(endpoint)?;
        let url = self.url(&format!("{}/merge", mapping.object));
        let body = json!({ "primaryObjectId": survivor, "objectIdToMerge": loser });
        match self.call(|| self.http.client.post(&url).json(&body)).await {
            Ok(_) => Ok(()),
            // A replay after the merge went through: the loser is gone (or, as HubSpot does for
            // merged ids, reads as the survivor).
            Err(
                error @ ConnectorError::Api {
                    status: 400..=404, ..
                },
            ) => match self.current_id(mapping.object, loser).await? {
                Some(id) if id == loser => Err(error),
                _ => Ok(()),
            },
            Err(error) => Err(error),
        }
    }

    async fn restore(
        &self,
        endpoint: Endpoint,
        marker: &str,
        key: Option<&str>,
        fields: &Fields,
    ) -> WriteResult {
        let mapping = self.mapping(endpoint)?;
        let mut properties: BTreeMap<&str, &str> = BTreeMap::new();
        for (field, value) in fields {
            if let Some((_, property)) = mapping.fields.iter().find(|(c, _)| c == field) {
                properties.insert(property, value);
            }
        }
        if let Some(key) = key {
            properties.insert(&self.settings.erp_key_property, key);
        }
        properties.insert(RESTORE_PROPERTY, marker);
        let body = json!({ "inputs": [BatchInput { id: marker, id_property: Some(RESTORE_PROPERTY), properties }] });
        let url = self.url(&format!("{}/batch/upsert", mapping.object));
        let response = self
            .call(|| self.http.client.post(&url).json(&body))
            .await?;
        let batch: HsBatchResult = read_json(response).await?;
        match (
            batch.results.into_iter().next(),
            batch.errors.into_iter().next(),
        ) {
            (Some(object), _) => Ok(object.id),
            (None, error) => Err(ConnectorError::Api {
                system: System::Crm,
                status: 207,
                message: error.map(|e| e.message).unwrap_or_default(),
                code: None,
                correlation_id: None,
            }),
        }
    }

    fn fields(&self, endpoint: Endpoint) -> Result<Vec<String>, ConnectorError> {
        let mapping = self.mapping(endpoint)?;
        Ok(mapping
            .fields
            .into_iter()
            .map(|(c, _)| c)
            .chain(
                mapping
                    .lines
                    .into_iter()
                    .map(|(c, _)| format!("line.*.{c}")),
            )
            .chain(mapping.archivable.then(|| ARCHIVED.to_string()))
            .collect())
    }

    fn calls(&self) -> CallCounts {
        self.http.stats.snapshot()
    }

    fn take_call_tallies(&self) -> Vec<super::CallTally> {
        self.http.stats.take_tallies()
    }
}

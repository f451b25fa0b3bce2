//! An SAP Business One Service Layer server in memory (/b1s/v2, OData v4): session login with
//! B1SESSION/ROUTEID cookies and timeout, entity sets with OData paging and an UpdateDate filter,
//! create and patch, SAP's error body.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Map, Value, json};

use super::faults::Faults;
use crate::clock::Clock;
use crate::domain::Timestamp;

pub type Entity = Map<String, Value>;

/// Entity sets and their key property.
pub const SETS: [(&str, &str); 6] = [
    ("BusinessPartners", "CardCode"),
    ("Items", "ItemCode"),
    ("PriceLists", "PriceListNo"),
    ("Quotations", "DocEntry"),
    ("Orders", "DocEntry"),
    ("Invoices", "DocEntry"),
];

/// Marketing documents: the server numbers them and their lines and computes their totals.
fn is_document(set: &str) -> bool {
    matches!(set, "Quotations" | "Orders" | "Invoices")
}

#[derive(Default)]
pub struct SapData {
    sets: HashMap<&'static str, BTreeMap<String, Entity>>,
    sessions: HashMap<String, Timestamp>,
    /// The last DocEntry given out.
    last_doc_entry: u64,
    /// Per entity set, its keys in the order every list answers in (UpdateDate, UpdateTime,
    /// key): built by the first list that needs it and dropped when an entity of the set
    /// changes, so paging through an unchanged set does not sort the whole set for each page.
    by_stamp: HashMap<&'static str, Vec<String>>,
}

/// An entity's place in a list's order, before its key: the stamps are strings that sort
/// as the instants they name.
fn stamp_key(entity: &Entity) -> [&str; 2] {
    ["UpdateDate", "UpdateTime"].map(|f| entity.get(f).and_then(Value::as_str).unwrap_or_default())
}

fn stamp(entity: &mut Entity, at: Timestamp) {
    let t = at.to_datetime();
    entity.insert(
        "UpdateDate".into(),
        Value::String(t.format("%Y-%m-%dT00:00:00Z").to_string()),
    );
    entity.insert(
        "UpdateTime".into(),
        Value::String(t.format("%H:%M:%S").to_string()),
    );
}

fn key_of(set: &str) -> Option<(&'static str, &'static str)> {
    SETS.iter().find(|(name, _)| *name == set).copied()
}

/// Merges `patch` into `entity`; collection members with the same identifying fields are
/// replaced, others appended, as the Service Layer does without B1S-ReplaceCollectionsOnPatch
/// (with it, `replace` is set and collections are replaced whole).
fn merge(entity: &mut Entity, patch: Entity, replace: bool) {
    for (field, value) in patch {
        match (entity.get_mut(&field), value) {
            (Some(Value::Array(existing)), Value::Array(new)) if !replace => {
                for member in new {
                    let same = |m: &Value| {
                        [
                            "AddressName",
                            "AddressType",
                            "PriceList",
                            "InternalCode",
                            "LineNum",
                        ]
                        .iter()
                        .filter(|k| member.get(**k).is_some())
                        .all(|k| m.get(*k) == member.get(*k))
                    };
                    match existing.iter_mut().find(|m| same(m)) {
                        Some(slot) => {
                            if let (Some(slot), Some(member)) =
                                (slot.as_object_mut(), member.as_object())
                            {
                                slot.extend(member.clone());
                            }
                        }
                        None => existing.push(member),
                    }
                }
            }
            (_, value) => {
                entity.insert(field, value);
            }
        }
    }
}

/// Numbers the lines that have no LineNum yet and computes each LineTotal and the DocTotal,
/// in cents so totals carry no binary-fraction noise.
fn settle_document(entity: &mut Entity) {
    let mut total_cents = 0_i64;
    if let Some(Value::Array(lines)) = entity.get_mut("DocumentLines") {
        let mut next_line = lines
            .iter()
            .filter_map(|l| l.get("LineNum").and_then(Value::as_i64))
            .max()
            .map_or(0, |n| n + 1);
        for line in lines.iter_mut().filter_map(Value::as_object_mut) {
            if !line.contains_key("LineNum") {
                line.insert("LineNum".into(), json!(next_line));
                next_line += 1;
            }
            let number = |k: &str| line.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            let price = if line.contains_key("UnitPrice") {
                number("UnitPrice")
            } else {
                number("Price")
            };
            let discount = number("DiscountPercent");
            let cents = (number("Quantity") * price * (100.0 - discount)).round() as i64;
            total_cents += cents;
            line.insert("UnitPrice".into(), json!(price));
            line.insert("Price".into(), json!(price));
            line.insert("LineTotal".into(), json!(cents as f64 / 100.0));
        }
    }
    entity.insert("DocTotal".into(), json!(total_cents as f64 / 100.0));
}

impl SapData {
    /// Stores an entity as the seed or a test would, stamped `at`; a document without a
    /// DocEntry gets the next one (and the same DocNum).
    pub fn put(&mut self, set: &str, mut entity: Entity, at: Timestamp) -> Option<String> {
        let (name, key) = key_of(set)?;
        if is_document(name) {
            if !entity.contains_key("DocEntry") {
                self.last_doc_entry += 1;
                entity.insert("DocEntry".into(), json!(self.last_doc_entry));
                entity.insert("DocNum".into(), json!(self.last_doc_entry));
            }
            settle_document(&mut entity);
        }
        let id = entity.get(key).map(value_text)?;
        stamp(&mut entity, at);
        self.by_stamp.remove(name);
        self.sets
            .entry(name)
            .or_default()
            .insert(id.clone(), entity);
        Some(id)
    }

    pub fn get(&self, set: &str, key: &str) -> Option<&Entity> {
        self.sets.get(set)?.get(key)
    }

    pub fn all(&self, set: &str) -> Vec<&Entity> {
        self.sets
            .get(set)
            .map(|m| m.values().collect())
            .unwrap_or_default()
    }

    /// Changes fields as an ERP user would, moving UpdateDate/UpdateTime.
    pub fn update(&mut self, set: &str, key: &str, patch: Entity, at: Timestamp) -> bool {
        self.patch(set, key, patch, false, at)
    }

    /// A PATCH; `replace` replaces collections whole (header B1S-ReplaceCollectionsOnPatch).
    fn patch(&mut self, set: &str, key: &str, patch: Entity, replace: bool, at: Timestamp) -> bool {
        self.by_stamp.remove(set);
        match self.sets.get_mut(set).and_then(|m| m.get_mut(key)) {
            Some(entity) => {
                merge(entity, patch, replace);
                if is_document(set) {
                    settle_document(entity);
                }
                stamp(entity, at);
                true
            }
            None => false,
        }
    }

    /// Builds the list order of a set's keys unless it is already there.
    fn order_by_stamp(&mut self, set: &str) {
        let Some((name, _)) = key_of(set) else {
            return;
        };
        if self.by_stamp.contains_key(name) {
            return;
        }
        let mut keyed: Vec<([&str; 2], &String)> = self
            .sets
            .get(name)
            .map(|m| m.iter().map(|(k, e)| (stamp_key(e), k)).collect())
            .unwrap_or_default();
        keyed.sort_unstable();
        let order = keyed.into_iter().map(|(_, k)| k.clone()).collect();
        self.by_stamp.insert(name, order);
    }

    /// The keys of a set in list order, from the first entity updated on or after `since_date`
    /// (all without one), once `order_by_stamp` has built the order.
    fn keys_since(&self, set: &str, since_date: Option<&str>) -> &[String] {
        let order = self.by_stamp.get(set).map_or(&[][..], Vec::as_slice);
        let Some(since) = since_date else {
            return order;
        };
        let start = order.partition_point(|key| {
            self.get(set, key)
                .and_then(|e| e.get("UpdateDate"))
                .and_then(Value::as_str)
                .and_then(|d| d.get(..10))
                .is_none_or(|d| d < since)
        });
        &order[start..]
    }

    /// Ends every session, as a Service Layer restart or a timeout would.
    pub fn expire_sessions(&mut self) {
        self.sessions.clear();
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Clone)]
pub struct SapB1Sandbox {
    pub data: Arc<Mutex<SapData>>,
    pub company_db: String,
    pub username: String,
    pub password: String,
    pub session_timeout: Duration,
    pub clock: Clock,
    pub faults: Arc<Faults>,
}

pub fn error_body(status: StatusCode, message: &str) -> Response {
    let code = match status {
        StatusCode::UNAUTHORIZED => 301,
        StatusCode::NOT_FOUND => -2028,
        s if s.is_client_error() => -5002,
        _ => -1,
    };
    let body = json!({"error": {"code": code, "message": {"lang": "en-us", "value": message}}});
    (status, axum::Json(body)).into_response()
}

impl SapB1Sandbox {
    fn data(&self) -> std::sync::MutexGuard<'_, SapData> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The 401 (code 301) answer for a missing or timed-out session, or none when it is valid.
    fn deny(&self, headers: &HeaderMap) -> Option<Response> {
        let session = session_cookie(headers).map(str::to_string);
        let now = self.clock.now();
        let mut data = self.data();
        if self.faults.take_session_expiry() {
            data.expire_sessions();
        }
        let valid = session
            .as_ref()
            .and_then(|s| data.sessions.get(s))
            .is_some_and(|last| now.since(*last) < self.session_timeout);
        match session {
            Some(s) if valid => {
                data.sessions.insert(s, now);
                None
            }
            _ => Some(error_body(
                StatusCode::UNAUTHORIZED,
                "Invalid session or session already timeout.",
            )),
        }
    }
}

/// The B1SESSION cookie of a request.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())?
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("B1SESSION="))
}

pub fn router(sandbox: SapB1Sandbox) -> Router {
    Router::new()
        .route("/b1s/v2/Login", post(login))
        .route("/b1s/v2/Logout", post(logout))
        .route("/b1s/v2/{*resource}", any(resource))
        .with_state(sandbox)
}

async fn login(State(sb): State<SapB1Sandbox>, body: Bytes) -> Response {
    let credentials: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| {
        credentials
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if field("CompanyDB") != sb.company_db
        || field("UserName") != sb.username
        || field("Password") != sb.password
    {
        return error_body(
            StatusCode::UNAUTHORIZED,
            "Fail to get DB Credentials from SLD",
        );
    }
    let session = uuid::Uuid::new_v4().to_string();
    sb.data().sessions.insert(session.clone(), sb.clock.now());
    let body = json!({
        "odata.metadata": "$metadata#B1Sessions/@Element",
        "SessionId": session,
        "Version": "1000190",
        "SessionTimeout": sb.session_timeout.as_secs() / 60,
    });
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    for cookie in [
        format!("B1SESSION={session}; path=/b1s/v2; Secure; HttpOnly"),
        "ROUTEID=.node1; path=/b1s".to_string(),
    ] {
        if let Ok(v) = cookie.parse() {
            headers.append("set-cookie", v);
        }
    }
    response
}

async fn logout(State(sb): State<SapB1Sandbox>, headers: HeaderMap) -> Response {
    if let Some(s) = session_cookie(&headers) {
        sb.data().sessions.remove(s);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `BusinessPartners` or `BusinessPartners('C00001')` / `PriceLists(1)`.
fn parse_resource(resource: &str) -> Option<(&'static str, &'static str, Option<String>)> {
    let (set, key) = match resource.split_once('(') {
        Some((set, rest)) => {
            let inner = rest.strip_suffix(')')?;
            let key = inner
                .strip_prefix('\'')
                .and_then(|k| k.strip_suffix('\''))
                .unwrap_or(inner);
            (set, Some(key.replace("''", "'")))
        }
        None => (resource, None),
    };
    let (name, key_field) = key_of(set)?;
    Some((name, key_field, key))
}

async fn resource(
    State(sb): State<SapB1Sandbox>,
    Path(resource): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = sb.deny(&headers) {
        return denied;
    }
    let Some((set, key_field, key)) = parse_resource(&resource) else {
        return error_body(
            StatusCode::NOT_FOUND,
            &format!("Resource not found for the segment '{resource}'"),
        );
    };
    match (method, key) {
        (Method::GET, None) => list(&sb, set, query.as_deref().unwrap_or(""), &headers),
        (Method::GET, Some(key)) => match sb.data().get(set, &key) {
            Some(entity) => axum::Json(entity.clone()).into_response(),
            None => error_body(
                StatusCode::NOT_FOUND,
                "No matching records found (ODBC -2028)",
            ),
        },
        (Method::POST, None) => create(&sb, set, key_field, &body),
        (Method::PATCH, Some(key)) => {
            let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(&body) else {
                return error_body(StatusCode::BAD_REQUEST, "Invalid JSON body");
            };
            let replace = headers
                .get("b1s-replacecollectionsonpatch")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
            let at = sb.faults.stamp(sb.clock.now());
            if sb.data().patch(set, &key, patch, replace, at) {
                StatusCode::NO_CONTENT.into_response()
            } else {
                error_body(
                    StatusCode::NOT_FOUND,
                    "No matching records found (ODBC -2028)",
                )
            }
        }
        (method, _) => error_body(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{method} is not supported here"),
        ),
    }
}

fn create(sb: &SapB1Sandbox, set: &str, key_field: &str, body: &[u8]) -> Response {
    let Ok(Value::Object(entity)) = serde_json::from_slice::<Value>(body) else {
        return error_body(StatusCode::BAD_REQUEST, "Invalid JSON body");
    };
    if let Some(refusal) = invalid_document(set, &entity) {
        return error_body(StatusCode::BAD_REQUEST, &refusal);
    }
    let mut data = sb.data();
    let key = match entity.get(key_field).map(value_text) {
        Some(key) if data.get(set, &key).is_some() => {
            return error_body(
                StatusCode::BAD_REQUEST,
                &format!("This entry already exists in the following tables ({key})"),
            );
        }
        Some(key) => key,
        None if is_document(set) => String::new(),
        None => {
            return error_body(StatusCode::BAD_REQUEST, &format!("{key_field} is required"));
        }
    };
    let key = data
        .put(set, entity, sb.faults.stamp(sb.clock.now()))
        .unwrap_or(key);
    match data.get(set, &key) {
        Some(stored) => (StatusCode::CREATED, axum::Json(stored.clone())).into_response(),
        None => error_body(StatusCode::INTERNAL_SERVER_ERROR, "create failed"),
    }
}

/// Why the Service Layer would refuse this document, if it would: no customer, or a line
/// without an item.
fn invalid_document(set: &str, entity: &Entity) -> Option<String> {
    if !is_document(set) {
        return None;
    }
    if entity.get("CardCode").and_then(Value::as_str).is_none() {
        return Some("Invalid BP code: CardCode is required".into());
    }
    let lines = entity.get("DocumentLines").and_then(Value::as_array)?;
    lines
        .iter()
        .any(|l| {
            l.get("ItemCode")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        })
        .then(|| "Item code is missing on a document line (ODBC -10)".into())
}

/// The query options this server understands: `$filter=UpdateDate ge 'YYYY-MM-DD'`, `$skip`,
/// `$top`, `$select` and `$orderby` (always by UpdateDate, UpdateTime, key).
struct ListOptions {
    since_date: Option<String>,
    /// `NumAtCard eq '...'`: documents carrying that external reference.
    num_at_card: Option<String>,
    skip: usize,
    top: Option<usize>,
    rest: Vec<(String, String)>,
}

fn parse_options(query: &str) -> Result<ListOptions, String> {
    let mut options = ListOptions {
        since_date: None,
        num_at_card: None,
        skip: 0,
        top: None,
        rest: Vec::new(),
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "$filter" => {
                let quoted = |prefix: &str| {
                    v.strip_prefix(prefix)
                        .and_then(|d| d.strip_suffix('\''))
                        .map(|d| d.replace("''", "'"))
                };
                if let Some(date) = quoted("UpdateDate ge '") {
                    options.since_date = Some(date);
                } else if let Some(reference) = quoted("NumAtCard eq '") {
                    options.num_at_card = Some(reference);
                } else {
                    return Err(format!("unsupported $filter: {v}"));
                }
                options.rest.push((k.to_string(), v.clone()));
            }
            "$skip" => options.skip = v.parse().map_err(|_| format!("bad $skip {v}"))?,
            "$top" => options.top = Some(v.parse().map_err(|_| format!("bad $top {v}"))?),
            _ => options.rest.push((k.to_string(), v)),
        }
    }
    Ok(options)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a list selects, in list order, found by looking at every entity of the set.
fn scan<'a>(data: &'a SapData, set: &str, options: &ListOptions) -> Vec<&'a Entity> {
    let mut found: Vec<&Entity> = data
        .all(set)
        .into_iter()
        .filter(|e| {
            options.since_date.as_deref().is_none_or(|since| {
                e.get("UpdateDate")
                    .and_then(Value::as_str)
                    .and_then(|d| d.get(..10))
                    .is_some_and(|d| d >= since)
            })
        })
        .filter(|e| {
            options
                .num_at_card
                .as_deref()
                .is_none_or(|r| e.get("NumAtCard").and_then(Value::as_str) == Some(r))
        })
        .collect();
    found.sort_by(|a, b| stamp_key(a).cmp(&stamp_key(b)));
    found
}

fn list(sb: &SapB1Sandbox, set: &str, query: &str, headers: &HeaderMap) -> Response {
    let options = match parse_options(query) {
        Ok(o) => o,
        Err(message) => return error_body(StatusCode::BAD_REQUEST, &message),
    };
    let page_size = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .and_then(|p| p.trim().strip_prefix("odata.maxpagesize="))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 1000);
    let mut data = sb.data();
    let limit = options.top.unwrap_or(usize::MAX).min(page_size);
    let mut skip = options.skip;
    if sb
        .faults
        .dropped_page()
        .is_some_and(|p| skip / page_size + 1 == p as usize)
    {
        skip += page_size;
    }
    let empty = sb.faults.empty_lists();
    let (total, value): (usize, Vec<Value>) = if options.num_at_card.is_none() {
        data.order_by_stamp(set);
        let keys = data.keys_since(set, options.since_date.as_deref());
        skip = if empty { keys.len() } else { skip };
        let page = keys.iter().skip(skip).take(limit);
        let value = page
            .filter_map(|k| data.get(set, k))
            .map(|e| Value::Object(e.clone()))
            .collect();
        (keys.len(), value)
    } else {
        let found = scan(&data, set, &options);
        skip = if empty { found.len() } else { skip };
        let page = found.iter().skip(skip).take(limit);
        (
            found.len(),
            page.map(|e| Value::Object((*e).clone())).collect(),
        )
    };
    let next = skip + value.len();
    let mut body = json!({"@odata.context": format!("$metadata#{set}"), "value": value});
    if next < total && options.top.is_none() {
        let mut link = format!("{set}?");
        for (k, v) in &options.rest {
            link.push_str(&format!(
                "{k}={}&",
                v.replace(' ', "%20").replace('\'', "%27")
            ));
        }
        link.push_str(&format!("$skip={next}"));
        body["@odata.nextLink"] = Value::String(link);
    }
    drop(data);
    let mut response = super::faults::answer(&sb.faults, &body);
    if let Ok(v) = format!("odata.maxpagesize={page_size}").parse() {
        response.headers_mut().insert("preference-applied", v);
    }
    response
}

#[cfg(test)]
mod list_tests {
    use super::*;

    fn partner(code: &str) -> Entity {
        json!({"CardCode": code, "CardName": code})
            .as_object()
            .unwrap()
            .clone()
    }

    fn codes(entities: &[&Entity]) -> Vec<String> {
        entities.iter().map(|e| e["CardCode"].to_string()).collect()
    }

    #[test]
    fn the_list_order_is_the_scans_order_also_after_changes() {
        let day = |d: u32, h: u32| {
            Timestamp::parse_rfc3339(&format!("2026-11-{d:02}T{h:02}:00:00Z")).unwrap()
        };
        let mut data = SapData::default();
        // Several partners share each instant, across three days.
        for i in 0..12_u32 {
            data.put(
                "BusinessPartners",
                partner(&format!("C{:02}", 11 - i)),
                day(20 + i / 4, i % 2),
            );
        }
        let check = |data: &mut SapData| {
            for since in [None, Some("2026-11-21"), Some("2026-11-23")] {
                let options = ListOptions {
                    since_date: since.map(str::to_string),
                    num_at_card: None,
                    skip: 0,
                    top: None,
                    rest: Vec::new(),
                };
                data.order_by_stamp("BusinessPartners");
                let ordered: Vec<String> = data
                    .keys_since("BusinessPartners", since)
                    .iter()
                    .map(|k| format!("\"{k}\""))
                    .collect();
                assert_eq!(
                    ordered,
                    codes(&scan(data, "BusinessPartners", &options)),
                    "{since:?}"
                );
            }
        };
        check(&mut data);
        assert_eq!(
            data.keys_since("BusinessPartners", Some("2026-11-21"))
                .len(),
            8
        );
        // An update moves a partner to the end; a new one joins.
        data.update("BusinessPartners", "C11", Entity::new(), day(22, 5));
        data.put("BusinessPartners", partner("C99"), day(21, 0));
        check(&mut data);
        let all = data.keys_since("BusinessPartners", None);
        assert_eq!(all.last().map(String::as_str), Some("C11"));
        assert_eq!(
            data.keys_since("BusinessPartners", Some("2026-11-21"))
                .len(),
            10
        );
    }
}

//! A HubSpot CRM v3 server in memory: objects, list and search paging, batch upsert with 207
//! partial failures, HubSpot's error body, bearer-token auth.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::Faults;
use crate::clock::Clock;
use crate::domain::Timestamp;

pub const LAST_MODIFIED: &str = "hs_lastmodifieddate";
/// Contacts' own name for the last-modified time.
pub const CONTACT_LAST_MODIFIED: &str = "lastmodifieddate";

fn is_last_modified(property: &str) -> bool {
    property == LAST_MODIFIED || property == CONTACT_LAST_MODIFIED
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsObject {
    pub id: u64,
    pub properties: BTreeMap<String, String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Default)]
pub struct HsData {
    objects: HashMap<String, BTreeMap<u64, HsObject>>,
    next_id: u64,
    /// (object type, id) -> the (object type, id) pairs it is associated with, both ways.
    associations: HashMap<(String, u64), BTreeSet<(String, u64)>>,
    /// (object type, property, value) -> id for the unique properties upserts look up, so a
    /// large sandbox answers them without a scan.
    unique: HashMap<(String, String, String), u64>,
    /// Per object type, the (last-modified ms, id) of its objects in that order: built by the
    /// first search that needs it and dropped when an object of the type changes. A read pages
    /// through one unchanged order many times, so a page costs a binary search, not a scan and
    /// a sort of the whole type.
    by_modified: HashMap<String, Vec<(i64, i64)>>,
}

/// An object's place in the modified order: its last-modified time in milliseconds (HubSpot's
/// resolution) and its id, both as searches compare them.
fn modified_key(object: &HsObject) -> (i64, i64) {
    (
        object.updated_at.as_micros().div_euclid(1000),
        i64::try_from(object.id).unwrap_or(i64::MAX),
    )
}

/// The properties HubSpot portals declare unique here (upserts use them as `idProperty`).
const UNIQUE_PROPERTIES: [&str; 3] = [
    "erp_number",
    "erp_line_key",
    crate::sync::connectors::hubspot::RESTORE_PROPERTY,
];

impl HsData {
    /// Creates an object as the sandbox's seed or a test would, stamped `at`.
    pub fn insert(
        &mut self,
        object_type: &str,
        properties: BTreeMap<String, String>,
        at: Timestamp,
    ) -> u64 {
        self.next_id += 1;
        let id = 10_000_000 + self.next_id;
        self.index(object_type, id, &properties);
        self.by_modified.remove(object_type);
        let object = HsObject {
            id,
            properties,
            created_at: at,
            updated_at: at,
        };
        self.objects
            .entry(object_type.to_string())
            .or_default()
            .insert(id, object);
        id
    }

    pub fn get(&self, object_type: &str, id: u64) -> Option<&HsObject> {
        self.objects.get(object_type)?.get(&id)
    }

    pub fn all(&self, object_type: &str) -> Vec<&HsObject> {
        self.objects
            .get(object_type)
            .map(|m| m.values().collect())
            .unwrap_or_default()
    }

    /// Changes properties as a CRM user would, moving the last-modified time.
    pub fn update(
        &mut self,
        object_type: &str,
        id: u64,
        properties: BTreeMap<String, String>,
        at: Timestamp,
    ) -> bool {
        if !self
            .objects
            .get(object_type)
            .is_some_and(|m| m.contains_key(&id))
        {
            return false;
        }
        self.index(object_type, id, &properties);
        self.by_modified.remove(object_type);
        match self
            .objects
            .get_mut(object_type)
            .and_then(|m| m.get_mut(&id))
        {
            Some(object) => {
                object.properties.extend(properties);
                object.updated_at = at;
                true
            }
            None => false,
        }
    }

    /// Associates two objects (both directions), as the v4 associations API does.
    pub fn associate(&mut self, from: (&str, u64), to: (&str, u64)) {
        for (a, b) in [(from, to), (to, from)] {
            self.associations
                .entry((a.0.to_string(), a.1))
                .or_default()
                .insert((b.0.to_string(), b.1));
        }
    }

    /// The ids of the `to_type` objects associated with one object.
    pub fn associated(&self, from_type: &str, id: u64, to_type: &str) -> Vec<u64> {
        self.associations
            .get(&(from_type.to_string(), id))
            .into_iter()
            .flatten()
            .filter(|(t, _)| t == to_type)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Archives (removes) an object and its associations.
    pub fn archive(&mut self, object_type: &str, id: u64) -> bool {
        self.by_modified.remove(object_type);
        let removed = self
            .objects
            .get_mut(object_type)
            .and_then(|m| m.remove(&id))
            .is_some();
        if let Some(links) = self.associations.remove(&(object_type.to_string(), id)) {
            for link in links {
                if let Some(back) = self.associations.get_mut(&link) {
                    back.remove(&(object_type.to_string(), id));
                }
            }
        }
        removed
    }

    /// Merges `loser` into `primary` as HubSpot does: the primary keeps its id and its values,
    /// takes over the loser's associations, and the loser is gone.
    pub fn merge(
        &mut self,
        object_type: &str,
        primary: u64,
        loser: u64,
        at: Timestamp,
    ) -> Result<(), String> {
        if primary == loser {
            return Err("an object cannot be merged into itself".into());
        }
        for id in [primary, loser] {
            if self.get(object_type, id).is_none() {
                return Err(format!("Object not found: {id}"));
            }
        }
        let moved = self
            .associations
            .get(&(object_type.to_string(), loser))
            .cloned();
        self.archive(object_type, loser);
        for (other_type, other) in moved.into_iter().flatten() {
            self.associate((object_type, primary), (&other_type, other));
        }
        self.update(object_type, primary, BTreeMap::new(), at);
        Ok(())
    }

    /// Builds the (last-modified, id) order of a type's objects unless it is already there.
    fn order_by_modified(&mut self, object_type: &str) {
        if !self.by_modified.contains_key(object_type) {
            let mut order: Vec<(i64, i64)> = self
                .objects
                .get(object_type)
                .map(|m| m.values().map(modified_key).collect())
                .unwrap_or_default();
            order.sort_unstable();
            self.by_modified.insert(object_type.to_string(), order);
        }
    }

    /// The [`modified_key`]s of a type's objects from `range.0` to `range.1` (both included),
    /// in order, once `order_by_modified` has built the order.
    fn modified_between(
        &self,
        object_type: &str,
        range: ((i64, i64), (i64, i64)),
    ) -> &[(i64, i64)] {
        let order = self
            .by_modified
            .get(object_type)
            .map_or(&[][..], Vec::as_slice);
        let start = order.partition_point(|k| *k < range.0);
        let end = order.partition_point(|k| *k <= range.1).max(start);
        &order[start..end]
    }

    fn index(&mut self, object_type: &str, id: u64, properties: &BTreeMap<String, String>) {
        for property in UNIQUE_PROPERTIES {
            if let Some(value) = properties.get(property) {
                let key = (object_type.to_string(), property.to_string(), value.clone());
                self.unique.insert(key, id);
            }
        }
    }

    fn find_by(&self, object_type: &str, property: &str, value: &str) -> Option<u64> {
        if UNIQUE_PROPERTIES.contains(&property) {
            let key = (
                object_type.to_string(),
                property.to_string(),
                value.to_string(),
            );
            return self.unique.get(&key).copied().filter(|id| {
                self.get(object_type, *id)
                    .is_some_and(|o| o.properties.get(property).map(String::as_str) == Some(value))
            });
        }
        self.objects
            .get(object_type)?
            .values()
            .find(|o| o.properties.get(property).map(String::as_str) == Some(value))
            .map(|o| o.id)
    }
}

/// The OAuth app the sandbox knows, and the access tokens it has issued.
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    /// Lifetime of an issued access token.
    pub token_lifetime: std::time::Duration,
    /// Access token -> when it expires.
    pub issued: HashMap<String, Timestamp>,
    /// How many access tokens were issued (tests check refreshes with it).
    pub refreshes: usize,
}

#[derive(Clone)]
pub struct HubSpotSandbox {
    pub data: Arc<Mutex<HsData>>,
    pub oauth: Arc<Mutex<OAuthApp>>,
    pub token: String,
    pub clock: Clock,
    pub faults: Arc<Faults>,
}

pub fn error_body(status: StatusCode, message: &str) -> Response {
    let category = match status {
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITS",
        StatusCode::UNAUTHORIZED => "INVALID_AUTHENTICATION",
        StatusCode::NOT_FOUND => "OBJECT_NOT_FOUND",
        s if s.is_client_error() => "VALIDATION_ERROR",
        _ => "INTERNAL_ERROR",
    };
    error_with(status, category, message)
}

/// HubSpot's error body with an explicit category.
fn error_with(status: StatusCode, category: &str, message: &str) -> Response {
    let body = json!({
        "status": "error",
        "message": message,
        "correlationId": uuid::Uuid::new_v4().to_string(),
        "category": category,
        "errors": [],
    });
    (status, Json(body)).into_response()
}

fn render_plain(object: &HsObject, wanted: Option<&[String]>) -> Value {
    let mut properties: serde_json::Map<String, Value> = object
        .properties
        .iter()
        .filter(|(k, _)| wanted.is_none_or(|w| w.iter().any(|p| p == *k)))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    properties.insert(
        LAST_MODIFIED.into(),
        Value::String(object.updated_at.to_string()),
    );
    properties.insert("hs_object_id".into(), Value::String(object.id.to_string()));
    json!({
        "id": object.id.to_string(),
        "properties": properties,
        "createdAt": object.created_at.to_string(),
        "updatedAt": object.updated_at.to_string(),
        "archived": false,
    })
}

impl HubSpotSandbox {
    /// The answer to a batch call that cannot be taken (no auth, too many inputs), if any.
    fn refuse_batch(&self, headers: &HeaderMap, batch: &Batch) -> Option<Response> {
        self.deny(headers).or_else(|| {
            (batch.inputs.len() > 100)
                .then(|| error_body(StatusCode::BAD_REQUEST, "a batch takes at most 100 inputs"))
        })
    }

    /// An object as the API shows it, with any injected price skew applied.
    fn view(&self, object: &HsObject, wanted: Option<&[String]>) -> Value {
        let mut value = render_plain(object, wanted);
        let skew = object
            .properties
            .get("erp_number")
            .and_then(|key| self.faults.price_skew(key));
        let price = value["properties"]["price"]
            .as_str()
            .and_then(|p| p.parse::<f64>().ok());
        if let (Some(percent), Some(price)) = (skew, price) {
            value["properties"]["price"] =
                Value::String(format!("{:.2}", price * f64::from(percent) / 100.0));
        }
        value
    }

    /// The 401 answer for a request without the right bearer token, or none when it has it.
    fn deny(&self, headers: &HeaderMap) -> Option<Response> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))?;
        if bearer == self.token {
            return None;
        }
        let oauth = self.oauth.lock().unwrap_or_else(|e| e.into_inner());
        match oauth.issued.get(bearer) {
            Some(expires) if *expires > self.clock.now() => None,
            Some(_) => Some(error_with(
                StatusCode::UNAUTHORIZED,
                "EXPIRED_AUTHENTICATION",
                "The OAuth token used to make this call expired.",
            )),
            None => Some(error_body(
                StatusCode::UNAUTHORIZED,
                "Authentication credentials not found.",
            )),
        }
    }

    fn data(&self) -> std::sync::MutexGuard<'_, HsData> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A page of the `total` matches from `offset`, skipping a page when the drop fault says
    /// so. `select(offset, limit)` gives the objects of the page; only those are rendered.
    fn page<'a>(
        &self,
        total: usize,
        select: impl FnOnce(usize, usize) -> Vec<&'a HsObject>,
        wanted: Option<&[String]>,
        offset: usize,
        limit: usize,
    ) -> Response {
        let mut offset = offset;
        if self
            .faults
            .dropped_page()
            .is_some_and(|page| offset / limit.max(1) + 1 == page as usize)
        {
            offset += limit;
        }
        let results: Vec<Value> = select(offset, limit)
            .into_iter()
            .map(|o| self.view(o, wanted))
            .collect();
        let next = offset + results.len();
        let mut body = json!({"total": total, "results": results});
        if next < total {
            body["paging"] = json!({"next": {"after": next.to_string()}});
        }
        self.answer(body)
    }

    fn answer(&self, body: Value) -> Response {
        super::faults::answer(&self.faults, &body)
    }
}

pub fn router(sandbox: HubSpotSandbox) -> Router {
    Router::new()
        .route("/crm/v3/objects/{object_type}", get(list))
        .route("/crm/v3/objects/{object_type}/search", post(search))
        .route(
            "/crm/v3/objects/{object_type}/batch/upsert",
            post(batch_upsert),
        )
        .route(
            "/crm/v3/objects/{object_type}/batch/update",
            post(batch_update),
        )
        .route("/crm/v3/objects/{object_type}/batch/read", post(batch_read))
        .route("/crm/v3/objects/{object_type}/merge", post(merge))
        .route(
            "/crm/v3/objects/{object_type}/batch/archive",
            post(batch_archive),
        )
        .route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/read",
            post(associations_read),
        )
        .route(
            "/crm/v4/associations/{from_type}/{to_type}/batch/associate/default",
            post(associate_default),
        )
        .route("/oauth/v1/token", post(oauth_token))
        .route(
            "/crm/v3/objects/{object_type}/{id}",
            get(read_one).patch(patch_one),
        )
        .with_state(sandbox)
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    client_id: String,
    client_secret: String,
    refresh_token: String,
}

/// HubSpot's OAuth token endpoint, refresh-token grant.
async fn oauth_token(
    State(sb): State<HubSpotSandbox>,
    axum::Form(req): axum::Form<TokenRequest>,
) -> Response {
    let now = sb.clock.now();
    let mut app = sb.oauth.lock().unwrap_or_else(|e| e.into_inner());
    let valid = req.grant_type == "refresh_token"
        && req.client_id == app.client_id
        && req.client_secret == app.client_secret
        && req.refresh_token == app.refresh_token;
    if !valid {
        return (StatusCode::BAD_REQUEST, Json(json!({"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}))).into_response();
    }
    let token = format!("oauth-{}", uuid::Uuid::new_v4().simple());
    let lifetime = app.token_lifetime;
    app.issued.insert(token.clone(), now + lifetime);
    app.refreshes += 1;
    Json(json!({"access_token": token, "refresh_token": app.refresh_token, "expires_in": lifetime.as_secs(), "token_type": "bearer"})).into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
    properties: Option<String>,
}

async fn list(
    State(sb): State<HubSpotSandbox>,
    Path(object_type): Path<String>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Some(denied) = sb.deny(&headers) {
        return denied;
    }
    let wanted: Option<Vec<String>> = q
        .properties
        .map(|p| p.split(',').map(str::to_string).collect());
    let after: usize = q.after.and_then(|a| a.parse().ok()).unwrap_or(0);
    let data = sb.data();
    let objects = data.objects.get(&object_type);
    sb.page(
        objects.map_or(0, BTreeMap::len),
        |offset, limit| {
            objects
                .into_iter()
                .flat_map(BTreeMap::values)
                .skip(offset)
                .take(limit)
                .collect()
        },
        wanted.as_deref(),
        after,
        q.limit.unwrap_or(10).clamp(1, 100),
    )
}

#[derive(Deserialize)]
struct SearchRequest {
    #[serde(default, rename = "filterGroups")]
    filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    sorts: Vec<Sort>,
    #[serde(default)]
    properties: Option<Vec<String>>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    after: Option<String>,
}

#[derive(Deserialize)]
struct FilterGroup {
    filters: Vec<Filter>,
}

#[derive(Deserialize)]
struct Filter {
    #[serde(rename = "propertyName")]
    property: String,
    operator: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct Sort {
    #[serde(rename = "propertyName")]
    property: String,
    #[serde(default)]
    direction: Option<String>,
}

/// A property value as searches compare it: dates as instants in milliseconds (HubSpot's
/// resolution), object ids as numbers, else text. Built without formatting or allocating: a
/// search compares every object of its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Comparable<'a> {
    Number(i64),
    Text(&'a str),
}

fn comparable<'a>(object: &'a HsObject, property: &str) -> Option<Comparable<'a>> {
    if is_last_modified(property) {
        return Some(Comparable::Number(
            object.updated_at.as_micros().div_euclid(1000),
        ));
    }
    if property == "hs_object_id" {
        return Some(Comparable::Number(
            i64::try_from(object.id).unwrap_or(i64::MAX),
        ));
    }
    object
        .properties
        .get(property)
        .map(|v| Comparable::Text(v.as_str()))
}

/// A filter's value, read once per search rather than once per object.
fn filter_value<'a>(property: &str, value: &'a str) -> Comparable<'a> {
    if is_last_modified(property) {
        let ms = value
            .parse::<i64>()
            .or_else(|_| Timestamp::parse_rfc3339(value).map(|t| t.as_micros().div_euclid(1000)))
            .unwrap_or(0);
        return Comparable::Number(ms);
    }
    if property == "hs_object_id" {
        let id = value.parse::<u64>().unwrap_or(0);
        return Comparable::Number(i64::try_from(id).unwrap_or(i64::MAX));
    }
    Comparable::Text(value)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    HasProperty,
    NotHasProperty,
    Eq,
    Neq,
    Gte,
    Gt,
    Lte,
    Lt,
}

/// A search filter ready to be applied: operator and value read once.
struct Compiled<'a> {
    property: &'a str,
    operator: Operator,
    wanted: Option<Comparable<'a>>,
}

impl<'a> Compiled<'a> {
    fn new(filter: &'a Filter) -> Result<Self, String> {
        let operator = match filter.operator.as_str() {
            "HAS_PROPERTY" => Operator::HasProperty,
            "NOT_HAS_PROPERTY" => Operator::NotHasProperty,
            "EQ" => Operator::Eq,
            "NEQ" => Operator::Neq,
            "GTE" => Operator::Gte,
            "GT" => Operator::Gt,
            "LTE" => Operator::Lte,
            "LT" => Operator::Lt,
            op => return Err(format!("unsupported operator {op}")),
        };
        Ok(Self {
            property: &filter.property,
            operator,
            wanted: filter
                .value
                .as_deref()
                .map(|v| filter_value(&filter.property, v)),
        })
    }

    fn matches(&self, object: &HsObject) -> bool {
        let actual = comparable(object, self.property);
        match (self.operator, actual, self.wanted) {
            (Operator::HasProperty, a, _) => a.is_some(),
            (Operator::NotHasProperty, a, _) => a.is_none(),
            (Operator::Eq, Some(a), Some(w)) => a == w,
            (Operator::Neq, a, Some(w)) => a != Some(w),
            (Operator::Gte, Some(a), Some(w)) => a >= w,
            (Operator::Gt, Some(a), Some(w)) => a > w,
            (Operator::Lte, Some(a), Some(w)) => a <= w,
            (Operator::Lt, Some(a), Some(w)) => a < w,
            _ => false,
        }
    }
}

async fn search(
    State(sb): State<HubSpotSandbox>,
    Path(object_type): Path<String>,
    headers: HeaderMap,
    Json(request): Json<SearchRequest>,
) -> Response {
    if let Some(denied) = sb.deny(&headers) {
        return denied;
    }
    let groups: Result<Vec<Vec<Compiled<'_>>>, String> = request
        .filter_groups
        .iter()
        .map(|group| group.filters.iter().map(Compiled::new).collect())
        .collect();
    let groups = match groups {
        Ok(groups) => groups,
        Err(message) => return error_body(StatusCode::BAD_REQUEST, &message),
    };
    let offset: usize = request.after.and_then(|a| a.parse().ok()).unwrap_or(0);
    let limit = request.limit.unwrap_or(10).clamp(1, 200);
    // As HubSpot: one search query never pages past its first 10,000 results.
    if offset + limit > 10_000 {
        return error_body(
            StatusCode::BAD_REQUEST,
            "The search endpoint returns at most 10,000 results per query",
        );
    }
    let wanted = request.properties.as_deref();
    let mut data = sb.data();
    if let Some(range) = ordered_range(&groups, &request.sorts) {
        data.order_by_modified(&object_type);
        let data = &*data;
        let found = data.modified_between(&object_type, range);
        let select = |offset: usize, limit: usize| {
            found
                .iter()
                .skip(offset)
                .take(limit)
                .filter_map(|(_, id)| data.get(&object_type, u64::try_from(*id).ok()?))
                .collect()
        };
        return sb.page(found.len(), select, wanted, offset, limit);
    }
    let found = scan(&data, &object_type, &groups, &request.sorts);
    let select =
        |offset: usize, limit: usize| found.iter().skip(offset).take(limit).copied().collect();
    sb.page(found.len(), select, wanted, offset, limit)
}

/// What a search selects, in its order, found by looking at every object of the type.
fn scan<'a>(
    data: &'a HsData,
    object_type: &str,
    groups: &[Vec<Compiled<'_>>],
    sorts: &[Sort],
) -> Vec<&'a HsObject> {
    let mut found: Vec<&HsObject> = data
        .all(object_type)
        .into_iter()
        .filter(|object| {
            groups.is_empty()
                || groups
                    .iter()
                    .any(|filters| filters.iter().all(|f| f.matches(object)))
        })
        .collect();
    if let Some(sort) = sorts.first() {
        found.sort_by(|a, b| {
            (comparable(a, &sort.property), a.id).cmp(&(comparable(b, &sort.property), b.id))
        });
        if sort.direction.as_deref() == Some("DESCENDING") {
            found.reverse();
        }
    }
    found
}

/// The (last-modified ms, id) bounds, both inclusive, of what a search selects, when it is
/// one the modified order answers as it is: ascending by last-modified time within a window of
/// it (the connector's incremental read), or ascending by id within one instant (its way through
/// an instant that holds more than one query's results). None for any other search, which is
/// answered by a scan and a sort as before.
fn ordered_range(groups: &[Vec<Compiled<'_>>], sorts: &[Sort]) -> Option<((i64, i64), (i64, i64))> {
    let sort = sorts.first()?;
    if sort.direction.as_deref() == Some("DESCENDING") || groups.len() > 1 {
        return None;
    }
    let (mut ms, mut ids) = ((i64::MIN, i64::MAX), (i64::MIN, i64::MAX));
    for filter in groups.iter().flatten() {
        let bounds = if is_last_modified(filter.property) {
            &mut ms
        } else if filter.property == "hs_object_id" {
            &mut ids
        } else {
            return None;
        };
        let Some(Comparable::Number(value)) = filter.wanted else {
            return None;
        };
        match filter.operator {
            Operator::Eq => *bounds = (bounds.0.max(value), bounds.1.min(value)),
            Operator::Gte => bounds.0 = bounds.0.max(value),
            Operator::Gt => bounds.0 = bounds.0.max(value.saturating_add(1)),
            Operator::Lte => bounds.1 = bounds.1.min(value),
            Operator::Lt => bounds.1 = bounds.1.min(value.saturating_sub(1)),
            _ => return None,
        }
    }
    let by_id = sort.property == "hs_object_id";
    if !by_id && !is_last_modified(&sort.property) {
        return None;
    }
    // Ids order (and bound) the modified order only within one instant.
    if (by_id || ids != (i64::MIN, i64::MAX)) && ms.0 != ms.1 {
        return None;
    }
    Some(((ms.0, ids.0), (ms.1, ids.1)))
}

fn invalid_name(properties: &BTreeMap<String, String>, id: &str) -> Option<Value> {
    properties
        .get("name")
        .is_some_and(|n| n.trim().is_empty())
        .then(|| {
            json!({
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": format!("Property values were not valid: name must not be empty ({id})"),
                "context": {"ids": [id]},
            })
        })
}

fn batch_answer(results: Vec<Value>, errors: Vec<Value>) -> Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    let body = json!({
        "status": "COMPLETE",
        "results": results,
        "errors": errors,
        "numErrors": errors.len(),
    });
    (status, Json(body)).into_response()
}

#[derive(Deserialize)]
struct BatchInput {
    id: String,
    #[serde(default, rename = "idProperty")]
    id_property: Option<String>,
    properties: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Batch {
    inputs: Vec<BatchInput>,
}

/// Runs a batch call: each valid input goes through `apply`, which gives the object's id or the
/// error for that input alone; answers 200, or 207 when some inputs failed.
fn run_batch(
    sb: &HubSpotSandbox,
    object_type: &str,
    headers: &HeaderMap,
    batch: Batch,
    mut apply: impl FnMut(&mut HsData, BatchInput, Timestamp) -> Result<u64, Value>,
) -> Response {
    if let Some(refused) = sb.refuse_batch(headers, &batch) {
        return refused;
    }
    let now = sb.faults.stamp(sb.clock.now());
    let mut data = sb.data();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for input in batch.inputs {
        if let Some(error) = invalid_name(&input.properties, &input.id) {
            errors.push(error);
            continue;
        }
        if sb.faults.refuse_input() {
            errors.push(json!({
                "status": "error",
                "category": "INTERNAL_ERROR",
                "message": format!("internal error (injected) for {}", input.id),
                "context": {"ids": [input.id]},
            }));
            continue;
        }
        match apply(&mut data, input, now) {
            Ok(id) => results.extend(data.get(object_type, id).map(|o| sb.view(o, None))),
            Err(error) => errors.push(error),
        }
    }
    batch_answer(results, errors)
}

/// Creates or updates by a unique property (`idProperty`), so a replay never creates twice.
async fn batch_upsert(
    State(sb): State<HubSpotSandbox>,
    Path(object_type): Path<String>,
    headers: HeaderMap,
    Json(batch): Json<Batch>,
) -> Response {
    if batch.inputs.iter().any(|i| i.id_property.is_none()) {
        return error_body(StatusCode::BAD_REQUEST, "idProperty is required for upsert");
    }
    run_batch(&sb, &object_type, &headers, batch, |data, input, now| {
        let id_property = input.id_property.unwrap_or_default();
        let mut properties = input.properties;
        properties.insert(id_property.clone(), input.id.clone());
        Ok(match data.find_by(&object_type, &id_property, &input.id) {
            Some(id) => {
                data.update(&object_type, id, properties, now);
                id
            }
            None => data.insert(&object_type, properties, now),
        })
    })
}

/// Updates by HubSpot id; unknown ids fail alone (207).
async fn batch_update(
    State(sb): State<HubSpotSandbox>,
    Path(object_type): Path<String>,
    headers: HeaderMap,
    Json(batch): Json<Batch>,
) -> Response {
    run_batch(&sb, &object_type, &headers, batch, |data, input, now| {
        input
            .id
            .parse()
            .ok()
            .filter(|id| data.update(&object_type, *id, input.properties.clone(), now))
            .ok_or_else(|| {
                json!({
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": format!("Object not found: {}", input.id),
                    "context": {"ids": [input.id]},
                })
            })
    })
}

async fn read_one(
    State(sb): State<HubSpotSandbox>,
    Path((object_type, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = sb.deny(&headers) {
        return denied;
    }
    let data = sb.data();
    match id.parse().ok().and_then(|id| data.get(&object_type, id)) {
        Some(object) => Json(sb.view(object, None)).into_response(),
        None => error_body(
            StatusCode::NOT_FOUND,
            &format!("Object not found. objectId are usually numeric: {id}"),
        ),
    }
}

#[derive(Deserialize)]
struct PatchBody {
    properties: BTreeMap<String, String>,
}

async fn patch_one(
    State(sb): State<HubSpotSandbox>,
    Path((object_type, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<PatchBody>,
) -> Response {
    if let Some(denied) = sb.deny(&headers) {
        return denied;
    }
    let now = sb.faults.stamp(sb.clock.now());
    let mut data = sb.data();
    let Some(id) = id
        .parse()
        .ok()
        .filter(|id| data.update(&object_type, *id, body.properties.clone(), now))
    else {
        return error_body(StatusCode::NOT_FOUND, "Object not found");
    };
    match data.get(&object_type, id) {
        Some(object) => Json(sb.view(object, None)).into_response(),
        None => error_body(StatusCode::NOT_FOUND, "Object not found"),
    }
}

#[derive(Deserialize)]
struct MergeBody {
    #[serde(rename = "primaryObjectId")]
    primary: String,
    #[serde(rename = "objectIdToMerge")]
    loser: String,
}

/// `POST /crm/v3/objects/{type}/merge`: the merged object is answered.
async fn merge(
    State(sb): State<HubSpotSandbox>,
    Path(object_type): Path<String>,
    headers: HeaderMap,
    Json(body): Json<MergeBody>,
) -> Response {
    if let Some(denied) = sb.deny(&headers) {
        return denied;
    }
    let (Ok(primary), Ok(loser)) = (body.primary.parse(), body.loser.parse()) else {
        return error_body(StatusCode::BAD_REQUEST, "object ids must be numeric");
    };
    let now = sb.faults.stamp(sb.clock.now());
    let mut data = sb.data();
    if let Err(message) = data.merge(&object_type, primary, loser, now) {
        return error_body(StatusCode::BAD_REQUEST, &message);
    }
    match data.get(&object_type, primary) {
        Some(object) => Json(sb.view(object, None)).into_response(),
        None => error_body(StatusCode::NOT_FOUND, "Object not found"),
    }
}

#[derive(Deserialize)]
struct IdInput {
    id: String,
}

#[derive(Deserialize)]
struct ReadBatch {
    #[serde(default)]
    properties: Option<Vec<String>>,
    #[serde(default, rename = "idProperty")]
    id_property: Option<String>,
    inputs: Vec<IdInput>,
}

/// Reads objects by id (or by a unique property); unknown ones are reported in `errors` (207).
async fn batch_read(
    State(sb): State<HubSpotSandbox>,
    Path(object_type): Path<String>,
    headers: HeaderMap,
    Json(batch): Json<ReadBatch>,
) -> Response {
    if let Some(denied) = sb.deny(&headers) {
        return denied;
    }
    let data = sb.data();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for input in &batch.inputs {
        let id = match &batch.id_property {
            Some(property) => data.find_by(&object_type, property, &input.id),
            None => input.id.parse().ok(),
        };
        match id.and_then(|id| data.get(&object_type, id)) {
            Some(object) => results.push(sb.view(object, batch.properties.as_deref())),
            None => errors.push(json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": format!("Could not get some {object_type} objects, they may be deleted or not exist."),
                "context": {"ids": [input.id]},
            })),
        }
    }
    drop(data);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    let body = json!({"status": "COMPLETE", "results": results, "errors": errors});
    let mut response = sb.answer(body);
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

#[derive(Deserialize)]
struct IdBatch {
    inputs: Vec<IdInput>,
}

/// Archives objects by id; HubSpot answers 204 whether or not they existed.
async fn batch_archive(
    State(sb): State<HubSpotSandbox>,
    Path(object_type): Path<String>,
    headers: HeaderMap,
    Json(batch): Json<IdBatch>,
) -> Response {
    if let Some(denied) = sb.deny(&headers) {
        return denied;
    }
    let mut data = sb.data();
    for input in batch.inputs {
        if let Ok(id) = input.id.parse() {
            data.archive(&object_type, id);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// v4: the associations of each input object with objects of `to_type`.
async fn associations_read(
    State(sb): State<HubSpotSandbox>,
    Path((from_type, to_type)): Path<(String, String)>,
    headers: HeaderMap,
    Json(batch): Json<IdBatch>,
) -> Response {
    if let Some(denied) = sb.deny(&headers) {
        return denied;
    }
    let data = sb.data();
    let results: Vec<Value> = batch
        .inputs
        .iter()
        .filter_map(|input| {
            let id: u64 = input.id.parse().ok()?;
            let to: Vec<Value> = data
                .associated(&from_type, id, &to_type)
                .into_iter()
                .map(|to| json!({"toObjectId": to, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 1, "label": null}]}))
                .collect();
            (!to.is_empty()).then(|| json!({"from": {"id": input.id}, "to": to}))
        })
        .collect();
    drop(data);
    sb.answer(json!({"status": "COMPLETE", "results": results, "errors": []}))
}

#[derive(Deserialize)]
struct AssociationInput {
    from: IdInput,
    to: IdInput,
}

#[derive(Deserialize)]
struct AssociationBatch {
    inputs: Vec<AssociationInput>,
}

/// v4: associates pairs with the default association type; associating twice is harmless.
async fn associate_default(
    State(sb): State<HubSpotSandbox>,
    Path((from_type, to_type)): Path<(String, String)>,
    headers: HeaderMap,
    Json(batch): Json<AssociationBatch>,
) -> Response {
    if let Some(denied) = sb.deny(&headers) {
        return denied;
    }
    let mut data = sb.data();
    let mut results = Vec::new();
    for input in batch.inputs {
        let (Ok(from), Ok(to)) = (input.from.id.parse(), input.to.id.parse()) else {
            return error_body(StatusCode::BAD_REQUEST, "association ids must be numeric");
        };
        if data.get(&from_type, from).is_none() || data.get(&to_type, to).is_none() {
            return error_body(
                StatusCode::BAD_REQUEST,
                &format!("cannot associate {from_type} {from} with {to_type} {to}: not found"),
            );
        }
        data.associate((&from_type, from), (&to_type, to));
        results.push(json!({"fromObjectTypeId": from_type, "fromObjectId": from, "toObjectTypeId": to_type, "toObjectId": to}));
    }
    (
        StatusCode::OK,
        Json(json!({"status": "COMPLETE", "results": results})),
    )
        .into_response()
}

#[cfg(test)]
mod search_tests {
    use std::time::Duration;

    use super::*;

    fn compiled(request: &SearchRequest) -> Vec<Vec<Compiled<'_>>> {
        request
            .filter_groups
            .iter()
            .map(|g| {
                g.filters
                    .iter()
                    .map(|f| Compiled::new(f).unwrap())
                    .collect()
            })
            .collect()
    }

    /// The ids a search selects through the modified order; none when the order cannot answer it.
    fn ordered(data: &mut HsData, body: &Value) -> Option<Vec<u64>> {
        let request: SearchRequest = serde_json::from_value(body.clone()).unwrap();
        let range = ordered_range(&compiled(&request), &request.sorts)?;
        data.order_by_modified("companies");
        let found = data.modified_between("companies", range);
        Some(found.iter().map(|(_, id)| *id as u64).collect())
    }

    fn scanned(data: &HsData, body: &Value) -> Vec<u64> {
        let request: SearchRequest = serde_json::from_value(body.clone()).unwrap();
        scan(data, "companies", &compiled(&request), &request.sorts)
            .iter()
            .map(|o| o.id)
            .collect()
    }

    fn filter(property: &str, operator: &str, value: impl ToString) -> Value {
        json!({"propertyName": property, "operator": operator, "value": value.to_string()})
    }

    fn by(property: &str, direction: &str) -> Value {
        json!([{"propertyName": property, "direction": direction}])
    }

    #[test]
    fn the_modified_order_selects_what_a_scan_selects_also_after_changes() {
        let t0 = Timestamp::parse_rfc3339("2026-11-23T08:00:00Z").unwrap();
        let second = |s: u64| t0 + Duration::from_secs(s);
        let ms = |s: u64| second(s).as_micros() / 1000;
        let mut data = HsData::default();
        // Four objects share each instant, so windows and instants hold several.
        let ids: Vec<u64> = (0..24)
            .map(|i| data.insert("companies", BTreeMap::new(), second(i / 4)))
            .collect();
        data.insert("contacts", BTreeMap::new(), second(9));
        let asc = by(LAST_MODIFIED, "ASCENDING");
        let answered = [
            json!({"filterGroups": [{"filters": [filter(LAST_MODIFIED, "GTE", ms(2))]}], "sorts": asc}),
            json!({"filterGroups": [{"filters": [filter(CONTACT_LAST_MODIFIED, "GT", ms(2))]}], "sorts": asc}),
            json!({"filterGroups": [{"filters": [filter(LAST_MODIFIED, "GTE", ms(1)), filter(LAST_MODIFIED, "LT", ms(4))]}], "sorts": asc}),
            json!({"filterGroups": [{"filters": [filter(LAST_MODIFIED, "LTE", ms(3))]}], "sorts": asc}),
            json!({"filterGroups": [], "sorts": asc}),
            json!({"filterGroups": [{"filters": [
                filter(LAST_MODIFIED, "EQ", ms(3)),
                filter("hs_object_id", "GT", ids[12]),
            ]}], "sorts": by("hs_object_id", "ASCENDING")}),
            json!({"filterGroups": [{"filters": [filter(LAST_MODIFIED, "EQ", ms(5))]}], "sorts": by("hs_object_id", "ASCENDING")}),
            json!({"filterGroups": [{"filters": [filter(LAST_MODIFIED, "GTE", ms(60))]}], "sorts": asc}),
        ];
        let scanned_only = [
            json!({"filterGroups": [{"filters": [filter(LAST_MODIFIED, "GTE", ms(2))]}], "sorts": by(LAST_MODIFIED, "DESCENDING")}),
            json!({"filterGroups": [{"filters": [filter(LAST_MODIFIED, "GTE", ms(2))]}], "sorts": by("name", "ASCENDING")}),
            json!({"filterGroups": [{"filters": [filter(LAST_MODIFIED, "GTE", ms(2)), filter("hs_object_id", "GT", ids[3])]}], "sorts": asc}),
            json!({"filterGroups": [{"filters": [filter(LAST_MODIFIED, "NEQ", ms(2))]}], "sorts": asc}),
            json!({"filterGroups": [{"filters": [filter("name", "EQ", "x")]}], "sorts": asc}),
            json!({"filterGroups": [{"filters": []}, {"filters": []}], "sorts": asc}),
            json!({"filterGroups": [], "sorts": []}),
        ];
        let check = |data: &mut HsData| {
            for body in &answered {
                let ordered = ordered(data, body).expect("answered by the order");
                assert_eq!(ordered, scanned(data, body), "{body}");
            }
            for body in &scanned_only {
                assert_eq!(ordered(data, body), None, "{body}");
            }
        };
        check(&mut data);
        assert_eq!(ordered(&mut data, &answered[1]).unwrap().len(), 12);
        // Changes move objects in the order: a search after them must see them moved.
        data.update("companies", ids[0], BTreeMap::new(), second(3));
        data.update("companies", ids[1], BTreeMap::new(), second(30));
        data.archive("companies", ids[13]);
        data.insert("companies", BTreeMap::new(), second(3));
        check(&mut data);
        let instant = ordered(&mut data, &answered[5]).unwrap();
        assert_eq!(instant, vec![ids[14], ids[15], ids[23] + 2]);
        assert_eq!(
            ordered(&mut data, &answered[4]).unwrap().last(),
            Some(&ids[1])
        );
    }
}

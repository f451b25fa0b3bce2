//! Line items of quotes, orders and invoices: read through the v4 associations API; written by
//! upsert on a unique line key, then associated with their document.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::{Value, json};

use super::search::Cursor;
use super::{
    BATCH_LIMIT, HsBatchResult, HsObject, HubSpotConnector, LAST_MODIFIED, Mapping, next_cursor,
    read_json,
};
use crate::domain::{System, Timestamp};
use crate::sync::connectors::{ConnectorError, WriteResult};
use crate::sync::documents;
use crate::sync::record::{Page, Record, Rejected, Write};

/// Canonical line field <-> line item property.
pub const LINE_PROPERTIES: [(&str, &str); 5] = [
    ("item", "hs_sku"),
    ("quantity", "quantity"),
    ("unit_price", "price"),
    ("subtotal", "amount"),
    ("remarks", "description"),
];
/// Page tokens of the second phase of an incremental pull: changed line items.
pub const LINE_PHASE: &str = "lines|";
const POSITION: &str = "hs_position_on_quote";
/// A unique line item property holding "<document key>/<line number>", so an upsert never
/// creates a line twice.
const LINE_KEY: &str = "erp_line_key";
const LINE_ITEMS: &str = "line_items";

#[derive(Deserialize)]
struct Associations {
    results: Vec<AssociationResult>,
}

#[derive(Deserialize)]
struct AssociationResult {
    from: ObjectId,
    #[serde(default)]
    to: Vec<AssociatedObject>,
}

#[derive(Deserialize)]
struct ObjectId {
    id: String,
}

#[derive(Deserialize)]
struct AssociatedObject {
    #[serde(rename = "toObjectId")]
    to_object_id: Value,
}

fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn inputs(ids: &[String]) -> Vec<Value> {
    ids.iter().map(|id| json!({ "id": id })).collect()
}

/// A line item's place in its document: its position, then its id.
fn position(item: &HsObject) -> (i64, u64) {
    let pos = item
        .properties
        .get(POSITION)
        .cloned()
        .flatten()
        .and_then(|p| p.parse().ok())
        .unwrap_or(i64::MAX);
    (pos, item.id.parse().unwrap_or(u64::MAX))
}

impl HubSpotConnector {
    fn v4_url(&self, path: &str) -> String {
        format!(
            "{}/crm/v4/associations/{path}",
            self.settings.base_url.trim_end_matches('/')
        )
    }

    /// For each object id, the ids of the `to` objects associated with it.
    async fn associations(
        &self,
        from: &str,
        to: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<String>>, ConnectorError> {
        let url = self.v4_url(&format!("{from}/{to}/batch/read"));
        let mut found: HashMap<String, Vec<String>> = HashMap::new();
        for chunk in ids.chunks(BATCH_LIMIT) {
            let body = json!({ "inputs": inputs(chunk) });
            let response = self
                .call(|| self.http.client.post(&url).json(&body))
                .await?;
            let page: Associations = read_json(response).await?;
            for result in page.results {
                found
                    .entry(result.from.id)
                    .or_default()
                    .extend(result.to.iter().map(|t| id_text(&t.to_object_id)));
            }
        }
        Ok(found)
    }

    /// The objects that still exist among `ids` (a 207 answer lists the missing ones).
    async fn read_objects(
        &self,
        object: &str,
        ids: &[String],
        properties: &[String],
    ) -> Result<Vec<HsObject>, ConnectorError> {
        let url = self.url(&format!("{object}/batch/read"));
        let mut objects = Vec::new();
        for chunk in ids.chunks(BATCH_LIMIT) {
            let body = json!({ "properties": properties, "inputs": inputs(chunk) });
            let response = self
                .call(|| self.http.client.post(&url).json(&body))
                .await?;
            let batch: HsBatchResult = read_json(response).await?;
            objects.extend(batch.results);
        }
        Ok(objects)
    }

    /// Adds each document's line items as `line.<n>.*` fields (n by position) and puts amounts,
    /// quantities and dates into their canonical spelling; a document that cannot be read is
    /// rejected naming the field.
    pub(super) async fn attach_lines(
        &self,
        mapping: &Mapping,
        records: Vec<Record>,
    ) -> Result<(Vec<Record>, Vec<Rejected>), ConnectorError> {
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let links = self.associations(mapping.object, LINE_ITEMS, &ids).await?;
        let line_ids: Vec<String> = links
            .values()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut properties: Vec<String> = mapping.lines.iter().map(|(_, p)| p.clone()).collect();
        properties.push(POSITION.into());
        let items: HashMap<String, HsObject> = self
            .read_objects(LINE_ITEMS, &line_ids, &properties)
            .await?
            .into_iter()
            .map(|o| (o.id.clone(), o))
            .collect();
        let (mut complete, mut rejected) = (Vec::with_capacity(records.len()), Vec::new());
        for mut record in records {
            let mut members: Vec<&HsObject> = links
                .get(&record.id)
                .into_iter()
                .flatten()
                .filter_map(|id| items.get(id))
                .collect();
            members.sort_by_key(|item| position(item));
            for (i, item) in members.iter().enumerate() {
                if let Ok(t) = Timestamp::parse_rfc3339(&item.updated_at) {
                    record.modified_at = record.modified_at.max(t);
                }
                for (canonical, property) in &mapping.lines {
                    let value = item.properties.get(property).cloned().flatten();
                    if let Some(v) = value.filter(|v| !v.is_empty()) {
                        record
                            .fields
                            .insert(documents::line_field(i + 1, canonical), v);
                    }
                }
            }
            match documents::normalize(&mut record.fields, self.default_currency) {
                Ok(()) => complete.push(record),
                Err(e) => rejected.push(Rejected {
                    id: record.id,
                    error: e.to_string(),
                }),
            }
        }
        Ok((complete, rejected))
    }

    /// One page of line items changed since `since`, as the documents they belong to.
    pub(super) async fn pull_changed_lines(
        &self,
        mapping: &Mapping,
        since: Timestamp,
        token: &str,
    ) -> Result<Page, ConnectorError> {
        let cursor = Cursor::parse(Some(token), since);
        let page = self
            .search(LINE_ITEMS, LAST_MODIFIED, &[POSITION.to_string()], &cursor)
            .await?;
        let next = next_cursor(&cursor, &page, self.search_page_size())
            .map(|next| format!("{LINE_PHASE}{}", next.token()));
        let line_ids: Vec<String> = page.results.iter().map(|o| o.id.clone()).collect();
        let parents = self
            .associations(LINE_ITEMS, mapping.object, &line_ids)
            .await?;
        let doc_ids: Vec<String> = parents
            .values()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let objects = self
            .read_objects(mapping.object, &doc_ids, &self.properties(mapping))
            .await?;
        let (mut records, mut rejected) = (Vec::new(), Vec::new());
        for object in objects {
            let id = object.id.clone();
            match self.to_record(object, mapping) {
                Ok(record) => records.push(record),
                Err(e) => rejected.push(Rejected {
                    id,
                    error: e.to_string(),
                }),
            }
        }
        let (records, bad) = self.attach_lines(mapping, records).await?;
        rejected.extend(bad);
        Ok(Page {
            records,
            rejected,
            next,
        })
    }

    /// Writes documents: the header fields as records, then the lines of those that succeeded.
    pub(super) async fn write_documents(
        &self,
        mapping: &Mapping,
        writes: &[Write],
    ) -> Result<Vec<WriteResult>, ConnectorError> {
        let is_line = |f: &String| documents::parse_line_field(f).is_some();
        let headers: Vec<Write> = writes
            .iter()
            .map(|w| Write {
                id: w.id.clone(),
                key: w.key.clone(),
                fields: w
                    .fields
                    .iter()
                    .filter(|(f, _)| !is_line(f))
                    .map(|(f, v)| (f.clone(), v.clone()))
                    .collect(),
            })
            .collect();
        let mut results = self.write_records(mapping, &headers).await;
        let mut with_lines = Vec::new();
        for (write, result) in writes.iter().zip(results.iter_mut()) {
            let Ok(id) = result else { continue };
            if !write.fields.keys().any(is_line) {
                continue;
            }
            if mapping.key_from_id {
                // Lines of CRM-originated documents are the CRM's: nothing writes them back.
                *result = Err(ConnectorError::Config(format!(
                    "the lines of HubSpot {} belong to the CRM; the sync does not write them",
                    mapping.object
                )));
                continue;
            }
            with_lines.push((id.clone(), write));
        }
        let failures = self.write_lines(mapping, &with_lines).await;
        for (write, result) in writes.iter().zip(results.iter_mut()) {
            if let Some(error) = failures.get(&write.key) {
                *result = Err(error.clone());
            }
        }
        Ok(results)
    }

    /// Upserts, associates and archives the line items the writes name; returns the failures
    /// by document key.
    async fn write_lines(
        &self,
        mapping: &Mapping,
        docs: &[(String, &Write)],
    ) -> HashMap<String, ConnectorError> {
        let by_canonical: HashMap<&str, &str> = mapping
            .lines
            .iter()
            .map(|(c, p)| (c.as_str(), p.as_str()))
            .collect();
        let mut failures = HashMap::new();
        // (document key, document id, line key, properties)
        let mut upserts: Vec<(String, String, String, BTreeMap<String, String>)> = Vec::new();
        let mut removals: Vec<(String, String)> = Vec::new();
        for (doc_id, write) in docs {
            for (n, fields) in documents::lines(&write.fields) {
                let line_key = format!("{}/{n}", write.key);
                if fields.get("item") == Some(&"") {
                    removals.push((write.key.clone(), line_key));
                    continue;
                }
                let mut properties = BTreeMap::new();
                for (name, value) in fields {
                    match by_canonical.get(name) {
                        Some(p) => properties.insert(p.to_string(), value.to_string()),
                        None => {
                            let field = documents::line_field(n, name);
                            failures.insert(
                                write.key.clone(),
                                ConnectorError::Config(format!(
                                    "no HubSpot line item property mapped for `{field}`"
                                )),
                            );
                            continue;
                        }
                    };
                }
                properties.insert(POSITION.into(), n.to_string());
                properties.insert(LINE_KEY.into(), line_key.clone());
                upserts.push((write.key.clone(), doc_id.clone(), line_key, properties));
            }
        }
        for chunk in upserts.chunks(BATCH_LIMIT) {
            if let Err(e) = self.upsert_lines(mapping, chunk).await {
                for (doc_key, ..) in chunk {
                    failures.insert(doc_key.clone(), e.clone());
                }
            }
        }
        for chunk in removals.chunks(BATCH_LIMIT) {
            let keys: Vec<String> = chunk.iter().map(|(_, k)| k.clone()).collect();
            if let Err(e) = self.archive_lines(&keys).await {
                for (doc_key, _) in chunk {
                    failures.insert(doc_key.clone(), e.clone());
                }
            }
        }
        failures
    }

    async fn upsert_lines(
        &self,
        mapping: &Mapping,
        chunk: &[(String, String, String, BTreeMap<String, String>)],
    ) -> Result<(), ConnectorError> {
        let body = json!({ "inputs": chunk.iter().map(|(_, _, key, properties)| json!({
            "id": key, "idProperty": LINE_KEY, "properties": properties,
        })).collect::<Vec<_>>() });
        let url = self.url(&format!("{LINE_ITEMS}/batch/upsert"));
        let response = self
            .call(|| self.http.client.post(&url).json(&body))
            .await?;
        let batch: HsBatchResult = read_json(response).await?;
        if let Some(error) = batch.errors.first() {
            return Err(ConnectorError::Api {
                system: System::Crm,
                status: 207,
                message: error.message.clone(),
                code: error.category.clone(),
                correlation_id: error.correlation_id.clone(),
            });
        }
        let ids: HashMap<String, String> = batch
            .results
            .into_iter()
            .filter_map(|o| Some((o.properties.get(LINE_KEY).cloned().flatten()?, o.id)))
            .collect();
        let mut pairs = Vec::with_capacity(chunk.len());
        for (_, doc_id, key, _) in chunk {
            let line_id = ids.get(key).ok_or_else(|| {
                ConnectorError::malformed(System::Crm, format!("no line item came back for {key}"))
            })?;
            pairs.push(json!({"from": {"id": doc_id}, "to": {"id": line_id}}));
        }
        // Associating twice is harmless, so a retried write links each line once.
        let url = self.v4_url(&format!(
            "{}/{LINE_ITEMS}/batch/associate/default",
            mapping.object
        ));
        let body = json!({ "inputs": pairs });
        self.call(|| self.http.client.post(&url).json(&body))
            .await?;
        Ok(())
    }

    /// Archives the line items with these line keys (those already gone are skipped).
    async fn archive_lines(&self, keys: &[String]) -> Result<(), ConnectorError> {
        let url = self.url(&format!("{LINE_ITEMS}/batch/read"));
        let body =
            json!({ "properties": [LINE_KEY], "idProperty": LINE_KEY, "inputs": inputs(keys) });
        let response = self
            .call(|| self.http.client.post(&url).json(&body))
            .await?;
        let found: HsBatchResult = read_json(response).await?;
        if found.results.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = found.results.into_iter().map(|o| o.id).collect();
        let url = self.url(&format!("{LINE_ITEMS}/batch/archive"));
        let body = json!({ "inputs": inputs(&ids) });
        self.call(|| self.http.client.post(&url).json(&body))
            .await?;
        Ok(())
    }
}

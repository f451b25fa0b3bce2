//! Quotations, Orders and Invoices: one document shape with DocumentLines.

use serde_json::{Map, Value, json};

use super::{SapB1Connector, modified_at};
use crate::domain::{Endpoint, System};
use crate::sync::connectors::http::worth_retrying;
use crate::sync::connectors::{ConnectorError, WriteResult, text};
use crate::sync::documents::{self, lines};
use crate::sync::record::{Fields, Record, Write};

pub const SELECT: &str = "DocEntry,DocNum,DocDate,DocDueDate,CardCode,NumAtCard,DocTotal,\
DocCurrency,SalesPersonCode,Comments,DocumentStatus,Cancelled,DocumentLines,UpdateDate,UpdateTime";

/// open, closed or cancelled, from DocumentStatus and Cancelled.
fn status(entity: &Map<String, Value>) -> &'static str {
    if text(entity, "Cancelled").as_deref() == Some("tYES") {
        "cancelled"
    } else if text(entity, "DocumentStatus").as_deref() == Some("bost_Close") {
        "closed"
    } else {
        "open"
    }
}

pub fn set_name(endpoint: Endpoint) -> Option<&'static str> {
    match endpoint {
        Endpoint::Quotes => Some("Quotations"),
        Endpoint::SalesOrders => Some("Orders"),
        Endpoint::Invoices => Some("Invoices"),
        _ => None,
    }
}

/// Canonical header field <-> document property (the writable ones).
const HEADER: [(&str, &str); 6] = [
    ("account", "CardCode"),
    ("date", "DocDate"),
    ("valid_until", "DocDueDate"),
    ("due_date", "DocDueDate"),
    ("currency", "DocCurrency"),
    ("comments", "Comments"),
];

/// Canonical line field <-> DocumentLines property (the writable ones).
const LINE: [(&str, &str); 4] = [
    ("item", "ItemCode"),
    ("quantity", "Quantity"),
    ("unit_price", "UnitPrice"),
    ("remarks", "FreeText"),
];

/// Numbers travel as JSON numbers; everything else as text.
fn wire_value(property: &str, value: &str) -> Value {
    match property {
        "Quantity" | "UnitPrice" | "SalesPersonCode" => value
            .parse::<f64>()
            .map_or_else(|_| Value::String(value.to_string()), |n| json!(n)),
        _ => Value::String(value.to_string()),
    }
}

fn lines_of(entity: &Map<String, Value>) -> Vec<&Map<String, Value>> {
    let mut lines: Vec<&Map<String, Value>> = entity
        .get("DocumentLines")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .collect();
    lines.sort_by_key(|l| l.get("LineNum").and_then(Value::as_i64).unwrap_or(i64::MAX));
    lines
}

impl SapB1Connector {
    /// A document as a record: quotations are keyed by the CRM's quote id they carry in
    /// NumAtCard (none for quotations made in the ERP), orders and invoices by DocEntry.
    pub(super) fn document_record(
        &self,
        endpoint: Endpoint,
        entity: &Map<String, Value>,
    ) -> Result<Record, ConnectorError> {
        let entry = text(entity, "DocEntry")
            .ok_or_else(|| ConnectorError::malformed(System::Erp, "a document without DocEntry"))?;
        let bad = |message: String| {
            ConnectorError::malformed(System::Erp, format!("document {entry}: {message}"))
        };
        let modified_at = modified_at(entity, self.settings.utc_offset_minutes)
            .ok_or_else(|| bad("bad UpdateDate/UpdateTime".into()))?;
        let mut fields = Fields::new();
        let mut put = |name: &str, value: Option<String>| {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                fields.insert(name.to_string(), v);
            }
        };
        put("account", text(entity, "CardCode"));
        put("date", text(entity, "DocDate"));
        put("currency", text(entity, "DocCurrency"));
        put(
            "owner",
            text(entity, "SalesPersonCode").filter(|c| c != "-1"),
        );
        let lines = lines_of(entity);
        match endpoint {
            Endpoint::Quotes => {
                put("valid_until", text(entity, "DocDueDate"));
                put("comments", text(entity, "Comments"));
                put("number", Some(entry.clone()));
            }
            _ => {
                if endpoint == Endpoint::Invoices {
                    put("due_date", text(entity, "DocDueDate"));
                }
                put("number", text(entity, "DocNum"));
                put("total", text(entity, "DocTotal"));
                put("status", Some(status(entity).to_string()));
                put("based_on", lines.iter().find_map(|l| text(l, "BaseEntry")));
            }
        }
        let wanted = documents::line_fields(endpoint);
        for (i, line) in lines.iter().enumerate() {
            let price = text(line, "UnitPrice").or_else(|| text(line, "Price"));
            for (name, value) in [
                ("item", text(line, "ItemCode")),
                ("quantity", text(line, "Quantity")),
                ("unit_price", price),
                ("subtotal", text(line, "LineTotal")),
                ("remarks", text(line, "FreeText")),
            ] {
                if wanted.contains(&name) {
                    put(&documents::line_field(i + 1, name), value);
                }
            }
        }
        documents::normalize(&mut fields, self.default_currency).map_err(|e| bad(e.to_string()))?;
        let key = match endpoint {
            Endpoint::Quotes => text(entity, "NumAtCard"),
            _ => Some(entry.clone()),
        };
        Ok(Record {
            id: entry,
            key,
            fields,
            modified_at,
        })
    }

    /// The DocEntry of the document that carries this CRM id in NumAtCard, if one does: a
    /// create whose answer was lost must not create a second document.
    async fn document_for(&self, set: &str, key: &str) -> Result<Option<String>, ConnectorError> {
        let filter = format!("NumAtCard eq '{}'", key.replace('\'', "''"));
        let path = format!(
            "{set}?$select=DocEntry&$filter={}",
            filter.replace(' ', "%20").replace('\'', "%27")
        );
        let page = self.get_json(&path).await?;
        Ok(page
            .get("value")
            .and_then(Value::as_array)
            .and_then(|v| v.first())
            .and_then(Value::as_object)
            .and_then(|d| text(d, "DocEntry")))
    }

    pub(super) async fn write_document(&self, endpoint: Endpoint, write: &Write) -> WriteResult {
        let set = set_name(endpoint).ok_or(ConnectorError::Unsupported {
            system: System::Erp,
            endpoint,
        })?;
        let entry = match (&write.id, endpoint) {
            (Some(id), _) => Some(id.clone()),
            (None, Endpoint::Quotes) => self.document_for(set, &write.key).await?,
            (None, _) => {
                return Err(ConnectorError::Config(format!(
                    "SAP B1 {set} are made in the ERP; the sync does not create them"
                )));
            }
        };
        match entry {
            None => self.create_document(set, write).await,
            Some(entry) => {
                self.update_document(set, &entry, write).await?;
                Ok(entry)
            }
        }
    }

    /// Creates a document. SAP numbers documents itself, so a create repeated after a lost
    /// answer would make a second one: each attempt is made once, and before trying again the
    /// connector looks for the document the lost attempt may have made.
    async fn create_document(&self, set: &str, write: &Write) -> WriteResult {
        let mut attempt = 1;
        loop {
            if attempt > 1
                && let Some(entry) = self.document_for(set, &write.key).await?
            {
                return Ok(entry);
            }
            match self.post_document(set, write).await {
                Err(e) if attempt < self.http.retry.max_attempts && worth_retrying(&e) => {
                    tracing::warn!(error = %e, attempt, "document create failed; checking before retrying");
                    tokio::time::sleep(self.http.retry.backoff(attempt)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn post_document(&self, set: &str, write: &Write) -> WriteResult {
        let mut body = header_body(&write.fields)?;
        body.insert("NumAtCard".into(), Value::String(write.key.clone()));
        let mut members = Vec::new();
        for (n, fields) in lines(&write.fields) {
            if fields.get("item").is_none_or(|i| i.is_empty()) {
                continue;
            }
            members.push(Value::Object(line_body(n, &fields)?));
        }
        body.insert("DocumentLines".into(), Value::Array(members));
        let url = self.url(set);
        let response = self
            .call_with(true, |cookie| {
                self.http
                    .client
                    .post(&url)
                    .header(reqwest::header::COOKIE, cookie)
                    .json(&body)
            })
            .await?;
        let created: Map<String, Value> = response
            .json()
            .await
            .map_err(|e| ConnectorError::malformed(System::Erp, e.to_string()))?;
        text(&created, "DocEntry").ok_or_else(|| {
            ConnectorError::malformed(System::Erp, format!("{set} created without DocEntry"))
        })
    }

    /// Header fields are patched in place; when lines change, the document's lines are read,
    /// changed (line n is the n-th by LineNum; an empty item removes the line) and sent back
    /// whole with B1S-ReplaceCollectionsOnPatch.
    async fn update_document(
        &self,
        set: &str,
        entry: &str,
        write: &Write,
    ) -> Result<(), ConnectorError> {
        let mut body = header_body(&write.fields)?;
        let changes = lines(&write.fields);
        let path = format!("{set}({entry})");
        if !changes.is_empty() {
            let current = self.get_json(&path).await?;
            let current = current.as_object().cloned().unwrap_or_default();
            let mut members: Vec<Option<Map<String, Value>>> =
                lines_of(&current).into_iter().cloned().map(Some).collect();
            for (n, fields) in changes {
                let removed = fields.get("item").is_some_and(|i| i.is_empty());
                let patch = line_body(n, &fields)?;
                match members.get_mut(n - 1) {
                    Some(slot) if removed => *slot = None,
                    Some(Some(member)) => member.extend(patch),
                    _ if removed => {}
                    _ => members.push(Some(patch)),
                }
            }
            let members: Vec<Value> = members.into_iter().flatten().map(Value::Object).collect();
            body.insert("DocumentLines".into(), Value::Array(members));
        }
        let url = self.url(&path);
        let replace = body.contains_key("DocumentLines");
        self.call(|cookie| {
            let request = self
                .http
                .client
                .patch(&url)
                .header(reqwest::header::COOKIE, cookie)
                .json(&body);
            if replace {
                request.header("B1S-ReplaceCollectionsOnPatch", "true")
            } else {
                request
            }
        })
        .await?;
        Ok(())
    }
}

fn header_body(fields: &Fields) -> Result<Map<String, Value>, ConnectorError> {
    let mut body = Map::new();
    for (field, value) in fields {
        if documents::parse_line_field(field).is_some() {
            continue;
        }
        let (_, property) = HEADER.iter().find(|(c, _)| c == field).ok_or_else(|| {
            ConnectorError::Config(format!("SAP B1 documents have no writable field `{field}`"))
        })?;
        body.insert(property.to_string(), wire_value(property, value));
    }
    Ok(body)
}

fn line_body(
    n: usize,
    fields: &std::collections::BTreeMap<&str, &str>,
) -> Result<Map<String, Value>, ConnectorError> {
    let mut member = Map::new();
    for (name, value) in fields {
        let (_, property) = LINE.iter().find(|(c, _)| c == name).ok_or_else(|| {
            ConnectorError::Config(format!(
                "SAP B1 document lines have no writable field `{}`",
                documents::line_field(n, name)
            ))
        })?;
        member.insert(property.to_string(), wire_value(property, value));
    }
    Ok(member)
}

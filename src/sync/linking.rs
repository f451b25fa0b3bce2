//! Go-live linking: CRM records that exist without the ERP key are matched to ERP records by
//! configured keys before anything is created, so nothing exists twice.

use std::collections::{HashMap, HashSet};

use crate::domain::Endpoint;
use crate::sync::record::Record;

/// Words that do not tell two companies apart.
const LEGAL_SUFFIXES: [&str; 12] = [
    "gmbh",
    "ltd",
    "limited",
    "inc",
    "incorporated",
    "llc",
    "ag",
    "co",
    "corp",
    "corporation",
    "plc",
    "sa",
];

/// Lower case, letters and digits only, legal suffixes dropped, words in order.
pub fn normalize_name(name: &str) -> String {
    name.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !LEGAL_SUFFIXES.contains(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The key two records must share to be linked, or none when the record lacks it.
fn link_key(endpoint: Endpoint, record: &Record) -> Option<String> {
    let field = |name: &str| record.fields.get(name).map(|v| v.trim().to_string());
    match endpoint {
        Endpoint::Accounts => {
            let name = normalize_name(&field("name")?);
            let postcode = field("billing_postcode").unwrap_or_default();
            (!name.is_empty()).then(|| format!("{name}|{postcode}"))
        }
        Endpoint::Items => field("code").filter(|c| !c.is_empty()),
        Endpoint::Contacts => field("email")
            .map(|e| e.to_lowercase())
            .filter(|e| e.contains('@')),
        _ => None,
    }
}

#[derive(Debug, Default)]
pub struct Linking {
    /// (CRM record, ERP key) pairs that matched exactly one free ERP record.
    pub linked: Vec<(Record, String)>,
    /// CRM records that matched several ERP records: a person must choose.
    pub ambiguous: Vec<Record>,
    /// CRM records that matched none.
    pub unmatched: Vec<Record>,
}

/// Matches `unlinked` CRM records to ERP records whose key is not `taken` by another CRM record.
pub fn link(
    endpoint: Endpoint,
    unlinked: Vec<Record>,
    erp: &[&Record],
    taken: &HashSet<String>,
) -> Linking {
    let mut by_key: HashMap<String, Vec<&str>> = HashMap::new();
    for record in erp {
        let Some(erp_key) = record.key.as_deref() else {
            continue;
        };
        if let Some(k) = link_key(endpoint, record).filter(|_| !taken.contains(erp_key)) {
            by_key.entry(k).or_default().push(erp_key);
        }
    }
    let mut used: HashSet<String> = HashSet::new();
    let mut result = Linking::default();
    for record in unlinked {
        let candidates: Vec<&str> = link_key(endpoint, &record)
            .and_then(|k| by_key.get(&k))
            .map(|c| c.iter().copied().filter(|k| !used.contains(*k)).collect())
            .unwrap_or_default();
        match candidates.as_slice() {
            [one] => {
                used.insert(one.to_string());
                result.linked.push((record, one.to_string()));
            }
            [] => result.unmatched.push(record),
            _ => result.ambiguous.push(record),
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    fn account(id: &str, key: Option<&str>, name: &str, postcode: &str) -> Record {
        Record {
            id: id.into(),
            key: key.map(str::to_string),
            fields: [("name", name), ("billing_postcode", postcode)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            modified_at: Timestamp::from_micros(0),
        }
    }

    #[test]
    fn normalizes_legal_forms_and_punctuation() {
        assert_eq!(normalize_name("ACME Industries, GmbH"), "acme industries");
        assert_eq!(normalize_name("Acme  Industries Ltd."), "acme industries");
    }

    #[test]
    fn links_unique_matches_and_queues_ambiguous_ones() {
        let erp = [
            account("C1", Some("C1"), "Acme Industries GmbH", "10115"),
            account("C2", Some("C2"), "Globex Ltd", "20095"),
            account("C3", Some("C3"), "Globex Limited", "20095"),
            account("C4", Some("C4"), "Initech Inc", "73301"),
        ];
        let erp_refs: Vec<&Record> = erp.iter().collect();
        let crm = vec![
            account("1", None, "ACME Industries", "10115"),
            account("2", None, "Globex", "20095"),
            account("3", None, "Initech", "99999"),
            account("4", None, "Initech Inc.", "73301"),
        ];
        let taken = HashSet::from(["C4".to_string()]);
        let result = link(Endpoint::Accounts, crm, &erp_refs, &taken);
        let linked: Vec<_> = result
            .linked
            .iter()
            .map(|(r, k)| (r.id.as_str(), k.as_str()))
            .collect();
        assert_eq!(linked, [("1", "C1")]);
        assert_eq!(result.ambiguous.len(), 1);
        assert_eq!(
            result.unmatched.len(),
            2,
            "C4 is taken by another CRM record"
        );
    }
}

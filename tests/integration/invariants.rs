//! The invariant checker of the reliability tests: after whatever happened (kills, takeovers,
//! faults), the sandbox CRM and ERP agree per the ownership rules and the event log tells exactly
//! what was done: every change has its event, no event is duplicated.

use std::collections::{BTreeMap, HashMap, HashSet};

use syncwarden::domain::{Endpoint, FieldEvent, Outcome, System};
use syncwarden::sandbox::Sandbox;

/// The CRM companies' ERP keys now, to tell later which ones a sync keyed.
pub fn crm_account_keys(sandbox: &Sandbox) -> HashSet<String> {
    let data = sandbox.crm_data.lock().unwrap();
    data.all("companies")
        .iter()
        .filter_map(|o| o.properties.get("erp_number").cloned())
        .collect()
}

fn json_text(value: Option<&str>) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(value?).ok()?;
    value.as_str().map(str::to_string)
}

/// Checks the accounts endpoint; `keyed_before` are the CRM keys before any sync ran. Panics
/// naming the first broken invariant.
pub fn check_accounts(sandbox: &Sandbox, events: &[FieldEvent], keyed_before: &HashSet<String>) {
    let erp: BTreeMap<String, String> = sandbox
        .erp_data
        .lock()
        .unwrap()
        .all("BusinessPartners")
        .iter()
        .map(|p| {
            (
                p["CardCode"].as_str().unwrap().to_string(),
                p["CardName"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let mut crm: HashMap<String, Vec<String>> = HashMap::new();
    for company in sandbox.crm_data.lock().unwrap().all("companies") {
        if let Some(key) = company.properties.get("erp_number") {
            let name = company.properties.get("name").cloned().unwrap_or_default();
            crm.entry(key.clone()).or_default().push(name);
        }
    }
    let applied: Vec<&FieldEvent> = events
        .iter()
        .filter(|e| {
            e.event.endpoint == Endpoint::Accounts
                && e.event.outcome == Outcome::Applied
                && e.event.target_system == System::Crm
        })
        .collect();

    // No event duplicated: one write of one value to one field of one record is told once.
    let mut seen = HashSet::new();
    for e in &applied {
        let key = (
            e.event.erp_id.clone(),
            e.event.field.clone(),
            e.event.new_value.clone(),
        );
        assert!(seen.insert(key), "event told twice: {:?}", e.event);
    }

    for (code, erp_name) in &erp {
        // Nothing lost, nothing created twice.
        let names = crm.get(code).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(names.len(), 1, "{code}: {} CRM companies", names.len());
        // The ERP owns the name: the CRM holds the ERP's.
        assert_eq!(&names[0], erp_name, "{code}: the CRM name differs");
        let of_record: Vec<&&FieldEvent> = applied
            .iter()
            .filter(|e| e.event.erp_id.as_deref() == Some(code.as_str()))
            .collect();
        // Every change has its event: a partner the sync keyed in the CRM has exactly one event
        // saying how (created: its name written; linked: its key written).
        if !keyed_before.contains(code) {
            let how = of_record
                .iter()
                .filter(|e| {
                    (e.event.field == "name" && e.event.old_value.is_none())
                        || e.event.field == "erp_number"
                })
                .count();
            assert_eq!(how, 1, "{code}: {how} events for its arrival");
        }
        // The newest name written to the CRM is the name it holds.
        if let Some(last) = of_record
            .iter()
            .filter(|e| e.event.field == "name")
            .max_by_key(|e| e.id)
        {
            assert_eq!(
                json_text(last.event.new_value.as_deref()).as_deref(),
                Some(erp_name.as_str()),
                "{code}: the last name event is not what the CRM holds"
            );
        }
    }
}

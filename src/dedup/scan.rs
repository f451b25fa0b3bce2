//! The deduper over the store: an endpoint's synced records scanned for duplicates, a merge
//! proposal stored per cluster, and an admin's decision on it turned into labelled pairs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::cluster::{self, Member};
use super::command::dedup_table;
use super::features;
use super::llm::Adjudicator;
use super::model::Model;
use super::profile::Profile;
use super::{Decision, DedupError, DedupSettings, RawRows, Table};
use crate::domain::{
    DedupProposal, Endpoint, MergeField, NewDedupProposal, RecordState, Timestamp,
};
use crate::store::Store;

/// A table of an endpoint's record states, keyed by the shared ERP key, in key order.
pub fn table_from_states(
    profile: &Profile,
    states: &HashMap<String, RecordState>,
) -> (Table, Vec<Timestamp>) {
    let mut sorted: Vec<&RecordState> = states.values().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut records: Vec<_> = sorted
        .iter()
        .map(|s| {
            let row: BTreeMap<&str, &str> = s
                .fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            profile.prepare(s.key.clone(), &row)
        })
        .collect();
    // Token rarity over the scanned records, as `dedup run` weighs a file: without it every
    // token weighs alike and an exact name match carries no rarity at all, which the model
    // (trained on weighed tables) reads as a common name and scores low.
    features::weigh_all(
        profile.fields.len(),
        &mut records.iter_mut().collect::<Vec<_>>(),
    );
    let table = Table {
        records,
        raw: RawRows::from_maps(sorted.iter().map(|s| &s.fields)),
        truth: None,
    };
    (table, sorted.iter().map(|s| s.synced_at).collect())
}

/// What a scan found and stored.
#[derive(Debug, serde::Serialize)]
pub struct ScanReport {
    pub endpoint: Endpoint,
    pub records: usize,
    pub compared_pairs: usize,
    pub matches: usize,
    pub review: usize,
    pub clusters: usize,
    /// Proposals stored now; clusters that already had an open proposal are not counted.
    pub new_proposals: usize,
}

/// Scans one endpoint (its synced records and `extra` ones) and stores a merge proposal for
/// every duplicate cluster.
#[allow(clippy::too_many_arguments)]
pub async fn scan(
    store: &dyn Store,
    profile: &Profile,
    model: &Model,
    settings: &DedupSettings,
    llm: Option<&Adjudicator>,
    endpoint: Endpoint,
    extra: Vec<RecordState>,
    now: Timestamp,
) -> Result<ScanReport, DedupError> {
    let mut states = store.record_states(endpoint).await?;
    // Records the store does not sync (the CRM's unlinked ones) are scanned with the others.
    states.extend(extra.into_iter().map(|s| (s.key.clone(), s)));
    let (table, synced_at) = table_from_states(profile, &states);
    let run = dedup_table(profile, model, settings, llm, &table).await;
    let proposals: Vec<NewDedupProposal> = run
        .clusters
        .iter()
        .filter_map(|c| {
            let members: Vec<Member> = c
                .iter()
                .map(|i| Member {
                    id: table.records[*i].id.clone(),
                    system: None,
                    // A record state holds both systems' agreed values: the last sync is the
                    // best "most recent" there is.
                    modified_at: Some(synced_at[*i]),
                    fields: table.raw.get(*i),
                })
                .collect();
            let proposal = cluster::propose(&members, &BTreeMap::new())?;
            let min_probability = run
                .pairs
                .iter()
                .filter(|p| p.decision == Decision::Match && c.contains(&p.a) && c.contains(&p.b))
                .map(|p| p.probability)
                .fold(1.0, f64::min);
            Some(NewDedupProposal {
                endpoint,
                members: proposal.members,
                survivor: proposal.survivor,
                fields: proposal
                    .fields
                    .into_iter()
                    .map(|f| MergeField {
                        field: f.field,
                        value: f.value,
                        from: f.from,
                        why: f.why.as_str().to_string(),
                    })
                    .collect(),
                before: members.into_iter().map(|m| (m.id, m.fields)).collect(),
                min_probability,
                created_at: now,
            })
        })
        .collect();
    let new_proposals = store.save_dedup_proposals(&proposals).await?;
    tracing::info!(
        endpoint = endpoint.as_str(),
        clusters = proposals.len(),
        new_proposals,
        "dedup scan done"
    );
    Ok(ScanReport {
        endpoint,
        records: table.records.len(),
        compared_pairs: run.candidates.len(),
        matches: run.count(Decision::Match),
        review: run.count(Decision::Review),
        clusters: run.clusters.len(),
        new_proposals,
    })
}

/// A decided proposal as labelled pairs (the survivor against each other member): 1 when it was
/// approved, 0 when rejected, appended to `path` in the `left_*`/`right_*`/`label` format that
/// `syncwarden dedup train --pairs` reads. The file's columns grow when new fields appear.
pub fn append_feedback(
    path: &Path,
    proposal: &DedupProposal,
    approved: bool,
) -> Result<usize, DedupError> {
    let before = &proposal.proposal.before;
    let Some(survivor) = before.get(&proposal.proposal.survivor) else {
        return Ok(0);
    };
    let mut rows: Vec<BTreeMap<String, String>> = if path.exists() {
        let old = super::read_csv(path)?;
        old.rows
            .iter()
            .map(|r| old.headers.iter().cloned().zip(r.iter().cloned()).collect())
            .collect()
    } else {
        Vec::new()
    };
    let label = if approved { "1" } else { "0" };
    let mut added = 0;
    for (id, fields) in before
        .iter()
        .filter(|(id, _)| **id != proposal.proposal.survivor)
    {
        let mut row: BTreeMap<String, String> = BTreeMap::new();
        row.extend(
            survivor
                .iter()
                .map(|(k, v)| (format!("left_{k}"), v.clone())),
        );
        row.extend(
            fields
                .iter()
                .map(|(k, v)| (format!("right_{k}"), v.clone())),
        );
        row.insert("left_id".into(), proposal.proposal.survivor.clone());
        row.insert("right_id".into(), id.clone());
        row.insert("label".into(), label.into());
        rows.push(row);
        added += 1;
    }
    let mut headers: Vec<&String> = rows.iter().flat_map(|r| r.keys()).collect();
    headers.sort();
    headers.dedup();
    let err = |source| DedupError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    w.write_record(&headers).map_err(err)?;
    for r in &rows {
        w.write_record(headers.iter().map(|h| r.get(*h).map_or("", String::as_str)))
            .map_err(err)?;
    }
    w.flush().map_err(|source| DedupError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(added)
}

//! Clusters of matched records, grown without chaining, and one merge proposal per cluster.

use std::collections::BTreeMap;

use serde::Serialize;

use super::FastSet;
use super::{Decision, ScoredPair};
use crate::domain::{System, Timestamp};

/// Groups records linked by `match` pairs. Pairs are taken strongest first, and two groups are
/// joined only when at least `min_density` of the record pairs across them are matches: a chain
/// a-b, b-c with a-c unmatched joins at 2 of 2 links when a-b-c share an entity, while one
/// stray link between two groups of three (1 of 9) does not pull six records together.
pub fn clusters(records: usize, pairs: &[ScoredPair], min_density: f64) -> Vec<Vec<usize>> {
    let mut matched: Vec<&ScoredPair> = pairs
        .iter()
        .filter(|p| p.decision == Decision::Match)
        .collect();
    matched.sort_by(|x, y| y.probability.total_cmp(&x.probability));
    let links: FastSet<(usize, usize)> = matched
        .iter()
        .map(|p| (p.a.min(p.b), p.a.max(p.b)))
        .collect();
    let mut of: Vec<usize> = (0..records).collect();
    // A group's member list is written when it is first linked: most records of a large run
    // stay alone and never need one.
    let mut members: Vec<Vec<usize>> = (0..records).map(|_| Vec::new()).collect();
    for p in matched {
        let (ca, cb) = (of[p.a], of[p.b]);
        if ca == cb {
            continue;
        }
        for c in [ca, cb] {
            if members[c].is_empty() {
                members[c].push(c);
            }
        }
        let linked = members[ca]
            .iter()
            .flat_map(|x| {
                members[cb]
                    .iter()
                    .map(move |y| ((*x).min(*y), (*x).max(*y)))
            })
            .filter(|k| links.contains(k))
            .count();
        let possible = members[ca].len() * members[cb].len();
        if (linked as f64) < min_density * possible as f64 {
            continue;
        }
        let moved = std::mem::take(&mut members[cb]);
        for m in &moved {
            of[*m] = ca;
        }
        members[ca].extend(moved);
    }
    let mut out: Vec<Vec<usize>> = members
        .into_iter()
        .filter(|m| m.len() > 1)
        .map(|mut m| {
            m.sort_unstable();
            m
        })
        .collect();
    out.sort();
    out
}

/// Every pair inside each cluster, as a decision on the whole group implies.
pub fn cluster_pairs(clusters: &[Vec<usize>]) -> Vec<(usize, usize)> {
    clusters
        .iter()
        .flat_map(|c| {
            c.iter()
                .enumerate()
                .flat_map(move |(i, a)| c[i + 1..].iter().map(move |b| (*a, *b)))
        })
        .collect()
}

/// One record of a cluster as the merge sees it.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    /// The system holding it, when known (store records); CSV rows have none.
    pub system: Option<System>,
    pub modified_at: Option<Timestamp>,
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// Every member that has the field agrees.
    Agreed,
    /// The field's owner system (from the sync configuration) holds this value.
    OwnerSystem,
    /// The most recently modified member's value.
    MostRecent,
    /// The longest value: most complete when nothing else decides.
    MostComplete,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agreed => "agreed",
            Self::OwnerSystem => "owner_system",
            Self::MostRecent => "most_recent",
            Self::MostComplete => "most_complete",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChoice {
    pub field: String,
    pub value: String,
    /// The member the value comes from.
    pub from: String,
    pub why: Why,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proposal {
    pub members: Vec<String>,
    /// The record that stays; the others are merged into it.
    pub survivor: String,
    pub fields: Vec<FieldChoice>,
}

/// The merge proposal for one cluster. `owners` maps a field to the system that owns it.
pub fn propose(members: &[Member], owners: &BTreeMap<String, System>) -> Option<Proposal> {
    // The survivor is the fullest record, then the most recent, then the lowest id, so the
    // choice is stable from run to run.
    let survivor = members.iter().max_by(|x, y| {
        x.fields
            .values()
            .filter(|v| !v.is_empty())
            .count()
            .cmp(&y.fields.values().filter(|v| !v.is_empty()).count())
            .then(x.modified_at.cmp(&y.modified_at))
            .then(y.id.cmp(&x.id))
    })?;
    let names: std::collections::BTreeSet<&String> =
        members.iter().flat_map(|m| m.fields.keys()).collect();
    let mut fields = Vec::new();
    for name in names {
        let having: Vec<(&Member, &String)> = members
            .iter()
            .filter_map(|m| m.fields.get(name).filter(|v| !v.is_empty()).map(|v| (m, v)))
            .collect();
        let Some(first) = having.first() else {
            continue;
        };
        fn newest<'a>(list: &[(&'a Member, &'a String)]) -> Option<(&'a Member, &'a String)> {
            list.iter().copied().max_by(|x, y| {
                x.0.modified_at
                    .cmp(&y.0.modified_at)
                    .then(y.0.id.cmp(&x.0.id))
            })
        }
        let owned: Vec<(&Member, &String)> = owners
            .get(name)
            .map(|o| {
                having
                    .iter()
                    .copied()
                    .filter(|(m, _)| m.system == Some(*o))
                    .collect()
            })
            .unwrap_or_default();
        let (from, value, why) = if having.iter().all(|(_, v)| *v == first.1) {
            let from = having
                .iter()
                .find(|(m, _)| m.id == survivor.id)
                .unwrap_or(first);
            (from.0, from.1, Why::Agreed)
        } else if let Some((m, v)) = newest(&owned) {
            (m, v, Why::OwnerSystem)
        } else if having.iter().all(|(m, _)| m.modified_at.is_some())
            && let Some((m, v)) = newest(&having)
        {
            (m, v, Why::MostRecent)
        } else {
            let (m, v) = having
                .iter()
                .copied()
                .max_by(|x, y| x.1.len().cmp(&y.1.len()).then(y.0.id.cmp(&x.0.id)))
                .unwrap_or(*first);
            (m, v, Why::MostComplete)
        };
        fields.push(FieldChoice {
            field: name.clone(),
            value: value.clone(),
            from: from.id.clone(),
            why,
        });
    }
    Some(Proposal {
        members: members.iter().map(|m| m.id.clone()).collect(),
        survivor: survivor.id.clone(),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(a: usize, b: usize, p: f64) -> ScoredPair {
        ScoredPair {
            a,
            b,
            probability: p,
            decision: Decision::Match,
            reason: None,
        }
    }

    #[test]
    fn a_weak_bridge_does_not_chain_two_groups() {
        // Two triangles 0-1-2 and 3-4-5, and one stray link 2-3.
        let pairs = vec![
            m(0, 1, 0.99),
            m(1, 2, 0.98),
            m(0, 2, 0.97),
            m(3, 4, 0.99),
            m(4, 5, 0.98),
            m(3, 5, 0.97),
            m(2, 3, 0.96),
        ];
        assert_eq!(clusters(6, &pairs, 0.5), vec![vec![0, 1, 2], vec![3, 4, 5]]);
        // With no density rule the stray link chains all six.
        assert_eq!(clusters(6, &pairs, 0.0), vec![vec![0, 1, 2, 3, 4, 5]]);
    }

    #[test]
    fn a_short_chain_of_one_entity_joins() {
        let pairs = vec![m(0, 1, 0.9), m(1, 2, 0.9)];
        assert_eq!(clusters(3, &pairs, 0.5), vec![vec![0, 1, 2]]);
        assert_eq!(
            cluster_pairs(&clusters(3, &pairs, 0.5)),
            vec![(0, 1), (0, 2), (1, 2)]
        );
        let mut review = m(0, 1, 0.5);
        review.decision = Decision::Review;
        assert!(clusters(2, &[review], 0.5).is_empty());
    }

    fn member(id: &str, system: Option<System>, t: Option<i64>, f: &[(&str, &str)]) -> Member {
        Member {
            id: id.into(),
            system,
            modified_at: t.map(Timestamp::from_micros),
            fields: f
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn proposal_says_which_value_wins_and_why() {
        let members = vec![
            member(
                "c1",
                Some(System::Crm),
                Some(2_000),
                &[
                    ("name", "Acme Ltd"),
                    ("phone", "0201"),
                    ("email", "a@acme.test"),
                ],
            ),
            member(
                "e1",
                Some(System::Erp),
                Some(1_000),
                &[
                    ("name", "ACME Limited"),
                    ("phone", "0202"),
                    ("email", "a@acme.test"),
                ],
            ),
        ];
        let owners = BTreeMap::from([("name".to_string(), System::Erp)]);
        let p = propose(&members, &owners).unwrap();
        // Same field count: the more recent record survives.
        assert_eq!(p.survivor, "c1");
        let get = |f: &str| p.fields.iter().find(|c| c.field == f).unwrap();
        assert_eq!(
            (get("name").value.as_str(), get("name").why),
            ("ACME Limited", Why::OwnerSystem)
        );
        assert_eq!(
            (get("phone").value.as_str(), get("phone").why),
            ("0201", Why::MostRecent)
        );
        assert_eq!(get("email").why, Why::Agreed);
    }

    #[test]
    fn without_times_the_most_complete_value_wins() {
        let members = vec![
            member("1", None, None, &[("street", "12 Main St"), ("city", "")]),
            member(
                "2",
                None,
                None,
                &[("street", "12 Main Street"), ("city", "Leeds")],
            ),
        ];
        let p = propose(&members, &BTreeMap::new()).unwrap();
        assert_eq!(p.survivor, "2");
        assert_eq!(p.fields[1].field, "street");
        assert_eq!(
            (p.fields[1].value.as_str(), p.fields[1].why),
            ("12 Main Street", Why::MostComplete)
        );
        assert_eq!(p.fields[0].value, "Leeds");
        assert!(propose(&[], &owners_none()).is_none());
    }

    fn owners_none() -> BTreeMap<String, System> {
        BTreeMap::new()
    }
}

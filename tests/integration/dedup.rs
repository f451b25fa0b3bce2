//! The deduper on small generated data, and the LLM path against a local OpenAI-compatible server.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use syncwarden::dedup::command::{dedup_table, training_set};
use syncwarden::dedup::llm::{Adjudicator, LlmSettings};
use syncwarden::dedup::model::Model;
use syncwarden::dedup::profile::Profile;
use syncwarden::dedup::{Decision, DedupSettings, ScoredPair, features, read_table};

use crate::llm::LlmServer;

const PEOPLE: &str = r#"
entity = "persons"
id = "rec_id"
model = "MODEL_DIR"
[[fields]]
name = "given_name"
kind = "name"
columns = ["given_name"]
[[fields]]
name = "surname"
kind = "name"
columns = ["surname"]
[[fields]]
name = "email"
kind = "email"
columns = ["email"]
personal = true
[[fields]]
name = "date_of_birth"
kind = "date"
columns = ["date_of_birth"]
personal = true
[[fields]]
name = "suburb"
kind = "name"
columns = ["suburb"]
[blocking]
keys = [[{ field = "date_of_birth" }], [{ field = "surname", transform = "soundex" }]]
sorted = [{ key = [{ field = "given_name" }, { field = "surname" }], window = 4 }]
"#;

const GIVEN: &[&str] = &[
    "james", "olivia", "liam", "emma", "noah", "ava", "lucas", "mia", "ethan", "zoe", "oscar",
    "ruby", "henry", "chloe", "jack", "grace", "leo", "isla", "max", "lily",
];
const SURNAMES: &[&str] = &[
    "smith", "nguyen", "brown", "wilson", "taylor", "martin", "clarke", "walker", "young", "king",
    "wright", "scott", "green", "baker", "adams", "hill", "campbell", "mitchell",
];
const SUBURBS: &[&str] = &[
    "richmond",
    "fitzroy",
    "carlton",
    "kew",
    "brunswick",
    "coburg",
];

/// A typo as people make them: a letter dropped, doubled or swapped with the next.
fn typo(rng: &mut fastrand::Rng, s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    if c.len() < 3 {
        return s.to_string();
    }
    let i = rng.usize(1..c.len() - 1);
    match rng.u8(0..3) {
        0 => {
            c.remove(i);
        }
        1 => c.insert(i, c[i]),
        _ => c.swap(i, i + 1),
    }
    c.into_iter().collect()
}

/// Febrl-style people: `entities` originals, about a third with one or two corrupted copies.
fn people_csv(seed: u64, entities: usize, path: &Path) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = String::from("rec_id,given_name,surname,email,date_of_birth,suburb,entity_id\n");
    for e in 0..entities {
        let given = GIVEN[rng.usize(..GIVEN.len())];
        let surname = SURNAMES[rng.usize(..SURNAMES.len())];
        let dob = format!(
            "{}{:02}{:02}",
            rng.u32(1940..2005),
            rng.u32(1..13),
            rng.u32(1..29)
        );
        let email = format!("{given}.{surname}{}@mail.test", rng.u32(1..99));
        let suburb = SUBURBS[rng.usize(..SUBURBS.len())];
        out.push_str(&format!(
            "r{seed}-{e}-0,{given},{surname},{email},{dob},{suburb},e{e}\n"
        ));
        let copies = if rng.u8(0..3) == 0 {
            rng.usize(1..3)
        } else {
            0
        };
        for k in 1..=copies {
            let mut f = [
                given.to_string(),
                surname.to_string(),
                email.clone(),
                dob.clone(),
                suburb.to_string(),
            ];
            // Two corruptions per copy: typos, a dropped value, a swapped day and month.
            for _ in 0..2 {
                let i = rng.usize(..5);
                f[i] = match rng.u8(0..4) {
                    0 => String::new(),
                    1 if i == 3 => format!("{}{}{}", &dob[..4], &dob[6..8], &dob[4..6]),
                    _ => typo(&mut rng, &f[i]),
                };
            }
            out.push_str(&format!("r{seed}-{e}-{k},{},e{e}\n", f.join(",")));
        }
    }
    std::fs::write(path, out).unwrap();
}

fn pairwise_f1(
    pairs: &[ScoredPair],
    truth: &[String],
    predicted: impl Fn(&ScoredPair) -> bool,
) -> f64 {
    let tp = pairs
        .iter()
        .filter(|p| predicted(p) && truth[p.a] == truth[p.b])
        .count() as f64;
    let predicted = pairs.iter().filter(|p| predicted(p)).count() as f64;
    let total = syncwarden::dedup::block::truth_pairs(truth) as f64;
    2.0 * tp / (predicted + total)
}

#[tokio::test]
async fn trained_classifier_beats_a_fixed_jaro_winkler_threshold_on_unseen_people() {
    let dir = tempfile::tempdir().unwrap();
    let profile_text = PEOPLE.replace("MODEL_DIR", &dir.path().join("model").display().to_string());
    let profile = Profile::parse(&profile_text).unwrap();
    let (train, test) = (dir.path().join("train.csv"), dir.path().join("test.csv"));
    people_csv(1, 150, &train);
    people_csv(2, 150, &test);

    let set = training_set(&profile, &[], std::slice::from_ref(&train), "entity_id").unwrap();
    assert!(set.sources[0].contains("train.csv"));
    let names = features::names(&profile);
    let (model, metrics) = Model::train("persons", names, &set.rows, &set.labels, 0.01).unwrap();
    assert!(metrics.f1 > 0.8, "{metrics:?}");
    model
        .save_next(&profile.model, set.sources, &set.labels, metrics)
        .unwrap();
    let model = syncwarden::dedup::load_model(&profile).unwrap();

    let table = read_table(&profile, &test, Some("entity_id")).unwrap();
    let truth = table.truth.clone().unwrap();
    let run = dedup_table(&profile, &model, &DedupSettings::default(), None, &table).await;
    let ours = pairwise_f1(&run.pairs, &truth, |p| p.decision == Decision::Match);
    // The baseline: one fixed Jaro-Winkler cut on the full name, over the same candidate pairs.
    let name = |i: usize| {
        let r = &table.records[i];
        [0, 1]
            .iter()
            .filter_map(|f| r.value(*f).map(|v| v.text.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let baseline = pairwise_f1(&run.pairs, &truth, |p| {
        strsim::jaro_winkler(&name(p.a), &name(p.b)) >= 0.9
    });
    assert!(ours > 0.85, "classifier F1 {ours}");
    assert!(
        ours > baseline + 0.05,
        "classifier F1 {ours}, baseline {baseline}"
    );
}

#[test]
fn cli_trains_runs_and_proposes_merges() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("people.toml");
    std::fs::write(
        &profile,
        PEOPLE.replace("MODEL_DIR", &dir.path().join("model").display().to_string()),
    )
    .unwrap();
    let data = dir.path().join("people.csv");
    people_csv(3, 120, &data);
    let bin = env!("CARGO_BIN_EXE_syncwarden");
    let ok = |args: &[&str]| {
        let out = Command::new(bin).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let p = profile.to_str().unwrap();
    let trained = ok(&[
        "dedup",
        "train",
        "--profile",
        p,
        "--table",
        data.to_str().unwrap(),
    ]);
    assert!(trained.contains("model-v1.json"), "{trained}");
    assert!(dir.path().join("model/meta.json").exists());

    // The table without its truth column, as a user would run it.
    let text = std::fs::read_to_string(&data).unwrap();
    let stripped: String = text
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
        .collect();
    let input = dir.path().join("input.csv");
    std::fs::write(&input, stripped).unwrap();
    let (out, proposals) = (
        dir.path().join("pairs.csv"),
        dir.path().join("proposals.json"),
    );
    ok(&[
        "dedup",
        "run",
        "--profile",
        p,
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--proposals",
        proposals.to_str().unwrap(),
    ]);
    let pairs = std::fs::read_to_string(&out).unwrap();
    assert!(pairs.starts_with("id_a,id_b,probability,decision"));
    let matches: Vec<&str> = pairs.lines().filter(|l| l.contains(",match,")).collect();
    assert!(!matches.is_empty());
    // Same entity = same middle part of the generated id.
    let entity = |id: &str| id.rsplit_once('-').unwrap().0.to_string();
    let right = matches
        .iter()
        .filter(|l| {
            let mut it = l.split(',');
            entity(it.next().unwrap()) == entity(it.next().unwrap())
        })
        .count();
    assert!(right as f64 >= 0.9 * matches.len() as f64, "{pairs}");
    let proposals: Value =
        serde_json::from_str(&std::fs::read_to_string(&proposals).unwrap()).unwrap();
    let first = &proposals[0];
    assert!(first["members"].as_array().unwrap().len() >= 2);
    assert!(
        first["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["why"] == "most_complete" || f["why"] == "agreed")
    );

    // Linkage: the originals in one file, the copies in another; only cross pairs come out.
    let (left, right) = (dir.path().join("left.csv"), dir.path().join("right.csv"));
    let header = text.lines().next().unwrap().to_string() + "\n";
    let split = |originals: bool| -> String {
        let body: String = text
            .lines()
            .skip(1)
            .filter(|l| l.split(',').next().unwrap().ends_with("-0") == originals)
            .map(|l| l.to_string() + "\n")
            .collect();
        header.clone() + &body
    };
    std::fs::write(&left, split(true)).unwrap();
    std::fs::write(&right, split(false)).unwrap();
    let linked = dir.path().join("linked.csv");
    ok(&[
        "dedup",
        "link",
        "--profile",
        p,
        "--left",
        left.to_str().unwrap(),
        "--right",
        right.to_str().unwrap(),
        "--output",
        linked.to_str().unwrap(),
    ]);
    let linked = std::fs::read_to_string(&linked).unwrap();
    let linked: Vec<(&str, &str)> = linked
        .lines()
        .filter(|l| l.contains(",match,"))
        .map(|l| {
            let mut it = l.split(',');
            (it.next().unwrap(), it.next().unwrap())
        })
        .collect();
    assert!(!linked.is_empty());
    assert!(
        linked
            .iter()
            .all(|(a, b)| a.ends_with("-0") && !b.ends_with("-0")),
        "{linked:?}"
    );
    let right_links = linked
        .iter()
        .filter(|(a, b)| entity(a) == entity(b))
        .count();
    assert!(
        right_links as f64 >= 0.9 * linked.len() as f64,
        "{linked:?}"
    );

    let report = ok(&[
        "dedup",
        "eval",
        "--profile",
        p,
        "--input",
        data.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(&report).unwrap();
    assert!(
        report["final_decisions"]["f1"].as_f64().unwrap() > 0.85,
        "{report}"
    );
    assert!(
        report["blocking_recall"].as_f64().unwrap() > 0.9,
        "{report}"
    );
}

#[tokio::test]
async fn llm_decides_the_uncertain_band_and_every_failure_waits_for_review() {
    let server = LlmServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("prompt.md");
    let mut f = std::fs::File::create(&prompt).unwrap();
    writeln!(
        f,
        "Same {{{{entity}}}}?\nA:\n{{{{left}}}}\nB:\n{{{{right}}}}"
    )
    .unwrap();
    let settings = server.settings(prompt);
    let llm = Adjudicator::from_settings(&settings).unwrap().unwrap();
    let kinds = [
        "good",
        "different",
        "unsure",
        "garbage",
        "slow",
        "broken",
        "confident",
        "low",
    ];
    let probability = |k: &str| match k {
        "confident" => 0.99,
        "low" => 0.05,
        _ => 0.6,
    };
    let mut pairs: Vec<ScoredPair> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| ScoredPair {
            a: i,
            b: i,
            probability: probability(k),
            decision: Decision::from_probability(probability(k), 0.5, &DedupSettings::default()),
            reason: None,
        })
        .collect();
    let started = Instant::now();
    let asked = llm
        .adjudicate("persons", &DedupSettings::default(), &mut pairs, |p| {
            (
                format!("name: {} smith", kinds[p.a]),
                "name: smyth\nemail: [redacted email #1]".into(),
            )
        })
        .await;
    // The slow answer is cut at the timeout, not awaited.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(asked, 6);
    let by = |k: &str| &pairs[kinds.iter().position(|x| *x == k).unwrap()];
    assert_eq!(by("good").decision, Decision::Match);
    assert!(by("good").reason.as_deref().unwrap().contains("typo"));
    assert_eq!(by("different").decision, Decision::NonMatch);
    for k in ["unsure", "garbage", "slow", "broken"] {
        assert_eq!(by(k).decision, Decision::Review, "{k}: {:?}", by(k).reason);
        assert!(by(k).reason.is_some());
    }
    assert!(by("slow").reason.as_deref().unwrap().contains("500 ms"));
    // Outside the band nobody is asked and nothing changes.
    assert_eq!(
        (by("confident").decision, by("confident").reason.as_ref()),
        (Decision::Match, None)
    );
    assert_eq!(
        (by("low").decision, by("low").reason.as_ref()),
        (Decision::NonMatch, None)
    );
    // async-openai retries a 500 within the timeout, so count distinct prompts.
    let mut prompts = server.prompts();
    prompts.sort();
    prompts.dedup();
    assert_eq!(prompts.len(), 6);
    assert!(
        prompts
            .iter()
            .all(|p| p.starts_with("Same persons?") && p.contains("[redacted email #1]"))
    );

    // A wrong key is a failure like any other: the pair waits for review.
    let wrong = LlmSettings {
        api_key: "nope".to_string().into(),
        ..settings.clone()
    };
    let llm = Adjudicator::from_settings(&wrong).unwrap().unwrap();
    let mut one = vec![pairs[0].clone()];
    one[0].decision = Decision::Review;
    llm.adjudicate("persons", &DedupSettings::default(), &mut one, |_| {
        ("a".into(), "b".into())
    })
    .await;
    assert_eq!(one[0].decision, Decision::Review);

    // With no LLM configured there is no adjudicator, and no error.
    assert!(
        Adjudicator::from_settings(&LlmSettings::default())
            .unwrap()
            .is_none()
    );
}

#[test]
fn personal_data_never_reaches_the_prompt_when_redaction_is_on() {
    let profile = Profile::parse(&PEOPLE.replace("MODEL_DIR", "m")).unwrap();
    let row = |e: &str, d: &str| -> BTreeMap<String, String> {
        [
            ("given_name", "Ann"),
            ("surname", "Lee"),
            ("email", e),
            ("date_of_birth", d),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let (l, r) = syncwarden::dedup::llm::render_pair(
        &profile,
        &row("ann@lee.test", "19800101"),
        &row("ann@lee.test", "19800102"),
        true,
    );
    for secret in ["ann@lee.test", "1980"] {
        assert!(!l.contains(secret) && !r.contains(secret), "{l}{r}");
    }
    assert!(l.contains("given_name: Ann"));
}

/// A small catalogue as the store holds items after a sync, three products keyed twice.
fn catalogue() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("A100", "Sony KDL-40EX500 40in Bravia LCD HDTV", "899.00"),
        ("A101", "Samsung LN46A650 46' LCD TV black", "1199.00"),
        (
            "A102",
            "Canon PowerShot SX110 IS digital camera silver",
            "249.00",
        ),
        ("A103", "Nikon Coolpix S550 digital camera blue", "169.95"),
        ("A104", "Logitech Cordless Desktop Wave 920-000264", "79.99"),
        (
            "A105",
            "Griffin Elan Form case for iPhone 3G 8223-IP2EFRMB",
            "39.99",
        ),
        ("A106", "Linksys EtherFast EZXS55W ethernet switch", "29.99"),
        (
            "A107",
            "Panasonic KX-TG1034S DECT 6.0 cordless phone",
            "99.95",
        ),
        ("A108", "Belkin CushTop F8N044-SLV laptop stand", "29.99"),
        ("A109", "Garmin nuvi 260W portable GPS", "199.99"),
        ("A110", "Toshiba D-R560 DVD recorder", "149.99"),
        ("A111", "Apple iPod classic 120GB MB562LL/A", "249.00"),
        ("A112", "Weber Genesis E-320 gas grill", "799.00"),
        (
            "A113",
            "Tripp Lite P502-025 SVGA monitor cable 25ft",
            "24.99",
        ),
        (
            "A114",
            "Monster Cable GameLink component video cable for PS3",
            "59.99",
        ),
        (
            "A115",
            "Sony MDR-NC22 noise cancelling earphones black",
            "49.99",
        ),
        ("A116", "Sanus VMAV wall mount shelf black", "89.99"),
        ("A117", "Netgear ProSafe FS105 ethernet switch", "39.99"),
        (
            "A118",
            "Canon EOS Rebel XS digital SLR with 18-55mm lens",
            "499.00",
        ),
        ("A119", "Kodak EasyShare M552 digital camera pink", "99.00"),
        // The same products again, keyed a second time with other wording.
        (
            "B200",
            "Sony Bravia KDL40EX500 40 inch LCD television",
            "899.00",
        ),
        (
            "B201",
            "Logitech Wave cordless desktop keyboard mouse 920000264",
            "79.99",
        ),
        (
            "B202",
            "Toshiba DR560 DVD recorder with digital tuner",
            "149.99",
        ),
    ]
}

#[tokio::test]
async fn scan_proposes_merges_once_and_decisions_become_training_pairs() {
    use syncwarden::domain::{Endpoint, ProposalStatus, RecordState, Timestamp};
    use syncwarden::store::SyncCommit;

    use crate::helpers::TestDb;

    for db in TestDb::all("scan_proposes_merges_once").await {
        let store = db.open().await;
        let states = catalogue()
            .into_iter()
            .map(|(key, name, price)| RecordState {
                endpoint: Endpoint::Items,
                key: key.into(),
                crm_id: None,
                erp_id: Some(key.into()),
                fields: BTreeMap::from([
                    ("name".to_string(), name.to_string()),
                    ("code".to_string(), key.to_string()),
                    ("price.1".to_string(), price.to_string()),
                ]),
                synced_at: Timestamp::from_micros(1_000_000),
            })
            .collect();
        store
            .commit_sync(
                &SyncCommit {
                    states,
                    ..Default::default()
                },
                Timestamp::from_micros(1_000_000),
            )
            .await
            .unwrap();

        // The shipped products profile and model, as `dedup scan --endpoint items` uses them.
        let profile = Profile::load(Path::new("config/dedup/products.toml")).unwrap();
        let model = syncwarden::dedup::load_model(&profile).unwrap();
        let settings = DedupSettings::default();
        let scan = |now| {
            syncwarden::dedup::scan::scan(
                store.as_ref(),
                &profile,
                &model,
                &settings,
                None,
                Endpoint::Items,
                Vec::new(),
                Timestamp::from_micros(now),
            )
        };
        let report = scan(2_000_000).await.unwrap();
        assert_eq!(report.records, 23);
        let proposals = store
            .dedup_proposals(Some(Endpoint::Items), Some(ProposalStatus::Open))
            .await
            .unwrap();
        let clusters: Vec<Vec<String>> = proposals
            .iter()
            .map(|p| p.proposal.members.clone())
            .collect();
        for planted in [["A100", "B200"], ["A104", "B201"], ["A110", "B202"]] {
            assert!(
                clusters.contains(&planted.map(String::from).to_vec()),
                "{planted:?} not proposed: {clusters:?}"
            );
        }
        assert!(
            clusters
                .iter()
                .all(|c| c.len() == 2 && c[0].starts_with('A') && c[1].starts_with('B')),
            "a proposal mixes distinct products: {clusters:?}"
        );
        assert_eq!(report.new_proposals, clusters.len());
        let first = &proposals[0];
        assert!(first.proposal.before.contains_key(&first.proposal.survivor));
        assert!(first.proposal.fields.iter().any(|f| f.field == "name"));

        // A second scan finds the same clusters and proposes nothing new.
        assert_eq!(scan(3_000_000).await.unwrap().new_proposals, 0);

        // Approve one and reject another: both become labelled pairs for training.
        let dir = tempfile::tempdir().unwrap();
        let feedback = dir.path().join("feedback.csv");
        let approved = store
            .decide_dedup_proposal(
                proposals[0].id,
                ProposalStatus::Approved,
                "ann",
                Timestamp::from_micros(4),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (approved.status, approved.decided_by.as_deref()),
            (ProposalStatus::Approved, Some("ann"))
        );
        syncwarden::dedup::scan::append_feedback(&feedback, &approved, true).unwrap();
        let rejected = store
            .decide_dedup_proposal(
                proposals[1].id,
                ProposalStatus::Rejected,
                "ann",
                Timestamp::from_micros(5),
            )
            .await
            .unwrap()
            .unwrap();
        syncwarden::dedup::scan::append_feedback(&feedback, &rejected, false).unwrap();
        // A decided proposal cannot be decided again.
        assert!(
            store
                .decide_dedup_proposal(
                    proposals[0].id,
                    ProposalStatus::Rejected,
                    "bob",
                    Timestamp::from_micros(6)
                )
                .await
                .unwrap()
                .is_none()
        );
        let pairs = syncwarden::dedup::read_pairs(&profile, &feedback).unwrap();
        assert_eq!(pairs.labels, Some(vec![true, false]));
        assert_eq!(
            pairs.left[0].value(0).map(|v| !v.text.is_empty()),
            Some(true)
        );
        let open = store
            .dedup_proposals(Some(Endpoint::Items), Some(ProposalStatus::Open))
            .await
            .unwrap();
        assert_eq!(open.len(), proposals.len() - 2);
        db.cleanup().await;
    }
}

#[test]
fn streamed_bounded_scoring_agrees_with_scoring_every_pair_of_every_block() {
    use std::collections::HashMap;

    use syncwarden::dedup::{block, score_candidates};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    syncwarden::dedup::bench::generate(&path, 4_000, 11).unwrap();
    let profile = Profile::load(Path::new("config/dedup/people.toml")).unwrap();
    let model = syncwarden::dedup::load_model(&profile).unwrap();
    let settings = DedupSettings::default();
    let table = read_table(&profile, &path, Some("entity_id")).unwrap();
    let (records, truth) = (&table.records, table.truth.as_ref().unwrap());

    // The previous pipeline: all pairs of every block, each pair's features and probability
    // computed on its own, the non-matches dropped afterwards.
    let mut exhaustive = profile.clone();
    exhaustive.blocking.all_pairs_up_to = None;
    let all = block::candidates(&exhaustive, records);
    let previous: HashMap<(usize, usize), Decision> = all
        .pairs
        .iter()
        .map(|(a, b)| (*a as usize, *b as usize))
        .filter_map(|(a, b)| {
            let p = model.probability(&features::pair(&profile, &records[a], &records[b]));
            let d = Decision::from_probability(p, model.threshold, &settings);
            (d != Decision::NonMatch).then_some(((a, b), d))
        })
        .collect();
    let streamed = score_candidates(&profile, &model, &settings, records, &all.pairs);
    assert_eq!(streamed.len(), previous.len());
    assert!(
        streamed
            .iter()
            .all(|p| previous.get(&(p.a, p.b)) == Some(&p.decision))
    );

    // Bounded: blocks over three records compared in a sorted window only.
    let mut bounded = profile.clone();
    bounded.blocking.all_pairs_up_to = Some(3);
    let some = block::candidates(&bounded, records);
    assert!(some.windowed_blocks > 0);
    assert!(some.pairs.len() < all.pairs.len());
    let kept = score_candidates(&profile, &model, &settings, records, &some.pairs);
    assert!(
        kept.iter()
            .all(|p| previous.get(&(p.a, p.b)) == Some(&p.decision))
    );
    let true_matches = |pairs: &mut dyn Iterator<Item = (usize, usize)>| {
        pairs.filter(|(a, b)| truth[*a] == truth[*b]).count()
    };
    let before = true_matches(
        &mut previous
            .iter()
            .filter(|(_, d)| **d == Decision::Match)
            .map(|(k, _)| *k),
    );
    let after = true_matches(
        &mut kept
            .iter()
            .filter(|p| p.decision == Decision::Match)
            .map(|p| (p.a, p.b)),
    );
    assert!(
        after as f64 >= 0.99 * before as f64,
        "bounded blocking kept {after} of {before} true matches"
    );
}

/// `dedup bench` with its default profile, run from a directory that is not the repository:
/// the shipped profile and the model it names are found all the same.
#[test]
fn bench_runs_outside_the_repository_root() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .current_dir(dir.path())
        .args(["dedup", "bench", "--records", "300", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["records"], 300);
    assert!(report["f1"].as_f64().unwrap() > 0.9, "{report}");
}

/// `dedup eval --llm` as a user runs it, against the local OpenAI-compatible server. The model is
/// written by hand so each pair's probability is known: it looks only at the token overlap of the
/// names (Sorensen-Dice), so equal names are sure matches (p 0.999), names sharing one word of
/// two sit in the uncertain band (p 0.73) and names sharing none are sure non-matches (p 0.007).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_with_llm_asks_only_the_uncertain_band_and_failures_wait_for_review() {
    use crate::llm::Reply;

    let server = LlmServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("names.toml");
    std::fs::write(
        &profile,
        format!(
            "entity = \"persons\"\nmodel = \"{}\"\n[[fields]]\nname = \"name\"\nkind = \"name\"\ncolumns = [\"name\"]\n",
            dir.path().join("model").display()
        ),
    )
    .unwrap();
    let parsed = Profile::load(&profile).unwrap();
    let names = features::names(&parsed);
    let weights: Vec<f64> = names
        .iter()
        .map(|n| if n == "name.dice" { 12.0 } else { 0.0 })
        .collect();
    let model = serde_json::json!({
        "format": "syncwarden-dedup-logistic", "version": 1, "entity": "persons",
        "features": names, "mean": vec![0.0; weights.len()], "scale": vec![1.0; weights.len()],
        "weights": weights, "intercept": -5.0, "threshold": 0.5,
    });
    std::fs::create_dir_all(dir.path().join("model")).unwrap();
    std::fs::write(dir.path().join("model/model-v1.json"), model.to_string()).unwrap();

    // The test server answers by the word in the prompt: "good" (no marker) same, "different",
    // "unsure" (low confidence), "garbage" (prose), "broken" (HTTP 500).
    let rows = [
        ("acme good", "acme goods", 1),
        ("acme different", "acme variant", 0),
        ("acme unsure", "acme maybe", 1),
        ("acme garbage", "acme rubbish", 0),
        ("acme broken", "acme smashed", 1),
        // Outside the band the markers are never read: nobody is asked.
        ("zeta different", "zeta different", 1),
        ("omega broken", "delta good", 0),
    ];
    let pairs = dir.path().join("pairs.csv");
    let mut csv = String::from("left_name,right_name,label\n");
    for (l, r, label) in rows {
        csv.push_str(&format!("{l},{r},{label}\n"));
    }
    std::fs::write(&pairs, csv).unwrap();
    let prompt = dir.path().join("prompt.md");
    std::fs::write(&prompt, "Same {{entity}}?\nA:\n{{left}}\nB:\n{{right}}\n").unwrap();

    let eval = |llm: bool, base_url: String| {
        let (profile, pairs, prompt) = (profile.clone(), pairs.clone(), prompt.clone());
        let output = dir.path().join(format!("out-{llm}.csv"));
        tokio::task::spawn_blocking(move || {
            let mut args: Vec<&std::ffi::OsStr> = ["dedup", "eval", "--profile"]
                .iter()
                .map(std::ffi::OsStr::new)
                .collect();
            args.extend([
                profile.as_os_str(),
                "--pairs".as_ref(),
                pairs.as_os_str(),
                "--output".as_ref(),
                output.as_os_str(),
            ]);
            if llm {
                args.push("--llm".as_ref());
            }
            let out = Command::new(env!("CARGO_BIN_EXE_syncwarden"))
                .args(args)
                .env("SYNCWARDEN_LLM__BASE_URL", base_url)
                .env("SYNCWARDEN_LLM__API_KEY", "test-key")
                .env("SYNCWARDEN_LLM__PROMPT", &prompt)
                .env("SYNCWARDEN_LLM__TIMEOUT_MS", "500")
                .env("SYNCWARDEN_LOG__LEVEL", "error")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let decisions: Vec<(String, String)> = std::fs::read_to_string(&output)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .map(|l| {
                    let mut it = l.splitn(3, ',');
                    let _probability = it.next();
                    let decision = it.next().unwrap_or_default().to_string();
                    (decision, it.next().unwrap_or_default().to_string())
                })
                .collect();
            (out.status.success(), stdout, stderr, decisions)
        })
    };
    let decisions = |d: &[(String, String)]| d.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>();

    // Without --llm: the classifier alone, the band pairs all matches at p 0.73.
    let (ok, stdout, stderr, plain) = eval(false, server.base_url.clone()).await.unwrap();
    assert!(ok, "{stderr}");
    assert_eq!(
        decisions(&plain),
        [
            "match",
            "match",
            "match",
            "match",
            "match",
            "match",
            "non_match"
        ]
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["llm_asked"], 0);
    assert!(server.prompts().is_empty());

    // With --llm: the five band pairs are asked, and the answers decide them.
    let (ok, stdout, stderr, judged) = eval(true, server.base_url.clone()).await.unwrap();
    assert!(ok, "{stderr}");
    assert_eq!(
        decisions(&judged),
        [
            "match",
            "non_match",
            "review",
            "review",
            "review",
            "match",
            "non_match"
        ],
        "{judged:?}"
    );
    assert!(judged[0].1.contains("typo"), "{judged:?}");
    assert!(judged[2].1.contains("unsure"), "{judged:?}");
    assert!(judged[3].1.contains("unparsable"), "{judged:?}");
    assert!(judged[5].1.is_empty() && judged[6].1.is_empty());
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["llm_asked"], 5, "{report}");
    assert_eq!(report["review"], 3, "{report}");
    // The classifier alone is reported as before; the final decisions are the LLM's: of the
    // labels (1,0,1,0,1,1,0) the LLM's two matches are both right, one wrong match is gone.
    assert_eq!(report["classifier"]["precision"], 4.0 / 6.0);
    assert_eq!(report["final_decisions"]["precision"], 1.0);
    assert_eq!(report["final_decisions"]["recall"], 0.5);
    let mut prompts = server.prompts();
    prompts.sort();
    prompts.dedup();
    assert_eq!(prompts.len(), 5, "{prompts:?}");
    assert!(
        prompts
            .iter()
            .all(|p| p.starts_with("Same persons?") && p.contains("name: acme ")),
        "{prompts:?}"
    );

    // An LLM that fails every request: the band waits for review, the rest is untouched.
    server.reply(Reply::Broken);
    let (ok, stdout, stderr, failed) = eval(true, server.base_url.clone()).await.unwrap();
    assert!(ok, "{stderr}");
    assert_eq!(
        decisions(&failed),
        [
            "review",
            "review",
            "review",
            "review",
            "review",
            "match",
            "non_match"
        ]
    );
    assert!(failed[..5].iter().all(|(_, why)| !why.is_empty()));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["final_decisions"]["recall"], 0.25);
    // So does one nobody answers at all.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", listener.local_addr().unwrap())
    };
    let (ok, _, stderr, unreachable) = eval(true, closed).await.unwrap();
    assert!(ok, "{stderr}");
    assert_eq!(decisions(&unreachable), decisions(&failed));

    // --llm without an endpoint configured is an error, not a silent classifier-only run.
    let (ok, _, stderr, _) = eval(true, String::new()).await.unwrap();
    assert!(!ok && stderr.contains("base_url"), "{stderr}");
}

//! `syncwarden monitor score` as a user runs it: one series, a tree, and bad input.

use std::path::Path;
use std::process::Command;

fn syncwarden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_syncwarden"))
}

/// A small series with a spike: `timestamp,value` rows in NAB's format.
fn series(n: usize, spike_at: usize) -> String {
    let mut text = String::from("timestamp,value\n");
    for i in 0..n {
        let value = if i == spike_at {
            500.0
        } else {
            50.0 + (i % 17) as f64 * 0.5
        };
        text.push_str(&format!(
            "2026-01-{:02} {:02}:{:02}:00,{value}\n",
            1 + i / 1440,
            (i / 60) % 24,
            i % 60
        ));
    }
    text
}

fn check_scored(input: &str, output: &Path) -> Vec<f64> {
    let written = std::fs::read_to_string(output).unwrap();
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
    let mut scores = Vec::new();
    let mut rows = 0;
    for (got, want) in lines.zip(input.lines().skip(1)) {
        let (prefix, score) = got.rsplit_once(',').unwrap();
        assert_eq!(prefix, want, "row changed");
        let score: f64 = score.parse().unwrap();
        assert!((0.0..=1.0).contains(&score), "score {score}");
        scores.push(score);
        rows += 1;
    }
    assert_eq!(rows, input.lines().count() - 1, "row count");
    scores
}

#[test]
fn scores_one_series_row_for_row_and_flags_the_spike() {
    let dir = tempfile::tempdir().unwrap();
    let text = series(1200, 1000);
    std::fs::write(dir.path().join("in.csv"), &text).unwrap();
    let out = syncwarden()
        .args(["monitor", "score", "--input"])
        .arg(dir.path().join("in.csv"))
        .arg("--output")
        .arg(dir.path().join("out.csv"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["points"], 1200);
    let scores = check_scored(&text, &dir.path().join("out.csv"));
    let top = (0..scores.len())
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
        .unwrap();
    assert_eq!(top, 1000, "the spike should score highest");
}

#[test]
fn scores_a_tree_at_the_same_relative_paths_with_progress() {
    let input = tempfile::tempdir().unwrap();
    let output = tempfile::tempdir().unwrap();
    let (a, b) = (series(400, 300), series(300, 250));
    std::fs::create_dir_all(input.path().join("one")).unwrap();
    std::fs::create_dir_all(input.path().join("two")).unwrap();
    std::fs::write(input.path().join("one/a.csv"), &a).unwrap();
    std::fs::write(input.path().join("two/b.csv"), &b).unwrap();
    let out = syncwarden()
        .args([
            "monitor",
            "score",
            "--detector",
            "windowed-gaussian",
            "--input-dir",
        ])
        .arg(input.path())
        .arg("--output-dir")
        .arg(output.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[1/2] one/a.csv") && stderr.contains("[2/2] two/b.csv"),
        "{stderr}"
    );
    check_scored(&a, &output.path().join("one/a.csv"));
    check_scored(&b, &output.path().join("two/b.csv"));
}

#[test]
fn bad_input_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(
        &path,
        "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00,n/a\n",
    )
    .unwrap();
    let out = syncwarden()
        .args(["monitor", "score", "--input"])
        .arg(&path)
        .arg("--output")
        .arg(dir.path().join("out.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.csv, line 3: value `n/a` is not a number"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("out.csv").exists(),
        "no output for bad input"
    );
}

#[tokio::test]
async fn findings_are_listed_acknowledged_and_resolved_from_the_command_line() {
    use syncwarden::config::DatabaseSettings;
    use syncwarden::domain::Timestamp;
    use syncwarden::monitor::{NewFinding, Severity};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("syncwarden.db").display());
    let store = syncwarden::store::connect(&url.into(), &DatabaseSettings::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let at = Timestamp::parse_rfc3339("2026-11-28T12:00:00Z").unwrap();
    let finding = store
        .upsert_finding(&NewFinding {
            kind: "freshness".into(),
            severity: Severity::Warning,
            fingerprint: "freshness:items:crm".into(),
            title: "No data moved for items:crm in 20 min (usually every 5 min)".into(),
            evidence: serde_json::json!({"silence_secs": 1200}),
            started_at: at,
            detected_at: at + std::time::Duration::from_secs(900),
        })
        .await
        .unwrap();
    store.close().await;

    let monitor = |args: &[&str]| {
        let out = syncwarden()
            .arg("monitor")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = monitor(&["findings", "--state", "open"]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["count"], 1);
    assert_eq!(report["mean_time_to_detect_secs"], 900.0);
    assert_eq!(report["findings"][0]["fingerprint"], "freshness:items:crm");

    let id = finding.id.to_string();
    let (ok, stdout, stderr) = monitor(&["ack", &id]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(r#""state":"acknowledged""#), "{stdout}");
    let (ok, _, stderr) = monitor(&["ack", &id]);
    assert!(
        !ok && stderr.contains(&format!("no finding {id}")),
        "{stderr}"
    );
    let (ok, stdout, stderr) = monitor(&["resolve", &id]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(r#""state":"resolved""#), "{stdout}");
    let (_, stdout, _) = monitor(&["findings", "--state", "open"]);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["count"], 0);
    let (ok, _, stderr) = monitor(&["findings", "--state", "closed"]);
    assert!(!ok && stderr.contains("unknown state `closed`"), "{stderr}");
}

#[tokio::test]
async fn metrics_come_from_the_rollups_per_scope_and_hour() {
    use syncwarden::config::DatabaseSettings;
    use syncwarden::domain::Timestamp;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("syncwarden.db").display());
    let store = syncwarden::store::connect(&url.into(), &DatabaseSettings::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    // Two hours of item price writes into the CRM, one a minute, every fifth failing, plus
    // events outside the asked range.
    let events: Vec<_> = (0..150)
        .map(|n| {
            let mut e = crate::helpers::event(n);
            e.endpoint = syncwarden::domain::Endpoint::Items;
            e.outcome = if n % 5 == 0 {
                syncwarden::domain::Outcome::Failed
            } else {
                syncwarden::domain::Outcome::Applied
            };
            e.latency_ms = Some(100 + (n % 60) as i64);
            e
        })
        .collect();
    store
        .append_events(
            &events,
            Timestamp::parse_rfc3339("2026-11-24T00:00:00Z").unwrap(),
        )
        .await
        .unwrap();
    store.close().await;
    let out = syncwarden()
        .args(["monitor", "metrics", "--from", "2026-11-23T00:00:00Z"])
        .args([
            "--to",
            "2026-11-23T02:00:00Z",
            "--resolution",
            "hour",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let series: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hours = series
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"] == "items:crm")
        .unwrap_or_else(|| panic!("no items:crm series: {series}"))["points"]
        .as_array()
        .unwrap();
    assert_eq!(hours.len(), 2, "{series}");
    assert_eq!(hours[0]["attempts"], 60);
    assert_eq!(hours[0]["failures"], 12);
    assert_eq!(hours[0]["success_rate"], 0.8);
    assert_eq!(hours[0]["latency_p50_ms"], 129);
    assert_eq!(hours[1]["start"], "2026-11-23T01:00:00Z");
}

#[test]
fn detector_keys_of_the_configuration_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let text = series(1200, 1000);
    std::fs::write(dir.path().join("in.csv"), &text).unwrap();
    let score = |warmup: Option<&str>| {
        let mut command = syncwarden();
        command
            .args(["monitor", "score", "--input"])
            .arg(dir.path().join("in.csv"))
            .arg("--output")
            .arg(dir.path().join("out.csv"));
        if let Some(warmup) = warmup {
            command.env("SYNCWARDEN_MONITOR__DETECTOR__WARMUP", warmup);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_scored(&text, &dir.path().join("out.csv"))
    };
    assert!(score(None)[1000] >= 0.4, "the spike alarms by default");
    assert!(
        score(Some("5000")).iter().all(|s| *s == 0.0),
        "a warm-up longer than the series silences every point"
    );
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[monitor.seasonal]\nthreshhold = 3.0\n").unwrap();
    let out = syncwarden()
        .args(["monitor", "findings", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("threshhold"),
        "{stderr}"
    );
}

/// The stored roll-ups equal counts made directly from the inserted events, per hour and scope,
/// after a pass, a late batch into hours already rolled up, and a repeated pass; the day adds up
/// its hours; API calls count per call under their endpoint and connector.
#[tokio::test]
async fn rollups_equal_a_direct_computation_from_the_events() {
    use std::collections::BTreeMap;
    use std::time::Duration;
    use syncwarden::domain::{Endpoint, Outcome, System, Timestamp};
    use syncwarden::monitor::rollup::{self, Resolution, series};
    use syncwarden::sync::connectors::CallTally;

    for db in
        crate::helpers::TestDb::all("monitor::rollups_equal_a_direct_computation_from_the_events")
            .await
    {
        let store = db.open().await;
        let t0 = Timestamp::parse_rfc3339("2026-11-23T00:00:00Z").unwrap();
        let outcomes = [
            Outcome::Applied,
            Outcome::Applied,
            Outcome::Failed,
            Outcome::Conflict,
            Outcome::ConflictResolved,
            Outcome::Drift,
            Outcome::Missing,
            Outcome::SkippedNotOwner,
        ];
        let mut rng = fastrand::Rng::with_seed(3);
        let events: Vec<_> = (0..1500)
            .map(|n| {
                let mut e = crate::helpers::event(n);
                e.endpoint = Endpoint::ALL[rng.usize(..3)];
                e.target_system = if rng.bool() { System::Crm } else { System::Erp };
                e.outcome = outcomes[rng.usize(..outcomes.len())];
                e.latency_ms = Some(rng.i64(1..1000));
                e.occurred_at = t0 + Duration::from_secs(rng.u64(0..3 * 3600));
                e
            })
            .collect();
        let later = t0 + Duration::from_secs(4 * 3600);
        store.append_events(&events[..1000], later).await.unwrap();
        let calls = CallTally {
            endpoint: Some(Endpoint::Items),
            attempted: 10,
            succeeded: 7,
            latencies_ms: [(50, 3), (80, 7)].into(),
        };
        store
            .record_api_calls(System::Crm, &[calls], t0 + Duration::from_secs(1800))
            .await
            .unwrap();
        rollup::run_once(store.as_ref(), later).await.unwrap();
        store.append_events(&events[1000..], later).await.unwrap();
        rollup::run_once(store.as_ref(), later).await.unwrap();
        rollup::run_once(store.as_ref(), later).await.unwrap();

        // (hour, scope) -> attempts, failures, events, conflicts opened and resolved,
        // differences, latencies of the writes.
        type Counts = (u64, u64, u64, u64, u64, u64, Vec<i64>);
        let mut direct: BTreeMap<(i64, String), Counts> = BTreeMap::new();
        for e in &events {
            let hour = e.occurred_at.as_micros().div_euclid(3_600_000_000);
            let (endpoint, system) = (e.endpoint.as_str(), e.target_system.as_str());
            for scope in [
                "overall".to_string(),
                format!("endpoint:{endpoint}"),
                format!("connector:{system}"),
                format!("{endpoint}:{system}"),
            ] {
                let c = direct.entry((hour, scope)).or_default();
                c.2 += 1;
                match e.outcome {
                    Outcome::Applied | Outcome::Failed => {
                        c.0 += 1;
                        c.1 += u64::from(e.outcome == Outcome::Failed);
                        c.6.push(e.latency_ms.unwrap());
                    }
                    Outcome::Conflict => c.3 += 1,
                    Outcome::ConflictResolved => c.4 += 1,
                    Outcome::Drift | Outcome::Missing => c.5 += 1,
                    _ => {}
                }
            }
        }
        let rows = store.rollups(Resolution::Hour, t0, later).await.unwrap();
        let mut checked = 0;
        for s in series(&rows) {
            for p in &s.points {
                let hour = p.start.as_micros().div_euclid(3_600_000_000);
                let Some(c) = direct.get_mut(&(hour, s.scope.clone())) else {
                    assert!(
                        p.api_calls_attempted > 0,
                        "a row of neither events nor calls: {s:?}"
                    );
                    continue;
                };
                c.6.sort_unstable();
                let p95 = (!c.6.is_empty()).then(|| {
                    let rank = ((0.95 * c.6.len() as f64).ceil() as usize).max(1);
                    c.6[rank - 1]
                });
                assert_eq!(
                    (
                        p.attempts,
                        p.failures,
                        p.events,
                        p.conflicts_opened,
                        p.conflicts_resolved,
                        p.reconcile_differences,
                        p.latency_p95_ms
                    ),
                    (c.0, c.1, c.2, c.3, c.4, c.5, p95),
                    "{} at {}",
                    s.scope,
                    p.start
                );
                checked += 1;
            }
        }
        assert_eq!(checked, direct.len(), "every hour and scope has its row");
        let api = |scope: &str| {
            series(&rows)
                .into_iter()
                .find(|s| s.scope == scope)
                .map(|s| {
                    (
                        s.points[0].api_calls_attempted,
                        s.points[0].api_calls_succeeded,
                        s.points[0].api_latency_p50_ms,
                    )
                })
        };
        assert_eq!(api("items:crm"), Some((10, 7, Some(80))));
        assert_eq!(api("connector:crm"), Some((10, 7, Some(80))));
        assert_eq!(api("overall"), Some((10, 7, Some(80))));

        let day = store.rollups(Resolution::Day, t0, later).await.unwrap();
        let overall = day.iter().find(|r| r.scope == "overall").unwrap();
        assert_eq!(overall.values.events, 1500);
        assert_eq!(
            overall.values.writes_attempted,
            direct
                .iter()
                .filter(|((_, s), _)| s == "overall")
                .map(|(_, c)| c.0)
                .sum::<u64>()
        );
        store.close().await;
        db.cleanup().await;
    }
}

/// The sandbox scenario runner end to end on a tiny scenario: every incident kind is run against
/// the sandbox servers, and the price drift injected into the CRM is detected at the next price
/// check.
#[tokio::test]
async fn the_sandbox_eval_runs_a_tiny_scenario_of_every_incident_kind() {
    use syncwarden::monitor::sandbox_eval::{SandboxEvalOptions, run_sandbox_eval};

    let options = SandboxEvalOptions {
        runs: 1,
        learn_hours: 1,
        scored_hours: 1,
        clean_hours: 1,
        writes_per_minute: 2,
        items: 20,
        write_latency_ms: 0,
        jobs: 2,
        seed: 7,
    };
    let report = run_sandbox_eval(options, Default::default()).await.unwrap();
    assert_eq!(report.incidents.len(), 5);
    let drift = report
        .incidents
        .iter()
        .find(|i| serde_json::to_value(i.kind).unwrap() == "price_drift")
        .unwrap();
    assert_eq!(drift.detected, 1, "{report:#?}");
    assert!(drift.max_minutes_to_detect.unwrap() <= 15, "{report:#?}");
    assert!(report.false_findings_per_clean_week.is_some());
}

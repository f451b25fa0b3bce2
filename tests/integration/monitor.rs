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
async fn metrics_come_from_the_event_log_per_scope_and_hour() {
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
    let hours = series["items:crm"].as_array().unwrap();
    assert_eq!(hours.len(), 2, "{series}");
    assert_eq!(hours[0]["attempts"], 60);
    assert_eq!(hours[0]["failures"], 12);
    assert_eq!(hours[0]["success_rate"], 0.8);
    assert_eq!(hours[0]["latency_p50_ms"], 129);
    assert_eq!(hours[1]["start"], "2026-11-23T01:00:00Z");
}

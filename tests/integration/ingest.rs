use serde_json::{Value, json};
use syncwarden::sync::events::to_wire_json;

use crate::helpers::{TestApp, TestDb, events};

fn ndjson(range: std::ops::Range<usize>) -> String {
    events(range)
        .iter()
        .map(|e| to_wire_json(e) + "\n")
        .collect()
}

fn array(range: std::ops::Range<usize>) -> String {
    let items: Vec<Value> = events(range)
        .iter()
        .map(|e| serde_json::from_str(&to_wire_json(e)).unwrap())
        .collect();
    serde_json::to_string(&items).unwrap()
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].clone())
}

#[tokio::test]
async fn good_json_and_ndjson_batches_are_stored_once() {
    for db in TestDb::all("ingest::good_json_and_ndjson_batches_are_stored_once").await {
        let app = TestApp::spawn(db.settings()).await;
        let r = app.post_events("application/json", array(0..20)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"accepted": 20, "duplicates": 0})
        );

        let r = app
            .post_events("application/x-ndjson", ndjson(10..30))
            .await;
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"accepted": 10, "duplicates": 10})
        );

        // NDJSON without a content type is recognised too.
        let r = app.post_events("text/plain", ndjson(30..31)).await;
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"accepted": 1, "duplicates": 0})
        );

        let stored = app.store.query_events(&Default::default()).await.unwrap();
        let stored: Vec<_> = stored.into_iter().map(|e| e.event).collect();
        assert_eq!(stored, events(0..31));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn bad_batches_get_a_4xx_naming_the_problem_and_store_nothing() {
    let db = TestDb::sqlite();
    let mut settings = db.settings();
    settings.server.body_limit_bytes = 64 * 1024;
    let app = TestApp::spawn(settings).await;

    let good = ndjson(0..3);
    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();

    // Malformed JSON on line 2.
    lines[1] = lines[1][..40].to_string();
    let (status, err) = error_of(
        app.post_events("application/x-ndjson", lines.join("\n"))
            .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str(), err["line"].as_u64()),
        (400, Some("malformed_json"), Some(2))
    );

    // A missing field in the third array element.
    let mut items: Vec<Value> = serde_json::from_str(&array(0..3)).unwrap();
    items[2].as_object_mut().unwrap().remove("occurred_at");
    let (status, err) = error_of(
        app.post_events("application/json", serde_json::to_string(&items).unwrap())
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        (
            err["code"].as_str(),
            err["field"].as_str(),
            err["line"].as_u64()
        ),
        (Some("missing_field"), Some("occurred_at"), Some(3))
    );
    assert!(err["message"].as_str().unwrap().contains("occurred_at"));

    // A wrong type.
    let mut items: Vec<Value> = serde_json::from_str(&array(0..3)).unwrap();
    items[0]["latency_ms"] = json!("slow");
    let (status, err) = error_of(
        app.post_events("application/json", serde_json::to_string(&items).unwrap())
            .await,
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str(), err["line"].as_u64()),
        (422, Some("latency_ms"), Some(1))
    );

    // An unknown endpoint value.
    items[0]["latency_ms"] = json!(5);
    items[1]["endpoint"] = json!("opportunities");
    let (status, err) = error_of(
        app.post_events("application/json", serde_json::to_string(&items).unwrap())
            .await,
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str(), err["line"].as_u64()),
        (422, Some("endpoint"), Some(2))
    );

    // Oversize body.
    let big = ndjson(0..400);
    assert!(big.len() > 64 * 1024);
    let (status, err) = error_of(app.post_events("application/x-ndjson", big).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // A replayed key with different content refuses the whole batch.
    let r = app.post_events("application/x-ndjson", ndjson(0..2)).await;
    assert_eq!(r.status(), 200);
    let mut changed: Vec<Value> = serde_json::from_str(&array(2..5)).unwrap();
    let mut replay: Value = serde_json::from_str(&array(1..2)).unwrap();
    replay[0]["new_value"] = json!("different");
    changed.push(replay[0].take());
    let (status, err) = error_of(
        app.post_events("application/json", serde_json::to_string(&changed).unwrap())
            .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str(), err["line"].as_u64()),
        (409, Some("idempotency_conflict"), Some(4))
    );

    assert_eq!(
        app.store.count_events().await.unwrap(),
        2,
        "only the one good batch is stored"
    );
}

#[tokio::test]
async fn ingest_token_is_required_when_configured() {
    let db = TestDb::sqlite();
    let mut settings = db.settings();
    settings.ingest.token = "s3cret-token".to_string().into();
    let app = TestApp::spawn(settings).await;
    let url = format!("{}/v1/events", app.base);
    let without = app
        .client
        .post(&url)
        .body(ndjson(0..1))
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(without).await;
    assert_eq!((status, err["code"].as_str()), (401, Some("unauthorized")));
    let wrong = app
        .client
        .post(&url)
        .bearer_auth("s3cret-tokeN")
        .body(ndjson(0..1))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .client
        .post(&url)
        .bearer_auth("s3cret-token")
        .body(ndjson(0..1))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(app.store.count_events().await.unwrap(), 1);
}

#[tokio::test]
async fn health_readiness_and_unknown_routes() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.settings()).await;
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let (status, err) = error_of(
        app.client
            .get(format!("{}/v1/nothing", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, err["code"].as_str()), (404, Some("not_found")));
}

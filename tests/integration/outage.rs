//! PostgreSQL unreachable for a while, cut by a TCP proxy between syncwarden and the database (the
//! shared server keeps running for the other tests): syncwarden says it is not ready, refuses
//! what it cannot store, and recovers on its own without losing acknowledged data.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use syncwarden::sync::events::to_wire_json;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{TestApp, TestDb, all_events, events};

/// A TCP proxy that can be cut: while cut it drops new connections and the live ones.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    live: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let live = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut2, live2) = (cut.clone(), live.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if cut2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused mid-handshake
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                live2.lock().unwrap().push(task);
            }
        });
        Self { port, cut, live }
    }

    fn cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        if cut {
            for task in self.live.lock().unwrap().drain(..) {
                task.abort();
            }
        }
    }
}

#[tokio::test]
async fn postgres_unreachable_for_a_while_then_back_loses_nothing_acknowledged() {
    let Some(db) = TestDb::postgres("outage::postgres_unreachable_for_a_while_then_back").await
    else {
        return;
    };
    // postgres://user@host:port/db: the proxy stands in for host:port.
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (credentials, rest) = rest.rsplit_once('@').unwrap_or(("", rest));
    let (authority, database) = rest.split_once('/').unwrap();
    let target = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:5432")
    };
    let proxy = Proxy::start(target).await;
    let user = if credentials.is_empty() {
        String::new()
    } else {
        format!("{credentials}@")
    };
    let through_proxy = format!("{scheme}://{user}127.0.0.1:{}/{database}", proxy.port);
    let mut settings = db.settings();
    settings.database.url = through_proxy.into();
    settings.database.acquire_timeout_secs = 1;
    let app = TestApp::spawn(settings).await;
    let client = &app.client;
    let ready = || async {
        client
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let post = |from: usize| {
        let body: String = events(from..from + 50)
            .iter()
            .map(|e| to_wire_json(e) + "\n")
            .collect();
        app.post_events("application/x-ndjson", body)
    };
    assert_eq!(ready().await, 200);
    assert_eq!(post(0).await.status().as_u16(), 200);

    proxy.cut(true);
    assert_eq!(
        ready().await,
        503,
        "not ready while the database is unreachable"
    );
    let refused = post(50).await;
    assert_eq!(
        refused.status().as_u16(),
        503,
        "nothing is acknowledged that was not stored"
    );

    proxy.cut(false);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ready().await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "never became ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The client retries what was refused; everything acknowledged is there once.
    assert_eq!(post(50).await.status().as_u16(), 200);
    assert_eq!(post(0).await.status().as_u16(), 200, "a replay is a no-op");
    let stored = all_events(app.store.as_ref()).await;
    assert_eq!(stored.len(), 100);
    drop(app);
    db.cleanup().await;
}

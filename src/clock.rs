//! The one clock everything time-dependent reads, so tests and scenario runs can move time by hand.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::domain::Timestamp;

#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

enum Inner {
    System,
    /// Manual time: `now` only moves when `advance` or `set` is called; sleepers wake when it passes.
    Manual(watch::Sender<Timestamp>),
}

impl Clock {
    pub fn system() -> Self {
        Self {
            inner: Arc::new(Inner::System),
        }
    }

    pub fn manual(start: Timestamp) -> Self {
        Self {
            inner: Arc::new(Inner::Manual(watch::Sender::new(start))),
        }
    }

    pub fn now(&self) -> Timestamp {
        match &*self.inner {
            Inner::System => Timestamp::now_utc(),
            Inner::Manual(tx) => *tx.borrow(),
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(&*self.inner, Inner::Manual(_))
    }

    /// Moves a manual clock forward; a no-op on the system clock.
    pub fn advance(&self, by: Duration) {
        if let Inner::Manual(tx) = &*self.inner {
            tx.send_modify(|t| *t = *t + by);
        }
    }

    /// Waits until the clock has moved `duration` past the time of the call.
    pub async fn sleep(&self, duration: Duration) {
        match &*self.inner {
            Inner::System => tokio::time::sleep(duration).await,
            Inner::Manual(tx) => {
                let deadline = *tx.borrow() + duration;
                let mut rx = tx.subscribe();
                // The sender lives in `self`, so the channel cannot close while we wait.
                let _ = rx.wait_for(|now| *now >= deadline).await;
            }
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_manual() { "manual" } else { "system" };
        write!(f, "Clock({kind}, {})", self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_when_advanced() {
        let start = Timestamp::parse_rfc3339("2026-11-23T00:00:00Z").unwrap();
        let clock = Clock::manual(start);
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep(Duration::from_secs(3600)).await })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(1800));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1800));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(clock.now(), start + Duration::from_secs(3600));
    }
}

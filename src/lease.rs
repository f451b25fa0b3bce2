//! Leases on scheduled jobs, kept in the store: with several instances on one PostgreSQL
//! database, each job (an endpoint's sync, the monitor's pass, the alert evaluation, partition
//! maintenance) runs on one instance at a time, and another takes it over once the holder stops
//! renewing it (a crashed instance) — at most one lease length later.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::domain::Timestamp;
use crate::store::{Store, StoreError};

/// The default lease length, `sync.lease_secs`.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("held by {holder} until {until}")]
    Busy { holder: String, until: Timestamp },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One holder's leases: the holder name is unique per process and component.
#[derive(Clone)]
pub struct Leases {
    store: Arc<dyn Store>,
    clock: Clock,
    holder: String,
    ttl: Duration,
}

impl Leases {
    pub fn new(store: Arc<dyn Store>, clock: Clock, ttl: Duration) -> Self {
        Self {
            store,
            clock,
            holder: format!(
                "{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            ttl,
        }
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// How long a lease lasts without renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes (or renews) the lease on `job` for one lease length, or says who has it.
    pub async fn take(&self, job: &str) -> Result<(), LeaseError> {
        let now = self.clock.now();
        if self
            .store
            .acquire_lease(job, &self.holder, now + self.ttl, now)
            .await?
        {
            return Ok(());
        }
        let (holder, until) = self
            .store
            .lease(job)
            .await?
            .unwrap_or_else(|| ("another instance".into(), now));
        Err(LeaseError::Busy { holder, until })
    }

    /// Gives the lease on `job` up, so another instance need not wait for it to expire.
    pub async fn release(&self, job: &str) {
        if let Err(e) = self.store.release_lease(job, &self.holder).await {
            tracing::warn!(job, error = %e, "could not release the lease");
        }
    }

    /// Runs `work` under the lease on `job`, renewed at a third of its length beside the work, so
    /// a long run keeps it and a dead process loses it; released at the end. `Busy` when another
    /// instance holds it, or took it over mid-way (then the work is abandoned, as a crash would
    /// abandon it, rather than run twice at once).
    pub async fn hold<F: Future>(&self, job: &str, work: F) -> Result<F::Output, LeaseError> {
        self.take(job).await?;
        // Renewals run beside the work, not between its steps: a renewal waiting for the store
        // must not stop the work that holds the store's one writer.
        let renewals = async {
            loop {
                self.clock.sleep(self.ttl / 3).await;
                match self.take(job).await {
                    Ok(()) => {}
                    Err(e @ LeaseError::Busy { .. }) => {
                        tracing::error!(job, error = %e, "lost the lease; abandoning the work");
                        return e;
                    }
                    // The lease is still ours until it expires; the next renewal tries again.
                    Err(e) => tracing::warn!(job, error = %e, "could not renew the lease"),
                }
            }
        };
        let result = tokio::select! {
            output = work => Ok(output),
            lost = renewals => Err(lost),
        };
        self.release(job).await;
        result
    }
}

//! The monitor in the running service: every minute it reads the field events of the minutes
//! that have ended since its last pass, feeds them per scope to the watcher (a quiet minute is fed
//! too, or a silent stop would go unseen) and records the findings in the store. With several
//! instances on one database every instance watches (so a standby's baselines are warm when it
//! takes over), but only the holder of the monitor's lease records, and only the minutes past the
//! shared mark: each minute's findings are recorded once across instances.
//! Each pass also brings the stored metric roll-ups up to date and, with the sync running, judges
//! the reconciliations this instance finished since and, every price-check interval, the prices on
//! both sides (findings have fingerprints, so two instances checking prices update one finding).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::checks::SystemChecks;
use super::metrics::{Bucket, Scope, bucket_events, events_between};
use super::rollup;
use super::watch::{Report, Watcher, record};
use crate::clock::Clock;
use crate::domain::Timestamp;
use crate::lease::{LeaseError, Leases};
use crate::store::{Store, StoreError};

/// The lease and mark of the live monitor.
const JOB: &str = "monitor:live";

const MINUTE: Duration = Duration::from_secs(60);

/// Events may be recorded a little after they occurred (batches, clocks): a minute is read only
/// once this much more has passed.
const GRACE: Duration = Duration::from_secs(60);

/// At most this much of the log is read per query, so a long catch-up stays in bounded memory.
const SPAN_MINUTES: u64 = 60;

fn minute_floor(t: Timestamp) -> Timestamp {
    Timestamp::from_micros(t.as_micros().div_euclid(60_000_000) * 60_000_000)
}

pub struct LiveMonitor {
    store: Arc<dyn Store>,
    watcher: Watcher,
    /// Start of the next minute to read.
    next: Timestamp,
    /// Every scope that ever had an event (by name, for a stable order): each is fed every
    /// minute from then on.
    scopes: BTreeMap<String, Scope>,
    /// Findings of watched minutes not yet recorded, by minute.
    pending: Vec<(Timestamp, Vec<Report>)>,
    /// Set when instances share the store: record only under the lease, past the mark.
    leases: Option<Leases>,
    /// The checks of the CRM and ERP themselves (when the sync runs), how often prices are
    /// checked, and when next.
    checks: Option<(SystemChecks, Duration, Timestamp)>,
}

impl LiveMonitor {
    /// Watches the minutes from the one containing `start` on.
    pub fn new(store: Arc<dyn Store>, watcher: Watcher, start: Timestamp) -> Self {
        Self {
            store,
            watcher,
            next: minute_floor(start),
            scopes: BTreeMap::new(),
            pending: Vec::new(),
            leases: None,
            checks: None,
        }
    }

    /// Shares the recording with other instances on the same store (see the module comment).
    pub fn with_leases(mut self, leases: Leases) -> Self {
        self.leases = Some(leases);
        self
    }

    /// Adds the price and drift checks; prices are first checked at the next pass.
    pub fn with_checks(mut self, checks: SystemChecks, price_every: Duration) -> Self {
        self.checks = Some((checks, price_every, self.next));
        self
    }

    /// Checks prices now (whatever the interval); returns how many findings it opened or resolved.
    /// A check that could not read both sides reports nothing and is logged.
    pub async fn check_prices(&mut self, now: Timestamp) -> Result<usize, StoreError> {
        let Some((checks, every, next)) = &mut self.checks else {
            return Ok(0);
        };
        *next = now + *every;
        let reports = match checks.check_prices(now).await {
            Ok(reports) => reports,
            Err(e) => {
                tracing::warn!(error = %e, "price check failed");
                Vec::new()
            }
        };
        record(self.store.as_ref(), &reports).await?;
        Ok(reports.len())
    }

    /// Reads and judges every minute that ended at least [`GRACE`] before `now`, and records the
    /// findings (when this instance holds the monitor); returns how many it recorded.
    pub async fn run_once(&mut self, now: Timestamp) -> Result<usize, StoreError> {
        self.watch(now).await?;
        let recorded = self.record_watched().await?;
        Ok(recorded + self.check_systems(now).await?)
    }

    /// Records the watched minutes' findings: all of them, or with instances sharing the store,
    /// those of the minutes past the shared mark when this instance holds the monitor.
    async fn record_watched(&mut self) -> Result<usize, StoreError> {
        let Some(leases) = self.leases.clone() else {
            return self.record_pending(None).await;
        };
        match leases.hold(JOB, self.record_shared()).await {
            Ok(recorded) => recorded,
            Err(LeaseError::Busy { .. }) => {
                // The holder records; what it has covered need not be kept for a takeover.
                let mark = self.store.job_mark(JOB).await?;
                self.pending.retain(|(at, _)| mark.is_none_or(|m| *at >= m));
                Ok(0)
            }
            Err(LeaseError::Store(e)) => Err(e),
        }
    }

    /// Brings the roll-ups up to date and judges drift and (when due) prices; returns how many
    /// findings were opened or resolved.
    async fn check_systems(&mut self, now: Timestamp) -> Result<usize, StoreError> {
        rollup::run_once(self.store.as_ref(), now).await?;
        let mut reports = 0;
        if let Some((checks, _, next)) = &mut self.checks {
            let drift: Vec<Report> = checks.check_drift();
            reports += drift.len();
            record(self.store.as_ref(), &drift).await?;
            if now >= *next {
                reports += self.check_prices(now).await?;
            }
        }
        Ok(reports)
    }

    /// Records the pending minutes past the shared mark, then moves the mark to what this
    /// instance has watched.
    async fn record_shared(&mut self) -> Result<usize, StoreError> {
        let mark = self.store.job_mark(JOB).await?;
        let recorded = self.record_pending(mark).await?;
        self.store.advance_job_mark(JOB, self.next).await?;
        Ok(recorded)
    }

    /// Records the pending findings of minutes from `from` on (all without it). A failure keeps
    /// them all for the next pass.
    async fn record_pending(&mut self, from: Option<Timestamp>) -> Result<usize, StoreError> {
        let mut recorded = 0;
        for (at, found) in &self.pending {
            if from.is_none_or(|m| *at >= m) {
                record(self.store.as_ref(), found).await?;
                recorded += found.len();
            }
        }
        self.pending.clear();
        Ok(recorded)
    }

    /// Feeds every minute that ended at least [`GRACE`] before `now` to the watcher; the findings
    /// wait in `pending`.
    async fn watch(&mut self, now: Timestamp) -> Result<(), StoreError> {
        let until = minute_floor(now - GRACE);
        while self.next < until {
            let span_end = (self.next + MINUTE * SPAN_MINUTES as u32).min(until);
            let events = events_between(self.store.as_ref(), self.next, span_end).await?;
            let mut minutes: HashMap<Scope, Vec<Bucket>> = bucket_events(&events, MINUTE);
            for scope in minutes.keys() {
                self.scopes.insert(scope.to_string(), *scope);
            }
            let mut at = self.next;
            while at < span_end {
                for scope in self.scopes.values() {
                    let bucket = minutes
                        .get_mut(scope)
                        .and_then(|b| {
                            let i = b.iter().position(|m| m.start == at)?;
                            Some(std::mem::replace(&mut b[i], Bucket::empty(at)))
                        })
                        .unwrap_or_else(|| Bucket::empty(at));
                    let found = self.watcher.observe(*scope, &bucket);
                    if !found.is_empty() {
                        self.pending.push((at, found));
                    }
                }
                at = at + MINUTE;
            }
            self.next = span_end;
        }
        Ok(())
    }
}

/// Runs passes every minute of `clock` until `stop` turns true.
pub async fn run(mut monitor: LiveMonitor, clock: Clock, mut stop: watch::Receiver<bool>) {
    loop {
        match monitor.run_once(clock.now()).await {
            Ok(0) => {}
            Ok(reports) => tracing::info!(reports, "monitor pass recorded findings"),
            Err(e) => tracing::warn!(error = %e, "monitor pass failed"),
        }
        tokio::select! {
            () = clock.sleep(MINUTE) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

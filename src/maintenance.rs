//! Event-log maintenance, run by `serve` on one instance at a time (a lease): on PostgreSQL the
//! monthly partitions are made ahead of time, and with retention on, months older than
//! `retention_months` are archived to files, then detached and dropped. The event log is the
//! audit record: a month is dropped only after its archive is written, synced and counted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, Months, TimeZone, Utc};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::domain::Timestamp;
use crate::lease::{LeaseError, Leases};
use crate::store::{EventPartition, EventQuery, Store, StoreError};

/// The lease job of the maintenance pass.
const JOB: &str = "maintenance:event-log";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceSettings {
    /// Seconds between passes.
    pub interval_secs: u64,
    /// Monthly partitions made ahead of the current month (PostgreSQL).
    pub partition_months_ahead: u32,
    /// Months of events kept in the database (0: all, the default).
    pub retention_months: u32,
    /// Where archived months go; empty means `<data_dir>/archive`.
    pub archive_dir: PathBuf,
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        Self {
            interval_secs: 3600,
            partition_months_ahead: 3,
            retention_months: 0,
            archive_dir: PathBuf::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("archive {path}: {source}")]
    Archive {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot encode event {id} for the archive: {source}")]
    Encode { id: i64, source: serde_json::Error },
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Partitions made.
    pub created: Vec<String>,
    /// Partitions archived and dropped, with their row counts and archive files.
    pub archived: Vec<(String, i64, PathBuf)>,
}

pub struct Maintenance {
    store: Arc<dyn Store>,
    settings: MaintenanceSettings,
    archive_dir: PathBuf,
}

impl Maintenance {
    pub fn new(store: Arc<dyn Store>, settings: &MaintenanceSettings, data_dir: &Path) -> Self {
        let archive_dir = if settings.archive_dir.as_os_str().is_empty() {
            data_dir.join("archive")
        } else {
            settings.archive_dir.clone()
        };
        Self {
            store,
            settings: settings.clone(),
            archive_dir,
        }
    }

    /// Makes the partitions due by `now`, then archives and drops the expired ones.
    pub async fn run_once(&self, now: Timestamp) -> Result<MaintenanceReport, MaintenanceError> {
        let mut report = MaintenanceReport {
            created: self
                .store
                .ensure_event_partitions(now, 1 + self.settings.partition_months_ahead)
                .await?,
            ..Default::default()
        };
        let Some(cutoff) = retention_cutoff(now, self.settings.retention_months) else {
            return Ok(report);
        };
        for partition in self.store.event_partitions().await? {
            if partition.to > cutoff {
                continue;
            }
            let (rows, path) = self.archive(&partition).await?;
            self.store.drop_event_partition(&partition, rows).await?;
            tracing::info!(partition = %partition.name, rows, path = %path.display(), "event partition archived and dropped");
            report.archived.push((partition.name, rows, path));
        }
        Ok(report)
    }

    /// Writes every event of `partition`, one JSON object a line with every column, to
    /// `<archive_dir>/<partition>.ndjson` (through a temporary file, synced, then renamed);
    /// returns the row count and the path.
    async fn archive(
        &self,
        partition: &EventPartition,
    ) -> Result<(i64, PathBuf), MaintenanceError> {
        let path = self.archive_dir.join(format!("{}.ndjson", partition.name));
        let partial = path.with_extension("ndjson.partial");
        let io = |source| MaintenanceError::Archive {
            path: path.display().to_string(),
            source,
        };
        tokio::fs::create_dir_all(&self.archive_dir)
            .await
            .map_err(io)?;
        let mut file =
            tokio::io::BufWriter::new(tokio::fs::File::create(&partial).await.map_err(io)?);
        let mut query = EventQuery {
            from: Some(partition.from),
            to: Some(partition.to),
            ..Default::default()
        };
        let mut rows = 0;
        loop {
            let page = self.store.query_events(&query).await?;
            let Some(last) = page.last() else { break };
            query.after_id = Some(last.id);
            for event in &page {
                let mut line =
                    serde_json::to_vec(event).map_err(|source| MaintenanceError::Encode {
                        id: event.id,
                        source,
                    })?;
                line.push(b'\n');
                file.write_all(&line).await.map_err(io)?;
                rows += 1;
            }
        }
        file.flush().await.map_err(io)?;
        file.get_ref().sync_all().await.map_err(io)?;
        tokio::fs::rename(&partial, &path).await.map_err(io)?;
        Ok((rows, path))
    }
}

/// The start of the oldest month kept: partitions ending at or before it have expired. `None`
/// when retention is off.
fn retention_cutoff(now: Timestamp, months: u32) -> Option<Timestamp> {
    if months == 0 {
        return None;
    }
    let now = now.to_datetime();
    let month_start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()?;
    let cutoff = month_start.checked_sub_months(Months::new(months))?;
    Some(Timestamp::from_micros(cutoff.timestamp_micros()))
}

/// Runs a pass every `interval_secs` under the maintenance lease (an instance that finds it held
/// skips its turn) until `stop` turns true.
pub async fn run(
    maintenance: Maintenance,
    leases: Leases,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) {
    let every = Duration::from_secs(maintenance.settings.interval_secs.max(1));
    loop {
        match leases.hold(JOB, maintenance.run_once(clock.now())).await {
            Ok(Ok(report)) if !report.created.is_empty() => {
                tracing::info!(created = ?report.created, "event partitions made");
            }
            Ok(Ok(_)) | Err(LeaseError::Busy { .. }) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "event-log maintenance failed"),
            Err(LeaseError::Store(e)) => tracing::warn!(error = %e, "event-log maintenance lease"),
        }
        tokio::select! {
            () = clock.sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_whole_months() {
        let now = Timestamp::parse_rfc3339("2026-03-15T12:00:00Z").unwrap();
        assert_eq!(retention_cutoff(now, 0), None);
        assert_eq!(
            retention_cutoff(now, 1),
            Some(Timestamp::parse_rfc3339("2026-02-01T00:00:00Z").unwrap())
        );
        assert_eq!(
            retention_cutoff(now, 12),
            Some(Timestamp::parse_rfc3339("2025-03-01T00:00:00Z").unwrap())
        );
    }
}

//! `syncwarden bench ...`: throughput measured through the real code, each figure beside a baseline
//! measured in the same run.

mod ingest;
mod sync;

pub use ingest::{IngestBenchOptions, IngestBenchReport, run_ingest_bench};
pub use sync::{SyncBenchOptions, SyncBenchReport, run_sync_bench};

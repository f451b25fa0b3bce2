//! `syncwarden bench ...`: throughput measured through the real code, each figure beside a baseline
//! measured in the same run.

mod api;
mod ingest;
mod sync;

pub use api::{ApiBenchOptions, ApiBenchReport, run_api_bench};
pub use ingest::{IngestBenchOptions, IngestBenchReport, run_ingest_bench};
pub use sync::{SyncBenchOptions, SyncBenchReport, run_sync_bench};

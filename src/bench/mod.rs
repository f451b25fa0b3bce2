//! `syncwarden bench ...`: throughput measured through the real code, each figure beside a baseline
//! measured in the same run.

mod api;
mod ingest;
mod instances;
mod sync;

pub use api::{ApiBenchOptions, ApiBenchReport, run_api_bench};
pub use ingest::{IngestBenchOptions, IngestBenchReport, run_ingest_bench};
pub use instances::{InstancesBenchOptions, InstancesBenchReport, run_instances_bench};
pub use sync::{SyncBenchOptions, SyncBenchReport, run_sync_bench};

/// The sandbox's default seed times `factor` (at least 1): records, planted duplicates, drifted
/// prices and documents; price lists, contacts per account and lines per document stay.
fn scaled(factor: usize) -> crate::sandbox::SeedScale {
    let factor = factor.max(1);
    let base = crate::sandbox::SeedScale::default();
    crate::sandbox::SeedScale {
        accounts: base.accounts * factor,
        items: base.items * factor,
        duplicate_accounts: base.duplicate_accounts * factor,
        duplicate_contacts: base.duplicate_contacts * factor,
        drifted_prices: base.drifted_prices * factor,
        quotes: base.quotes * factor,
        orders: base.orders * factor,
        invoices: base.invoices * factor,
        ..base
    }
}

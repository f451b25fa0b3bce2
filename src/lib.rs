//! syncwarden keeps a CRM and an ERP in sync and watches that sync: every field-level event is
//! recorded, measured and checked.

pub mod alert;
pub mod api;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dedup;
pub mod digest;
pub mod domain;
pub mod lease;
pub mod maintenance;
pub mod monitor;
pub mod privacy;
pub mod sandbox;
pub mod startup;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tls;
pub mod vault;

//! The sync core: connectors, the records they exchange, ownership rules, go-live linking, the
//! engine, and the field-level event log.

pub mod connectors;
pub mod documents;
pub mod engine;
pub mod events;
pub mod linking;
pub mod record;
pub mod rules;
pub mod service;

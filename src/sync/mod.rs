//! The sync core: connectors, the records they exchange, and the field-level event log.

pub mod connectors;
pub mod events;
pub mod record;

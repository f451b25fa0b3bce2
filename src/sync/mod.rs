//! The sync core. So far: the field-level event log every other part writes to and reads from.

pub mod events;

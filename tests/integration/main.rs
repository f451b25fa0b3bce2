//! Integration tests: one binary, the real app on random ports, real SQLite files and, when
//! `SW_TEST_PG_URL` is set, a fresh PostgreSQL database per test.

mod alert;
mod api;
mod browser;
mod cli;
mod connectors;
mod crash;
mod dedup;
mod digest;
mod documents;
mod findings;
mod helpers;
mod ingest;
mod invariants;
mod llm;
mod merge;
mod monitor;
mod openapi;
mod outage;
mod scaleout;
mod security;
mod smtp;
mod soak;
mod store;
mod sync;
mod tryton;

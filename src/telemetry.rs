//! Logging set-up: `tracing` to stderr, filtered by RUST_LOG or the configured level; and the
//! process-wide counters `/metrics` exports.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Sync calls to the CRM and ERP, by connector and outcome (`ok`, `failed`).
pub const SYNC_CALLS: &str = "syncwarden_sync_calls_total";
/// Notification delivery attempts, by receiver and outcome (`sent`, `retry`, `failed`).
pub const NOTIFICATIONS: &str = "syncwarden_notifications_total";

const HELP: [(&str, &str); 2] = [
    (
        SYNC_CALLS,
        "Calls to the CRM and ERP APIs by connector and outcome.",
    ),
    (
        NOTIFICATIONS,
        "Notification delivery attempts by receiver and outcome.",
    ),
];

type Series = BTreeMap<(&'static str, Vec<(&'static str, String)>), u64>;

/// Process-wide counters for `/metrics`, the way a metrics recorder is global: the connectors
/// and the delivery worker count where they work, without a handle passed down to them.
static COUNTERS: Mutex<Series> = Mutex::new(BTreeMap::new());

/// Adds one to the counter `name` with `labels`.
pub fn count(name: &'static str, labels: &[(&'static str, &str)]) {
    let labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let mut counters = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    *counters.entry((name, labels)).or_default() += 1;
}

/// The counters in the Prometheus text format, each with its HELP and TYPE lines.
pub fn render_counters(out: &mut String) {
    let counters = COUNTERS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for (name, help) in HELP {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for ((_, labels), n) in counters.iter().filter(|((n, _), _)| *n == name) {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
                .collect();
            let _ = writeln!(out, "{name}{{{}}} {n}", labels.join(","));
        }
    }
}

/// A label value with Prometheus' escapes.
pub fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_labels_and_escapes() {
        count(SYNC_CALLS, &[("connector", "te\"st"), ("outcome", "ok")]);
        count(SYNC_CALLS, &[("connector", "te\"st"), ("outcome", "ok")]);
        let mut out = String::new();
        render_counters(&mut out);
        assert!(
            out.contains("syncwarden_sync_calls_total{connector=\"te\\\"st\",outcome=\"ok\"} 2"),
            "{out}"
        );
        assert!(out.contains("# TYPE syncwarden_notifications_total counter"));
    }
}

//! The monitor: metrics from the event log, the detectors that watch them (the generic
//! metric-stream detector, success rate, latency and volume, freshness, price mismatch,
//! reconciliation drift), the findings they raise, offline scoring of recorded series with exactly
//! the code that runs live, and the evaluations behind BENCHMARKS.md.
//!
//! Why no linfa model here (the deduper's classifier is linfa's logistic regression): every
//! detector is streaming and causal with an O(1) baseline update per point (exponentially weighted
//! hour-of-week slots, a forgetting Beta posterior, ranked nonconformity windows). A linfa
//! estimator fits in batch: refitting a seasonal regression per bucket costs O(history) per point
//! to give the hour-of-week mean the running slots already hold. A fitted baseline has not been
//! tried against the evaluations in BENCHMARKS.md, so no gain is claimed either way. Calibrating scores into probabilities would need labelled incidents at run time, which a live
//! sync does not have.

pub mod checks;
pub mod command;
pub mod detector;
pub mod drift;
pub mod eval;
pub mod findings;
pub mod freshness;
pub mod live;
pub mod metrics;
pub mod prices;
pub mod rollup;
pub mod sandbox_eval;
pub mod score;
pub mod seasonal;
pub mod settings;
pub mod success_rate;
pub mod watch;

pub use command::{MonitorCommand, run as run_command};
pub use detector::{ALARM_LEVEL, Detector, DetectorParams, StreamDetector, WindowedGaussian};
pub use drift::{Difference, DriftEvidence, DriftWatch};
pub use findings::{Finding, FindingState, FindingsReport, NewFinding, Severity};
pub use freshness::{FreshnessChange, FreshnessMonitor, FreshnessParams, StaleIncident};
pub use live::LiveMonitor;
pub use metrics::{Bucket, Scope, bucket_events, events_between};
pub use prices::{
    CustomerPriceBooks, PriceIssue, PriceMismatch, PriceTolerance, PriceWatch, PricedDocument,
    line_mismatches, price_book_mismatches,
};
pub use score::{DetectorKind, ScoreSummary, score_file, score_tree};
pub use seasonal::{Direction, SeasonalChange, SeasonalDetector, SeasonalIncident, SeasonalParams};
pub use settings::MonitorSettings;
pub use success_rate::{
    Calls, SuccessRateChange, SuccessRateDetector, SuccessRateIncident, SuccessRateParams,
};
pub use watch::{Report, WatchParams, Watcher, record};

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot read or write {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {message}")]
    BadInput {
        path: String,
        line: usize,
        message: String,
    },
    #[error("no series (*.csv) under {0}")]
    NoSeries(String),
}

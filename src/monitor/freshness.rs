//! Freshness, or the silent stop: an endpoint that usually moves data every few minutes and has
//! not for much longer than usual. Nothing fails, so no error rate notices it; only the silence.
//!
//! The usual gap is the median of the recent gaps between successful syncs that moved data (the
//! median, so one long lunch-time lull does not redefine normal). The endpoint is stale when the
//! silence exceeds `factor` times the usual gap and `min_silence`; the incident resolves at the
//! next success.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use super::findings::{NewFinding, Severity};
use crate::domain::Timestamp;

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FreshnessParams {
    /// Gaps remembered to know the usual one.
    pub history: usize,
    /// Gaps needed before the endpoint's rhythm is known.
    pub min_gaps: usize,
    /// Silence, in usual gaps, that makes an endpoint stale.
    pub factor: f64,
    /// Never stale before this much silence, however fast the usual rhythm.
    #[serde(rename = "min_silence_secs", deserialize_with = "seconds")]
    pub min_silence: Duration,
}

fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_secs)
}

impl Default for FreshnessParams {
    fn default() -> Self {
        Self {
            history: 50,
            min_gaps: 5,
            factor: 4.0,
            min_silence: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaleIncident {
    /// When the next data was due: the last success plus the usual gap.
    pub started_at: Timestamp,
    pub detected_at: Timestamp,
    pub last_success: Timestamp,
    pub usual_gap_secs: u64,
    pub silence_secs: u64,
}

impl StaleIncident {
    pub fn finding(&self, scope: &str) -> NewFinding {
        NewFinding {
            kind: "freshness".into(),
            severity: Severity::Warning,
            fingerprint: format!("freshness:{scope}"),
            title: format!(
                "No data moved for {scope} in {} min (usually every {} min)",
                self.silence_secs / 60,
                self.usual_gap_secs.div_ceil(60)
            ),
            evidence: serde_json::to_value(self).unwrap_or_default(),
            started_at: self.started_at,
            detected_at: self.detected_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FreshnessChange {
    Stale(StaleIncident),
    Fresh {
        incident: StaleIncident,
        at: Timestamp,
    },
}

#[derive(Debug, Clone)]
pub struct FreshnessMonitor {
    params: FreshnessParams,
    last_success: Option<Timestamp>,
    gaps: VecDeque<Duration>,
    open: Option<StaleIncident>,
}

impl FreshnessMonitor {
    pub fn new(params: FreshnessParams) -> Self {
        Self {
            params,
            last_success: None,
            gaps: VecDeque::new(),
            open: None,
        }
    }

    fn usual_gap(&self) -> Option<Duration> {
        if self.gaps.len() < self.params.min_gaps {
            return None;
        }
        let mut gaps: Vec<Duration> = self.gaps.iter().copied().collect();
        gaps.sort();
        Some(gaps[gaps.len() / 2])
    }

    /// A sync that moved data finished at `at`.
    pub fn record_success(&mut self, at: Timestamp) -> Option<FreshnessChange> {
        if let Some(last) = self.last_success {
            // The gap that ended a stale spell is not the rhythm: it would teach that silence is
            // normal.
            if self.open.is_none() {
                self.gaps.push_back(at.since(last));
                if self.gaps.len() > self.params.history {
                    self.gaps.pop_front();
                }
            }
        }
        self.last_success = Some(at);
        self.open
            .take()
            .map(|incident| FreshnessChange::Fresh { incident, at })
    }

    /// Looks at the silence as of `now` (call it on a timer).
    pub fn check(&mut self, now: Timestamp) -> Option<FreshnessChange> {
        if self.open.is_some() {
            return None;
        }
        let (last, usual) = (self.last_success?, self.usual_gap()?);
        let silence = now.since(last);
        let limit = usual
            .mul_f64(self.params.factor)
            .max(self.params.min_silence);
        if silence <= limit {
            return None;
        }
        let incident = StaleIncident {
            started_at: last + usual,
            detected_at: now,
            last_success: last,
            usual_gap_secs: usual.as_secs(),
            silence_secs: silence.as_secs(),
        };
        tracing::info!(last_success = %last, silence_secs = silence.as_secs(), "endpoint stale");
        self.open = Some(incident.clone());
        Some(FreshnessChange::Stale(incident))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-23T00:00:00Z").unwrap() + Duration::from_secs(secs)
    }

    /// Successes every 5 minutes, give or take a minute, until `stop` (seconds); checks every
    /// minute until `end`. Returns the changes with their time.
    fn run(seed: u64, stop: u64, end: u64) -> Vec<(u64, FreshnessChange)> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut monitor = FreshnessMonitor::new(FreshnessParams::default());
        let mut next = 300;
        let mut changes = Vec::new();
        for now in (60..end).step_by(60) {
            if now >= next && now < stop {
                changes.extend(monitor.record_success(t(now)).map(|c| (now, c)));
                next = now + 240 + 60 * rng.u64(0..3);
            }
            changes.extend(monitor.check(t(now)).map(|c| (now, c)));
        }
        changes
    }

    #[test]
    fn a_regular_endpoint_stays_fresh() {
        for seed in 0..5 {
            let changes = run(seed, u64::MAX, 7 * 86_400);
            assert!(changes.is_empty(), "seed {seed}: {changes:?}");
        }
    }

    #[test]
    fn a_silent_stop_is_stale_after_four_usual_gaps() {
        let stop = 86_400;
        let changes = run(1, stop, 2 * 86_400);
        assert_eq!(changes.len(), 1, "{changes:?}");
        let (at, FreshnessChange::Stale(incident)) = &changes[0] else {
            panic!("{changes:?}");
        };
        // Usually every 5 minutes: stale at the first check past 4 x 5 minutes of silence.
        assert_eq!(incident.usual_gap_secs, 300);
        assert!(
            (1201..=1260).contains(&incident.silence_secs),
            "stale after {} s",
            incident.silence_secs
        );
        assert!(incident.last_success < t(stop) && incident.detected_at == t(*at));
        assert_eq!(
            incident.started_at,
            incident.last_success + Duration::from_secs(300)
        );
    }

    #[test]
    fn the_next_success_resolves_and_the_silence_is_not_learned() {
        let mut monitor = FreshnessMonitor::new(FreshnessParams::default());
        for i in 1..=10 {
            assert!(monitor.record_success(t(i * 300)).is_none());
        }
        assert!(monitor.check(t(3000 + 1199)).is_none());
        let Some(FreshnessChange::Stale(_)) = monitor.check(t(3000 + 1201)) else {
            panic!("not stale after 20 minutes of silence");
        };
        assert!(
            monitor.check(t(3000 + 1500)).is_none(),
            "one incident per silence"
        );
        let Some(FreshnessChange::Fresh { at, .. }) = monitor.record_success(t(9000)) else {
            panic!("not fresh again");
        };
        assert_eq!(at, t(9000));
        assert_eq!(monitor.usual_gap(), Some(Duration::from_secs(300)));
        assert!(matches!(
            monitor.check(t(9000 + 1201)),
            Some(FreshnessChange::Stale(_))
        ));
    }

    #[test]
    fn the_stale_incident_becomes_a_finding() {
        let incident = StaleIncident {
            started_at: t(600),
            detected_at: t(1500),
            last_success: t(300),
            usual_gap_secs: 300,
            silence_secs: 1200,
        };
        let finding = incident.finding("items");
        assert_eq!(finding.fingerprint, "freshness:items");
        assert_eq!(
            finding.title,
            "No data moved for items in 20 min (usually every 5 min)"
        );
        assert_eq!(finding.evidence["silence_secs"], 1200);
    }
}

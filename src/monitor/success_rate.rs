//! The success-rate drop detector: fed one bucket of API calls at a time (attempts and failures,
//! e.g. per minute for one endpoint and connector), it opens an incident when failures are more
//! frequent than the baseline by a margin and the evidence is strong for the volume seen, and
//! resolves it when the rate has been back to normal for a while.
//!
//! Volume is what makes a failure rate mean something: 3 failures out of 4 calls at night are below
//! the minimum volume and prove nothing, while 2% failures at 10,000 calls an hour against a 1%
//! baseline are an incident once enough of them are in. So the test is a binomial tail: how likely
//! that many failures (or more) in that many calls would be if the failure rate were the baseline
//! times `min_ratio` (plus `min_excess`). Two windows confirm each other:
//! - a **short** window (up to 10 buckets, each suffix tested so a fresh drop is not diluted) alone
//!   when the evidence is overwhelming (a 99% -> 90% drop at 1,000 calls an hour is caught in
//!   minutes);
//! - a **long** window (60 buckets) for smaller drops, only while the short window is still above
//!   the reference rate (the drop is current, not a blip that already passed).
//!
//! The baseline is a Beta posterior on the failure rate that forgets with a half-life of a day. It
//! learns from buckets as they leave the long window, never from buckets of an incident, so an
//! incident never becomes the new normal.

use std::collections::VecDeque;

use serde::Serialize;

use super::findings::{NewFinding, Severity};
use crate::domain::Timestamp;

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuccessRateParams {
    pub short_buckets: usize,
    pub long_buckets: usize,
    /// Attempts a window needs before it may speak.
    pub min_attempts: u64,
    /// The failure rate tested against is the baseline times this ratio...
    pub min_ratio: f64,
    /// ...and at least this much above it: doubling a tiny rate is not an incident.
    pub min_excess: f64,
    /// log10 of the tail probability below which the short window alone opens an incident.
    pub short_log10_p: f64,
    /// log10 of the tail probability below which the long window opens one.
    pub long_log10_p: f64,
    /// Buckets after which an old bucket weighs half in the baseline.
    pub baseline_half_life: f64,
    /// The prior baseline: this failure rate, worth this many calls.
    pub prior_failure_rate: f64,
    pub prior_calls: f64,
    /// Consecutive buckets of a short window back under the reference rate that resolve.
    pub recovery_buckets: usize,
}

impl Default for SuccessRateParams {
    fn default() -> Self {
        Self {
            short_buckets: 10,
            long_buckets: 60,
            min_attempts: 30,
            min_ratio: 1.5,
            min_excess: 0.005,
            short_log10_p: -4.5,
            long_log10_p: -3.0,
            baseline_half_life: 1440.0,
            prior_failure_rate: 0.01,
            prior_calls: 100.0,
            recovery_buckets: 10,
        }
    }
}

/// One bucket of calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Calls {
    /// Start of the bucket.
    pub at: Timestamp,
    pub attempts: u64,
    pub failures: u64,
}

/// What an incident is based on: numbers a person can check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuccessRateIncident {
    /// Start of the bucket where the drop most likely began (maximum-likelihood change point).
    pub started_at: Timestamp,
    pub detected_at: Timestamp,
    /// Which window's evidence opened it: "short" or "long".
    pub window: &'static str,
    pub attempts: u64,
    pub failures: u64,
    pub baseline_failure_rate: f64,
    pub reference_failure_rate: f64,
    /// log10 of the binomial tail probability of the window under the reference rate.
    pub log10_p: f64,
}

impl SuccessRateIncident {
    /// The finding for `scope` (e.g. `items:crm`): one fingerprint per scope, so a drop that goes
    /// on updates one finding.
    pub fn finding(&self, scope: &str) -> NewFinding {
        let observed = self.failures as f64 / self.attempts.max(1) as f64;
        let severity = if observed >= 0.2 {
            Severity::Critical
        } else {
            Severity::Warning
        };
        NewFinding {
            kind: "success_rate_drop".into(),
            severity,
            fingerprint: format!("success_rate_drop:{scope}"),
            title: format!(
                "Success rate of {scope} dropped to {:.1}% (baseline {:.1}%)",
                100.0 * (1.0 - observed),
                100.0 * (1.0 - self.baseline_failure_rate)
            ),
            evidence: serde_json::to_value(self).unwrap_or_default(),
            started_at: self.started_at,
            detected_at: self.detected_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SuccessRateChange {
    Opened(SuccessRateIncident),
    Resolved {
        incident: SuccessRateIncident,
        at: Timestamp,
    },
}

/// A bucket in the long window; `tainted` once it is known to belong to an incident, so it never
/// teaches the baseline.
#[derive(Debug, Clone, Copy)]
struct Held {
    calls: Calls,
    tainted: bool,
}

#[derive(Debug, Clone)]
pub struct SuccessRateDetector {
    params: SuccessRateParams,
    buckets: VecDeque<Held>,
    /// Beta posterior of the baseline failure rate (pseudo-failures, pseudo-successes), taught
    /// only by buckets leaving the long window: the windows are always judged against the past
    /// before them, so a slow drop cannot teach the baseline before it is judged.
    failures_weight: f64,
    successes_weight: f64,
    decay: f64,
    open: Option<SuccessRateIncident>,
    calm: usize,
}

impl SuccessRateDetector {
    pub fn new(params: SuccessRateParams) -> Self {
        Self {
            failures_weight: params.prior_failure_rate * params.prior_calls,
            successes_weight: (1.0 - params.prior_failure_rate) * params.prior_calls,
            decay: 0.5f64.powf(1.0 / params.baseline_half_life.max(1.0)),
            buckets: VecDeque::with_capacity(params.long_buckets + 1),
            open: None,
            calm: 0,
            params,
        }
    }

    pub fn baseline_failure_rate(&self) -> f64 {
        self.failures_weight / (self.failures_weight + self.successes_weight)
    }

    pub fn open_incident(&self) -> Option<&SuccessRateIncident> {
        self.open.as_ref()
    }

    fn reference_rate(&self) -> f64 {
        let p0 = self.baseline_failure_rate();
        (p0 * self.params.min_ratio)
            .max(p0 + self.params.min_excess)
            .min(1.0)
    }

    /// (attempts, failures) of each suffix of the window: the newest bucket, the newest two, ...
    fn suffixes(&self, n: usize) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets.iter().rev().take(n).scan((0, 0), |(a, f), h| {
            *a += h.calls.attempts;
            *f += h.calls.failures;
            Some((*a, *f))
        })
    }

    /// The bucket where the drop most likely began: the suffix of the long window that is most
    /// unlike the baseline (the largest likelihood ratio of its own rate against the baseline).
    fn change_point(&self) -> Timestamp {
        let p0 = self.baseline_failure_rate().clamp(1e-9, 1.0 - 1e-9);
        let mut best = (0.0, self.buckets.back().map(|h| h.calls.at));
        for ((attempts, failures), held) in self
            .suffixes(self.buckets.len())
            .zip(self.buckets.iter().rev())
        {
            let q = failures as f64 / attempts.max(1) as f64;
            let score = if q > p0 {
                attempts as f64 * kl_bernoulli(q, p0)
            } else {
                0.0
            };
            if score > best.0 {
                best = (score, Some(held.calls.at));
            }
        }
        best.1.unwrap_or(Timestamp::from_micros(0))
    }

    fn learn(&mut self, calls: Calls) {
        self.failures_weight = self.failures_weight * self.decay + calls.failures as f64;
        self.successes_weight =
            self.successes_weight * self.decay + (calls.attempts - calls.failures) as f64;
    }

    /// Takes the next bucket (buckets must come in time order, empty ones included).
    pub fn update(&mut self, calls: Calls) -> Option<SuccessRateChange> {
        let calls = Calls {
            failures: calls.failures.min(calls.attempts),
            ..calls
        };
        self.buckets.push_back(Held {
            calls,
            tainted: self.open.is_some(),
        });
        if self.buckets.len() > self.params.long_buckets
            && let Some(old) = self.buckets.pop_front()
            && !old.tainted
        {
            self.learn(old.calls);
        }
        let reference = self.reference_rate();
        let judge = |(n, f): (u64, u64)| {
            (n >= self.params.min_attempts && f as f64 > reference * n as f64)
                .then(|| (n, f, log10_binomial_upper_tail(n, f, reference)))
        };
        let (short_n, short_f) = self
            .suffixes(self.params.short_buckets)
            .last()
            .unwrap_or((0, 0));
        let short_elevated =
            short_n >= self.params.min_attempts && short_f as f64 >= reference * short_n as f64;

        if let Some(incident) = &self.open {
            self.calm = if short_elevated { 0 } else { self.calm + 1 };
            if self.calm < self.params.recovery_buckets {
                return None;
            }
            let incident = incident.clone();
            self.open = None;
            self.calm = 0;
            // The windows still hold the incident: judged again, it would reopen at once.
            self.buckets.clear();
            return Some(SuccessRateChange::Resolved {
                incident,
                at: calls.at,
            });
        }

        // The short window is scanned suffix by suffix, so a drop a few buckets old is judged on
        // those buckets alone rather than diluted by the calm ones before it.
        let short = self
            .suffixes(self.params.short_buckets)
            .filter_map(judge)
            .min_by(|a, b| a.2.total_cmp(&b.2));
        let long = self
            .suffixes(self.params.long_buckets)
            .last()
            .and_then(judge);
        let opened = match (short, long) {
            (Some(w), _) if w.2 <= self.params.short_log10_p => Some(("short", w)),
            (_, Some(w)) if w.2 <= self.params.long_log10_p && short_elevated => Some(("long", w)),
            _ => None,
        };
        let (window, (attempts, failures, log10_p)) = opened?;
        let incident = SuccessRateIncident {
            started_at: self.change_point(),
            detected_at: calls.at,
            window,
            attempts,
            failures,
            baseline_failure_rate: self.baseline_failure_rate(),
            reference_failure_rate: reference,
            log10_p,
        };
        for held in &mut self.buckets {
            held.tainted |= held.calls.at >= incident.started_at;
        }
        tracing::info!(
            started_at = %incident.started_at,
            window,
            attempts,
            failures,
            log10_p,
            "success-rate drop"
        );
        self.open = Some(incident.clone());
        Some(SuccessRateChange::Opened(incident))
    }
}

/// Kullback-Leibler divergence between Bernoulli(q) and Bernoulli(p), in nats.
fn kl_bernoulli(q: f64, p: f64) -> f64 {
    let term = |a: f64, b: f64| if a > 0.0 { a * (a / b).ln() } else { 0.0 };
    term(q, p) + term(1.0 - q, 1.0 - p)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine coefficients: ~15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let series = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |acc, (i, g)| acc + g / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// log10 of P(X >= k) for X ~ Binomial(n, p), summed in logs from k upwards (the terms fall from
/// there on, since callers only ask above the mean).
pub(crate) fn log10_binomial_upper_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    if k > n || p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return 0.0;
    }
    let (nf, kf) = (n as f64, k as f64);
    let ln_first = ln_gamma(nf + 1.0) - ln_gamma(kf + 1.0) - ln_gamma(nf - kf + 1.0)
        + kf * p.ln()
        + (nf - kf) * (1.0 - p).ln();
    let odds = p / (1.0 - p);
    // Sum of term_i / term_k, each term from the one before: C(n, i+1)/C(n, i) = (n-i)/(i+1).
    let (mut sum, mut term) = (1.0, 1.0);
    for i in k..n {
        term *= (nf - i as f64) / (i as f64 + 1.0) * odds;
        sum += term;
        if term < sum * 1e-15 {
            break;
        }
    }
    (ln_first + sum.ln()) / std::f64::consts::LN_10
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn minute(i: u64) -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-23T00:00:00Z").unwrap() + Duration::from_secs(60 * i)
    }

    /// Calls per minute at `per_hour` calls an hour, failing at `rate`, with binomial noise.
    fn traffic(rng: &mut fastrand::Rng, at: u64, per_hour: f64, rate: f64) -> Calls {
        // Poisson-ish volume: the mean, give or take 20%.
        let attempts = (per_hour / 60.0 * (0.8 + 0.4 * rng.f64())).round() as u64;
        let failures = (0..attempts).filter(|_| rng.f64() < rate).count() as u64;
        Calls {
            at: minute(at),
            attempts,
            failures,
        }
    }

    /// Feeds `minutes` of traffic; returns every change with its minute.
    fn run(
        detector: &mut SuccessRateDetector,
        rng: &mut fastrand::Rng,
        minutes: std::ops::Range<u64>,
        per_hour: impl Fn(u64) -> f64,
        rate: impl Fn(u64) -> f64,
    ) -> Vec<(u64, SuccessRateChange)> {
        minutes
            .filter_map(|m| {
                detector
                    .update(traffic(rng, m, per_hour(m), rate(m)))
                    .map(|c| (m, c))
            })
            .collect()
    }

    #[test]
    fn binomial_tail_matches_known_values() {
        // P(X >= 3 | n = 4, p = 0.5) = 5/16; P(X >= 1 | n = 10, p = 0.1) = 1 - 0.9^10.
        assert!((log10_binomial_upper_tail(4, 3, 0.5) - (5.0f64 / 16.0).log10()).abs() < 1e-12);
        let want = (1.0 - 0.9f64.powi(10)).log10();
        assert!((log10_binomial_upper_tail(10, 1, 0.1) - want).abs() < 1e-12);
        assert_eq!(log10_binomial_upper_tail(10, 0, 0.1), 0.0);
        assert!(log10_binomial_upper_tail(100_000, 5_000, 0.01) < -1000.0);
    }

    #[test]
    fn a_drop_from_99_to_90_percent_at_1k_calls_an_hour_is_caught_within_10_minutes() {
        let mut delays = Vec::new();
        for seed in 1..8 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut d = SuccessRateDetector::new(SuccessRateParams::default());
            let start = 3 * 1440 + 600;
            let changes = run(
                &mut d,
                &mut rng,
                0..7 * 1440,
                |_| 1000.0,
                |m| {
                    if (start..start + 120).contains(&m) {
                        0.10
                    } else {
                        0.01
                    }
                },
            );
            assert_eq!(
                changes.len(),
                2,
                "one incident, one resolution: {:?}",
                changes
                    .iter()
                    .map(|(m, c)| (m, matches!(c, SuccessRateChange::Opened(_))))
                    .collect::<Vec<_>>()
            );
            let (at, SuccessRateChange::Opened(incident)) = &changes[0] else {
                panic!("first change is not an opening: {changes:?}");
            };
            assert!(*at >= start, "detected at {at}, before the drop at {start}");
            delays.push(at - start);
            assert!(
                incident.started_at <= minute(start + 3)
                    && incident.started_at >= minute(start - 10),
                "start estimated at {} for {}",
                incident.started_at,
                minute(start)
            );
            let (at, SuccessRateChange::Resolved { .. }) = &changes[1] else {
                panic!("second change is not a resolution: {changes:?}");
            };
            assert!((start + 120..start + 150).contains(at), "resolved at {at}");
        }
        delays.sort();
        assert!(
            delays[delays.len() / 2] < 10,
            "minutes to detect: {delays:?}"
        );
        assert!(
            delays[delays.len() - 1] <= 15,
            "minutes to detect: {delays:?}"
        );
    }

    #[test]
    fn two_percent_failures_at_10k_calls_an_hour_is_an_incident() {
        let mut rng = fastrand::Rng::with_seed(2);
        let mut d = SuccessRateDetector::new(SuccessRateParams::default());
        let start = 2 * 1440;
        let changes = run(
            &mut d,
            &mut rng,
            0..start + 240,
            |_| 10_000.0,
            |m| if m >= start { 0.02 } else { 0.01 },
        );
        assert_eq!(changes.len(), 1, "{changes:?}");
        let (at, SuccessRateChange::Opened(incident)) = &changes[0] else {
            panic!("{changes:?}");
        };
        assert!((start..start + 90).contains(at), "detected at {at}");
        assert_eq!(incident.window, "long");
    }

    #[test]
    fn a_few_failures_at_night_are_not_an_incident() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut d = SuccessRateDetector::new(SuccessRateParams::default());
        // Busy days, near-silent nights in which three of four calls in an hour fail.
        let hour = |m: u64| (m / 60) % 24;
        let changes = run(
            &mut d,
            &mut rng,
            0..7 * 1440,
            |m| {
                if (1..5).contains(&hour(m)) {
                    4.0
                } else {
                    1000.0
                }
            },
            |m| {
                if (1..5).contains(&hour(m)) {
                    0.75
                } else {
                    0.01
                }
            },
        );
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn clean_weeks_raise_no_incident() {
        for seed in 10..20 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut d = SuccessRateDetector::new(SuccessRateParams::default());
            // Daily volume cycle between 200 and 2,000 calls an hour, 1% failures.
            let changes = run(
                &mut d,
                &mut rng,
                0..7 * 1440,
                |m| {
                    let phase = std::f64::consts::TAU * (m % 1440) as f64 / 1440.0;
                    1100.0 + 900.0 * phase.sin()
                },
                |_| 0.01,
            );
            assert!(changes.is_empty(), "seed {seed}: {changes:?}");
            assert!((d.baseline_failure_rate() - 0.01).abs() < 0.002);
        }
    }

    #[test]
    fn the_incident_becomes_a_finding_with_evidence() {
        let incident = SuccessRateIncident {
            started_at: minute(10),
            detected_at: minute(14),
            window: "short",
            attempts: 170,
            failures: 17,
            baseline_failure_rate: 0.01,
            reference_failure_rate: 0.02,
            log10_p: -7.2,
        };
        let finding = incident.finding("items:crm");
        assert_eq!(finding.fingerprint, "success_rate_drop:items:crm");
        assert_eq!(finding.severity, Severity::Warning);
        assert_eq!(
            finding.title,
            "Success rate of items:crm dropped to 90.0% (baseline 99.0%)"
        );
        assert_eq!(finding.evidence["failures"], 17);
        assert_eq!(finding.started_at, minute(10));
    }
}

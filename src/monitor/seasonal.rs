//! Latency and volume: a seasonal baseline (hour of the week, falling back to hour of the day and
//! then to the recent level while those are still unknown) and a two-sided CUSUM on the
//! standardised residuals, so one excursion opens one incident, however many buckets it lasts.
//!
//! Values are compared in logs: latency that goes x5 and volume that halves are multiplicative
//! changes, and a log residual means the same at 40 ms and at 4 s. Residuals are clipped before
//! they enter the CUSUM, so a single wild bucket cannot open an incident on its own, and the
//! baselines learn only from clipped residuals outside incidents, so an incident never becomes the
//! new normal.
//!
//! A CUSUM adds evidence up, so a run of buckets that are each only somewhat out (a loaded
//! machine's slow minutes, heavy-tailed noise) reaches its threshold as surely as a real change
//! does. An excursion therefore opens only when it is also large against the metric's own normal
//! spread: the median residual of its buckets must lie beyond the band that held `band_quantile`
//! of the residuals of the last day of normal buckets.
//!
//! A count (the volume) is noisier than its learned scale says where it is expected to be small:
//! a count expected at λ varies by √λ by chance alone (Poisson), which in logs is a spread of
//! √λ / (λ + offset), 0.5 at one event a bucket. A count detector never judges a residual against
//! less than that, so a quiet endpoint's 0 where 1 was usual is not a fall.

use std::collections::VecDeque;

use serde::Serialize;

use super::findings::{NewFinding, Severity};
use crate::domain::Timestamp;

const HOURS_PER_WEEK: usize = 168;
/// Normal residuals the band is taken from: a day of five-minute buckets.
const BAND_WINDOW: usize = 288;
/// The latest buckets of an excursion its median is taken over: an hour of five-minute buckets.
const EXCURSION_WINDOW: usize = 12;

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeasonalParams {
    /// Weight of a new value in its hour-of-week and hour-of-day means.
    pub slot_weight: f64,
    /// Weight of a new value in the recent level and in the residual scale.
    pub level_weight: f64,
    /// Values a slot needs before it is the baseline.
    pub min_slot_values: u32,
    /// Smallest residual scale, in log units (0.05: 5%): a perfectly steady metric still has
    /// changes too small to matter.
    pub min_scale: f64,
    /// Residuals, in scales, are clipped to this before entering the CUSUM.
    pub clip: f64,
    /// CUSUM allowance (in scales) and decision threshold.
    pub allowance: f64,
    pub threshold: f64,
    /// Buckets learned before any incident may open: a day of 5-minute buckets, so the
    /// hour-of-day baseline has seen every hour.
    pub warmup: u32,
    /// Consecutive buckets within `allowance` of the baseline that resolve an incident.
    pub recovery_buckets: u32,
    /// Added before taking logs (keeps zero volume finite).
    pub log_offset: f64,
    /// Share of the last day's normal residuals inside the band an excursion's median residual
    /// must lie beyond (0: no band).
    pub band_quantile: f64,
}

impl Default for SeasonalParams {
    fn default() -> Self {
        Self {
            slot_weight: 0.2,
            level_weight: 0.05,
            min_slot_values: 6,
            min_scale: 0.05,
            clip: 4.0,
            allowance: 1.0,
            threshold: 6.0,
            warmup: 288,
            recovery_buckets: 6,
            log_offset: 1.0,
            band_quantile: 0.95,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeasonalIncident {
    /// The bucket after the CUSUM last stood at zero: where the excursion began.
    pub started_at: Timestamp,
    pub detected_at: Timestamp,
    pub direction: Direction,
    pub value: f64,
    /// What the baseline expected for this bucket.
    pub expected: f64,
    /// Which baseline: "hour_of_week", "hour_of_day" or "recent".
    pub baseline: &'static str,
}

impl SeasonalIncident {
    /// The finding for metric `metric` (e.g. `latency_p95`) of `scope` (e.g. `items:erp`).
    pub fn finding(&self, metric: &str, scope: &str) -> NewFinding {
        let ratio = self.value / self.expected.max(f64::MIN_POSITIVE);
        let severity = if !(0.2..=5.0).contains(&ratio) {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let way = match self.direction {
            Direction::Up => "rose",
            Direction::Down => "fell",
        };
        NewFinding {
            kind: metric.to_string(),
            severity,
            fingerprint: format!("{metric}:{scope}"),
            title: format!(
                "{metric} of {scope} {way} to {:.3} (expected {:.3}, x{ratio:.2})",
                self.value, self.expected
            ),
            evidence: serde_json::to_value(self).unwrap_or_default(),
            started_at: self.started_at,
            detected_at: self.detected_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SeasonalChange {
    Opened(SeasonalIncident),
    Resolved {
        incident: SeasonalIncident,
        at: Timestamp,
    },
}

/// A mean that knows how many values it has seen.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    mean: f64,
    count: u32,
}

impl Slot {
    fn learn(&mut self, y: f64, weight: f64) {
        // The first values set the mean outright; after that it moves by `weight`.
        let w = weight.max(1.0 / (f64::from(self.count) + 1.0));
        self.mean += w * (y - self.mean);
        self.count = self.count.saturating_add(1);
    }
}

#[derive(Debug, Clone)]
pub struct SeasonalDetector {
    params: SeasonalParams,
    week: Vec<Slot>,
    day: Vec<Slot>,
    recent: Slot,
    /// Mean absolute residual, times 1.25 a standard deviation for Gaussian residuals.
    scale: Slot,
    up: f64,
    down: f64,
    /// Where each CUSUM last left zero.
    up_from: Option<Timestamp>,
    down_from: Option<Timestamp>,
    /// The residuals (in logs) since each CUSUM last left zero, the latest `EXCURSION_WINDOW`.
    up_residuals: VecDeque<f64>,
    down_residuals: VecDeque<f64>,
    /// The absolute residuals of the latest `BAND_WINDOW` normal buckets.
    normal: VecDeque<f64>,
    seen: u32,
    open: Option<SeasonalIncident>,
    calm: u32,
    /// Whether the values are counts of events (see the module comment).
    counts: bool,
}

fn hour_of_week(at: Timestamp) -> usize {
    // The epoch fell on a Thursday: hour 0 of the epoch is hour 72 of a Monday-based week.
    let hours = at.as_micros().div_euclid(3_600_000_000);
    (hours + 72).rem_euclid(HOURS_PER_WEEK as i64) as usize
}

impl SeasonalDetector {
    pub fn new(params: SeasonalParams) -> Self {
        Self {
            params,
            week: vec![Slot::default(); HOURS_PER_WEEK],
            day: vec![Slot::default(); 24],
            recent: Slot::default(),
            scale: Slot::default(),
            up: 0.0,
            down: 0.0,
            up_from: None,
            down_from: None,
            up_residuals: VecDeque::new(),
            down_residuals: VecDeque::new(),
            normal: VecDeque::new(),
            seen: 0,
            open: None,
            calm: 0,
            counts: false,
        }
    }

    /// A detector of counts of events per bucket, whose spread is at least Poisson's.
    pub fn counts(params: SeasonalParams) -> Self {
        Self {
            counts: true,
            ..Self::new(params)
        }
    }

    /// The residual scale to judge a value expected at `expected` (in logs) against.
    fn scale_at(&self, expected: f64) -> f64 {
        let p = &self.params;
        let learned = (self.scale.mean * 1.25).max(p.min_scale);
        if !self.counts {
            return learned;
        }
        let lambda = (expected.exp() - p.log_offset).max(0.0);
        learned.max(lambda.sqrt() / (lambda + p.log_offset))
    }

    pub fn open_incident(&self) -> Option<&SeasonalIncident> {
        self.open.as_ref()
    }

    fn expected(&self, how: usize) -> Option<(f64, &'static str)> {
        let min = self.params.min_slot_values;
        let (week, day) = (&self.week[how], &self.day[how % 24]);
        if week.count >= min {
            Some((week.mean, "hour_of_week"))
        } else if day.count >= min {
            Some((day.mean, "hour_of_day"))
        } else if self.recent.count > 0 {
            Some((self.recent.mean, "recent"))
        } else {
            None
        }
    }

    /// Takes the value of the next bucket (latency, volume, ...), in time order.
    pub fn update(&mut self, at: Timestamp, value: f64) -> Option<SeasonalChange> {
        if !value.is_finite() || value + self.params.log_offset <= 0.0 {
            return None;
        }
        let p = self.params.clone();
        let y = (value + p.log_offset).ln();
        let how = hour_of_week(at);
        let Some((expected, baseline)) = self.expected(how) else {
            self.learn(how, y, 0.0);
            return None;
        };
        let scale = self.scale_at(expected);
        let z = ((y - expected) / scale).clamp(-p.clip, p.clip);
        self.seen = self.seen.saturating_add(1);

        if let Some(incident) = &self.open {
            // Judged without the weekly rhythm (a first weekend against the hour of the day), the
            // "incident" may be that rhythm: the hour of the week learns it as it is. Judged
            // against the hour of the week, it is an incident and teaches nothing.
            if incident.baseline != "hour_of_week" {
                self.week[how].learn(y, p.slot_weight);
            }
            self.calm = if z.abs() <= p.allowance * 2.0 {
                self.calm + 1
            } else {
                0
            };
            if self.calm < p.recovery_buckets {
                return None;
            }
            let incident = incident.clone();
            self.open = None;
            self.calm = 0;
            (self.up, self.down, self.up_from, self.down_from) = (0.0, 0.0, None, None);
            self.up_residuals.clear();
            self.down_residuals.clear();
            return Some(SeasonalChange::Resolved { incident, at });
        }

        if self.seen <= p.warmup {
            self.learn(how, expected + z * scale, (y - expected).abs());
            return None;
        }
        let residual = y - expected;
        self.up = (self.up + z - p.allowance).max(0.0);
        self.down = (self.down - z - p.allowance).max(0.0);
        track(
            self.up,
            &mut self.up_from,
            &mut self.up_residuals,
            at,
            residual,
        );
        track(
            self.down,
            &mut self.down_from,
            &mut self.down_residuals,
            at,
            -residual,
        );
        let direction = if self.up > p.threshold && median(&self.up_residuals) > self.band() {
            Some((Direction::Up, self.up_from))
        } else if self.down > p.threshold && median(&self.down_residuals) > self.band() {
            Some((Direction::Down, self.down_from))
        } else {
            None
        };
        match direction {
            Some((direction, from)) => {
                let incident = SeasonalIncident {
                    started_at: from.unwrap_or(at),
                    detected_at: at,
                    direction,
                    value,
                    expected: expected.exp() - p.log_offset,
                    baseline,
                };
                tracing::info!(
                    started_at = %incident.started_at,
                    value,
                    expected = incident.expected,
                    baseline,
                    "seasonal metric excursion"
                );
                self.open = Some(incident.clone());
                Some(SeasonalChange::Opened(incident))
            }
            _ => {
                // What the baselines learn is clipped: an outlier moves them by a few scales
                // at most.
                self.learn(how, expected + z * scale, (y - expected).abs());
                None
            }
        }
    }

    /// The absolute residual `band_quantile` of the last day's normal buckets lie within.
    fn band(&self) -> f64 {
        if self.normal.is_empty() || self.params.band_quantile <= 0.0 {
            return 0.0;
        }
        let mut sorted: Vec<f64> = self.normal.iter().copied().collect();
        sorted.sort_unstable_by(f64::total_cmp);
        let rank = (self.params.band_quantile.min(1.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    fn learn(&mut self, how: usize, y: f64, residual: f64) {
        // The very first value had nothing to be a residual against.
        if self.recent.count > 0 {
            if self.normal.len() == BAND_WINDOW {
                self.normal.pop_front();
            }
            self.normal.push_back(residual);
        }
        let p = &self.params;
        self.week[how].learn(y, p.slot_weight);
        self.day[how % 24].learn(y, p.slot_weight);
        self.recent.learn(y, p.level_weight);
        if self.recent.count > 1 {
            self.scale.learn(
                residual.min(self.scale.mean * 1.25 * p.clip + p.min_scale),
                p.level_weight,
            );
        }
    }
}

/// Keeps one CUSUM's start and its latest residuals (`residual` signed so that its direction is
/// positive) while it stands above zero.
fn track(
    cusum: f64,
    from: &mut Option<Timestamp>,
    residuals: &mut VecDeque<f64>,
    at: Timestamp,
    residual: f64,
) {
    if cusum == 0.0 {
        *from = None;
        residuals.clear();
        return;
    }
    from.get_or_insert(at);
    if residuals.len() == EXCURSION_WINDOW {
        residuals.pop_front();
    }
    residuals.push_back(residual);
}

fn median(values: &VecDeque<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted: Vec<f64> = values.iter().copied().collect();
    sorted.sort_unstable_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Monday 2026-11-23 00:00 UTC plus `i` five-minute buckets.
    fn bucket(i: u64) -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-23T00:00:00Z").unwrap() + Duration::from_secs(300 * i)
    }

    /// p95 latency in ms: busier (slower) in working hours, quieter at weekends, 10% noise.
    fn latency(rng: &mut fastrand::Rng, i: u64) -> f64 {
        let hour = (i / 12) % 24;
        let weekend = (i / 288) % 7 >= 5;
        let base = if (8..18).contains(&hour) && !weekend {
            240.0
        } else {
            120.0
        };
        base * (1.0 + 0.1 * (rng.f64() * 2.0 - 1.0))
    }

    /// The changes after the first week, which teaches the weekly rhythm (its weekend may be
    /// news once).
    fn run(
        seed: u64,
        buckets: std::ops::Range<u64>,
        factor: impl Fn(u64) -> f64,
    ) -> Vec<(u64, SeasonalChange)> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut d = SeasonalDetector::new(SeasonalParams::default());
        buckets
            .filter_map(|i| {
                let v = latency(&mut rng, i) * factor(i);
                d.update(bucket(i), v).map(|c| (i, c))
            })
            .filter(|(i, _)| *i >= WEEK)
            .collect()
    }

    const WEEK: u64 = 7 * 288;

    #[test]
    fn hour_of_week_counts_from_monday() {
        assert_eq!(hour_of_week(bucket(0)), 0);
        assert_eq!(hour_of_week(bucket(12 * 25)), 25);
        assert_eq!(hour_of_week(bucket(WEEK + 12)), 1);
    }

    #[test]
    fn clean_weeks_with_daily_and_weekly_rhythm_stay_quiet() {
        for seed in 0..5 {
            // The first week teaches the weekly rhythm: its weekend may be news once.
            let changes = run(seed, 0..4 * WEEK, |_| 1.0);
            let after_first_week: Vec<_> = changes.iter().filter(|(i, _)| *i >= WEEK).collect();
            assert!(
                after_first_week.is_empty(),
                "seed {seed}: {after_first_week:?}"
            );
        }
    }

    #[test]
    fn latency_times_five_is_one_incident_found_at_once_and_resolved_after() {
        let start = WEEK + 3 * 288 + 100;
        let changes = run(7, 0..2 * WEEK, |i| {
            if (start..start + 24).contains(&i) {
                5.0
            } else {
                1.0
            }
        });
        assert_eq!(changes.len(), 2, "{changes:?}");
        let (at, SeasonalChange::Opened(incident)) = &changes[0] else {
            panic!("{changes:?}");
        };
        assert!(
            (start..start + 3).contains(at),
            "found at bucket {at}, began {start}"
        );
        assert_eq!(incident.started_at, bucket(start));
        assert_eq!(incident.direction, Direction::Up);
        let (at, SeasonalChange::Resolved { .. }) = &changes[1] else {
            panic!("{changes:?}");
        };
        assert!((start + 24..start + 36).contains(at), "resolved at {at}");
    }

    #[test]
    fn a_volume_halving_in_working_hours_is_found_against_the_hour_of_week() {
        // Halved, a Wednesday morning looks like any night: only a baseline that knows the hour
        // sees it.
        let start = 2 * WEEK + 2 * 288 + 10 * 12;
        let changes = run(8, 0..3 * WEEK, |i| {
            if (start..start + 12).contains(&i) {
                0.5
            } else {
                1.0
            }
        });
        let (at, SeasonalChange::Opened(incident)) = &changes[0] else {
            panic!("{changes:?}");
        };
        assert!(
            (start..start + 4).contains(at),
            "found at {at}, began {start}"
        );
        assert_eq!(
            (incident.direction, incident.baseline),
            (Direction::Down, "hour_of_week")
        );
    }

    #[test]
    fn a_single_wild_bucket_is_not_an_incident() {
        let changes = run(9, 0..2 * WEEK, |i| if i == WEEK + 500 { 20.0 } else { 1.0 });
        assert!(changes.is_empty(), "{changes:?}");
    }

    /// Findings opened after the first week by a detector with `band_quantile` on latency of
    /// which one bucket in ten, at random, is 1.5 to 3 times as slow (a loaded machine).
    fn opened_on_heavy_tailed_latency(band_quantile: f64) -> usize {
        (0..5)
            .map(|seed| {
                let mut rng = fastrand::Rng::with_seed(seed);
                let mut d = SeasonalDetector::new(SeasonalParams {
                    band_quantile,
                    ..SeasonalParams::default()
                });
                (0..4 * WEEK)
                    .filter(|&i| {
                        let slow = if rng.f64() < 0.1 {
                            1.5 + 1.5 * rng.f64()
                        } else {
                            1.0
                        };
                        let v = latency(&mut rng, i) * slow;
                        matches!(d.update(bucket(i), v), Some(SeasonalChange::Opened(_)))
                            && i >= WEEK
                    })
                    .count()
            })
            .sum()
    }

    #[test]
    fn the_band_halves_the_findings_on_heavy_tailed_noise_and_a_sustained_rise_still_opens() {
        let (banded, cusum_alone) = (
            opened_on_heavy_tailed_latency(0.95),
            opened_on_heavy_tailed_latency(0.0),
        );
        assert!(
            banded * 2 <= cusum_alone,
            "{banded} findings in 15 noisy weeks with the band, {cusum_alone} without"
        );
        // Every bucket twice as slow is an excursion, found at once.
        let start = WEEK + 2 * 288 + 120;
        let changes = run(3, 0..WEEK + 3 * 288, |i| {
            if (start..start + 24).contains(&i) {
                2.0
            } else {
                1.0
            }
        });
        let (at, SeasonalChange::Opened(incident)) = &changes[0] else {
            panic!("{changes:?}");
        };
        assert!((start..start + 3).contains(at), "found at {at}");
        assert_eq!(incident.direction, Direction::Up);
    }

    /// A Poisson count of mean `lambda` (Knuth's method: fine for small means).
    fn poisson(rng: &mut fastrand::Rng, lambda: f64) -> f64 {
        let (limit, mut product, mut k) = ((-lambda).exp(), rng.f64(), 0);
        while product > limit {
            product *= rng.f64();
            k += 1;
        }
        f64::from(k)
    }

    #[test]
    fn a_sparse_count_stays_quiet_as_a_count() {
        // A burst at the first sync, then nothing, or now and then an event: a 0 where a little
        // more was usual is chance.
        let burst_then = |rate: f64| {
            move |rng: &mut fastrand::Rng, i: u64| {
                if i == 0 { 62.0 } else { poisson(rng, rate) }
            }
        };
        for rate in [0.0, 0.3] {
            for seed in 0..5 {
                let mut rng = fastrand::Rng::with_seed(seed);
                let series = burst_then(rate);
                let mut d = SeasonalDetector::counts(SeasonalParams::default());
                let changes: Vec<_> = (0..3 * WEEK)
                    .filter_map(|i| d.update(bucket(i), series(&mut rng, i)))
                    .collect();
                assert!(changes.is_empty(), "rate {rate}, seed {seed}: {changes:?}");
            }
        }
        // Judged as a measurement (its learned spread only), the burst's hour cries wolf a day
        // later.
        let (mut rng, series) = (fastrand::Rng::with_seed(0), burst_then(0.0));
        let mut d = SeasonalDetector::new(SeasonalParams::default());
        assert!((0..3 * WEEK).any(|i| d.update(bucket(i), series(&mut rng, i)).is_some()));
    }

    #[test]
    fn a_busy_count_that_stops_is_found_at_once() {
        // About 85 writes per five minutes, uniform 0-34 a minute, then none for an hour.
        let mut rng = fastrand::Rng::with_seed(4);
        let mut d = SeasonalDetector::counts(SeasonalParams::default());
        let start = WEEK + 3 * 288 + 100;
        let changes: Vec<_> = (0..2 * WEEK)
            .filter_map(|i| {
                let writes: u32 = (0..5).map(|_| rng.u32(0..=34)).sum();
                let v = if (start..start + 12).contains(&i) {
                    0.0
                } else {
                    f64::from(writes)
                };
                d.update(bucket(i), v).map(|c| (i, c))
            })
            .filter(|(i, _)| *i >= WEEK)
            .collect();
        let found = changes.iter().any(|(at, change)| {
            matches!(change, SeasonalChange::Opened(incident)
                if incident.direction == Direction::Down && (start..start + 3).contains(at))
        });
        assert!(found, "{changes:?}");
    }

    #[test]
    fn the_incident_becomes_a_finding() {
        let incident = SeasonalIncident {
            started_at: bucket(10),
            detected_at: bucket(12),
            direction: Direction::Up,
            value: 1200.0,
            expected: 240.0,
            baseline: "hour_of_week",
        };
        let finding = incident.finding("latency_p95", "items:erp");
        assert_eq!(finding.fingerprint, "latency_p95:items:erp");
        assert_eq!(finding.severity, Severity::Warning);
        assert_eq!(
            finding.title,
            "latency_p95 of items:erp rose to 1200.000 (expected 240.000, x5.00)"
        );
    }
}

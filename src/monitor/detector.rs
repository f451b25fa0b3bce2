//! The generic metric-stream detector: any numeric series in, one anomaly score in [0, 1] per point
//! out, streaming and causal (the score of a point is computed from that point and the ones before
//! it, then the point is learned; nothing is ever revised), with one parameter set for every
//! series.
//!
//! Two kinds of evidence are added up:
//! - **statistical surprise**: three views of the stream each give a nonconformity per point:
//!   the value against a window of recent values, the step from the previous value against recent
//!   steps, and the shape of the last few values against the shapes remembered (mean distance to
//!   the k nearest in delay-embedding space, which is what makes a flat stretch in a daily cycle
//!   or a missing peak stand out). Each nonconformity is ranked against that view's own history,
//!   so a jump that recurs every day is ordinary however large it is; the rarest view counts.
//! - **context novelty** (after CAD OSE): the share of coarse level sequences ending at this point
//!   that were never seen before. Noise settles into known sequences; a new level or an unheard-of
//!   transition does not.
//!
//! One excursion should raise one alarm: a point only scores when it tops every raw score of the
//! `rest_period` points before it.

use std::collections::{HashMap, VecDeque};

use ndarray::Array2;

/// The production alarm level of [`Detector`]: a point scoring at or above it is an alarm. Chosen
/// next to the NAB-optimised threshold (see BENCHMARKS.md for how, and what it scores).
pub const ALARM_LEVEL: f64 = 0.40;

/// A causal scorer of one numeric stream: each call scores the new point from it and the points
/// before it, then learns it.
pub trait StreamDetector {
    /// The anomaly score of `value`, in [0, 1].
    fn update(&mut self, value: f64) -> f64;
}

/// The textbook baseline (NAB's "windowed Gaussian"): one minus the two-sided normal tail
/// probability of the value under the mean and deviation of the last `window` values.
#[derive(Debug, Clone)]
pub struct WindowedGaussian {
    values: RollingStats,
}

impl WindowedGaussian {
    pub fn new(window: usize) -> Self {
        Self {
            values: RollingStats::new(window),
        }
    }
}

impl Default for WindowedGaussian {
    /// NAB's window length.
    fn default() -> Self {
        Self::new(6400)
    }
}

impl StreamDetector for WindowedGaussian {
    fn update(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let score = if self.values.len() >= 2 {
            let tail = 10f64.powf(-two_sided(self.values.z(value).abs()).max(0.0));
            (1.0 - tail).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.values.push(value);
        score
    }
}

/// One parameter set for every series: nothing here is tuned per stream.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorParams {
    /// Points learned before any score above zero is given.
    pub warmup: usize,
    /// Length of the windows behind the value and step baselines.
    pub window: usize,
    /// Values per remembered shape.
    pub embed_dim: usize,
    /// Shapes remembered (oldest forgotten first).
    pub memory: usize,
    /// Neighbours whose mean distance is the novelty of a shape.
    pub neighbours: usize,
    /// A point scores only when its raw score tops those of this many points before it.
    pub rest_period: usize,
    /// Statistical surprise (-log10 of the tail probability) that adds `weight_statistical` to
    /// the score.
    pub full_scale_log10: f64,
    /// Nonconformities remembered to rank a new one against.
    pub tail_window: usize,
    /// Nonconformities needed before a view may speak.
    pub min_history: usize,
    /// How fast surprise grows past the largest nonconformity remembered (Pareto tail index).
    pub tail_index: f64,
    /// Longest level sequence whose novelty counts.
    pub context_order: usize,
    /// Levels across the range of the values seen (CAD OSE uses 7 steps, 3 bits).
    pub context_levels: f64,
    /// Values before the level grid is first set; it is reset each time their number doubles.
    pub context_first_grid: usize,
    /// No grid reset after this many values: the levels stay put from then on.
    pub context_last_grid: usize,
    /// Points whose level sequences are remembered (bounds the memory of a long-running stream).
    pub context_memory: usize,
    /// Share of the score from the statistical surprise (at `full_scale_log10`).
    pub weight_statistical: f64,
    /// Share of the score from context novelty (when every sequence is new).
    pub weight_context: f64,
    /// Weights of the three statistical views (0 silences a view).
    pub weight_value: f64,
    pub weight_step: f64,
    pub weight_shape: f64,
}

impl Default for DetectorParams {
    fn default() -> Self {
        Self {
            warmup: 150,
            window: 1000,
            embed_dim: 8,
            memory: 800,
            neighbours: 5,
            rest_period: 100,
            full_scale_log10: 6.0,
            tail_window: 4000,
            min_history: 50,
            tail_index: 2.0,
            context_order: 3,
            context_levels: 7.0,
            context_first_grid: 150,
            context_last_grid: 4800,
            context_memory: 25_000,
            weight_statistical: 0.5,
            weight_context: 0.3,
            weight_value: 1.0,
            weight_step: 1.0,
            weight_shape: 1.0,
        }
    }
}

/// Mean and variance of the last `capacity` numbers pushed.
#[derive(Debug, Clone)]
struct RollingStats {
    items: VecDeque<f64>,
    capacity: usize,
    sum: f64,
    sum_sq: f64,
    pushes_since_resum: usize,
}

impl RollingStats {
    fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::with_capacity(capacity + 1),
            capacity: capacity.max(2),
            sum: 0.0,
            sum_sq: 0.0,
            pushes_since_resum: 0,
        }
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn push(&mut self, x: f64) {
        self.items.push_back(x);
        self.sum += x;
        self.sum_sq += x * x;
        if self.items.len() > self.capacity
            && let Some(old) = self.items.pop_front()
        {
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        // Running sums drift when large and small values alternate; recomputing now and then
        // keeps the variance honest at a cost of one pass per window.
        self.pushes_since_resum += 1;
        if self.pushes_since_resum >= self.capacity {
            self.pushes_since_resum = 0;
            self.sum = self.items.iter().sum();
            self.sum_sq = self.items.iter().map(|v| v * v).sum();
        }
    }

    fn mean(&self) -> f64 {
        self.sum / self.items.len().max(1) as f64
    }

    fn std(&self) -> f64 {
        let n = self.items.len() as f64;
        if n < 2.0 {
            return 0.0;
        }
        let mean = self.sum / n;
        ((self.sum_sq / n - mean * mean).max(0.0) * n / (n - 1.0)).sqrt()
    }

    /// How many standard deviations `x` lies from the mean; a flat history makes any change
    /// infinitely surprising, and no change none at all.
    fn z(&self, x: f64) -> f64 {
        let mean = self.mean();
        let dev = x - mean;
        let floor = 1e-9 * (1.0 + mean.abs());
        if dev.abs() <= floor {
            return 0.0;
        }
        dev / self.std().max(floor)
    }
}

/// -log10 of the upper tail of the standard normal at `z` (one-sided), accurate far into the tail
/// where the probability itself would underflow.
fn neg_log10_upper_tail(z: f64) -> f64 {
    if z <= 0.0 {
        return 0.0;
    }
    // Numerical Recipes' erfc (fractional error < 1.2e-7), kept in logs.
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    // upper tail = erfc(x) / 2
    -((t.ln() + poly) / std::f64::consts::LN_10 - std::f64::consts::LOG10_2)
}

/// How rare a nonconformity is among the last `capacity` ones seen: the share of them at least as
/// large, and beyond the largest a Pareto tail, so a value twice the record is rarer than one just
/// above it. Ranks, not moments: a jump that recurs every day is ordinary however large it is.
#[derive(Debug, Clone)]
struct EmpiricalTail {
    /// Arrival order, to know which one to forget.
    arrivals: VecDeque<f64>,
    /// The same values sorted, so a rank is a binary search rather than a pass.
    sorted: Vec<f64>,
    capacity: usize,
    tail_index: f64,
}

impl EmpiricalTail {
    fn new(capacity: usize, tail_index: f64) -> Self {
        let capacity = capacity.max(1);
        Self {
            arrivals: VecDeque::with_capacity(capacity + 1),
            sorted: Vec::with_capacity(capacity + 1),
            capacity,
            tail_index,
        }
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }

    fn rank(&self, a: f64) -> usize {
        self.sorted.partition_point(|h| h.total_cmp(&a).is_lt())
    }

    /// -log10 of the probability of a nonconformity at least `a`.
    fn surprise(&self, a: f64) -> f64 {
        let n = self.sorted.len();
        let at_least = n - self.rank(a);
        let n = n as f64;
        if at_least > 0 {
            return ((n + 1.0) / (at_least as f64 + 1.0)).log10();
        }
        let beyond = match self.sorted.last() {
            Some(&max) if max > 0.0 => self.tail_index * (a / max).log10(),
            // Never anything but zero before: any departure is news.
            _ => f64::INFINITY,
        };
        (n + 1.0).log10() + beyond
    }

    fn push(&mut self, a: f64) {
        self.arrivals.push_back(a);
        let at = self.rank(a);
        self.sorted.insert(at, a);
        if self.arrivals.len() > self.capacity
            && let Some(old) = self.arrivals.pop_front()
        {
            let at = self.rank(old);
            self.sorted.remove(at);
        }
    }
}

/// Novelty of the latest context, in the spirit of CAD OSE: values are cut into coarse levels and
/// the share of the level sequences of length 1..=`order` ending at this point that were never
/// seen before is the novelty. Noise settles into known sequences quickly; a new level or an
/// unheard-of transition does not.
///
/// The level grid spans the range of the values seen so far. It is set after `first_grid` values
/// and reset each time their number doubles, up to `last_grid`, each time relearning the values
/// kept so far: early on the detector can already speak, later the grid reflects a longer past,
/// and after `last_grid` the levels never move again.
///
/// Sequences are remembered for the last `memory` points only, so a detector that runs for months
/// on a wandering metric keeps a bounded memory (and "new" means not seen for that long).
#[derive(Debug, Clone)]
struct ContextNovelty {
    order: usize,
    levels: f64,
    next_grid: usize,
    last_grid: usize,
    kept: Vec<f64>,
    count: usize,
    grid: Option<(f64, f64)>,
    recent: VecDeque<i64>,
    /// How many of the remembered points end with each sequence.
    seen: HashMap<u64, u32>,
    /// The sequences each remembered point ended, oldest first: `order` per point (fewer for the
    /// first points after a grid reset, hence the lengths).
    remembered: VecDeque<u64>,
    remembered_lens: VecDeque<u8>,
    memory: usize,
}

impl ContextNovelty {
    fn new(order: usize, levels: f64, first_grid: usize, last_grid: usize, memory: usize) -> Self {
        let first_grid = first_grid.max(2);
        Self {
            // Lengths are kept in a byte; sequences longer than a few levels are noise anyway.
            order: order.clamp(1, 16),
            levels: levels.max(1.0),
            next_grid: first_grid,
            last_grid: last_grid.max(first_grid),
            kept: Vec::new(),
            count: 0,
            grid: None,
            recent: VecDeque::new(),
            seen: HashMap::new(),
            remembered: VecDeque::new(),
            remembered_lens: VecDeque::new(),
            memory: memory.max(1),
        }
    }

    fn forget_oldest(&mut self) {
        let Some(len) = self.remembered_lens.pop_front() else {
            return;
        };
        for hash in self.remembered.drain(..usize::from(len)) {
            if let Some(count) = self.seen.get_mut(&hash) {
                *count -= 1;
                if *count == 0 {
                    self.seen.remove(&hash);
                }
            }
        }
    }

    fn regrid(&mut self) {
        let lo = self.kept.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.kept.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let width = if hi > lo {
            (hi - lo) / self.levels
        } else {
            1e-9 * (1.0 + lo.abs())
        };
        self.grid = Some((lo, width));
        self.seen.clear();
        self.remembered.clear();
        self.remembered_lens.clear();
        self.recent.clear();
        let kept = std::mem::take(&mut self.kept);
        for &v in &kept {
            self.learn(v);
        }
        self.kept = kept;
        self.next_grid = match self.next_grid.saturating_mul(2) {
            n if n <= self.last_grid => n,
            _ => usize::MAX,
        };
    }

    /// Remembers every sequence ending at `x`; returns how many of the `order` were new.
    fn learn(&mut self, x: f64) -> usize {
        let Some((lo, width)) = self.grid else {
            return 0;
        };
        let level = ((x - lo) / width).floor() as i64;
        self.recent.push_front(level);
        self.recent.truncate(self.order);
        let mut hash = 0x9e37_79b9_7f4a_7c15u64;
        let mut new = 0;
        for (len, l) in self.recent.iter().enumerate() {
            hash = mix(hash ^ (*l as u64)).wrapping_add(len as u64);
            let count = self.seen.entry(hash).or_insert(0);
            if *count == 0 {
                new += 1;
            }
            *count += 1;
            self.remembered.push_back(hash);
        }
        // `recent` holds at most `order` (<= 16) levels.
        self.remembered_lens.push_back(self.recent.len() as u8);
        if self.remembered_lens.len() > self.memory {
            self.forget_oldest();
        }
        new
    }

    /// The novelty of `x` in [0, 1], once there is a grid; `x` is judged before it is learned.
    fn push(&mut self, x: f64) -> Option<f64> {
        self.count += 1;
        if self.count == self.next_grid {
            self.regrid();
        }
        if self.count <= self.last_grid {
            self.kept.push(x);
        }
        self.grid?;
        Some(self.learn(x) as f64 / self.order as f64)
    }
}

/// SplitMix64's finaliser: spreads the bits of a sequence hash.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Novelty of the latest shape: mean distance to its nearest remembered shapes.
#[derive(Debug, Clone)]
struct ShapeMemory {
    dim: usize,
    neighbours: usize,
    /// Remembered shapes, one per column (row j holds every shape's j-th value), overwritten
    /// oldest first once full. Column-wise, the distances to all shapes are built one coordinate
    /// at a time over contiguous rows: independent sums the compiler vectorises.
    shapes: Array2<f64>,
    filled: usize,
    next: usize,
    /// Shapes that still overlap the current one: remembering them at once would make every
    /// shape its own near neighbour.
    pending: VecDeque<Vec<f64>>,
    recent: VecDeque<f64>,
    distances: Vec<f64>,
}

impl ShapeMemory {
    fn new(dim: usize, capacity: usize, neighbours: usize) -> Self {
        let dim = dim.max(1);
        Self {
            dim,
            neighbours: neighbours.max(1),
            shapes: Array2::zeros((dim, capacity.max(1))),
            filled: 0,
            next: 0,
            pending: VecDeque::with_capacity(dim + 1),
            recent: VecDeque::with_capacity(dim + 1),
            distances: Vec::with_capacity(capacity),
        }
    }

    /// Takes the next value; returns the novelty of the shape it completes, once enough shapes
    /// are remembered to judge.
    fn push(&mut self, x: f64) -> Option<f64> {
        self.recent.push_back(x);
        if self.recent.len() > self.dim {
            self.recent.pop_front();
        }
        if self.recent.len() < self.dim {
            return None;
        }
        let shape: Vec<f64> = self.recent.iter().copied().collect();
        let novelty = (self.filled >= self.neighbours).then(|| self.novelty(&shape));
        self.pending.push_back(shape);
        if self.pending.len() > self.dim
            && let Some(old) = self.pending.pop_front()
        {
            self.remember(&old);
        }
        novelty
    }

    fn novelty(&mut self, shape: &[f64]) -> f64 {
        self.distances.clear();
        self.distances.resize(self.filled, 0.0);
        for (coordinate, &q) in self.shapes.rows().into_iter().zip(shape) {
            // Rows of an owned array in standard layout are contiguous: this never skips.
            let Some(values) = coordinate.to_slice() else {
                continue;
            };
            for (d, &v) in self.distances.iter_mut().zip(&values[..self.filled]) {
                *d += (v - q) * (v - q);
            }
        }
        let k = self.neighbours.min(self.distances.len());
        if k == 0 {
            return 0.0;
        }
        self.distances
            .select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
        self.distances[..k].iter().map(|d| d.sqrt()).sum::<f64>() / k as f64
    }

    fn remember(&mut self, shape: &[f64]) {
        let capacity = self.shapes.ncols();
        for (slot, v) in self.shapes.column_mut(self.next).iter_mut().zip(shape) {
            *slot = *v;
        }
        self.next = (self.next + 1) % capacity;
        self.filled = (self.filled + 1).min(capacity);
    }
}

/// One view of the stream: its nonconformities, each judged against the ones before it.
#[derive(Debug, Clone)]
struct View {
    weight: f64,
    min_history: usize,
    history: EmpiricalTail,
}

impl View {
    fn new(weight: f64, params: &DetectorParams) -> Self {
        Self {
            weight,
            min_history: params.min_history,
            history: EmpiricalTail::new(params.tail_window, params.tail_index),
        }
    }

    /// The weighted surprise of nonconformity `a`, which is then remembered.
    fn judge(&mut self, a: f64) -> f64 {
        // Only overflowing input (inf - inf) gets here: it says nothing and must not be learned.
        if a.is_nan() {
            return 0.0;
        }
        let surprise = if self.history.len() >= self.min_history {
            self.history.surprise(a)
        } else {
            0.0
        };
        self.history.push(a);
        self.weight * surprise
    }
}

/// The detector for one series. Feed it every point in order with [`StreamDetector::update`].
#[derive(Debug, Clone)]
pub struct Detector {
    params: DetectorParams,
    seen: usize,
    last: Option<f64>,
    values: RollingStats,
    steps: RollingStats,
    shapes: ShapeMemory,
    value_view: View,
    step_view: View,
    shape_view: View,
    contexts: ContextNovelty,
    /// Raw scores of the last `rest_period` points: a point only speaks when it tops them all.
    recent_raw: VecDeque<f64>,
}

impl Detector {
    pub fn new(params: DetectorParams) -> Self {
        Self {
            seen: 0,
            last: None,
            values: RollingStats::new(params.window),
            steps: RollingStats::new(params.window),
            shapes: ShapeMemory::new(params.embed_dim, params.memory, params.neighbours),
            value_view: View::new(params.weight_value, &params),
            step_view: View::new(params.weight_step, &params),
            shape_view: View::new(params.weight_shape, &params),
            contexts: ContextNovelty::new(
                params.context_order,
                params.context_levels,
                params.context_first_grid,
                params.context_last_grid,
                params.context_memory,
            ),
            recent_raw: VecDeque::new(),
            params,
        }
    }
}

impl StreamDetector for Detector {
    /// Scores `value` against everything seen so far, then learns it. Non-finite values are
    /// scored 0 and not learned: a gap in a metric is not evidence about its level.
    fn update(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let mut surprise: f64 = 0.0;
        if self.values.len() >= 2 {
            surprise = surprise.max(self.value_view.judge(self.values.z(value).abs()));
        }
        let step = self.last.map(|last| value - last);
        if let Some(step) = step
            && self.steps.len() >= 2
        {
            surprise = surprise.max(self.step_view.judge(self.steps.z(step).abs()));
        }
        if let Some(novelty) = self.shapes.push(value) {
            surprise = surprise.max(self.shape_view.judge(novelty));
        }
        let novelty = self.contexts.push(value).unwrap_or(0.0);
        self.values.push(value);
        if let Some(step) = step {
            self.steps.push(step);
        }
        self.last = Some(value);
        self.seen += 1;

        let p = &self.params;
        let raw = if self.seen <= p.warmup {
            0.0
        } else {
            (p.weight_statistical * surprise / p.full_scale_log10 + p.weight_context * novelty)
                .clamp(0.0, 1.0)
        };
        let score = if self.recent_raw.iter().any(|&r| r >= raw) {
            0.0
        } else {
            raw
        };
        self.recent_raw.push_back(raw);
        if self.recent_raw.len() > self.params.rest_period {
            self.recent_raw.pop_front();
        }
        score
    }
}

/// -log10 of the two-sided normal tail probability at `z`.
fn two_sided(z: f64) -> f64 {
    neg_log10_upper_tail(z.abs()) - std::f64::consts::LOG10_2
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALARM: f64 = ALARM_LEVEL;

    fn gaussian(rng: &mut fastrand::Rng) -> f64 {
        // Box-Muller: enough for test noise.
        let u = rng.f64().max(f64::MIN_POSITIVE);
        let v = rng.f64();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn noise(seed: u64, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n).map(|_| mean + sd * gaussian(&mut rng)).collect()
    }

    /// A daily-like cycle of `period` points with noise.
    fn cycle(seed: u64, n: usize, period: usize, sd: f64) -> Vec<f64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n)
            .map(|i| {
                let phase = std::f64::consts::TAU * i as f64 / period as f64;
                50.0 + 20.0 * phase.sin() + sd * gaussian(&mut rng)
            })
            .collect()
    }

    fn scores(params: DetectorParams, series: &[f64]) -> Vec<f64> {
        let mut d = Detector::new(params);
        series.iter().map(|&v| d.update(v)).collect()
    }

    fn alarms(scores: &[f64], level: f64) -> Vec<usize> {
        (0..scores.len()).filter(|&i| scores[i] >= level).collect()
    }

    /// Only the named evidence speaks.
    fn only(view: &str) -> DetectorParams {
        let mut p = DetectorParams {
            weight_value: 0.0,
            weight_step: 0.0,
            weight_shape: 0.0,
            ..DetectorParams::default()
        };
        match view {
            "value" => p.weight_value = 1.0,
            "step" => p.weight_step = 1.0,
            "shape" => p.weight_shape = 1.0,
            "context" => p.weight_statistical = 0.0,
            other => panic!("no view {other}"),
        }
        if view != "context" {
            p.weight_context = 0.0;
        }
        p
    }

    fn quiet_prefix_max(scores: &[f64], until: usize) -> f64 {
        scores[..until].iter().copied().fold(0.0, f64::max)
    }

    #[test]
    fn scores_stay_in_the_unit_interval_whatever_the_input() {
        let mut series = noise(11, 3000, 0.0, 1.0);
        series[1000] = 1e300;
        series[1001] = -1e300;
        series[1500] = f64::NAN;
        series[1600] = f64::INFINITY;
        series[2000] = 1e-300;
        series.extend(std::iter::repeat_n(5.0, 500));
        for params in [DetectorParams::default(), only("value"), only("context")] {
            for s in scores(params, &series) {
                assert!((0.0..=1.0).contains(&s), "score {s}");
            }
        }
        let mut wg = WindowedGaussian::default();
        for &v in &series {
            let s = wg.update(v);
            assert!((0.0..=1.0).contains(&s), "baseline score {s}");
        }
    }

    #[test]
    fn appending_future_points_never_changes_past_scores() {
        let past = cycle(21, 3000, 100, 1.0);
        let mut calm = past.clone();
        calm.extend(cycle(22, 1000, 100, 1.0));
        let mut wild = past.clone();
        wild.extend(noise(23, 1000, 500.0, 50.0));
        let alone = scores(DetectorParams::default(), &past);
        let followed_by_calm = scores(DetectorParams::default(), &calm);
        let followed_by_wild = scores(DetectorParams::default(), &wild);
        assert_eq!(alone[..], followed_by_calm[..3000]);
        assert_eq!(alone[..], followed_by_wild[..3000]);
        assert_ne!(followed_by_calm[3000..], followed_by_wild[3000..]);
    }

    #[test]
    fn value_view_alone_flags_a_spike_above_anything_before() {
        let mut series = noise(31, 4000, 10.0, 1.0);
        series[3000] += 12.0;
        let s = scores(only("value"), &series);
        assert!(
            s[3000] > quiet_prefix_max(&s, 3000),
            "spike {} vs quiet {}",
            s[3000],
            quiet_prefix_max(&s, 3000)
        );
    }

    #[test]
    fn step_view_alone_flags_a_level_shift_at_once() {
        let mut series = noise(32, 4000, 10.0, 1.0);
        for v in &mut series[3000..] {
            *v += 10.0;
        }
        let s = scores(only("step"), &series);
        assert!(
            s[3000] > quiet_prefix_max(&s, 3000),
            "shift {} vs quiet {}",
            s[3000],
            quiet_prefix_max(&s, 3000)
        );
    }

    #[test]
    fn shape_view_alone_flags_a_flat_stretch_in_a_cycle() {
        let mut series = cycle(33, 4000, 100, 0.3);
        for v in &mut series[3000..3060] {
            *v = 50.0;
        }
        let s = scores(only("shape"), &series);
        let first = (3000..3060).find(|&i| s[i] > quiet_prefix_max(&s, 3000));
        assert!(
            first.is_some_and(|i| i < 3030),
            "flat stretch missed: {first:?}"
        );
    }

    #[test]
    fn context_view_alone_flags_a_new_level_and_is_silent_on_a_known_pattern() {
        let pattern = [10.0, 12.0, 15.0, 20.0, 15.0, 12.0];
        let mut series: Vec<f64> = (0..4000)
            .map(|i| pattern[(i / 7) % pattern.len()])
            .collect();
        let quiet = scores(only("context"), &series[..3000]);
        assert!(
            quiet[200..].iter().all(|&s| s == 0.0),
            "a known pattern scored"
        );
        series[3000] = 40.0;
        let s = scores(only("context"), &series);
        assert!(s[3000] >= 0.3 - 1e-12, "new level scored {}", s[3000]);
    }

    #[test]
    fn context_memory_stays_bounded_on_a_wandering_stream() {
        let mut contexts = ContextNovelty::new(3, 7.0, 150, 4800, 1000);
        let mut rng = fastrand::Rng::with_seed(35);
        let mut level = 0.0;
        for _ in 0..50_000 {
            level += gaussian(&mut rng);
            contexts.push(level);
        }
        assert_eq!(contexts.remembered_lens.len(), 1000);
        assert!(contexts.remembered.len() <= 3000);
        assert!(
            contexts.seen.len() <= 3000,
            "{} sequences",
            contexts.seen.len()
        );
        assert!(contexts.seen.values().all(|&c| c > 0));
    }

    #[test]
    fn detector_alarms_on_a_spike_and_on_a_level_shift() {
        let mut series = noise(41, 4000, 10.0, 1.0);
        series[2500] += 12.0;
        for v in &mut series[3500..] {
            *v += 10.0;
        }
        let s = scores(DetectorParams::default(), &series);
        assert!(s[2500] >= ALARM, "spike scored {}", s[2500]);
        let shift = (3500..3504).find(|&i| s[i] >= ALARM);
        assert!(shift.is_some(), "shift scored {:?}", &s[3500..3504]);
    }

    #[test]
    fn detector_raises_one_alarm_per_excursion() {
        let mut series = noise(42, 4000, 10.0, 1.0);
        for v in &mut series[3000..3500] {
            *v += 10.0;
        }
        let s = scores(DetectorParams::default(), &series);
        let during = alarms(&s[3000..3500], ALARM);
        assert!(
            (1..=2).contains(&during.len()),
            "alarms during the excursion: {during:?}"
        );
    }

    #[test]
    fn detector_stays_quiet_on_clean_series() {
        let n = 5000;
        let flat = scores(DetectorParams::default(), &vec![3.0; n]);
        assert!(flat.iter().all(|&s| s == 0.0));
        // A daily cycle with noise, and white noise: a false alarm in a few thousand points at
        // most (Gaussian noise keeps setting records, and a new record is news to a detector that
        // may not assume the tails are Gaussian).
        let daily = alarms(
            &scores(DetectorParams::default(), &cycle(43, n, 288, 1.0)),
            ALARM,
        );
        assert!(daily.len() <= 2, "daily cycle alarms {daily:?}");
        let white = alarms(
            &scores(DetectorParams::default(), &noise(44, n, 10.0, 1.0)),
            ALARM,
        );
        assert!(white.len() <= 5, "white noise alarms {white:?}");
    }

    #[test]
    fn windowed_gaussian_baseline_flags_a_spike() {
        let mut series = noise(45, 1000, 10.0, 1.0);
        series[900] += 10.0;
        let mut wg = WindowedGaussian::default();
        let s: Vec<f64> = series.iter().map(|&v| wg.update(v)).collect();
        assert!(s[900] > 0.999_999, "spike scored {}", s[900]);
        assert!(s[800] < 0.999, "ordinary point scored {}", s[800]);
    }
}

//! The pair classifier: logistic regression (linfa) over standardised features, its decision
//! threshold chosen on out-of-fold predictions, saved as `model-v<N>.json` with a `meta.json`.

use std::path::{Path, PathBuf};

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::DedupError;

const FORMAT: &str = "syncwarden-dedup-logistic";
const FOLDS: usize = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub format: String,
    pub version: u32,
    pub entity: String,
    /// Feature names in vector order; a profile whose features differ cannot use this model.
    pub features: Vec<String>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub intercept: f64,
    /// Probability at or above which a pair is a match.
    pub threshold: f64,
}

/// Out-of-fold quality of a training run, at the chosen threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Mean squared error of the probabilities: lower is better calibrated.
    pub brier: f64,
    /// Expected calibration error over ten probability bins.
    pub ece: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub model_file: String,
    pub version: u32,
    pub entity: String,
    pub trained_at: String,
    pub training_data: Vec<String>,
    pub pairs: usize,
    pub matches: usize,
    /// Estimated with five-fold cross-validation on the training pairs.
    pub cross_validated: Metrics,
}

/// Precision, recall and F1 of `predicted` against `actual`.
pub fn prf(predicted: impl Iterator<Item = bool>, actual: &[bool]) -> (f64, f64, f64) {
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for (p, a) in predicted.zip(actual) {
        match (p, *a) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            (false, false) => {}
        }
    }
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    (precision, recall, f1)
}

/// The threshold (on a 0.01 grid within [0.05, 0.95]) giving the best F1, and that F1.
pub fn best_threshold(scores: &[f64], actual: &[bool]) -> (f64, f64) {
    (5..=95)
        .map(|t| {
            let t = f64::from(t) / 100.0;
            (t, prf(scores.iter().map(|s| *s >= t), actual).2)
        })
        // Ties go to the higher threshold: fewer false merges for the same F1.
        .fold((0.5, -1.0), |best, c| if c.1 >= best.1 { c } else { best })
}

fn calibration(probs: &[f64], actual: &[bool]) -> (f64, f64) {
    let n = probs.len().max(1) as f64;
    let brier = probs
        .iter()
        .zip(actual)
        .map(|(p, a)| (p - if *a { 1.0 } else { 0.0 }).powi(2))
        .sum::<f64>()
        / n;
    let mut bins = [(0.0, 0.0, 0.0); 10];
    for (p, a) in probs.iter().zip(actual) {
        let bin = &mut bins[((p * 10.0) as usize).min(9)];
        bin.0 += 1.0;
        bin.1 += p;
        bin.2 += if *a { 1.0 } else { 0.0 };
    }
    let ece = bins
        .iter()
        .filter(|b| b.0 > 0.0)
        .map(|(_, sum_p, sum_a)| (sum_p - sum_a).abs() / n)
        .sum();
    (brier, ece)
}

struct Fitted {
    weights: Vec<f64>,
    intercept: f64,
}

fn fit(x: &Array2<f64>, y: &[bool], alpha: f64) -> Result<Fitted, DedupError> {
    let dataset = Dataset::new(x.clone(), Array1::from_vec(y.to_vec()));
    let fitted = LogisticRegression::default()
        .alpha(alpha)
        .max_iterations(300)
        .fit(&dataset)
        .map_err(|e| DedupError::Training(e.to_string()))?;
    // linfa models the probability of the larger class; `true` is larger than `false`, but a
    // training set of one class only would flip that, so the sign is taken from the labels.
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    Ok(Fitted {
        weights: fitted.params().iter().map(|w| w * sign).collect(),
        intercept: fitted.intercept() * sign,
    })
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Model {
    /// The match probability of one feature vector.
    pub fn probability(&self, x: &[f64]) -> f64 {
        let z: f64 = x
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.weights)
            .map(|(((v, m), s), w)| (v - m) / s * w)
            .sum();
        sigmoid(z + self.intercept)
    }

    /// Trains on labelled feature vectors; `alpha` is the L2 penalty.
    pub fn train(
        entity: &str,
        features: Vec<String>,
        rows: &[Vec<f64>],
        labels: &[bool],
        alpha: f64,
    ) -> Result<(Self, Metrics), DedupError> {
        let positives = labels.iter().filter(|l| **l).count();
        if positives < FOLDS || labels.len() - positives < FOLDS {
            return Err(DedupError::Training(format!(
                "need at least {FOLDS} matches and {FOLDS} non-matches, got {positives} of {}",
                labels.len()
            )));
        }
        let d = features.len();
        let n = rows.len() as f64;
        let mut mean = vec![0.0; d];
        for r in rows {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v / n;
            }
        }
        let mut scale = vec![0.0; d];
        for r in rows {
            for ((s, v), m) in scale.iter_mut().zip(r).zip(&mean) {
                *s += (v - m).powi(2) / n;
            }
        }
        // A constant feature gets scale 1 so it neither divides by zero nor matters.
        let scale: Vec<f64> = scale
            .iter()
            .map(|v| if *v > 1e-12 { v.sqrt() } else { 1.0 })
            .collect();
        let x = Array2::from_shape_fn((rows.len(), d), |(i, j)| (rows[i][j] - mean[j]) / scale[j]);

        // Folds interleave matches and non-matches so each fold holds both.
        let mut fold = vec![0usize; labels.len()];
        let (mut pos, mut neg) = (0, 0);
        for (f, l) in fold.iter_mut().zip(labels) {
            let counter = if *l { &mut pos } else { &mut neg };
            *f = *counter % FOLDS;
            *counter += 1;
        }
        let mut oof = vec![0.0; labels.len()];
        for k in 0..FOLDS {
            let train: Vec<usize> = (0..labels.len()).filter(|i| fold[*i] != k).collect();
            let xt = x.select(ndarray::Axis(0), &train);
            let yt: Vec<bool> = train.iter().map(|i| labels[*i]).collect();
            let f = fit(&xt, &yt, alpha)?;
            for i in (0..labels.len()).filter(|i| fold[*i] == k) {
                let z: f64 = x.row(i).iter().zip(&f.weights).map(|(v, w)| v * w).sum();
                oof[i] = sigmoid(z + f.intercept);
            }
        }
        let (threshold, _) = best_threshold(&oof, labels);
        let (precision, recall, f1) = prf(oof.iter().map(|p| *p >= threshold), labels);
        let (brier, ece) = calibration(&oof, labels);
        let full = fit(&x, labels, alpha)?;
        let model = Self {
            format: FORMAT.into(),
            version: 0,
            entity: entity.into(),
            features,
            mean,
            scale,
            weights: full.weights,
            intercept: full.intercept,
            threshold,
        };
        let metrics = Metrics {
            precision,
            recall,
            f1,
            brier,
            ece,
        };
        Ok((model, metrics))
    }

    /// The highest `model-v<N>.json` in `dir`.
    pub fn load_latest(dir: &Path) -> Result<Self, DedupError> {
        let version = latest_version(dir)?.ok_or_else(|| DedupError::NoModel(dir.to_path_buf()))?;
        let path = dir.join(format!("model-v{version}.json"));
        let text = std::fs::read_to_string(&path).map_err(|source| DedupError::Io {
            path: path.clone(),
            source,
        })?;
        let model: Self = serde_json::from_str(&text).map_err(|e| DedupError::BadModel {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if model.format != FORMAT || model.weights.len() != model.features.len() {
            return Err(DedupError::BadModel {
                path,
                message: format!("not a {FORMAT} model with one weight per feature"),
            });
        }
        Ok(model)
    }

    /// Checks the model was trained on exactly these features.
    pub fn check_features(&self, names: &[String]) -> Result<(), DedupError> {
        if self.features != names {
            return Err(DedupError::FeatureMismatch {
                model: self.features.len(),
                profile: names.len(),
            });
        }
        Ok(())
    }

    /// Writes the model as the next version in `dir`, and `meta.json` describing it.
    pub fn save_next(
        mut self,
        dir: &Path,
        training_data: Vec<String>,
        labels: &[bool],
        metrics: Metrics,
    ) -> Result<(PathBuf, Meta), DedupError> {
        std::fs::create_dir_all(dir).map_err(|source| DedupError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        self.version = latest_version(dir)?.unwrap_or(0) + 1;
        let file = format!("model-v{}.json", self.version);
        let path = dir.join(&file);
        write_json(&path, &self)?;
        let meta = Meta {
            model_file: file,
            version: self.version,
            entity: self.entity.clone(),
            trained_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            training_data,
            pairs: labels.len(),
            matches: labels.iter().filter(|l| **l).count(),
            cross_validated: metrics,
        };
        write_json(&dir.join("meta.json"), &meta)?;
        Ok((path, meta))
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), DedupError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| DedupError::BadModel {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text + "\n").map_err(|source| DedupError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn latest_version(dir: &Path) -> Result<Option<u32>, DedupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DedupError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    Ok(entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("model-v")?
                .strip_suffix(".json")?
                .parse::<u32>()
                .ok()
        })
        .max())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two noisy features, the first informative: a learnable, not separable, problem.
    fn data() -> (Vec<Vec<f64>>, Vec<bool>) {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..400)
            .map(|i| {
                let y = i % 4 == 0;
                let signal = if y { 0.8 } else { 0.3 } + rng.f64() * 0.4 - 0.2;
                (vec![signal, rng.f64()], y)
            })
            .unzip()
    }

    #[test]
    fn learns_separates_and_round_trips() {
        let (x, y) = data();
        let names = vec!["a".to_string(), "b".to_string()];
        let (model, metrics) = Model::train("test", names.clone(), &x, &y, 0.01).unwrap();
        assert!(metrics.f1 > 0.9, "{metrics:?}");
        assert!(model.weights[0] > 0.0 && model.weights[0].abs() > model.weights[1].abs());
        assert!(model.probability(&[0.9, 0.5]) > 0.9);
        assert!(model.probability(&[0.2, 0.5]) < 0.1);

        let dir = tempfile::tempdir().unwrap();
        let (path, meta) = model
            .clone()
            .save_next(dir.path(), vec!["x.csv".into()], &y, metrics.clone())
            .unwrap();
        assert!(path.ends_with("model-v1.json"));
        assert_eq!(meta.matches, 100);
        let (_, meta2) = model.save_next(dir.path(), vec![], &y, metrics).unwrap();
        assert_eq!(meta2.version, 2);
        let loaded = Model::load_latest(dir.path()).unwrap();
        assert_eq!(loaded.version, 2);
        loaded.check_features(&names).unwrap();
        assert!(loaded.check_features(&names[..1]).is_err());
    }

    #[test]
    fn refuses_a_single_class() {
        let err = Model::train(
            "t",
            vec!["a".into()],
            &vec![vec![1.0]; 10],
            &[true; 10],
            0.1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("non-matches"), "{err}");
    }

    #[test]
    fn best_threshold_maximises_f1() {
        let scores = [0.1, 0.2, 0.55, 0.6, 0.9];
        let actual = [false, false, false, true, true];
        let (t, f1) = best_threshold(&scores, &actual);
        assert!(t > 0.55 && t <= 0.6, "{t}");
        assert_eq!(f1, 1.0);
    }
}

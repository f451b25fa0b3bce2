//! Offline scoring: `timestamp,value` series in, `timestamp,value,anomaly_score` out, same rows in
//! the same order, each point scored by the live detector before the next one is seen.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::MonitorError;
use super::detector::{Detector, DetectorParams, StreamDetector, WindowedGaussian};

/// Which detector scores the series: the monitor's own, or the plain windowed Gaussian it is
/// measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorKind {
    Ensemble,
    WindowedGaussian,
}

impl DetectorKind {
    /// A fresh detector; `params` are the ensemble's (`[monitor.detector]`).
    pub fn build(self, params: &DetectorParams) -> Box<dyn StreamDetector> {
        match self {
            DetectorKind::Ensemble => Box::new(Detector::new(params.clone())),
            DetectorKind::WindowedGaussian => Box::new(WindowedGaussian::default()),
        }
    }
}

/// What a scoring run did, and what the detector alone cost.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreSummary {
    pub detector: DetectorKind,
    pub files: usize,
    pub points: usize,
    pub detector_seconds: f64,
    pub ns_per_point: f64,
    pub points_per_sec: f64,
}

impl ScoreSummary {
    fn new(detector: DetectorKind, files: usize, points: usize, spent: Duration) -> Self {
        let secs = spent.as_secs_f64();
        Self {
            detector,
            files,
            points,
            detector_seconds: secs,
            ns_per_point: if points > 0 {
                secs * 1e9 / points as f64
            } else {
                0.0
            },
            points_per_sec: if secs > 0.0 {
                points as f64 / secs
            } else {
                0.0
            },
        }
    }
}

/// One row as read: the timestamp and value text are written back untouched.
struct Row<'a> {
    timestamp: &'a str,
    value_text: &'a str,
    value: f64,
}

fn bad(path: &Path, line: usize, message: impl Into<String>) -> MonitorError {
    MonitorError::BadInput {
        path: path.display().to_string(),
        line,
        message: message.into(),
    }
}

/// Reads the header and every row; the columns are found by name so `value,timestamp` works too.
fn parse<'a>(path: &Path, text: &'a str) -> Result<Vec<Row<'a>>, MonitorError> {
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Err(bad(
            path,
            1,
            "empty file: expected a `timestamp,value` header",
        ));
    };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let column = |name: &str| {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .ok_or_else(|| bad(path, 1, format!("the header has no `{name}` column")))
    };
    let (ts_col, value_col) = (column("timestamp")?, column("value")?);
    let mut rows = Vec::new();
    for (index, line) in lines {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != names.len() {
            return Err(bad(
                path,
                number,
                format!("{} fields, the header has {}", fields.len(), names.len()),
            ));
        }
        let value_text = fields[value_col].trim();
        let value: f64 = value_text.parse().map_err(|_| {
            bad(
                path,
                number,
                format!("value `{value_text}` is not a number"),
            )
        })?;
        if !value.is_finite() {
            return Err(bad(
                path,
                number,
                format!("value `{value_text}` is not finite"),
            ));
        }
        rows.push(Row {
            timestamp: fields[ts_col].trim(),
            value_text,
            value,
        });
    }
    Ok(rows)
}

fn read(path: &Path) -> Result<String, MonitorError> {
    std::fs::read_to_string(path).map_err(|source| MonitorError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), MonitorError> {
    let io = |source| MonitorError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

/// Scores one series file; returns the number of points and the time spent in the detector.
fn score_one(
    kind: DetectorKind,
    params: &DetectorParams,
    input: &Path,
    output: &Path,
) -> Result<(usize, Duration), MonitorError> {
    let text = read(input)?;
    let rows = parse(input, &text)?;
    let mut detector = kind.build(params);
    let started = Instant::now();
    let scores: Vec<f64> = rows.iter().map(|r| detector.update(r.value)).collect();
    let spent = started.elapsed();
    let mut out = String::with_capacity(text.len() + rows.len() * 12);
    out.push_str("timestamp,value,anomaly_score\n");
    for (row, score) in rows.iter().zip(&scores) {
        // Infallible: writing to a String.
        let _ = writeln!(out, "{},{},{}", row.timestamp, row.value_text, score);
    }
    write(output, &out)?;
    Ok((rows.len(), spent))
}

/// `monitor score --input --output`.
pub fn score_file(
    kind: DetectorKind,
    params: &DetectorParams,
    input: &Path,
    output: &Path,
) -> Result<ScoreSummary, MonitorError> {
    let (points, spent) = score_one(kind, params, input, output)?;
    Ok(ScoreSummary::new(kind, 1, points, spent))
}

fn collect_series(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), MonitorError> {
    let io = |source| MonitorError::Io {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_series(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "csv") {
            found.push(path);
        }
    }
    Ok(())
}

/// `monitor score --input-dir --output-dir`: every `*.csv` under `input_dir`, written at the same
/// relative path under `output_dir`, one fresh detector per series. `progress` hears each file
/// as it is done.
pub fn score_tree(
    kind: DetectorKind,
    params: &DetectorParams,
    input_dir: &Path,
    output_dir: &Path,
    mut progress: impl FnMut(usize, usize, &Path),
) -> Result<ScoreSummary, MonitorError> {
    let mut files = Vec::new();
    collect_series(input_dir, &mut files)?;
    if files.is_empty() {
        return Err(MonitorError::NoSeries(input_dir.display().to_string()));
    }
    // Sorted so runs (and their progress lines) are reproducible whatever the directory order.
    files.sort();
    let (mut points, mut spent) = (0, Duration::ZERO);
    for (i, input) in files.iter().enumerate() {
        let relative = input.strip_prefix(input_dir).unwrap_or(input);
        let (n, t) = score_one(kind, params, input, &output_dir.join(relative))?;
        points += n;
        spent += t;
        progress(i + 1, files.len(), relative);
    }
    Ok(ScoreSummary::new(kind, files.len(), points, spent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_value_names_file_and_line() {
        let err = parse(Path::new("s.csv"), "timestamp,value\nt1,1\nt2,abc\n")
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "s.csv, line 3: value `abc` is not a number"
        );
    }

    #[test]
    fn missing_column_and_ragged_rows_are_errors() {
        let err = parse(Path::new("s.csv"), "time,value\n").err().unwrap();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = parse(Path::new("s.csv"), "timestamp,value\nt1,1,2\n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn tree_mirrors_relative_paths_and_keeps_rows() {
        let input = tempfile::tempdir().unwrap();
        let output = tempfile::tempdir().unwrap();
        let series: String = (0..300)
            .map(|i| format!("2026-01-01 00:{:02}:{:02},{}\n", i / 60, i % 60, i % 7))
            .collect();
        std::fs::create_dir_all(input.path().join("cat")).unwrap();
        std::fs::write(
            input.path().join("cat/a.csv"),
            format!("timestamp,value\n{series}"),
        )
        .unwrap();
        let mut seen = Vec::new();
        let summary = score_tree(
            DetectorKind::Ensemble,
            &DetectorParams::default(),
            input.path(),
            output.path(),
            |done, total, p| seen.push((done, total, p.to_path_buf())),
        )
        .unwrap();
        assert_eq!(summary.points, 300);
        assert_eq!(seen, vec![(1, 1, PathBuf::from("cat/a.csv"))]);
        let written = std::fs::read_to_string(output.path().join("cat/a.csv")).unwrap();
        let mut lines = written.lines();
        assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
        for (got, want) in lines.zip(series.lines()) {
            let (prefix, score) = got.rsplit_once(',').unwrap();
            assert_eq!(prefix, want);
            let score: f64 = score.parse().unwrap();
            assert!((0.0..=1.0).contains(&score));
        }
    }
}

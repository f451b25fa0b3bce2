//! The digest's charts as PNG: API call success rate and sync latency per day, findings per day.
//! Drawn with plotters' bitmap backend and no text (no font, so nothing to install on a fresh
//! machine): titles, axes and values are in the HTML around each image.

use plotters::prelude::*;

use super::DigestError;
use super::kpis::Digest;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 200;
const BLUE: RGBColor = RGBColor(21, 101, 192);
const ORANGE: RGBColor = RGBColor(239, 108, 0);
const RED: RGBColor = RGBColor(198, 40, 40);
const GRID: RGBColor = RGBColor(225, 225, 225);

/// One chart: its PNG, the content id it has in the email, and the words it cannot draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub cid: &'static str,
    pub title: String,
    /// What the axes span and how to read the lines.
    pub caption: String,
    pub png: Vec<u8>,
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), String>;

fn grid(area: &Area<'_>, lines: u32) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    for i in 0..=lines {
        let y = 10 + (h as i32 - 20) * i as i32 / lines as i32;
        area.draw(&PathElement::new(vec![(10, y), (w as i32 - 10, y)], GRID))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Lines with dots over the seven days; `None` days leave a gap.
fn lines(area: &Area<'_>, series: &[(&[Option<f64>], RGBColor)], y: (f64, f64)) -> DrawResult {
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .build_cartesian_2d(-0.2f64..6.2f64, y.0..y.1)
        .map_err(|e| e.to_string())?;
    for (values, colour) in series {
        let points: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as f64, v)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, colour.filled())))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn bars(area: &Area<'_>, values: &[f64], top: f64) -> DrawResult {
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .build_cartesian_2d(-0.5f64..6.5f64, 0f64..top)
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(values.iter().enumerate().map(|(i, v)| {
            let x = i as f64;
            Rectangle::new([(x - 0.3, 0.0), (x + 0.3, *v)], RED.filled())
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn png(rgb: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Draws on a white canvas with a grid and encodes it.
fn draw(name: &str, plot: impl FnOnce(&Area<'_>) -> DrawResult) -> Result<Vec<u8>, DigestError> {
    let failed = |message: String| DigestError::Chart {
        chart: name.to_string(),
        message,
    };
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        area.fill(&WHITE).map_err(|e| failed(e.to_string()))?;
        grid(&area, 4).map_err(failed)?;
        plot(&area).map_err(failed)?;
        area.present().map_err(|e| failed(e.to_string()))?;
    }
    png(&rgb).map_err(failed)
}

/// Rounds a chart's top up to a readable number.
fn nice_top(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let step = 10f64.powf(max.log10().floor());
    (max / step).ceil() * step
}

pub fn charts(d: &Digest) -> Result<Vec<Chart>, DigestError> {
    let days = "Monday to Sunday, left to right";
    let rates: Vec<Option<f64>> = d.daily.iter().map(|x| x.api_call_success_rate).collect();
    let floor = rates
        .iter()
        .flatten()
        .fold(1.0f64, |m, r| m.min(*r))
        .min(0.9);
    let floor = (floor * 10.0).floor() / 10.0;
    let success = draw("success rate", |a| {
        lines(a, &[(&rates, BLUE)], (floor, 1.0))
    })?;

    let ms = |f: fn(&super::Day) -> Option<i64>| -> Vec<Option<f64>> {
        d.daily.iter().map(|x| f(x).map(|v| v as f64)).collect()
    };
    let (p50, p95) = (ms(|x| x.sync_latency_p50_ms), ms(|x| x.sync_latency_p95_ms));
    let latency_top = nice_top(p95.iter().chain(&p50).flatten().fold(0.0, |m, v| v.max(m)));
    let latency = draw("latency", |a| {
        lines(a, &[(&p50, BLUE), (&p95, ORANGE)], (0.0, latency_top))
    })?;

    let found: Vec<f64> = d.daily.iter().map(|x| x.findings_opened as f64).collect();
    let findings_top = nice_top(found.iter().fold(0.0, |m, v| v.max(m)));
    let findings = draw("findings", |a| bars(a, &found, findings_top))?;

    Ok(vec![
        Chart {
            cid: "chart-success-rate",
            title: "API call success rate per day".into(),
            caption: format!(
                "{days}; from {:.0}% (bottom) to 100% (top), grid every {:.1} points.",
                floor * 100.0,
                (1.0 - floor) * 25.0
            ),
            png: success,
        },
        Chart {
            cid: "chart-latency",
            title: "Sync latency per day".into(),
            caption: format!(
                "{days}; blue p50, orange p95; from 0 to {latency_top:.0} ms, grid every {:.0} ms.",
                latency_top / 4.0
            ),
            png: latency,
        },
        Chart {
            cid: "chart-findings",
            title: "Findings opened per day".into(),
            caption: format!(
                "{days}; from 0 to {findings_top:.0}, grid every {:.1}.",
                findings_top / 4.0
            ),
            png: findings,
        },
    ])
}

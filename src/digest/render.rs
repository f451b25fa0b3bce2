//! The digest as plain text, as HTML that mail clients render (inline styles, tables, no
//! scripts), and as the email: text and HTML alternatives, the charts inline by content id.

use base64::Engine;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, SinglePart};

use super::charts::Chart;
use super::kpis::{Digest, Kpi};

/// How the HTML refers to the charts: embedded, or as the email's inline parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Images {
    DataUri,
    ContentId,
}

/// A KPI row: name, this week, the week before, and the change.
struct Row {
    name: &'static str,
    value: String,
    previous: String,
    change: String,
}

fn fmt_rate(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |r| format!("{:.2}%", r * 100.0))
}

fn fmt_count<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "–".into(), |x| x.to_string())
}

fn fmt_secs(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |s| format!("{s:.0} s"))
}

fn delta(kpi: &Kpi<f64>, scale: f64, unit: &str) -> String {
    match (kpi.value, kpi.previous) {
        (Some(v), Some(p)) => format!("{:+.2}{unit}", (v - p) * scale),
        _ => "–".into(),
    }
}

fn count_row(name: &'static str, kpi: &Kpi<i64>) -> Row {
    let as_f64 = Kpi {
        value: kpi.value.map(|v| v as f64),
        previous: kpi.previous.map(|v| v as f64),
    };
    Row {
        name,
        value: fmt_count(kpi.value),
        previous: fmt_count(kpi.previous),
        change: delta(&as_f64, 1.0, "").replace(".00", ""),
    }
}

fn rows(d: &Digest) -> Vec<Row> {
    let secs_row = |name, kpi: &Kpi<f64>| Row {
        name,
        value: fmt_secs(kpi.value),
        previous: fmt_secs(kpi.previous),
        change: delta(kpi, 1.0, " s"),
    };
    let mut rows = vec![
        Row {
            name: "API call success rate",
            value: fmt_rate(d.api_call_success_rate.value),
            previous: fmt_rate(d.api_call_success_rate.previous),
            change: delta(&d.api_call_success_rate, 100.0, " pt"),
        },
        count_row("API calls", &d.api_calls),
        count_row("Sync latency p50 (ms)", &d.sync_latency_p50_ms),
        count_row("Sync latency p95 (ms)", &d.sync_latency_p95_ms),
        count_row("Records synced", &d.records_synced),
    ];
    rows.extend(
        d.records_synced_by_endpoint
            .iter()
            .map(|(endpoint, kpi)| count_row(endpoint, kpi)),
    );
    rows.extend([
        count_row("Duplicates found", &d.duplicates_found),
        count_row("Merges applied", &d.merges_applied),
        count_row("Merges approved", &d.merges_approved),
        count_row(
            "Manual interventions avoided",
            &d.manual_interventions_avoided,
        ),
        count_row("Conflicts opened", &d.conflicts_opened),
        count_row("Conflicts resolved", &d.conflicts_resolved),
        count_row("Price mismatches open", &d.price_mismatches_open),
        count_row("Price mismatches fixed", &d.price_mismatches_fixed),
        count_row("Findings opened", &d.findings_opened),
        secs_row("Mean time to detect", &d.mttd_seconds),
        secs_row("Mean time to recover", &d.mttr_seconds),
        count_row("Alerts sent", &d.alerts_sent),
    ]);
    rows
}

fn title(d: &Digest) -> String {
    let partial = if d.partial { " (so far)" } else { "" };
    format!("syncwarden weekly digest {}{partial}", d.week)
}

pub fn text(d: &Digest) -> String {
    let mut out = format!(
        "{}\n{} to {} ({})\n\n{}\n\n",
        title(d),
        d.from,
        d.to,
        d.time_zone,
        d.summary
    );
    out.push_str(&format!(
        "{:<32} {:>12} {:>12} {:>10}\n",
        "KPI", "this week", "week before", "change"
    ));
    for r in rows(d) {
        out.push_str(&format!(
            "{:<32} {:>12} {:>12} {:>10}\n",
            r.name, r.value, r.previous, r.change
        ));
    }
    out.push_str("\nTop findings\n");
    if d.top_findings.is_empty() {
        out.push_str("  none\n");
    }
    for f in &d.top_findings {
        out.push_str(&format!(
            "  [{}] {} ({}, {}, detected {})\n",
            f.severity.as_str(),
            f.title,
            f.kind,
            f.state.as_str(),
            f.detected_at
        ));
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CELL: &str = "padding:4px 10px;border-bottom:1px solid #e0e0e0";

fn chart_html(chart: &Chart, images: Images) -> String {
    let src = match images {
        Images::DataUri => format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&chart.png)
        ),
        Images::ContentId => format!("cid:{}", chart.cid),
    };
    format!(
        "<h3 style=\"margin:20px 0 4px;font-size:15px\">{}</h3>\
         <img src=\"{src}\" alt=\"{}\" width=\"640\" height=\"200\" style=\"display:block;border:1px solid #e0e0e0\">\
         <p style=\"margin:4px 0;color:#666;font-size:12px\">{}</p>",
        escape(&chart.title),
        escape(&chart.title),
        escape(&chart.caption)
    )
}

fn daily_html(d: &Digest) -> String {
    let mut out = format!(
        "<table style=\"border-collapse:collapse;font-size:12px;margin-top:8px\"><tr>\
         <th style=\"{CELL};text-align:left\">Day</th><th style=\"{CELL}\">Success rate</th>\
         <th style=\"{CELL}\">p50 ms</th><th style=\"{CELL}\">p95 ms</th><th style=\"{CELL}\">Findings</th></tr>"
    );
    for day in &d.daily {
        out.push_str(&format!(
            "<tr><td style=\"{CELL}\">{}</td><td style=\"{CELL};text-align:right\">{}</td>\
             <td style=\"{CELL};text-align:right\">{}</td><td style=\"{CELL};text-align:right\">{}</td>\
             <td style=\"{CELL};text-align:right\">{}</td></tr>",
            day.date.format("%a %Y-%m-%d"),
            fmt_rate(day.api_call_success_rate),
            fmt_count(day.sync_latency_p50_ms),
            fmt_count(day.sync_latency_p95_ms),
            day.findings_opened
        ));
    }
    out.push_str("</table>");
    out
}

pub fn html(d: &Digest, charts: &[Chart], images: Images) -> String {
    let mut out = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{0}</title></head>\
         <body style=\"margin:0;padding:16px;font-family:Arial,Helvetica,sans-serif;color:#222;background:#ffffff\">\
         <h2 style=\"margin:0 0 4px\">{0}</h2>\
         <p style=\"margin:0 0 12px;color:#666;font-size:13px\">{1} to {2} ({3})</p>\
         <p style=\"margin:0 0 16px;font-size:14px;line-height:1.4\">{4}</p>\
         <table style=\"border-collapse:collapse;font-size:13px\"><tr>\
         <th style=\"{CELL};text-align:left\">KPI</th><th style=\"{CELL}\">This week</th>\
         <th style=\"{CELL}\">Week before</th><th style=\"{CELL}\">Change</th></tr>",
        escape(&title(d)),
        d.from,
        d.to,
        escape(&d.time_zone),
        escape(&d.summary)
    );
    for r in rows(d) {
        out.push_str(&format!(
            "<tr><td style=\"{CELL}\">{}</td><td style=\"{CELL};text-align:right\"><strong>{}</strong></td>\
             <td style=\"{CELL};text-align:right;color:#666\">{}</td><td style=\"{CELL};text-align:right\">{}</td></tr>",
            escape(r.name),
            escape(&r.value),
            escape(&r.previous),
            escape(&r.change)
        ));
    }
    out.push_str("</table>");
    for chart in charts {
        out.push_str(&chart_html(chart, images));
    }
    out.push_str(&daily_html(d));
    out.push_str("<h3 style=\"margin:20px 0 4px;font-size:15px\">Top findings</h3>");
    if d.top_findings.is_empty() {
        out.push_str("<p style=\"margin:0;color:#666\">None this week.</p>");
    }
    for f in &d.top_findings {
        out.push_str(&format!(
            "<p style=\"margin:4px 0;font-size:13px\"><strong>[{}]</strong> {} \
             <span style=\"color:#666\">({}, {}, detected {})</span></p>",
            f.severity.as_str(),
            escape(&f.title),
            escape(&f.kind),
            f.state.as_str(),
            f.detected_at
        ));
    }
    out.push_str("</body></html>");
    out
}

/// The email's subject and body: plain text, and HTML with the charts as inline parts.
pub fn email_body(d: &Digest, charts: &[Chart]) -> (String, MultiPart) {
    let png = ContentType::parse("image/png").unwrap_or(ContentType::TEXT_PLAIN);
    let related = charts.iter().fold(
        MultiPart::related().singlepart(SinglePart::html(html(d, charts, Images::ContentId))),
        |related, chart| {
            related.singlepart(
                Attachment::new_inline(chart.cid.to_string()).body(chart.png.clone(), png.clone()),
            )
        },
    );
    let body = MultiPart::alternative()
        .singlepart(SinglePart::plain(text(d)))
        .multipart(related);
    (title(d), body)
}

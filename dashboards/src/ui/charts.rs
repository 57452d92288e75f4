//! The UI's charts as inline SVG: lines over windows, the feature × window heatmap and the alerts
//! timeline. Every mark carries `data-value` and a `<title>`; every label is escaped.

use std::fmt::Write as _;

use super::{AlertEvent, FeatureScores, url_segment};
use crate::html::{escape, format_number};

const WIDTH: f64 = 640.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;

/// An axis label: three decimals at most, so it fits left of the axis.
fn tick(x: f64) -> String {
    if x.abs() >= 1000.0 {
        return format_number(x.round());
    }
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// One line of a [`line`] chart.
pub struct Line<'a> {
    /// Legend text.
    pub name: String,
    /// Stroke colour.
    pub color: &'static str,
    /// One value per window; gaps where `None`.
    pub values: &'a [Option<f64>],
}

/// Lines over the windows (`labels`), y from `range` or from the data.
pub fn line(id: &str, label: &str, labels: &[String], lines: &[Line], range: Option<(f64, f64)>) -> String {
    let n = labels.len();
    let (height, bottom) = (240.0, 40.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = height - TOP - bottom;
    let (lo, hi) = range.unwrap_or_else(|| {
        let all = lines.iter().flat_map(|l| l.values.iter().flatten().copied()).filter(|v| v.is_finite());
        let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        if lo > hi {
            (0.0, 1.0)
        } else if lo == hi {
            (lo - 0.5, hi + 0.5)
        } else {
            let pad = (hi - lo) * 0.1;
            (lo - pad, hi + pad)
        }
    });
    let x = |i: usize| if n <= 1 { LEFT + plot_w / 2.0 } else { LEFT + plot_w * i as f64 / (n - 1) as f64 };
    let y = |v: f64| TOP + plot_h * (1.0 - ((v - lo) / (hi - lo)).clamp(0.0, 1.0));
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        r##"<svg id="{id}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" style="max-width:{WIDTH}px" role="img" aria-label="{}" font-family="sans-serif" font-size="12"><title>{}</title>"##,
        escape(label),
        escape(label)
    );
    // Axes and y labels.
    let base = TOP + plot_h;
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" stroke="#555"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#555"/><text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{base}" text-anchor="end">{}</text>"##,
        WIDTH - RIGHT,
        LEFT - 4.0,
        TOP + 4.0,
        escape(&tick(hi)),
        LEFT - 4.0,
        escape(&tick(lo)),
    );
    // At most five x labels, so they never overlap.
    let step = n.div_ceil(5).max(1);
    for i in (0..n).step_by(step) {
        let anchor = match i {
            0 if n > 1 => "start",
            i if i + 1 == n && n > 1 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="{anchor}">{}</text>"#,
            x(i),
            base + 16.0,
            escape(&labels[i])
        );
    }
    for (k, l) in lines.iter().enumerate() {
        let _ = write!(
            out,
            r#"<g class="legend"><rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text></g>"#,
            LEFT + (k % 3) as f64 * 190.0,
            (k / 3) as f64 * 14.0 + 2.0,
            l.color,
            LEFT + 14.0 + (k % 3) as f64 * 190.0,
            (k / 3) as f64 * 14.0 + 11.0,
            escape(&l.name)
        );
        let mut path = String::new();
        let mut pen_up = true;
        for (i, v) in l.values.iter().enumerate().take(n) {
            match v.filter(|v| v.is_finite()) {
                Some(v) => {
                    let _ = write!(path, "{}{:.1},{:.1} ", if pen_up { "M" } else { "L" }, x(i), y(v));
                    pen_up = false;
                }
                None => pen_up = true,
            }
        }
        let _ = write!(
            out,
            r#"<g class="series" data-series="{}"><path d="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            escape(&l.name),
            path.trim_end(),
            l.color
        );
        for (i, v) in l.values.iter().enumerate().take(n) {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                let _ = write!(
                    out,
                    r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="3.5" fill="{}" data-window="{i}" data-value="{v}"><title>{}: {} at {}</title></circle>"#,
                    x(i),
                    y(v),
                    l.color,
                    escape(&l.name),
                    escape(&format_number(v)),
                    escape(&labels[i])
                );
            }
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

/// One row per feature, one column per window; red where the feature drifted. Each cell links to
/// the feature's distributions in that window.
pub fn heatmap(model_url: &str, labels: &[String], features: &[FeatureScores]) -> String {
    if features.is_empty() || labels.is_empty() {
        return r#"<p class="note">No drift scores yet.</p>"#.into();
    }
    let label_w = 180.0;
    let cell_h = 14.0;
    let cell_w = ((960.0 - label_w - RIGHT) / labels.len() as f64).clamp(8.0, 64.0);
    // Room on the right for the last window label.
    let width = label_w + cell_w * labels.len() as f64 + RIGHT + 100.0;
    let height = TOP + cell_h * features.len() as f64 + 8.0;
    let mut out = String::with_capacity(features.len() * labels.len() * 200 + 1024);
    let _ = write!(
        out,
        r##"<svg id="heatmap-chart" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="drift score of each feature in each window" font-family="sans-serif" font-size="10"><title>drift score of each feature in each window</title>"##
    );
    // Window labels at least 120 px apart, so they never overlap.
    let step = (120.0 / cell_w).ceil().max(1.0) as usize;
    for i in (0..labels.len()).step_by(step) {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}">{}</text>"#,
            label_w + i as f64 * cell_w,
            TOP - 8.0,
            escape(&labels[i])
        );
    }
    for (r, f) in features.iter().enumerate() {
        let y = TOP + r as f64 * cell_h;
        let name = escape(&f.name);
        let _ = write!(out, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, label_w - 6.0, y + 10.5, name);
        let feature_url = url_segment(&f.name);
        for (i, score) in f.scores.iter().enumerate().take(labels.len()) {
            let drifted = f.drifted.get(i).copied().unwrap_or(false);
            let (fill, word) = match (score, drifted) {
                (None, _) => ("#eaeef2", "no result"),
                (Some(_), true) => ("#cf222e", "drifted"),
                (Some(_), false) => ("#aceebb", "no drift"),
            };
            let value = score.map(|s| s.to_string()).unwrap_or_default();
            let _ = write!(
                out,
                r##"<a href="/models/{model_url}?feature={feature_url}&amp;window={i}#distribution"><rect class="cell{}" x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}" data-feature="{name}" data-window="{i}" data-value="{value}"><title>{name}, {}: {} {} ({word})</title></rect></a>"##,
                if drifted { " drifted" } else { "" },
                label_w + i as f64 * cell_w,
                (cell_w - 1.0).max(1.0),
                cell_h - 1.0,
                escape(&labels[i]),
                escape(&f.stattest),
                score.map(format_number).unwrap_or_else(|| "—".into()),
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Alert events on a time axis, one row per alert name; colour by event.
pub fn timeline(events: &[AlertEvent]) -> String {
    let alert_events: Vec<&AlertEvent> =
        events.iter().filter(|e| matches!(e.event.as_str(), "pending" | "firing" | "resolved" | "inactive")).collect();
    if alert_events.is_empty() {
        return r#"<p class="note">No alert events yet.</p>"#.into();
    }
    let mut names: Vec<&str> = alert_events.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let n = alert_events.len();
    let label_w = 220.0;
    let row_h = 22.0;
    let height = TOP + row_h * names.len() as f64 + 10.0;
    let plot_w = WIDTH - label_w - RIGHT;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg id="alerts-timeline" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" style="max-width:{WIDTH}px" role="img" aria-label="alerts timeline" font-family="sans-serif" font-size="11"><title>alerts timeline, oldest left</title><text x="{label_w}" y="14">{}</text><text x="{}" y="14" text-anchor="end">{}</text>"##,
        escape(&alert_events[0].at),
        WIDTH - RIGHT,
        escape(&alert_events[n - 1].at),
    );
    for (r, name) in names.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            label_w - 6.0,
            TOP + r as f64 * row_h + 14.0,
            escape(name)
        );
    }
    // Events are placed in order (evenly), since their times can be seconds or days apart.
    for (k, e) in alert_events.iter().enumerate() {
        let r = names.iter().position(|n| *n == e.name).unwrap_or(0);
        let x = label_w + if n <= 1 { plot_w / 2.0 } else { plot_w * k as f64 / (n - 1) as f64 };
        let color = match e.event.as_str() {
            "firing" => "#cf222e",
            "pending" => "#bf8700",
            _ => "#1a7f37",
        };
        let _ = write!(
            out,
            r#"<circle class="event" cx="{x:.1}" cy="{:.1}" r="5" fill="{color}" data-event="{}" data-value="{}"><title>{} {} at {}{}</title></circle>"#,
            TOP + r as f64 * row_h + 10.0,
            escape(&e.event),
            e.value.map(|v| v.to_string()).unwrap_or_default(),
            escape(&e.name),
            escape(&e.event),
            escape(&e.at),
            e.value.map(|v| format!(", value {}", format_number(v))).unwrap_or_default()
        );
    }
    out.push_str("</svg>");
    out
}

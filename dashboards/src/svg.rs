//! Charts as inline SVG strings: reference and current side by side, as shares of each side so
//! samples of different sizes compare. Every label passes through [`crate::html::escape`].

use crate::html::{escape, format_number};
use std::fmt::Write;

const WIDTH: f64 = 560.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 24.0;
/// Reference bars: muted, so the current data stands out.
pub const REFERENCE_COLOR: &str = "#9aa5b1";
/// Current bars.
pub const CURRENT_COLOR: &str = "#1f6feb";

fn share(count: u64, total: u64) -> f64 {
    if total == 0 { 0.0 } else { count as f64 / total as f64 }
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn legend(out: &mut String) {
    let x = WIDTH - RIGHT - 170.0;
    let _ = write!(
        out,
        r#"<g class="legend" font-size="11"><rect x="{x}" y="6" width="10" height="10" fill="{REFERENCE_COLOR}"/><text x="{}" y="15">reference</text><rect x="{}" y="6" width="10" height="10" fill="{CURRENT_COLOR}"/><text x="{}" y="15">current</text></g>"#,
        x + 14.0,
        x + 86.0,
        x + 100.0
    );
}

/// A histogram of both sides over the same `edges` (`edges.len() == counts.len() + 1`), bar
/// heights as shares of each side's total. Returns an empty string when there is nothing to draw.
pub fn histogram(edges: &[f64], reference: &[u64], current: &[u64]) -> String {
    let bins = reference.len().min(current.len());
    if bins == 0 || edges.len() != bins + 1 {
        return String::new();
    }
    let (height, bottom) = (200.0, 34.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = height - TOP - bottom;
    let (rt, ct) = (reference.iter().sum::<u64>(), current.iter().sum::<u64>());
    let max = (0..bins).map(|i| share(reference[i], rt).max(share(current[i], ct))).fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let bw = plot_w / bins as f64;
    let base = TOP + plot_h;
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="histogram of reference and current values" font-family="sans-serif">"#
    );
    legend(&mut out);
    for (i, (side, counts, total, color)) in
        [("reference", reference, rt, REFERENCE_COLOR), ("current", current, ct, CURRENT_COLOR)].into_iter().enumerate()
    {
        for b in 0..bins {
            let s = share(counts[b], total);
            let h = s / max * plot_h;
            let x = LEFT + b as f64 * bw + bw * (0.08 + 0.42 * i as f64);
            let close = if b + 1 == bins { "]" } else { ")" };
            let _ = write!(
                out,
                r#"<rect x="{x:.2}" y="{:.2}" width="{:.2}" height="{h:.2}" fill="{color}"><title>{side} [{}, {}{close}: {} ({})</title></rect>"#,
                base - h,
                bw * 0.42,
                escape(&format_number(edges[b])),
                escape(&format_number(edges[b + 1])),
                counts[b],
                percent(s),
            );
        }
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" stroke="#555"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#555"/>"##,
        WIDTH - RIGHT
    );
    let _ = write!(
        out,
        r##"<g font-size="11" fill="#333"><text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{base}" text-anchor="end">0%</text>"##,
        LEFT - 4.0,
        TOP + 9.0,
        percent(max),
        LEFT - 4.0,
    );
    let ticks = [0, bins / 2, bins];
    for (k, &t) in ticks.iter().enumerate() {
        if k == 1 && (t == 0 || t == bins) {
            continue;
        }
        let anchor = match k {
            0 => "start",
            1 => "middle",
            _ => "end",
        };
        let _ = write!(
            out,
            r#"<text x="{:.2}" y="{}" text-anchor="{anchor}">{}</text>"#,
            LEFT + t as f64 * bw,
            base + 16.0,
            escape(&format_number(edges[t]))
        );
    }
    out.push_str("</g></svg>");
    out
}

/// Horizontal bars per category, reference above current, as shares of each side's
/// non-missing values; `other` rows group what `labels` leaves out.
pub fn categories(labels: &[&str], reference: &[u64], current: &[u64], totals: (u64, u64)) -> String {
    let rows = labels.len().min(reference.len()).min(current.len());
    if rows == 0 {
        return String::new();
    }
    let label_w = 170.0;
    let row_h = 22.0;
    let height = TOP + rows as f64 * row_h + 8.0;
    // Room on the right for the percentage printed after the longest bar.
    let plot_w = WIDTH - label_w - RIGHT - 48.0;
    let max = (0..rows).map(|i| share(reference[i], totals.0).max(share(current[i], totals.1))).fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="category shares of reference and current" font-family="sans-serif">"#
    );
    legend(&mut out);
    out.push_str(r##"<g font-size="11" fill="#333">"##);
    for i in 0..rows {
        let y = TOP + i as f64 * row_h;
        let label = truncate(labels[i], 26);
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.2}" text-anchor="end"><title>{}</title>{}</text>"#,
            label_w - 6.0,
            y + 14.0,
            escape(labels[i]),
            escape(&label)
        );
        for (k, (side, count, total, color)) in
            [("reference", reference[i], totals.0, REFERENCE_COLOR), ("current", current[i], totals.1, CURRENT_COLOR)]
                .into_iter()
                .enumerate()
        {
            let s = share(count, total);
            let w = s / max * plot_w;
            let by = y + 2.0 + k as f64 * 9.0;
            let _ = write!(
                out,
                r#"<rect x="{label_w}" y="{by:.2}" width="{w:.2}" height="8" fill="{color}"><title>{side}: {count} ({})</title></rect><text x="{:.2}" y="{:.2}" font-size="9">{}</text>"#,
                percent(s),
                label_w + w + 4.0,
                by + 7.5,
                percent(s)
            );
        }
    }
    out.push_str("</g></svg>");
    out
}

/// At most `max` characters (not bytes), with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_truncated_by_characters() {
        let svg = categories(&["<b>&\"é".repeat(10).as_str(), "x"], &[1, 2], &[3, 0], (3, 3));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("&lt;b&gt;&amp;&quot;é"));
        assert!(svg.contains('…'));
    }

    #[test]
    fn histogram_needs_matching_edges() {
        assert_eq!(histogram(&[0.0, 1.0], &[1, 2], &[1, 2]), "");
        let svg = histogram(&[0.0, 1.0, 2.0], &[1, 2], &[0, 0]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}

//! The report as one self-contained HTML page.
//!
//! Layout: the dataset verdict, a sortable table of columns, then one section per column with
//! its chart and summaries. The sorting script reads only `data-value` attributes already in
//! the page, so no user string ever reaches JavaScript source. Sorting can also be chosen by
//! the URL fragment (`#sort=score` or `#sort=score-desc`), which makes a sorted view shareable.

use crate::Result;
use crate::report::{
    CategoricalSummary, ColumnReport, EmbeddingSummary, Multivariate, MultivariateOutcome, NumericalSummary, Outcome,
    Report, Summary, TextSummary,
};
use crate::svg;
use std::fmt::Write as _;

/// Escapes text for HTML text and for quoted attribute values (`& < > " '`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number for people: up to 6 significant digits, scientific notation when very large or
/// small, trailing zeros dropped.
pub fn format_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-4..1e9).contains(&a) {
        let s = format!("{x:.4e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        return format!("{}e{exp}", trim_zeros(mantissa));
    }
    let digits = (5 - a.log10().floor() as i32).max(0) as usize;
    trim_zeros(&format!("{x:.digits$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

fn opt(x: Option<f64>) -> String {
    x.map(format_number).unwrap_or_else(|| "–".into())
}

/// Renders the whole page.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(16 * 1024 + report.columns.len() * 8 * 1024);
    let d = &report.dataset_drift;
    let verdict_class = if d.drifted { "drifted" } else { "ok" };
    let verdict = if d.drifted { "Dataset drift detected" } else { "No dataset drift" };
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{verdict} – anchorwatch report</title>
<style>{STYLE}</style>
</head>
<body>
<header id="verdict" class="verdict {verdict_class}">
<h1>{verdict}</h1>
<p>{} of {} columns drifted ({}); the dataset drifts when the share reaches {}.</p>
<p class="files">Reference <code>{}</code> ({} rows) · Current <code>{}</code> ({} rows)</p>
</header>
<main>
<h2>Columns</h2>
<table id="columns" class="sortable">
<thead><tr>{}</tr></thead>
<tbody>
"#,
        d.drifted_columns,
        d.columns,
        percent(d.share),
        percent(d.threshold),
        escape(&report.files.reference),
        report.rows.reference,
        escape(&report.files.current),
        report.rows.current,
        HEADERS
            .iter()
            .map(|(key, ty, label)| format!(
                r#"<th data-key="{key}" data-type="{ty}" tabindex="0" title="Sort by {label}">{label}</th>"#
            ))
            .collect::<String>(),
    );
    for (i, c) in report.columns.iter().enumerate() {
        table_row(&mut out, i, c);
    }
    out.push_str("</tbody>\n</table>\n");
    if !report.skipped.is_empty() {
        out.push_str("<h2>Skipped columns</h2>\n<ul class=\"skipped\">\n");
        for s in &report.skipped {
            let _ = writeln!(out, "<li><code>{}</code>: {}</li>", escape(&s.name), escape(&s.reason));
        }
        out.push_str("</ul>\n");
    }
    multivariate(&mut out, &report.multivariate);
    out.push_str("<h2>Per column</h2>\n");
    for (i, c) in report.columns.iter().enumerate() {
        column_section(&mut out, i, c);
    }
    let _ = write!(out, "</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

/// Renders the page into `w`.
pub fn write(report: &Report, mut w: impl std::io::Write) -> Result<()> {
    w.write_all(render(report).as_bytes())?;
    w.flush()?;
    Ok(())
}

fn percent(x: f64) -> String {
    if x.is_finite() { format!("{}%", format_number(x * 100.0)) } else { "–".into() }
}

const HEADERS: [(&str, &str, &str); 7] = [
    ("name", "text", "Column"),
    ("role", "text", "Role"),
    ("kind", "text", "Kind"),
    ("stattest", "text", "Test"),
    ("score", "number", "Score"),
    ("threshold", "number", "Threshold"),
    ("result", "number", "Result"),
];

fn role_name(c: &ColumnReport) -> &'static str {
    match c.role {
        crate::report::Role::Feature => "feature",
        crate::report::Role::Prediction => "prediction",
        crate::report::Role::Target => "target",
    }
}

fn result_text(c: &ColumnReport) -> (&'static str, &'static str, u8) {
    match &c.outcome {
        Outcome::Computed { drifted: true, .. } => ("drifted", "Drift detected", 2),
        Outcome::Computed { .. } => ("ok", "No drift", 1),
        Outcome::Failed { .. } => ("failed", "Not computed", 0),
    }
}

fn table_row(out: &mut String, i: usize, c: &ColumnReport) {
    let (class, text, rank) = result_text(c);
    let name = escape(&c.name);
    let (test, score, threshold) = match &c.outcome {
        Outcome::Computed { stattest, score, threshold, .. } => (stattest.as_str(), *score, *threshold),
        Outcome::Failed { .. } => ("", f64::NAN, f64::NAN),
    };
    let num_attr = |x: f64| if x.is_finite() { format!("{x:e}") } else { String::new() };
    let _ = writeln!(
        out,
        r##"<tr class="{class}" data-column="{i}"><td data-value="{name}"><a href="#col-{i}">{name}</a></td><td data-value="{role}">{role}</td><td data-value="{kind}">{kind}</td><td data-value="{test}">{test}</td><td data-value="{}">{}</td><td data-value="{}">{}</td><td data-value="{rank}" class="result">{text}</td></tr>"##,
        num_attr(score),
        if test.is_empty() { "–".into() } else { format_number(score) },
        num_attr(threshold),
        if test.is_empty() { "–".into() } else { format_number(threshold) },
        role = role_name(c),
        kind = escape(&c.kind),
        test = escape(test),
    );
}

fn column_section(out: &mut String, i: usize, c: &ColumnReport) {
    let (class, text, _) = result_text(c);
    let _ = write!(
        out,
        r#"<section class="column {class}" id="col-{i}">
<h3><span class="name">{}</span> <span class="badge">{text}</span></h3>
"#,
        escape(&c.name)
    );
    match &c.outcome {
        Outcome::Computed { stattest, score, threshold, .. } => {
            let _ = writeln!(
                out,
                "<p>{} column ({}); <code>{}</code> score {} against threshold {}.</p>",
                escape(&c.kind),
                role_name(c),
                escape(stattest),
                format_number(*score),
                format_number(*threshold)
            );
        }
        Outcome::Failed { error } => {
            let _ = writeln!(out, "<p class=\"error\">Drift not computed: {}</p>", escape(error));
        }
    }
    match (&c.reference, &c.current) {
        (Summary::Numerical(r), Summary::Numerical(cur)) => numerical(out, r, cur),
        (Summary::Categorical(r), Summary::Categorical(cur)) => categorical(out, r, cur),
        (Summary::Text(r), Summary::Text(cur)) => texts(out, r, cur),
        (Summary::Embedding(r), Summary::Embedding(cur)) => embeddings(out, r, cur),
        // Only a config forcing a kind the data cannot have mixes shapes; show each side's counts.
        (r, cur) => {
            let _ = writeln!(
                out,
                "<table class=\"summary\"><tr><th></th><th>reference</th><th>current</th></tr><tr><th>count</th><td>{}</td><td>{}</td></tr></table>",
                r.count(),
                cur.count()
            );
        }
    }
    out.push_str("</section>\n");
}

fn numerical(out: &mut String, r: &NumericalSummary, c: &NumericalSummary) {
    let chart = svg::histogram(&r.histogram.edges, &r.histogram.counts, &c.histogram.counts);
    let _ = write!(
        out,
        "<div class=\"figure\">{chart}</div>\n<table class=\"summary\">\n<tr><th></th><th>reference</th><th>current</th></tr>\n"
    );
    let ints = [("count", r.count, c.count), ("missing", r.missing, c.missing), ("infinite", r.infinite, c.infinite)];
    for (label, a, b) in ints {
        let _ = writeln!(out, "<tr><th>{label}</th><td>{a}</td><td>{b}</td></tr>");
    }
    let floats = [
        ("mean", r.mean, c.mean),
        ("std", r.std, c.std),
        ("min", r.min, c.min),
        ("p5", r.p5, c.p5),
        ("p25", r.p25, c.p25),
        ("median", r.p50, c.p50),
        ("p75", r.p75, c.p75),
        ("p95", r.p95, c.p95),
        ("max", r.max, c.max),
    ];
    for (label, a, b) in floats {
        let _ = writeln!(out, "<tr><th>{label}</th><td>{}</td><td>{}</td></tr>", opt(a), opt(b));
    }
    out.push_str("</table>\n");
}

fn texts(out: &mut String, r: &TextSummary, c: &TextSummary) {
    let (rl, cl) = (&r.length, &c.length);
    let chart = svg::histogram(&rl.histogram.edges, &rl.histogram.counts, &cl.histogram.counts);
    let _ = write!(
        out,
        "<div class=\"figure\"><p class=\"caption\">Text length (characters)</p>{chart}</div>\n<table class=\"summary\">\n<tr><th></th><th>reference</th><th>current</th></tr>\n"
    );
    for (label, a, b) in
        [("count", r.count, c.count), ("missing", r.missing, c.missing), ("unique", r.unique, c.unique)]
    {
        let _ = writeln!(out, "<tr><th>{label}</th><td>{a}</td><td>{b}</td></tr>");
    }
    let floats = [
        ("mean words", r.mean_words, c.mean_words),
        ("mean length", rl.mean, cl.mean),
        ("min length", rl.min, cl.min),
        ("median length", rl.p50, cl.p50),
        ("max length", rl.max, cl.max),
    ];
    for (label, a, b) in floats {
        let _ = writeln!(out, "<tr><th>{label}</th><td>{}</td><td>{}</td></tr>", opt(a), opt(b));
    }
    out.push_str("</table>\n");
    for (side, words) in [("reference", &r.typical_words), ("current", &c.typical_words)] {
        if words.is_empty() {
            continue;
        }
        let _ = write!(out, "<p class=\"words\">Words typical of {side}:");
        for w in words {
            let _ = write!(out, " <code>{}</code>", escape(w));
        }
        out.push_str("</p>\n");
    }
}

/// The features taken together: one line per method.
fn multivariate(out: &mut String, results: &[Multivariate]) {
    if results.is_empty() {
        return;
    }
    out.push_str("<h2>Features taken jointly</h2>\n<table id=\"multivariate\" class=\"summary\">\n<tr><th>method</th><th>features</th><th>value</th><th>band</th><th>verdict</th></tr>\n");
    for m in results {
        let features = m.features.iter().map(|f| escape(f)).collect::<Vec<_>>().join(", ");
        match &m.outcome {
            MultivariateOutcome::Computed { value, lower, upper, drifted, .. } => {
                let (class, verdict) = if *drifted { ("drifted", "Drift detected") } else { ("ok", "No drift") };
                let _ = writeln!(
                    out,
                    "<tr class=\"{class}\"><td><code>{}</code></td><td>{features}</td><td>{}</td><td>{} – {}</td><td>{verdict}</td></tr>",
                    escape(&m.method),
                    format_number(*value),
                    opt(*lower),
                    opt(*upper)
                );
            }
            MultivariateOutcome::Failed { error } => {
                let _ = writeln!(
                    out,
                    "<tr><td><code>{}</code></td><td>{features}</td><td colspan=\"3\" class=\"error\">Not computed: {}</td></tr>",
                    escape(&m.method),
                    escape(error)
                );
            }
        }
    }
    out.push_str("</table>\n");
}

fn embeddings(out: &mut String, r: &EmbeddingSummary, c: &EmbeddingSummary) {
    let (rn, cn) = (&r.norm, &c.norm);
    let chart = svg::histogram(&rn.histogram.edges, &rn.histogram.counts, &cn.histogram.counts);
    let _ = write!(
        out,
        "<div class=\"figure\"><p class=\"caption\">Vector norm</p>{chart}</div>\n<table class=\"summary\">\n<tr><th></th><th>reference</th><th>current</th></tr>\n"
    );
    for (label, a, b) in
        [("count", r.count, c.count), ("missing", r.missing, c.missing), ("dimensions", r.dims, c.dims)]
    {
        let _ = writeln!(out, "<tr><th>{label}</th><td>{a}</td><td>{b}</td></tr>");
    }
    let floats = [
        ("norm of the mean", r.mean_norm, c.mean_norm),
        ("mean norm", rn.mean, cn.mean),
        ("median norm", rn.p50, cn.p50),
    ];
    for (label, a, b) in floats {
        let _ = writeln!(out, "<tr><th>{label}</th><td>{}</td><td>{}</td></tr>", opt(a), opt(b));
    }
    out.push_str("</table>\n");
}

fn categorical(out: &mut String, r: &CategoricalSummary, c: &CategoricalSummary) {
    let mut labels: Vec<&str> = r.top.iter().map(|t| t.value.as_str()).collect();
    let mut rc: Vec<u64> = r.top.iter().map(|t| t.count).collect();
    let mut cc: Vec<u64> = c.top.iter().map(|t| t.count).collect();
    if r.other > 0 || c.other > 0 {
        labels.push("(other)");
        rc.push(r.other);
        cc.push(c.other);
    }
    let chart = svg::categories(&labels, &rc, &cc, (r.count, c.count));
    let _ = write!(
        out,
        "<div class=\"figure\">{chart}</div>\n<table class=\"summary\">\n<tr><th></th><th>reference</th><th>current</th></tr>\n"
    );
    for (label, a, b) in
        [("count", r.count, c.count), ("missing", r.missing, c.missing), ("unique", r.unique, c.unique)]
    {
        let _ = writeln!(out, "<tr><th>{label}</th><td>{a}</td><td>{b}</td></tr>");
    }
    out.push_str("</table>\n");
    if let Some(new) = c.new_categories.as_ref().filter(|n| !n.is_empty()) {
        let total = c.new_unique.unwrap_or(new.len() as u64);
        let _ =
            write!(out, "<p class=\"new\">{total} categor{} only in current:", if total == 1 { "y" } else { "ies" });
        for n in new {
            let _ = write!(out, " <code>{}</code> ({})", escape(&n.value), n.count);
        }
        if total > new.len() as u64 {
            out.push_str(" …");
        }
        out.push_str("</p>\n");
    }
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2329;background:#f6f8fa}
main{padding:0 24px 48px;max-width:1100px}
header.verdict{padding:20px 24px;border-bottom:4px solid #2da44e;background:#fff}
header.verdict.drifted{border-bottom-color:#cf222e}
header.verdict.drifted h1{color:#cf222e}
header.verdict.ok h1{color:#1a7f37}
h1{margin:0 0 8px;font-size:26px}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:90%;word-break:break-all}
table{border-collapse:collapse;background:#fff}
#columns{width:100%}
#columns th,#columns td{padding:6px 10px;border-bottom:1px solid #d8dee4;text-align:left}
#columns th{cursor:pointer;user-select:none;background:#eef1f4;white-space:nowrap}
#columns th[aria-sort=ascending]::after{content:" ▲"}
#columns th[aria-sort=descending]::after{content:" ▼"}
#columns td:nth-child(5),#columns td:nth-child(6){font-variant-numeric:tabular-nums}
tr.drifted td.result,section.drifted .badge{color:#fff;background:#cf222e}
tr.ok td.result{color:#1a7f37}
tr.failed td.result{color:#9a6700}
section.column{background:#fff;border:1px solid #d8dee4;border-left:6px solid #2da44e;margin:16px 0;padding:8px 16px 16px}
section.column.drifted{border-left-color:#cf222e}
section.column.failed{border-left-color:#bf8700}
section.column h3 .name{word-break:break-all}
.badge{font-size:12px;padding:2px 8px;border-radius:10px;background:#dafbe1;color:#1a7f37;vertical-align:middle}
section.failed .badge{background:#fff8c5;color:#9a6700}
.figure{overflow-x:auto}
table.summary{margin-top:8px;font-size:13px}
table.summary th,table.summary td{padding:2px 10px;text-align:right;border-bottom:1px solid #eef1f4}
table.summary th:first-child{text-align:left}
.error{color:#9a6700}
.caption{margin:8px 0 0;font-size:13px;color:#57606a}
"#;

// Plain ES5, no globals besides the IIFE: sorting must work offline in any browser, and a
// failure must show in the console rather than half-sort the table.
const SCRIPT: &str = r##"
(function () {
  "use strict";
  var table = document.getElementById("columns");
  if (!table || !table.tHead || !table.tBodies.length) { return; }
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  var current = null;
  function value(row, index) { return row.cells[index].getAttribute("data-value") || ""; }
  function sortBy(index, desc) {
    var numeric = heads[index].getAttribute("data-type") === "number";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, index), y = value(b, index), c;
      if (numeric) {
        var fx = parseFloat(x), fy = parseFloat(y);
        // Rows without a number (columns whose drift failed) stay last in both directions.
        if (isNaN(fx) || isNaN(fy)) { return (isNaN(fx) ? 1 : 0) - (isNaN(fy) ? 1 : 0); }
        c = fx - fy;
      } else {
        c = x.localeCompare(y);
      }
      return desc ? -c : c;
    });
    for (var i = 0; i < rows.length; i++) { body.appendChild(rows[i]); }
    for (var j = 0; j < heads.length; j++) { heads[j].removeAttribute("aria-sort"); }
    heads[index].setAttribute("aria-sort", desc ? "descending" : "ascending");
    current = { index: index, desc: desc };
    table.setAttribute("data-sorted-by", heads[index].getAttribute("data-key") + (desc ? "-desc" : ""));
  }
  function onSort(index) {
    var desc = current !== null && current.index === index && !current.desc;
    sortBy(index, desc);
    var hash = "#sort=" + heads[index].getAttribute("data-key") + (desc ? "-desc" : "");
    try { history.replaceState(null, "", hash); } catch (e) { /* some file:// contexts refuse; sorting still works */ }
  }
  Array.prototype.forEach.call(heads, function (th, index) {
    th.addEventListener("click", function () { onSort(index); });
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onSort(index); }
    });
  });
  var m = /^#sort=([a-z_]+)(-desc)?$/.exec(location.hash);
  if (m) {
    for (var k = 0; k < heads.length; k++) {
      if (heads[k].getAttribute("data-key") === m[1]) { sortBy(k, !!m[2]); }
    }
  }
  table.setAttribute("data-sort-ready", "true");
})();
"##;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::*;

    fn report(name: &str) -> Report {
        let summary = Summary::Categorical(CategoricalSummary {
            count: 2,
            top: vec![CategoryCount { value: "<i>x</i>".into(), count: 2 }],
            unique: 1,
            ..Default::default()
        });
        Report {
            dataset_drift: DatasetVerdict { drifted: true, share: 1.0, threshold: 0.5, drifted_columns: 1, columns: 1 },
            columns: vec![ColumnReport {
                name: name.into(),
                role: Role::Feature,
                kind: "cat".into(),
                outcome: Outcome::Computed {
                    stattest: "chisquare".into(),
                    score: 0.001,
                    threshold: 0.05,
                    drifted: true,
                },
                reference: summary.clone(),
                current: summary,
            }],
            rows: Sides { reference: 2, current: 2 },
            skipped: vec![],
            multivariate: vec![],
            files: Sides { reference: "a&b.csv".into(), current: "c.csv".into() },
        }
    }

    #[test]
    fn user_strings_are_escaped() {
        let page = render(&report("<script>alert(1)</script>"));
        assert!(!page.contains("<script>alert(1)"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<i>x</i>"));
        assert!(page.contains("a&amp;b.csv"));
        assert_eq!(page.matches("<script>").count(), 1);
    }

    #[test]
    fn drifted_columns_are_marked_and_nothing_is_external() {
        let page = render(&report("a"));
        assert!(page.contains(r#"<tr class="drifted""#));
        assert!(page.contains("Drift detected"));
        assert!(!page.contains("http://") || page.matches("http://").count() == page.matches("xmlns=").count());
        assert!(!page.contains("https://"));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(format_number(0.05), "0.05");
        assert_eq!(format_number(1234.5678), "1234.57");
        assert_eq!(format_number(1.5e-12), "1.5e-12");
        assert_eq!(format_number(-3.0), "-3");
        assert_eq!(format_number(f64::NAN), "NaN");
    }
}

//! The HTML report in a real browser: headless Chromium opens the page the binary wrote, with no
//! console errors, the sorting script running, drifted columns marked and user strings inert.
//!
//! Method, chosen to be robust without a WebDriver: Chromium runs once with `--dump-dom`, which
//! prints the DOM after load (after our script ran), and `--enable-logging=stderr --v=0`, which
//! prints every console message as an `INFO:CONSOLE` line, uncaught exceptions included
//! ("Uncaught ReferenceError: ..."). The page is opened at `#sort=score-desc`, so the script
//! must sort the table on load: the dumped DOM then proves the script ran to its end
//! (`data-sort-ready`), sorted (row order, `data-sorted-by`), and that the marks are there. A
//! negative control first checks that this Chromium does report a broken script that way, so a
//! change in its log format cannot turn the console check into a silent pass.

use crate::support;

use std::path::Path;
use std::process::Command;

use support::{chromium, chromium_available, console_lines};

/// Loads `url` in a fresh headless Chromium; returns (dumped DOM, stderr).
fn load(url: &str) -> (String, String) {
    chromium(url, &["--dump-dom"])
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

/// Reference and current CSV files: `shift` and `<script>…` drift, `steady` does not; a
/// category that looks like markup tests escaping inside the charts.
fn write_inputs(dir: &Path) -> (String, String) {
    let header = "steady,shift,<script>alert(1)</script>,color\n";
    let (mut r, mut c) = (header.to_string(), header.to_string());
    // A deterministic low-discrepancy sequence: evenly spread values without a random generator.
    let u = |i: usize| (i as f64 * 0.618_033_988_749_895) % 1.0;
    for i in 0..1500 {
        let colors = ["red", "green", "<img src=x onerror=alert(2)>"];
        r += &format!("{},{},{},{}\n", u(i), u(i + 7), u(i + 3), colors[i % 2]);
        c += &format!("{},{},{},{}\n", u(i + 11), u(i + 5) * 2.0 + 1.0, u(i + 9) + 0.5, colors[i % 3]);
    }
    let (rp, cp) = (dir.join("reference.csv"), dir.join("current.csv"));
    std::fs::write(&rp, r).unwrap();
    std::fs::write(&cp, c).unwrap();
    (rp.to_str().unwrap().to_string(), cp.to_str().unwrap().to_string())
}

#[test]
fn html_report_opens_in_chromium_with_marks_sorting_and_no_console_errors() {
    if !chromium_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // Negative control: a broken script must show up in what we check.
    let broken = dir.path().join("broken.html");
    std::fs::write(&broken, "<!DOCTYPE html><html><body><script>undefinedFn();</script></body></html>").unwrap();
    let (_, stderr) = load(&file_url(&broken));
    assert!(
        console_lines(&stderr).iter().any(|l| l.contains("Uncaught ReferenceError")),
        "this Chromium does not log console errors as expected; the check below would be blind:\n{stderr}"
    );

    let (reference, current) = write_inputs(dir.path());
    let html = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_anchorwatch"))
        .args(["report", "-q", "--reference", &reference, "--current", &current, "--output"])
        .arg(&html)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (dom, stderr) = load(&format!("{}#sort=score-desc", file_url(&html)));
    assert!(console_lines(&stderr).is_empty(), "console output while loading the report:\n{stderr}");
    assert!(dom.contains("</html>"), "no DOM dumped; stderr:\n{stderr}");

    // The script ran to its end and sorted by score, descending.
    let table = dom.split("<table id=\"columns\"").nth(1).expect("columns table");
    let table_tag = &table[..table.find('>').unwrap()];
    assert!(table_tag.contains("data-sort-ready=\"true\""), "{table_tag}");
    assert!(table_tag.contains("data-sorted-by=\"score-desc\""), "{table_tag}");
    let body = &table[..table.find("</table>").unwrap()];
    let scores: Vec<f64> = body
        .split("<tr class=")
        .skip(1)
        .map(|row| {
            let cell = row.split("<td data-value=\"").nth(5).unwrap();
            cell[..cell.find('"').unwrap()].parse::<f64>().unwrap()
        })
        .collect();
    assert_eq!(scores.len(), 4, "{body}");
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "not sorted by score descending: {scores:?}");

    // Drifted columns are marked in the table and in their sections, with words, not only colour.
    let drifted_rows = body.matches("<tr class=\"drifted\"").count();
    assert!(drifted_rows >= 2, "{body}");
    assert_eq!(dom.matches("<section class=\"column drifted\"").count(), drifted_rows);
    assert!(dom.contains("Drift detected"));
    assert!(dom.contains("class=\"verdict drifted\"") || dom.contains("class=\"verdict ok\""));

    // User strings stayed text: one script element (ours), no injected image, names escaped.
    assert_eq!(dom.matches("<script").count(), 1, "an injected script element exists");
    assert!(!dom.contains("<img"), "an injected image element exists");
    assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(dom.contains("<svg"), "charts are drawn");
}

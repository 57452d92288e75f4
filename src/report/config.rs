//! The optional `--config` TOML of `anchorwatch report` (documented in docs/report.md).

use anchorwatch_analyzer::drift::{ColumnKind, ColumnOptions, StatTest};
use anchorwatch_analyzer::stats::embedding_drift::Spec;
use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What to compare and how; every field has a default, so an empty file is valid.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// Compare only these columns, e.g. `include = ["age", "income"]` (default: every column
    /// the two files share). Named columns must exist in both files.
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// Leave these columns out, e.g. `exclude = ["prediction_id", "timestamp"]`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The model's prediction column, e.g. `prediction = "score"`: compared like any column
    /// (prediction drift) and marked `"role": "prediction"`.
    #[serde(default)]
    pub prediction: Option<String>,
    /// The ground-truth column, e.g. `target = "label"`: target drift, `"role": "target"`.
    #[serde(default)]
    pub target: Option<String>,
    /// The dataset drifts when at least this share of columns drift, e.g. `drift_share = 0.3`
    /// (Evidently's default 0.5).
    #[serde(default = "default_share")]
    pub drift_share: f64,
    /// Test for every column, e.g. `stattest = "psi"` (default: Evidently's choice per column).
    #[serde(default)]
    pub stattest: Option<String>,
    /// Test for numerical columns, overriding `stattest`.
    #[serde(default)]
    pub num_stattest: Option<String>,
    /// Test for categorical columns, overriding `stattest`.
    #[serde(default)]
    pub cat_stattest: Option<String>,
    /// Test for text columns, overriding `stattest`: `"abs_text_content_drift"` or
    /// `"perc_text_content_drift"` (default: Evidently's choice by reference size).
    #[serde(default)]
    pub text_stattest: Option<String>,
    /// Threshold for every column, e.g. `threshold = 0.2` (default: the test's own).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Threshold for numerical columns, overriding `threshold`.
    #[serde(default)]
    pub num_threshold: Option<f64>,
    /// Threshold for categorical columns, overriding `threshold`.
    #[serde(default)]
    pub cat_threshold: Option<f64>,
    /// Threshold for text columns, overriding `threshold`, e.g. `text_threshold = 0.6` (an
    /// AUC for `abs_text_content_drift`, a confidence for `perc_text_content_drift`).
    #[serde(default)]
    pub text_threshold: Option<f64>,
    /// Also test the tabular features jointly with NannyML's domain classifier (gradient-boosted
    /// trees, 5 folds; docs/drift.md), beside the data reconstruction drift, e.g.
    /// `domain_classifier = true` (default false: it trains 55 classifiers).
    #[serde(default)]
    pub domain_classifier: bool,
    /// Per-column settings, e.g. `[columns.age]` then `kind = "cat"`, `stattest = "chisquare"`,
    /// `threshold = 0.01`; they win over every setting above.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnConfig>,
}

/// Settings of one column.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    /// `"num"`, `"cat"` or `"text"` (also `"numerical"`, `"categorical"`), instead of
    /// Evidently's inference. Text is never inferred: declare free-text columns here, as
    /// Evidently's column mapping does, to get the domain-classifier text-content drift.
    pub kind: Option<String>,
    /// The test's Evidently name, e.g. `"wasserstein"`.
    pub stattest: Option<String>,
    /// The threshold, e.g. `0.1`.
    pub threshold: Option<f64>,
    /// For an embedding column (a list of numbers per row): the method and its options, e.g.
    /// `embedding = { method = "distance", dist = "cosine" }` (default: Evidently's domain
    /// classifier; docs/drift.md lists the methods and options).
    pub embedding: Option<Spec>,
}

fn default_share() -> f64 {
    0.5
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            include: None,
            exclude: Vec::new(),
            prediction: None,
            target: None,
            drift_share: default_share(),
            stattest: None,
            num_stattest: None,
            cat_stattest: None,
            text_stattest: None,
            threshold: None,
            num_threshold: None,
            cat_threshold: None,
            text_threshold: None,
            domain_classifier: false,
            columns: BTreeMap::new(),
        }
    }
}

/// A config checked and turned into the analyzer's types.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The raw config (column selection, roles).
    pub config: ReportConfig,
    stattest: Option<StatTest>,
    num_stattest: Option<StatTest>,
    cat_stattest: Option<StatTest>,
    text_stattest: Option<StatTest>,
    columns: BTreeMap<String, ColumnOptions>,
}

fn parse_test(field: &str, name: &Option<String>) -> anyhow::Result<Option<StatTest>> {
    name.as_deref()
        .map(|n| {
            StatTest::from_name(n).with_context(|| {
                let names: Vec<&str> = StatTest::ALL.iter().map(|t| t.name()).collect();
                format!("{field}: unknown stattest {n:?}; known: {}", names.join(", "))
            })
        })
        .transpose()
}

fn check_threshold(field: &str, t: Option<f64>) -> anyhow::Result<()> {
    match t {
        Some(t) if !t.is_finite() || t < 0.0 => bail!("{field}: threshold must be a finite number ≥ 0, got {t}"),
        _ => Ok(()),
    }
}

impl Settings {
    /// Reads and validates the file.
    pub fn load(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        let config: ReportConfig =
            toml::from_str(&text).with_context(|| format!("invalid report config {}", path.display()))?;
        Settings::new(config).with_context(|| format!("invalid report config {}", path.display()))
    }

    /// Validates a parsed config.
    pub fn new(config: ReportConfig) -> anyhow::Result<Settings> {
        if !(config.drift_share > 0.0 && config.drift_share <= 1.0) {
            bail!("drift_share must be in (0, 1], got {}", config.drift_share);
        }
        check_threshold("threshold", config.threshold)?;
        check_threshold("num_threshold", config.num_threshold)?;
        check_threshold("cat_threshold", config.cat_threshold)?;
        check_threshold("text_threshold", config.text_threshold)?;
        let stattest = parse_test("stattest", &config.stattest)?;
        let num_stattest = parse_test("num_stattest", &config.num_stattest)?;
        let cat_stattest = parse_test("cat_stattest", &config.cat_stattest)?;
        let text_stattest = parse_test("text_stattest", &config.text_stattest)?;
        if let Some(t) = text_stattest.filter(|t| !t.applies_to(ColumnKind::Text)) {
            bail!("text_stattest: {t} does not apply to text; use abs_text_content_drift or perc_text_content_drift");
        }
        let mut columns = BTreeMap::new();
        for (name, c) in &config.columns {
            let field = format!("columns.{name:?}");
            let kind = match c.kind.as_deref() {
                None => None,
                Some("num" | "numerical") => Some(ColumnKind::Numerical),
                Some("cat" | "categorical") => Some(ColumnKind::Categorical),
                Some("text") => Some(ColumnKind::Text),
                Some(k) => bail!("{field}.kind: expected \"num\", \"cat\" or \"text\", got {k:?}"),
            };
            let test = parse_test(&format!("{field}.stattest"), &c.stattest)?;
            check_threshold(&format!("{field}.threshold"), c.threshold)?;
            if let Some(spec) = &c.embedding {
                spec.validate(&format!("{field}.embedding")).map_err(anyhow::Error::msg)?;
            }
            columns.insert(name.clone(), ColumnOptions { kind, stattest: test, threshold: c.threshold });
        }
        Ok(Settings { config, stattest, num_stattest, cat_stattest, text_stattest, columns })
    }

    /// Every column the config names explicitly: each must exist in both files.
    pub fn named_columns(&self) -> Vec<&str> {
        let c = &self.config;
        let mut names: Vec<&str> = c.include.iter().flatten().map(String::as_str).collect();
        names.extend(c.prediction.as_deref());
        names.extend(c.target.as_deref());
        names.extend(c.columns.keys().map(String::as_str));
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Whether `name` is compared, given it is in both files.
    pub fn selects(&self, name: &str) -> bool {
        let c = &self.config;
        let role = c.prediction.as_deref() == Some(name) || c.target.as_deref() == Some(name);
        let included = role || c.include.as_ref().is_none_or(|i| i.iter().any(|n| n == name));
        included && !c.exclude.iter().any(|n| n == name)
    }

    /// The analyzer options of a column whose kind is `kind` (inferred or forced).
    pub fn options(&self, name: &str, kind: ColumnKind) -> ColumnOptions {
        let c = &self.config;
        let own = self.columns.get(name).copied().unwrap_or_default();
        let (kind_test, kind_threshold) = match kind {
            ColumnKind::Numerical => (self.num_stattest, c.num_threshold),
            ColumnKind::Categorical => (self.cat_stattest, c.cat_threshold),
            ColumnKind::Text => (self.text_stattest, c.text_threshold),
            ColumnKind::Embedding => (None, None),
        };
        ColumnOptions {
            kind: Some(kind),
            stattest: own.stattest.or(kind_test).or(self.stattest),
            threshold: own.threshold.or(kind_threshold).or(c.threshold),
        }
    }

    /// The embedding method of a column: its `embedding` table, with the column's own
    /// `threshold` when the table gives none.
    pub fn embedding(&self, name: &str) -> Spec {
        let column = self.config.columns.get(name);
        let mut spec = column.and_then(|c| c.embedding.clone()).unwrap_or_default();
        spec.threshold = spec.threshold.or(column.and_then(|c| c.threshold));
        spec
    }

    /// The forced kind of a column, if the config sets one.
    pub fn kind(&self, name: &str) -> Option<ColumnKind> {
        self.columns.get(name).and_then(|o| o.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_valid_and_unknown_fields_are_not() {
        let c: ReportConfig = toml::from_str("").unwrap();
        assert_eq!(c.drift_share, 0.5);
        assert!(toml::from_str::<ReportConfig>("colums = []").is_err());
        assert!(toml::from_str::<ReportConfig>("[columns.a]\nkinds = \"num\"").is_err());
    }

    #[test]
    fn precedence_is_column_then_kind_then_global() {
        let c: ReportConfig = toml::from_str(
            "stattest = \"psi\"\nnum_stattest = \"ks\"\nthreshold = 0.3\n[columns.a]\nstattest = \"wasserstein\"",
        )
        .unwrap();
        let s = Settings::new(c).unwrap();
        assert_eq!(s.options("a", ColumnKind::Numerical).stattest, Some(StatTest::Wasserstein));
        assert_eq!(s.options("b", ColumnKind::Numerical).stattest, Some(StatTest::Ks));
        assert_eq!(s.options("b", ColumnKind::Categorical).stattest, Some(StatTest::Psi));
        assert_eq!(s.options("b", ColumnKind::Categorical).threshold, Some(0.3));
    }

    #[test]
    fn text_is_declared_per_column() {
        let c: ReportConfig = toml::from_str("text_threshold = 0.6\n[columns.review]\nkind = \"text\"").unwrap();
        let s = Settings::new(c).unwrap();
        assert_eq!(s.kind("review"), Some(ColumnKind::Text));
        assert_eq!(s.options("review", ColumnKind::Text).threshold, Some(0.6));
        let c: ReportConfig = toml::from_str("text_stattest = \"ks\"").unwrap();
        assert!(Settings::new(c).is_err());
    }

    #[test]
    fn bad_values_name_the_field() {
        let c: ReportConfig = toml::from_str("[columns.x]\nstattest = \"kss\"").unwrap();
        let e = format!("{:#}", Settings::new(c).unwrap_err());
        assert!(e.contains("columns.\"x\".stattest") && e.contains("kss"), "{e}");
        let c: ReportConfig = toml::from_str("drift_share = 0").unwrap();
        assert!(Settings::new(c).is_err());
    }
}

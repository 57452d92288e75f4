//! The schemas and limits the fuzz targets decode against. Also compiled into the main
//! workspace's `tests/fuzz_regressions.rs` (by `#[path]`), which replays every seed and
//! regression input on the stable toolchain in `make test`.

use anchorwatch_collector::schema::{FeatureConfig, FeatureKind, ModelSchema, ValueKind};

/// Longest batch the predictor targets accept, as `predictor.max_batch_rows` would cap it.
pub const MAX_ROWS: usize = 1000;

/// The OIP v2 input name that holds every feature as one `[N, F]` matrix.
pub const MATRIX_INPUT: &str = "input";

fn feature(name: &str, kind: FeatureKind, dim: Option<usize>, nullable: bool) -> FeatureConfig {
    FeatureConfig { name: name.into(), kind, dim, nullable }
}

/// One feature of every kind, a non-nullable one among them, a categorical prediction and label,
/// and two score classes: the schema the `json`, `arrow_ipc` and `oip_v2` targets use.
pub fn schema() -> ModelSchema {
    let schema = ModelSchema {
        features: vec![
            feature("age", FeatureKind::Numerical, None, true),
            feature("city", FeatureKind::Categorical, None, true),
            feature("vip", FeatureKind::Boolean, None, false),
            feature("note", FeatureKind::Text, None, true),
            feature("emb", FeatureKind::Embedding, Some(3), true),
        ],
        prediction: ValueKind::Categorical,
        label: ValueKind::Categorical,
        scores: vec!["no".into(), "yes".into()],
    };
    schema.validate().expect("the fuzz schema is valid");
    schema
}

/// The other kinds of prediction and label (numerical, boolean), every feature required and no
/// scores: the schema the `ndjson` target uses, so the two JSON targets reach different checks.
pub fn strict_schema() -> ModelSchema {
    let schema = ModelSchema {
        features: vec![
            feature("age", FeatureKind::Numerical, None, false),
            feature("city", FeatureKind::Categorical, None, false),
            feature("vip", FeatureKind::Boolean, None, false),
            feature("note", FeatureKind::Text, None, false),
            feature("emb", FeatureKind::Embedding, Some(2), false),
        ],
        prediction: ValueKind::Numerical,
        label: ValueKind::Boolean,
        scores: vec![],
    };
    schema.validate().expect("the fuzz schema is valid");
    schema
}

/// Arrival time the decoders fill absent timestamps with: 2025-11-25T13:00:00Z, in µs.
pub const NOW_US: i64 = 1_764_075_600_000_000;

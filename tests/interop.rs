//! The store is an ordinary hive-partitioned Parquet dataset: another engine (pyarrow) reads it
//! with the partition columns, types and values anchorwatch wrote.

use crate::support;

use std::process::Command;

use serde_json::{Value, json};
use support::{Server, config, python};

/// The project's Python (set up by `make test`); its absence is a failure, not a skip.
const READ: &str = r#"
import json, sys
import pyarrow.dataset as ds
import pyarrow.compute as pc
preds = ds.dataset(sys.argv[1] + "/predictions", format="parquet", partitioning="hive").to_table()
labels = ds.dataset(sys.argv[1] + "/labels", format="parquet", partitioning="hive").to_table()
print(json.dumps({
    "rows": preds.num_rows,
    "labels": labels.num_rows,
    "hours": sorted(set(str(h) for h in preds.column("hour").to_pylist())),
    "dates": sorted(set(str(d) for d in preds.column("date").to_pylist())),
    "age_sum": pc.sum(preds.column("age")).as_py(),
    "timestamp_type": str(preds.schema.field("timestamp").type),
    "region_type": str(preds.schema.field("region").type),
    "vip_true": pc.sum(pc.cast(preds.column("vip"), "int64")).as_py(),
}))
"#;

#[test]
fn pyarrow_reads_the_hive_dataset() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), ""));
    let rows: Vec<Value> = (0..120)
        .map(|i| {
            json!({"prediction_id": format!("x-{i}"), "timestamp": format!("2026-11-24T{:02}:30:00Z", 22 + i % 2),
                   "features": {"age": i, "region": "north", "vip": i % 4 == 0}, "prediction": "good"})
        })
        .collect();
    assert_eq!(server.post_json("/v1/models/credit/predictions", &json!(rows)).0, 200);
    let labels: Vec<Value> = (0..30).map(|i| json!({"prediction_id": format!("x-{i}"), "label": "bad"})).collect();
    assert_eq!(server.post_json("/v1/models/credit/labels", &json!(labels)).0, 200);
    server.stop();

    let out = Command::new(python).arg("-c").arg(READ).arg(dir.path().join("store/credit")).output().unwrap();
    assert!(out.status.success(), "pyarrow failed: {}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got,
        json!({
            "rows": 120, "labels": 30, "hours": ["22", "23"], "dates": ["2026-11-24"],
            "age_sum": 7140.0, "timestamp_type": "timestamp[us, tz=UTC]", "region_type": "string", "vip_true": 30
        })
    );
}

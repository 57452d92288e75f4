//! Table-driven bad input: every case gets its documented 4xx with a precise message, the server
//! stays up, and nothing of a rejected request is stored.

use crate::support;

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray};
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};
use support::{Server, client, config};

fn ipc(columns: Vec<(&str, ArrayRef)>) -> Vec<u8> {
    support::ipc(&RecordBatch::try_from_iter(columns).unwrap())
}

/// A valid record with a given id: a rejected request starts with one, to prove it is not kept.
fn good(id: &str) -> Value {
    json!({"prediction_id": id, "features": {"age": 40, "region": "north", "vip": false}, "prediction": "good"})
}

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// Expected (row, field) in the details, where the error is about one value.
    at: Option<(u64, &'static str)>,
}

fn json_case(
    name: &'static str,
    body: Value,
    status: u16,
    code: &'static str,
    at: Option<(u64, &'static str)>,
) -> Case {
    Case {
        name,
        path: "/v1/models/credit/predictions",
        content_type: "application/json",
        body: serde_json::to_vec(&body).unwrap(),
        status,
        code,
        at,
    }
}

fn raw(
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Case {
    Case { name, path, content_type, body: body.into(), status, code, at: None }
}

#[test]
fn bad_input_gets_a_precise_4xx_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), "[server]\nmax_body_bytes = \"64KiB\"\n"));
    let predictions = "/v1/models/credit/predictions";
    let huge = serde_json::to_vec(&Value::Array((0..2000).map(|i| good(&format!("huge-{i}"))).collect())).unwrap();
    assert!(huge.len() > 64 * 1024);

    let cases = vec![
        raw(
            "malformed JSON",
            predictions,
            "application/json",
            r#"[{"prediction_id": "m-0", "features": "#,
            400,
            "malformed_json",
        ),
        raw(
            "NaN literal",
            predictions,
            "application/json",
            r#"{"prediction_id": "n-0", "features": {"age": NaN}, "prediction": "good"}"#,
            400,
            "malformed_json",
        ),
        json_case(
            "wrong type in row 1",
            json!([good("w-0"), {"prediction_id": "w-1", "features": {"age": "old", "vip": true}, "prediction": "good"}]),
            400,
            "wrong_type",
            Some((1, "features.age")),
        ),
        json_case(
            "wrong prediction type",
            json!([good("wp-0"), {"prediction_id": "wp-1", "features": {"vip": true}, "prediction": 0.5}]),
            400,
            "wrong_type",
            Some((1, "prediction")),
        ),
        raw(
            "number out of f64 range",
            predictions,
            "application/json",
            r#"[{"prediction_id": "i-0", "features": {"age": 1e999, "vip": true}, "prediction": "good"}]"#,
            400,
            "malformed_json",
        ),
        json_case(
            "missing prediction",
            json!([good("mp-0"), {"prediction_id": "mp-1", "features": {"vip": true}}]),
            400,
            "missing_field",
            Some((1, "prediction")),
        ),
        json_case(
            "unknown feature with a unicode name",
            json!([good("u-0"), {"prediction_id": "u-1", "features": {"âge": 3, "vip": true}, "prediction": "good"}]),
            400,
            "unknown_field",
            Some((1, "features.âge")),
        ),
        json_case(
            "unknown top-level field",
            json!([good("t-0"), {"prediction_id": "t-1", "features": {"vip": true}, "prediction": "good", "extra": 1}]),
            400,
            "unknown_field",
            Some((1, "extra")),
        ),
        json_case(
            "duplicate ids",
            json!([good("d-0"), good("d-1"), good("d-0")]),
            400,
            "duplicate_id",
            Some((2, "prediction_id")),
        ),
        json_case(
            "features not an object",
            json!([good("f-0"), {"prediction_id": "f-1", "features": [1, 2], "prediction": "good"}]),
            400,
            "wrong_type",
            Some((1, "features")),
        ),
        json_case(
            "bad timestamp",
            json!([good("ts-0"), {"prediction_id": "ts-1", "timestamp": "yesterday", "features": {"vip": true}, "prediction": "good"}]),
            400,
            "wrong_type",
            Some((1, "timestamp")),
        ),
        json_case("a record that is not an object", json!([good("s-0"), "hello"]), 400, "wrong_type", Some((1, ""))),
        json_case("empty array", json!([]), 400, "empty", None),
        raw("empty body", predictions, "application/json", "", 400, "empty"),
        raw("huge body", predictions, "application/json", huge.clone(), 413, "body_too_large"),
        raw(
            "unsupported content type",
            predictions,
            "text/csv",
            "age,region\n1,north\n",
            415,
            "unsupported_media_type",
        ),
        raw(
            "unknown model",
            "/v1/models/nope/predictions",
            "application/json",
            serde_json::to_vec(&good("x-0")).unwrap(),
            404,
            "unknown_model",
        ),
        raw(
            "path tricks in the model name",
            "/v1/models/..%2F..%2Fetc/predictions",
            "application/json",
            serde_json::to_vec(&good("x-1")).unwrap(),
            400,
            "invalid_model_name",
        ),
        raw(
            "unicode model name",
            "/v1/models/mod%C3%A8le/predictions",
            "application/json",
            serde_json::to_vec(&good("x-2")).unwrap(),
            400,
            "invalid_model_name",
        ),
        raw(
            "label without prediction_id",
            "/v1/models/credit/labels",
            "application/json",
            r#"[{"prediction_id": "l-0", "label": "good"}, {"label": "bad"}]"#,
            400,
            "missing_field",
        ),
        raw(
            "garbage Arrow stream",
            predictions,
            "application/vnd.apache.arrow.stream",
            vec![0xffu8; 64],
            400,
            "malformed_arrow",
        ),
        raw(
            "Arrow with NaN",
            predictions,
            "application/vnd.apache.arrow.stream",
            ipc(vec![
                ("prediction_id", Arc::new(StringArray::from(vec!["an-0", "an-1"])) as ArrayRef),
                ("age", Arc::new(Float64Array::from(vec![1.0, f64::NAN]))),
                ("prediction", Arc::new(StringArray::from(vec!["good", "good"]))),
            ]),
            400,
            "non_finite",
        ),
        raw(
            "Arrow column of the wrong type",
            predictions,
            "application/vnd.apache.arrow.stream",
            ipc(vec![
                ("prediction_id", Arc::new(StringArray::from(vec!["aw-0"])) as ArrayRef),
                ("region", Arc::new(Float64Array::from(vec![1.5]))),
                ("prediction", Arc::new(StringArray::from(vec!["good"]))),
            ]),
            400,
            "wrong_type",
        ),
        raw(
            "Arrow with an unknown column",
            predictions,
            "application/vnd.apache.arrow.stream",
            ipc(vec![
                ("prediction_id", Arc::new(StringArray::from(vec!["au-0"])) as ArrayRef),
                ("height", Arc::new(Float64Array::from(vec![1.5]))),
                ("prediction", Arc::new(StringArray::from(vec!["good"]))),
            ]),
            400,
            "unknown_field",
        ),
        raw(
            "Arrow without the prediction",
            predictions,
            "application/vnd.apache.arrow.stream",
            ipc(vec![("prediction_id", Arc::new(StringArray::from(vec!["am-0"])) as ArrayRef)]),
            400,
            "missing_field",
        ),
    ];

    for case in &cases {
        let response = client()
            .post(server.url(case.path))
            .header("content-type", case.content_type)
            .body(case.body.clone())
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().unwrap_or(Value::Null);
        let error = &answer["error"];
        assert_eq!((status, error["code"].as_str()), (case.status, Some(case.code)), "{}: {answer}", case.name);
        assert!(error["message"].as_str().is_some_and(|m| m.len() > 10), "{}: no useful message: {answer}", case.name);
        if let Some((row, field)) = case.at {
            assert_eq!(
                (error["details"]["row"].as_u64(), error["details"]["field"].as_str()),
                (Some(row), Some(field)),
                "{}: {answer}",
                case.name
            );
            assert!(
                error["details"]["expected"].is_string() && error["details"]["got"].is_string(),
                "{}: {answer}",
                case.name
            );
        }
    }

    // A huge body without a Content-Length (chunked) is cut off as well. The server may answer
    // 413 and close before the client has sent everything, so the client can see either the 413
    // or a closed connection; the rejection counter below shows which reason the server gave.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(huge));
    let response =
        client().post(server.url(predictions)).header("content-type", "application/json").body(chunked).send();
    if let Ok(response) = response {
        assert_eq!(response.status(), 413);
    }

    // The server is still up and takes good data.
    let (status, answer) = server.post_json(predictions, &good("control"));
    assert_eq!(status, 200, "{answer}");
    server.flush();
    let rows = server.query("SELECT prediction_id FROM predictions");
    assert_eq!(rows, vec![json!({"prediction_id": "control"})], "a rejected request left rows behind");
    assert_eq!(server.query("SELECT count(*) AS n FROM labels"), vec![json!({"n": 0})]);

    // Rejections are counted by bounded reason; unknown models never become a label value.
    let metrics = server.metrics();
    assert!(
        metrics.contains(r#"anchorwatch_ingest_rejected_total{model="credit",reason="wrong_type"} 6"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"anchorwatch_ingest_rejected_total{model="_unknown",reason="unknown_model"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"anchorwatch_ingest_rejected_total{model="credit",reason="body_too_large"} 2"#),
        "{metrics}"
    );
    assert!(!metrics.contains("nope"));
    server.stop();
}

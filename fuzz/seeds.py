"""Writes the seed corpora in fuzz/corpus/<target>/: a few small valid bodies per target.

Run from the repository root with the test venv (pyarrow writes the Arrow IPC streams):
    .venv/bin/python fuzz/seeds.py
Seeds match the schemas in fuzz/src/lib.rs: `schema()` for json, arrow_ipc and oip_v2,
`strict_schema()` for ndjson. A seed is added by adding a line here, then rerunning.
"""

import json
import pathlib
import shutil

import pyarrow as pa

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"


def dumps(value):
    return json.dumps(value, separators=(",", ":")).encode()


def prediction(i, **extra):
    record = {
        "prediction_id": f"p{i}",
        "timestamp": "2025-11-25T13:00:00Z",
        "model_version": "v1",
        "features": {"age": 31 + i, "city": "Oslo", "vip": True, "note": "hello", "emb": [0.1, 0.2, 0.3]},
        "prediction": "yes",
        "scores": {"no": 0.2, "yes": 0.8},
    }
    record.update(extra)
    return record


def strict(i):
    return {
        "prediction_id": f"s{i}",
        "timestamp": 1764075600 + i,
        "features": {"age": 2.5 * i, "city": 7, "vip": 1, "note": "n", "emb": [1, -1.5]},
        "prediction": 0.25,
    }


JSON = {
    "object": dumps(prediction(0)),
    "array": dumps([prediction(0), prediction(1, scores=[0.6, 0.4], timestamp=1764075600.5)]),
    "concatenated": dumps(prediction(0)) + b" " + dumps(prediction(1)),
    "minimal": dumps({"features": {"vip": 0}, "prediction": 3}),
    "nulls": dumps({"features": {"age": None, "city": False, "vip": False, "emb": None}, "prediction": True}),
    "label": dumps({"prediction_id": "p0", "label": "no", "timestamp": "2025-11-25T14:00:00+01:00"}),
    "labels": dumps([{"prediction_id": "p0", "label": "no"}, {"prediction_id": "p1", "label": 1}]),
}

NDJSON = {
    "predictions": b"\n".join(dumps(strict(i)) for i in range(3)) + b"\n",
    "crlf": b"\r\n".join(dumps(strict(i)) for i in range(2)),
    "labels": b"\n".join(dumps({"prediction_id": f"s{i}", "label": i % 2 == 0}) for i in range(3)) + b"\n",
    "labels_01": dumps({"prediction_id": "s0", "label": 1, "timestamp": 1764075600}) + b"\n",
}


def ipc(batches):
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def arrow_seeds():
    emb = pa.list_(pa.float32(), 3)
    full = pa.record_batch(
        {
            "prediction_id": pa.array(["p0", "p1"]),
            "timestamp": pa.array([1764075600000000, None], pa.timestamp("us", tz="UTC")),
            "model_version": pa.array(["v1", None]),
            "age": pa.array([31.0, None]),
            "city": pa.array(["Oslo", None]),
            "vip": pa.array([True, False]),
            "note": pa.array(["hello", None]),
            "emb": pa.array([[0.1, 0.2, 0.3], None], emb),
            "prediction": pa.array(["yes", "no"]),
            "score_no": pa.array([0.2, None]),
            "score_yes": pa.array([0.8, None]),
        }
    )
    other_types = pa.record_batch(
        {
            "timestamp": pa.array([1764075600], pa.timestamp("s")),
            "age": pa.array([31], pa.int32()),
            "city": pa.array(["Oslo"]).dictionary_encode(),
            "vip": pa.array([True]),
            "note": pa.array(["x"], pa.large_string()),
            "emb": pa.array([[1.0, 2.0, 3.0]], pa.list_(pa.float64(), 3)),
            "prediction": pa.array([1], pa.int64()),
            "score_yes": pa.array([0.5], pa.float32()),
        }
    )
    minimal = pa.record_batch({"vip": pa.array([False]), "prediction": pa.array([True])})
    labels = pa.record_batch(
        {
            "prediction_id": pa.array(["p0", "p1"]),
            "label": pa.array(["no", "yes"]),
            "timestamp": pa.array([1764075600000, None], pa.timestamp("ms")),
        }
    )
    return {
        "predictions": ipc([full]),
        "two_batches": ipc([full.slice(0, 1), full.slice(1, 1)]),
        "other_types": ipc([other_types]),
        "minimal": ipc([minimal]),
        "labels": ipc([labels]),
        "schema_only": ipc([labels.slice(0, 0)]),
    }


def oip_input(name, shape, datatype, data):
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


OIP = {
    "by_feature": dumps(
        {
            "id": "r1",
            "inputs": [
                oip_input("age", [2, 1], "FP64", [[31], None]),
                oip_input("city", [2], "BYTES", ["Oslo", None]),
                oip_input("vip", [2], "BOOL", [True, False]),
                oip_input("emb", [2, 3], "FP32", [0.1, 0.2, 0.3, 1, 2, 3]),
            ],
        }
    ),
    "matrix": dumps({"inputs": [oip_input("input", [1, 5], "FP32", [[31, 1, 1, 0, 0]])]}),
    "records": dumps([{"prediction_id": "a", "features": {"vip": True, "emb": [1, 2, 3]}}, {"features": {"vip": 0}}]),
    "record": dumps({"features": {"age": 3, "city": 4, "vip": False, "note": "n"}}),
}


def exchange(config, request, response):
    return bytes([config]) + dumps(request) + b"\0" + dumps(response)


OIP_RESPONSE = {
    "model_version": "7",
    "outputs": [
        {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["good", "bad"]},
        {"name": "probs", "shape": [2, 2], "datatype": "FP32", "data": [0.9, 0.1, 0.2, 0.8]},
    ],
}

PROXY = {
    "oip": exchange(
        0,
        {"inputs": [oip_input("age", [2], "FP64", [41.0, 30.5]), oip_input("region", [2, 1], "BYTES", [["n"], ["s"]])]},
        OIP_RESPONSE,
    ),
    "oip_named": exchange(1, {"inputs": [oip_input("x", [2, 3], "FP32", [1, 2, 3, 4, 5, 6])]}, OIP_RESPONSE),
    "instances": exchange(1, {"instances": [[1, "a", True], {"age": 3}]}, {"predictions": [[0.2, 0.8], [5]]}),
    "columnar": exchange(0, {"inputs": {"a": [1, 2], "b": [3, 4]}}, {"predictions": [7, 8]}),
    "features": exchange(0, {"features": {"age": 1}}, {"prediction": "good", "scores": [0.7, 0.3]}),
    "records": exchange(0, [{"features": {"age": 1}}, {"age": 2}], [{"prediction": 1, "probabilities": [0.1]}, 0]),
    "mapping": exchange(
        2,
        {"data": [{"person": {"age": 40}, "vip": True}, {"person": {"age": 2}}]},
        {"result": [{"label": "a", "p": {"a": 1.0}}, {"label": "b"}]},
    ),
    "mapping_whole": exchange(3, [{"age": 1}, {"age": 2}], ["x", "y"]),
}


def main():
    targets = {"json": JSON, "ndjson": NDJSON, "arrow_ipc": arrow_seeds(), "oip_v2": OIP, "proxy_extract": PROXY}
    for target, seeds in targets.items():
        folder = CORPUS / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, body in seeds.items():
            (folder / name).write_bytes(body)
        print(f"{folder}: {len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes")


if __name__ == "__main__":
    main()

"""Scores an ONNX model with ONNX Runtime and prints the outputs as JSON.

Usage: score.py MODEL.onnx ROWS.json

ROWS.json: {"inputs": {NAME: {"type": "float" | "string", "shape": [...], "values": [...]}}}, values
flat and row-major; a float null is NaN (JSON has no NaN). Prints {"onnxruntime": version,
"inputs": [...], "outputs": {NAME: {"type", "shape", "values"}}, "checker": "ok" | "unavailable" |
"error: ..."}. Exit code 3 when onnxruntime cannot be imported.
"""

import json
import sys

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:  # the Rust test turns this into a skip, or a failure under CI
    print(f"onnxruntime unavailable: {e}", file=sys.stderr)
    sys.exit(3)


def main():
    model_path, rows_path = sys.argv[1], sys.argv[2]
    with open(rows_path) as f:
        spec = json.load(f)
    feeds = {}
    for name, inp in spec["inputs"].items():
        if inp["type"] == "float":
            values = [np.nan if v is None else v for v in inp["values"]]
            feeds[name] = np.array(values, dtype=np.float32).reshape(inp["shape"])
        else:
            feeds[name] = np.array(inp["values"], dtype=object).reshape(inp["shape"])

    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    results = session.run(None, feeds)
    outputs = {}
    for meta, value in zip(session.get_outputs(), results):
        values = value.ravel().tolist()
        outputs[meta.name] = {"type": meta.type, "shape": list(value.shape), "values": values}
    inputs = [{"name": i.name, "type": i.type, "shape": [d if isinstance(d, int) else None for d in i.shape]}
              for i in session.get_inputs()]

    try:
        import onnx

        onnx.checker.check_model(onnx.load(model_path), full_check=True)
        checker = "ok"
    except ImportError:
        checker = "unavailable"
    except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
        checker = f"error: {e}"

    print(json.dumps({"onnxruntime": ort.__version__, "inputs": inputs, "outputs": outputs, "checker": checker}))


if __name__ == "__main__":
    main()

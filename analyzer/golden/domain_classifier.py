#!/usr/bin/env python3
"""Generate golden fixtures for the domain classifier by running NannyML 0.13.1 itself.

Usage (from the repository root, with the pinned environment of requirements.txt):

    DO_NOT_TRACK=1 .venv/bin/python analyzer/golden/domain_classifier.py [bundled] [edge]

(about a quarter of an hour for everything on two busy cores; naming groups regenerates only
those).

Writes analyzer/golden/multivariate/domain_classifier/<case>.json (NannyML's results) and, for
the small edge cases, <case>.parquet beside them (the inputs); the bundled datasets' inputs are
the Parquet files multivariate.py already stores one folder up. analyzer/tests/
domain_classifier_golden.rs walks every JSON file of that folder. (A folder of its own, because
reconstruction_golden.rs reads every JSON file of multivariate/ as one of its fixtures.) Adding
a case means adding a dataset (and its runs) below, never Rust code.

Every run is a `nml.DomainClassifierCalculator(feature_column_names=...)` fitted on the reference
rows and calculated on the analysis rows, with the run's chunking, threshold and cv_folds_num
(NannyML's defaults when absent: LightGBM's DEFAULT_LGBM_HYPERPARAMS, five folds, a constant
0.45-0.65 band), and no timestamp column (so the chunker takes the rows in their stored order).

Inputs: the bundled datasets are read from multivariate/<case>.parquet (every 10th row of
NannyML's reference and analysis sets), and every STEP-th row of each part is kept, in order:
the domain classifier trains five LightGBM models per chunk, and the Rust test trains as many
of its own trees, unoptimised. Read as multivariate.py reads them: missing strings are NaN.

LightGBM runs on one thread (OMP_NUM_THREADS=1): with several, its histogram sums depend on the
threads' timing and a rerun can move an AUC in its last digits.

Fixture format:
  name, description
  inputs                   the Parquet file, relative to this file's folder: reference rows
                           first, then analysis rows
  reference_rows, analysis_rows   rows of each part in the Parquet file
  step                     every step-th row of each part is used (1: all)
  exact                    true when no tree can tell the rows apart beyond what both classifiers
                           do the same way, so the AUC must be NannyML's to rounding
  columns[]                {"name", "kind": "num" | "cat"}, in the order NannyML is given them
  runs[]                   {"options": {"chunk_size" | "chunk_number", "threshold",
                                        "cv_folds_num"}  (absent = NannyML's default),
                            "thresholds": {"lower", "upper"} (null = none),
                            "reference", "analysis": [{"key", "start_index", "end_index",
                                       "value", "alert"}]
                            or "error": NannyML's exception when it refuses the data}
  Floats are Python's repr.
"""

import contextlib
import json
import math
import os
import re
import sys
import warnings
from pathlib import Path

ENV = {"DO_NOT_TRACK": "1", "NML_DISABLE_USAGE_LOGGING": "1", "PYTHONHASHSEED": "0",
       "OMP_NUM_THREADS": "1"}
if any(os.environ.get(k) != v for k, v in ENV.items()):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **ENV})
warnings.filterwarnings("ignore")

import logging  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import nannyml as nml  # noqa: E402
from nannyml.thresholds import ConstantThreshold, StandardDeviationThreshold  # noqa: E402

logging.disable(logging.WARNING)

MULTIVARIATE = Path(__file__).resolve().parent / "multivariate"
OUT = MULTIVARIATE / "domain_classifier"
STEP = 5


def num(x):
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


@contextlib.contextmanager
def quiet():
    """LightGBM prints from C++ to file descriptor 1 whatever its Python logger is told."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def read(path, reference_rows, step):
    frame = pd.read_parquet(path, engine="pyarrow")
    for c in frame.columns:
        if frame[c].dtype == object:
            frame[c] = frame[c].where(frame[c].notna(), np.nan)
    reference = frame.iloc[:reference_rows].iloc[::step].reset_index(drop=True)
    analysis = frame.iloc[reference_rows:].iloc[::step].reset_index(drop=True)
    return reference, analysis


def calculator(columns, options):
    kw = {}
    for key in ("chunk_size", "chunk_number", "cv_folds_num"):
        if key in options:
            kw[key] = options[key]
    if "threshold" in options:
        t = options["threshold"]
        if t["type"] == "constant":
            kw["threshold"] = ConstantThreshold(lower=t.get("lower"), upper=t.get("upper"))
        else:
            kw["threshold"] = StandardDeviationThreshold(
                std_lower_multiplier=t.get("std_lower_multiplier"),
                std_upper_multiplier=t.get("std_upper_multiplier"))
    return nml.DomainClassifierCalculator(feature_column_names=columns, **kw)


def chunks(frame):
    out = []
    for _, row in frame.iterrows():
        r = row["domain_classifier_auroc"]
        out.append({
            "key": row[("chunk", "key")],
            "start_index": int(row[("chunk", "start_index")]),
            "end_index": int(row[("chunk", "end_index")]),
            "value": num(r["value"]),
            "alert": bool(r["alert"]),
        })
    return out


def run(columns, reference, analysis, options):
    options = dict(options)
    deviation = options.pop("deviation", None)
    entry = {"options": options}
    if deviation:
        entry["deviation"] = deviation
    calc = calculator(columns, options)
    try:
        with quiet():
            calc.fit(reference.copy())
            result = calc.calculate(analysis.copy())
    except Exception as exc:  # noqa: BLE001 - NannyML's refusal is the expected result
        entry["error"] = re.sub(r" at 0x[0-9a-f]+", "", f"{type(exc).__name__}: {exc}")
        return entry
    entry["thresholds"] = {"lower": num(calc.lower_threshold_value),
                           "upper": num(calc.upper_threshold_value)}
    frame = result.to_df()
    period = frame[("chunk", "period")]
    entry["reference"] = chunks(frame[period == "reference"])
    entry["analysis"] = chunks(frame[period == "analysis"])
    return entry


def write(name, description, inputs, reference_rows, analysis_rows, step, columns, kinds, runs,
          reference, analysis, exact=False):
    fixture = {
        "name": name,
        "description": description,
        "inputs": inputs,
        "reference_rows": reference_rows,
        "analysis_rows": analysis_rows,
        "step": step,
        "exact": exact,
        "columns": [{"name": c, "kind": k} for c, k in zip(columns, kinds)],
        "runs": [run(columns, reference, analysis, o) for o in runs],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(fixture, indent=1, allow_nan=False) + "\n")
    values = [c["value"] for r in fixture["runs"] for p in ("reference", "analysis")
              for c in r.get(p, [])]
    print(f"{name}: {len(reference)} + {len(analysis)} rows, {len(columns)} columns, "
          f"{len(values)} chunks, {sum('error' in r for r in fixture['runs'])}/{len(runs)} "
          f"runs refused", flush=True)


def bundled(name, description, runs):
    """A dataset multivariate.py stores, every STEP-th row of each part."""
    stored = json.loads((MULTIVARIATE / f"{name}.json").read_text())
    columns = [c["name"] for c in stored["columns"]]
    kinds = [c["kind"] for c in stored["columns"]]
    reference, analysis = read(MULTIVARIATE / stored["inputs"], stored["reference_rows"], STEP)
    write(name, description, f"../{stored['inputs']}", stored["reference_rows"],
          stored["analysis_rows"], STEP, columns, kinds, runs, reference, analysis)


def case(name, description, reference, analysis, runs, exact=False):
    """A small dataset of its own, stored beside its fixture as multivariate.py stores inputs."""
    columns = list(reference.columns)
    frame = pd.concat([reference, analysis], ignore_index=True)
    for c in frame.columns:
        if frame[c].dtype.kind in "iuf":
            frame[c] = frame[c].astype("float64")
        else:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.parquet"
    frame.to_parquet(path, engine="pyarrow", compression="zstd", compression_level=19, index=False)
    back_reference, back_analysis = read(path, len(reference), 1)
    kinds = ["cat" if back_reference[c].dtype == object else "num" for c in columns]
    write(name, description, path.name, len(reference), len(analysis), 1, columns, kinds, runs,
          back_reference, back_analysis, exact)


BUNDLED_RUNS = [
    {"chunk_size": 500},
]


def bundled_cases():
    bundled("car_loan", "load_synthetic_car_loan_dataset: 2 categorical, 1 boolean, 4 numerical "
            "features; drift in the second half of the analysis set", BUNDLED_RUNS)
    bundled("car_loan_data_quality", "load_synthetic_car_loan_data_quality_dataset: the car loan "
            "features with missing salary_range and driver_tenure values on both sides",
            BUNDLED_RUNS)
    bundled("binary_classification", "load_synthetic_binary_classification_dataset (work from "
            "home): 4 numerical, 2 categorical, 1 boolean feature", BUNDLED_RUNS)
    bundled("multiclass_classification", "load_synthetic_multiclass_classification_dataset: "
            "integer and float numerical features, 2 categorical, 1 boolean", BUNDLED_RUNS)
    bundled("car_price", "load_synthetic_car_price_dataset (regression): 5 numerical features "
            "with few distinct values, 2 categorical", BUNDLED_RUNS)


def edge_cases():
    rng = np.random.RandomState(11)

    def categories(n, values, p):
        return pd.Series(rng.choice(np.array(values, dtype=object), size=n, p=p), dtype=object)

    # Drift that only the missing values show: the classifier must see them (LightGBM sends
    # them to a side of its own; here a missing flag).
    n, m = 400, 300
    a = rng.normal(size=n)
    a[rng.rand(n) < 0.1] = np.nan
    c = categories(n, ["red", "green", "blue"], [0.5, 0.3, 0.2]).to_numpy()
    c[rng.rand(n) < 0.2] = np.nan
    ref = pd.DataFrame({"a": a, "b": rng.normal(size=n), "c": c})
    a = rng.normal(size=m)
    a[rng.rand(m) < 0.6] = np.nan
    c = categories(m, ["red", "green", "blue"], [0.5, 0.3, 0.2]).to_numpy()
    c[rng.rand(m) < 0.6] = np.nan
    ana = pd.DataFrame({"a": a, "b": rng.normal(size=m), "c": c})
    sd = {"type": "standard_deviation", "std_lower_multiplier": 3, "std_upper_multiplier": 3}
    case("missing_values", "NaN in a numerical and a categorical feature on both sides, six times "
         "as many in the analysis set, whose values are otherwise the reference's; a chunk_size "
         "above the reference's rows makes one reference chunk of every row, a single label, "
         "which NannyML scores 0.5; thresholds beyond [0, 1] clamped to 0 and 1, standard "
         "deviation thresholds, three folds",
         ref, ana,
         [{"chunk_size": 200}, {"chunk_size": 500},
          {"chunk_size": 200, "threshold": {"type": "constant", "lower": -0.1, "upper": 1.2}},
          {"chunk_size": 100, "threshold": sd}, {"chunk_size": 200, "cv_folds_num": 3}])

    n, m = 400, 200
    ref = pd.DataFrame({"v": rng.normal(size=n),
                        "city": categories(n, ["Paris", "Lyon", "Nice"], [0.5, 0.3, 0.2])})
    ana = pd.DataFrame({"v": rng.normal(size=m),
                        "city": categories(m, ["Paris", "Lyon", "Nice", "Brest", "Lille"],
                                           [0.2, 0.1, 0.1, 0.3, 0.3])})
    case("unseen_categories", "categories in the analysis set that the reference never saw",
         ref, ana, [{"chunk_size": 200}])

    # A constant reference: nothing to split on, so every fold predicts its training rows' share
    # of label 1, the same with either classifier.
    ref = pd.DataFrame({"x": np.full(100, 1.0), "c": pd.Series(["a"] * 100, dtype=object)})
    ana = pd.DataFrame({"x": np.full(51, 2.0), "c": pd.Series(["b"] * 51, dtype=object)})
    case("tiny_chunks", "a constant reference (two chunks of 50 rows, every fold's share 0.5: "
         "AUC 0.5), a shifted analysis set in a chunk of 50 rows (AUC 1) and one of 1 row, whose "
         "fold trains on label 0 alone and predicts 1e-15 for itself and its 20 reference rows, "
         "below every other fold's prediction: AUC 0.5 * 20 / 100 = 0.1",
         ref, ana, [{"chunk_size": 50}], exact=True)

    ref = pd.DataFrame({"a": rng.normal(size=4), "b": rng.normal(size=4)})
    ana = pd.DataFrame({"a": rng.normal(size=10) + 3, "b": rng.normal(size=10)})
    case("refusals", "inputs NannyML refuses: fewer rows than folds (a reference of 4 rows), one "
         "fold; and an open side of a constant threshold, which NannyML 0.13.1 fails on "
         "('<' between a float and None) and anchorwatch leaves open (a deviation)",
         ref, ana,
         [{"chunk_size": 2}, {"chunk_size": 2, "cv_folds_num": 1},
          {"chunk_size": 5, "cv_folds_num": 2,
           "threshold": {"type": "constant", "lower": None, "upper": 0.6},
           "deviation": "an open side never alerts"}])


GROUPS = {"bundled": bundled_cases, "edge": edge_cases}


def main():
    for group in sys.argv[1:] or GROUPS:
        GROUPS[group]()
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{OUT}: {total} bytes")


if __name__ == "__main__":
    main()

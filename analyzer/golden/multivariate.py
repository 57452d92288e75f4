#!/usr/bin/env python3
"""Generate golden fixtures for multivariate drift by running NannyML 0.13.1 itself.

Usage (from the repository root, with the pinned environment of requirements.txt):

    DO_NOT_TRACK=1 .venv/bin/python analyzer/golden/multivariate.py

Writes analyzer/golden/multivariate/<case>.parquet (the inputs) and <case>.json (NannyML's
results); analyzer/tests/reconstruction_golden.rs walks every JSON file. Adding a case means
adding a dataset (and its runs) below, never Rust code.

Every run is a `nml.DataReconstructionDriftCalculator(column_names=...)` fitted on the
reference rows and calculated on the analysis rows, with the run's chunking, threshold and
n_components (NannyML's defaults when absent), and no timestamp column (so the chunker takes
the rows in their stored order).

Inputs: NannyML's bundled datasets ship in its wheel, so the test cannot load them without
Python. Every 10th row of each dataset's reference and analysis sets (their order, and so
their drifting stretches, kept) is stored in a zstd Parquet file, float64 and strings, exact.
Boolean features are stored as the strings "True" / "False" (NannyML treats both as
categorical, counts them the same way, and "False" < "True" as False < True). NannyML runs on
the file as read back, with missing strings as NaN as pandas' read_csv gives them (scikit-learn's
SimpleImputer treats NaN as missing in object columns, not None).

Fixture format:
  name, description
  inputs                   the Parquet file: reference rows first, then analysis rows
  reference_rows, analysis_rows
  columns[]                {"name", "kind": "num" | "cat"}, in the order NannyML is given them
                           (kinds as NannyML's _split_features_by_type infers them)
  runs[]                   {"options": {"chunk_size" | "chunk_number" | "chunker", "threshold",
                                        "n_components"}  (absent = NannyML's default; "chunker"
                                        is {"chunk_size", "incomplete"}, a SizeBasedChunker),
                            "fitted": {"solver", "n_components", "explained_variance_ratio",
                                       "fill": {column: the imputed value},
                                       "scaler_mean", "scaler_scale"},
                            "thresholds": {"lower", "upper"} (null = none),
                            "reference", "analysis": [{"key", "start_index", "end_index",
                                       "value", "sampling_error", "upper_confidence_boundary",
                                       "lower_confidence_boundary", "alert"}]
                            or "error": NannyML's exception when it refuses the data}
  Floats are Python's repr; NaN is null.
"""

import json
import math
import os
import re
import sys
import warnings
from pathlib import Path

if os.environ.get("DO_NOT_TRACK") != "1" or os.environ.get("NML_DISABLE_USAGE_LOGGING") != "1":
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**os.environ, "DO_NOT_TRACK": "1", "NML_DISABLE_USAGE_LOGGING": "1",
               "PYTHONHASHSEED": "0"})
warnings.filterwarnings("ignore")

import logging  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import nannyml as nml  # noqa: E402
from nannyml.chunk import SizeBasedChunker  # noqa: E402
from nannyml.thresholds import ConstantThreshold, StandardDeviationThreshold  # noqa: E402

logging.disable(logging.WARNING)

OUT = Path(__file__).resolve().parent / "multivariate"
STEP = 10

CAR_LOAN = ["car_value", "salary_range", "debt_to_income_ratio", "loan_length",
            "repaid_loan_on_prev_car", "size_of_downpayment", "driver_tenure"]


def num(x):
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def bundled(loader, columns):
    """Every STEP-th row of a NannyML dataset's reference and analysis sets."""
    sets = loader()
    ref, ana = sets[0], sets[1]
    return (ref[columns].iloc[::STEP].reset_index(drop=True),
            ana[columns].iloc[::STEP].reset_index(drop=True))


def store(name, reference, analysis):
    """Writes the inputs and returns them as read back, as NannyML will see them."""
    frame = pd.concat([reference, analysis], ignore_index=True)
    for c in frame.columns:
        if frame[c].dtype == bool:
            frame[c] = frame[c].map({True: "True", False: "False"})
        elif frame[c].dtype.kind in "iuf":
            frame[c] = frame[c].astype("float64")
        else:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.parquet"
    frame.to_parquet(path, engine="pyarrow", compression="zstd", compression_level=19, index=False)
    back = pd.read_parquet(path, engine="pyarrow")
    for c in back.columns:
        if back[c].dtype == object:
            back[c] = back[c].where(back[c].notna(), np.nan)
    n = len(reference)
    return path.name, back.iloc[:n].reset_index(drop=True), back.iloc[n:].reset_index(drop=True)


def calculator(columns, options):
    kw = {}
    if "chunk_size" in options:
        kw["chunk_size"] = options["chunk_size"]
    if "chunk_number" in options:
        kw["chunk_number"] = options["chunk_number"]
    if "chunker" in options:
        c = options["chunker"]
        kw["chunker"] = SizeBasedChunker(chunk_size=c["chunk_size"], incomplete=c["incomplete"])
    if "threshold" in options:
        t = options["threshold"]
        if t["type"] == "constant":
            kw["threshold"] = ConstantThreshold(lower=t.get("lower"), upper=t.get("upper"))
        else:
            kw["threshold"] = StandardDeviationThreshold(
                std_lower_multiplier=t.get("std_lower_multiplier"),
                std_upper_multiplier=t.get("std_upper_multiplier"))
    if "n_components" in options:
        kw["n_components"] = options["n_components"]
    return nml.DataReconstructionDriftCalculator(column_names=columns, **kw)


def chunks(frame):
    out = []
    for _, row in frame.iterrows():
        r = row["reconstruction_error"]
        out.append({
            "key": row[("chunk", "key")],
            "start_index": int(row[("chunk", "start_index")]),
            "end_index": int(row[("chunk", "end_index")]),
            "value": num(r["value"]),
            "sampling_error": num(r["sampling_error"]),
            "upper_confidence_boundary": num(r["upper_confidence_boundary"]),
            "lower_confidence_boundary": num(r["lower_confidence_boundary"]),
            "alert": bool(r["alert"]),
        })
    return out


def run(columns, reference, analysis, options):
    entry = {"options": options}
    calc = calculator(columns, options)
    try:
        calc.fit(reference.copy())
        result = calc.calculate(analysis.copy())
    except Exception as exc:  # noqa: BLE001 - NannyML's refusal is the expected result
        # Without the object addresses NannyML's messages carry, so reruns write the same file.
        entry["error"] = re.sub(r" at 0x[0-9a-f]+", "", f"{type(exc).__name__}: {exc}")
        return entry
    pca, scaler = calc._pca, calc._scaler
    fill = {}
    if calc.continuous_column_names:
        for c, v in zip(calc.continuous_column_names, calc._imputer_continuous.statistics_):
            fill[c] = num(v)
    if calc.categorical_column_names:
        for c, v in zip(calc.categorical_column_names, calc._imputer_categorical.statistics_):
            fill[c] = v
    entry["fitted"] = {
        "solver": pca._fit_svd_solver,
        "n_components": int(pca.n_components_),
        "explained_variance_ratio": [num(v) for v in pca.explained_variance_ratio_],
        "fill": fill,
        "scaler_mean": [num(v) for v in scaler.mean_],
        "scaler_scale": [num(v) for v in scaler.scale_],
    }
    entry["thresholds"] = {"lower": num(calc.lower_threshold_value),
                           "upper": num(calc.upper_threshold_value)}
    frame = result.to_df()
    period = frame[("chunk", "period")]
    entry["reference"] = chunks(frame[period == "reference"])
    entry["analysis"] = chunks(frame[period == "analysis"])
    return entry


def case(name, description, reference, analysis, runs, columns=None):
    columns = list(reference.columns) if columns is None else columns
    inputs, reference, analysis = store(name, reference[columns], analysis[columns])
    kinds = []
    for c in columns:
        kind = "cat" if reference[c].dtype == object else "num"
        kinds.append({"name": c, "kind": kind})
    fixture = {
        "name": name,
        "description": description,
        "inputs": inputs,
        "reference_rows": len(reference),
        "analysis_rows": len(analysis),
        "columns": kinds,
        "runs": [run(columns, reference, analysis, o) for o in runs],
    }
    (OUT / f"{name}.json").write_text(json.dumps(fixture, indent=1, allow_nan=False) + "\n")
    print(f"{name}: {len(reference)} + {len(analysis)} rows, {len(columns)} columns, "
          f"{sum('error' in r for r in fixture['runs'])}/{len(runs)} runs refused")


BUNDLED_RUNS = [
    {},
    {"chunk_size": 1200},
    {"chunk_number": 7},
    {"chunker": {"chunk_size": 1200, "incomplete": "append"}},
    {"chunker": {"chunk_size": 1200, "incomplete": "drop"}},
    {"chunk_size": 700, "n_components": 0.9,
     "threshold": {"type": "standard_deviation", "std_lower_multiplier": 2,
                   "std_upper_multiplier": 1.5}},
]


def bundled_cases():
    case("car_loan", "load_synthetic_car_loan_dataset: 2 categorical, 1 boolean, 4 numerical "
         "features; drift in the second half of the analysis set",
         *bundled(nml.load_synthetic_car_loan_dataset, CAR_LOAN), BUNDLED_RUNS)
    case("car_loan_data_quality", "load_synthetic_car_loan_data_quality_dataset: the car loan "
         "features with missing salary_range and driver_tenure values on both sides",
         *bundled(nml.load_synthetic_car_loan_data_quality_dataset, CAR_LOAN), BUNDLED_RUNS[:3])
    case("binary_classification", "load_synthetic_binary_classification_dataset (work from "
         "home): 4 numerical, 2 categorical, 1 boolean feature",
         *bundled(nml.load_synthetic_binary_classification_dataset,
                  ["distance_from_office", "salary_range", "gas_price_per_litre",
                   "public_transportation_cost", "wfh_prev_workday", "workday", "tenure"]),
         BUNDLED_RUNS[:3])
    case("multiclass_classification", "load_synthetic_multiclass_classification_dataset: "
         "integer and float numerical features, 2 categorical, 1 boolean",
         *bundled(nml.load_synthetic_multiclass_classification_dataset,
                  ["acq_channel", "app_behavioral_score", "requested_credit_limit",
                   "app_channel", "credit_bureau_score", "stated_income", "is_customer"]),
         BUNDLED_RUNS[:3])
    case("car_price", "load_synthetic_car_price_dataset (regression): 5 numerical features with "
         "few distinct values, 2 categorical",
         *bundled(nml.load_synthetic_car_price_dataset,
                  ["car_age", "km_driven", "price_new", "accident_count", "door_count", "fuel",
                   "transmission"]),
         BUNDLED_RUNS[:3])


def edge_cases():
    rng = np.random.RandomState(7)

    def categories(n, values, p):
        return pd.Series(rng.choice(np.array(values, dtype=object), size=n, p=p), dtype=object)

    n = 600
    ref = pd.DataFrame({
        "colour": categories(n, ["red", "green", "blue"], [0.5, 0.3, 0.2]),
        "size": categories(n, ["S", "M", "L", "XL"], [0.25, 0.25, 0.25, 0.25]),
        "flag": categories(n, ["True", "False"], [0.7, 0.3]),
    })
    ana = pd.DataFrame({
        "colour": categories(n, ["red", "green", "blue"], [0.5, 0.3, 0.2]),
        "size": categories(n, ["S", "M", "L", "XL"], [0.1, 0.2, 0.3, 0.4]),
        "flag": categories(n, ["True", "False"], [0.7, 0.3]),
    })
    case("categorical_only", "three categorical features, no numerical one; the size "
         "distribution shifts in the analysis set", ref, ana,
         [{}, {"chunk_size": 45}])

    n = 500
    x = rng.normal(size=(n, 3))
    ref = pd.DataFrame({"a": x[:, 0], "b": x[:, 0] * 0.8 + x[:, 1] * 0.6, "c": x[:, 2],
                        "constant": np.full(n, 4.25),
                        "near_constant": 1e8 + rng.normal(size=n) * 1e-9,
                        "kind": categories(n, ["x", "y"], [0.6, 0.4])})
    y = rng.normal(size=(n, 3))
    ana = pd.DataFrame({"a": y[:, 0], "b": y[:, 0] * 0.2 + y[:, 1] * 0.98, "c": y[:, 2],
                        "constant": np.r_[np.full(n // 2, 4.25), np.full(n - n // 2, 5.0)],
                        "near_constant": 1e8 + rng.normal(size=n) * 1e-9,
                        "kind": categories(n, ["x", "y"], [0.6, 0.4])})
    case("constant_column", "a constant and a nearly constant (1e8 ± 1e-9) column, both scaled "
         "by 1 as scikit-learn's StandardScaler does; the constant moves in the analysis set",
         ref, ana, [{}, {"chunk_number": 4}])

    n = 400
    x = rng.normal(size=(n, 2))
    num_a = x[:, 0]
    num_b = np.where(rng.rand(n) < 0.2, np.nan, x[:, 1] * 3 + 1)
    num_a[rng.rand(n) < 0.1] = np.nan
    # "é" and "z" tie in the reference: the most frequent value is the smaller, "z" < "é".
    cat = np.array(["z"] * 150 + ["é"] * 150 + ["a"] * 40 + [np.nan] * 60, dtype=object)
    rng.shuffle(cat)
    cat2 = categories(n, ["p", "q"], [0.5, 0.5]).to_numpy()
    cat2[rng.rand(n) < 0.3] = np.nan
    ref = pd.DataFrame({"a": num_a, "b": num_b, "letter": cat, "pq": cat2})
    y = rng.normal(size=(n, 2))
    ana_a = y[:, 0]
    ana_a[rng.rand(n) < 0.4] = np.nan
    ana_b = y[:, 1] * 3 + 1
    ana_cat = np.array(["a"] * 200 + [np.nan] * 200, dtype=object)
    rng.shuffle(ana_cat)
    ana = pd.DataFrame({"a": ana_a, "b": ana_b, "letter": ana_cat,
                        "pq": np.full(n, np.nan, dtype=object)})
    case("missing_values", "NaN in numerical and categorical features on both sides (mean and "
         "most-frequent imputation, a tie between \"z\" and \"é\"); an all-missing analysis column",
         ref, ana, [{}, {"chunk_size": 37}])

    n = 300
    ref = pd.DataFrame({"v": rng.normal(size=n),
                        "city": categories(n, ["Paris", "Lyon", "Nice"], [0.5, 0.3, 0.2]),
                        "w": rng.normal(size=n)})
    ana = pd.DataFrame({"v": rng.normal(size=n),
                        "city": categories(n, ["Paris", "Lyon", "Nice", "Brest", "Lille"],
                                           [0.3, 0.2, 0.1, 0.2, 0.2]),
                        "w": rng.normal(size=n)})
    case("unseen_categories", "categories in the analysis set that the reference never saw "
         "(count encoding gives them 0)", ref, ana, [{}, {"chunk_size": 31}])

    n = 40
    x = rng.normal(size=(n, 6))
    ref = pd.DataFrame({f"f{i}": x[:, i] + (x[:, 0] if i else 0) for i in range(6)})
    y = rng.normal(size=(60, 6)) * 1.3
    ana = pd.DataFrame({f"f{i}": y[:, i] for i in range(6)})
    case("few_rows", "40 reference rows of 6 features: fewer than 10 per feature, so "
         "scikit-learn's PCA takes the full SVD; chunks of 4 and 3 rows, a last chunk of 1 row "
         "(NaN sampling error)",
         ref, ana, [{}, {"chunk_size": 3}, {"chunk_number": 13}])

    for n, name in [(300, "wide"), (90, "wide_few_rows")]:
        x = rng.normal(size=(n, 12)) @ rng.normal(size=(12, 12))
        ref = pd.DataFrame({f"w{i:02}": x[:, i] for i in range(12)})
        ref["group"] = categories(n, ["g1", "g2", "g3"], [0.2, 0.3, 0.5])
        y = rng.normal(size=(n, 12)) @ rng.normal(size=(12, 12))
        ana = pd.DataFrame({f"w{i:02}": y[:, i] for i in range(12)})
        ana["group"] = categories(n, ["g1", "g2", "g3"], [0.2, 0.3, 0.5])
        case(name, f"{n} rows of 13 features (12 correlated numerical): more than 8 terms in "
             "every row norm and variance sum" + (", full SVD solver" if n < 130 else ""),
             ref, ana, [{}, {"chunk_size": 25,
                             "threshold": {"type": "constant", "lower": 0.5, "upper": 3.0}}])

    n = 100
    ref = pd.DataFrame({"k": np.full(n, 2.0), "m": np.full(n, -1.5),
                        "tag": pd.Series(["only"] * n, dtype=object)})
    ana = pd.DataFrame({"k": np.r_[np.full(50, 2.0), np.full(50, 3.0)],
                        "m": np.full(n, -1.5),
                        "tag": pd.Series(["only"] * 70 + ["other"] * 30, dtype=object)})
    case("all_constant", "every reference feature constant: zero variance everywhere, one "
         "component of LAPACK's eigh order, errors of exactly 0 on the reference, a lower "
         "threshold of 0 dropped (None) and an upper threshold of 0 that equal values breach",
         ref, ana, [{}, {"chunk_size": 30}])

    n = 200
    x = rng.normal(size=(n, 3))
    ref = pd.DataFrame({"a": x[:, 0], "b": x[:, 0] + 0.3 * x[:, 1], "c": x[:, 2]})
    ref.loc[ref.index[:20], "b"] = -ref.loc[ref.index[:20], "a"] * 6
    y = rng.normal(size=(n, 3))
    ana = pd.DataFrame({"a": y[:, 0], "b": y[:, 0] + 0.3 * y[:, 1], "c": y[:, 2]})
    ana.loc[ana.index[100:], "b"] = -ana.loc[ana.index[100:], "a"]
    case("wide_threshold", "a first reference chunk that breaks the a ~ b correlation, so the "
         "chunks' values spread until mean − 3 std is below 0: NannyML drops the lower "
         "threshold", ref, ana, [{}, {"chunk_size": 50}])

    n = 30
    ref = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    ana = pd.DataFrame({"a": rng.normal(size=5), "b": rng.normal(size=5), "c": rng.normal(size=5)})
    ref_missing = ref.copy()
    ref_missing["b"] = np.nan
    case("refusals", "inputs NannyML refuses: more chunks than rows (chunk_number, and the "
         "default 10 chunks of a 5-row analysis set); a chunk_size above the row count is one "
         "incomplete chunk, whose thresholds collapse onto its value", ref, ana,
         [{"chunk_number": 40}, {"chunk_size": 31}, {}])
    case("refusals_all_missing", "a reference column with no value at all", ref_missing, ana, [{}])


def main():
    bundled_cases()
    edge_cases()
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{OUT}: {total} bytes")


if __name__ == "__main__":
    main()

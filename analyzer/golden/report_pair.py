#!/usr/bin/env python3
"""Generate Parquet pairs for `anchorwatch report` and Evidently's verdicts on the same files.

Usage (from the repository root, with the pinned environment of requirements.txt plus pyarrow,
as benches/report_vs_evidently.requirements.txt installs it):

    DO_NOT_TRACK=1 .venv/bin/python analyzer/golden/report_pair.py            # every case
    DO_NOT_TRACK=1 .venv/bin/python analyzer/golden/report_pair.py mmd ratio  # only these

Writes tests/fixtures/report_pair/<case>/ (all cases together stay under 2 MB):
  reference.parquet, current.parquet  columns `age` (float64), `city` (string), `review` (English
                                      sentences from Python's own pydoc_data.topics), `emb`
                                      (fixed-size list of 32 float32: a low-rank mixture with noise)
  report.toml                         the `anchorwatch report --config` for the case: the kinds
                                      Evidently's ColumnMapping declares, and the embedding method
  evidently.json                      what Evidently 0.7.23 says on those very files:
    name, description
    rows                              {"reference": n, "current": m}
    columns[]                         {"name", "kind": "num" | "cat" | "text" | "embedding",
                                       "stattest": the test's name ("ks", "perc_text_content_drift",
                                                   ...) or the embedding method ("model",
                                                   "distance", "ratio", "mmd"),
                                       "score", "threshold", "drifted",
                                       "options": (embedding) the method's keyword arguments,
                                       "evidently_spread": (embedding) [min, max] of Evidently's
                                                   score when every input value is moved by about
                                                   1e-15 relative, 8 times: how well-conditioned
                                                   the case is}
    dataset_drift                     {"drifted", "share", "threshold", "drifted_columns", "columns"}

tests/report_pair.rs runs the binary on every case directory and compares. Adding a case means
adding an entry to CASES below, never Rust code.

Evidently reads the Parquet files back through pandas, so both tools see identical values: the
float32 vectors become float64 columns emb_0..emb_31 declared as ColumnMapping embeddings, and one
legacy Report runs DataDriftTable, DatasetDriftMetric and EmbeddingsDriftMetric with the method
report.toml names. An embedding's "threshold" is the method's threshold, or with bootstrap the
quantile Evidently compared the score with (replayed by embeddings.py's copy of its loop, which
checks it reproduces Evidently's verdict). The texts depend on the Python version's pydoc topics
(3.11.7 made these), so another Python gives other, equally valid, fixtures.
"""

import json
import os
import re
import shutil
import sys
import warnings
from pathlib import Path

if os.environ.get("PYTHONHASHSEED") != "0" or os.environ.get("DO_NOT_TRACK") != "1":
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**os.environ, "PYTHONHASHSEED": "0", "DO_NOT_TRACK": "1"})
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from pydoc_data.topics import topics  # noqa: E402

from evidently.legacy.calculations.stattests import registry  # noqa: E402
import evidently.legacy.calculations.stattests as st_module  # noqa: E402
from evidently.legacy.metrics import DataDriftTable, DatasetDriftMetric, EmbeddingsDriftMetric  # noqa: E402
from evidently.legacy.metrics.data_drift import embedding_drift_methods as edm  # noqa: E402
from evidently.legacy.pipeline.column_mapping import ColumnMapping  # noqa: E402
from evidently.legacy.report import Report  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embeddings import bootstrap_threshold  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "report_pair"
DIMS = 32
EMB = [f"emb_{i}" for i in range(DIMS)]
CITIES = ["Paris", "Lyon", "Berlin", "Madrid", "Rome", "Oslo"]
CITY_WEIGHTS = [0.3, 0.2, 0.15, 0.15, 0.1, 0.1]
# Topics about strings and sequences: their sentences share a vocabulary the rest rarely uses.
STRING_TOPICS = {"formatstrings", "string-methods", "strings", "typesseq", "typesseq-mutable", "sequence-types"}

DISPLAY_TO_NAME = {obj.display_name: obj.name for obj in vars(st_module).values()
                   if isinstance(obj, registry.StatTest)}
METHODS = {"distance": edm.distance, "ratio": edm.ratio, "mmd": edm.mmd, "model": edm.model}

# One case per entry. Each side draws its rows from its own description:
#   age        (mean, std) of a normal
#   city       weights over CITIES
#   strings    share of reviews taken from STRING_TOPICS (the others from every topic)
#   emb        mixture weights over the four latent components, plus optional "shift" (added
#              to the latent vector: moves the whole cloud along a direction of the subspace)
#              and "dims" ({"from", "to", "by"}: raw dimensions shifted, outside the subspace)
# `embedding` is report.toml's `embedding` table and Evidently's method keyword arguments; None
# is EmbeddingsDriftMetric without a method (model, bootstrapped below 1000 reference rows).
SAME = {"age": (40.0, 10.0), "city": CITY_WEIGHTS, "strings": 0.0, "emb": {"weights": [0.4, 0.3, 0.2, 0.1]}}
CASES = [
    {
        "name": "no_drift",
        "description": "400 vs 300 rows, every column from one distribution; the metric's default "
                       "embedding method (model, bootstrapped)",
        "seed": 1, "rows": (400, 300), "reference": SAME, "current": SAME, "embedding": None,
    },
    {
        "name": "embedding_only",
        "description": "400 vs 300 rows, only the embedding's mixture weights change; default method",
        "seed": 2, "rows": (400, 300), "reference": SAME,
        "current": {**SAME, "emb": {"weights": [0.1, 0.2, 0.3, 0.4]}}, "embedding": None,
    },
    {
        "name": "text_and_numbers",
        "description": "500 vs 400 rows, age shifted by 4 and half the reviews about strings; the "
                       "embedding and the cities unchanged (Euclidean distance between the means, "
                       "against its bootstrapped 95% quantile)",
        "seed": 3, "rows": (500, 400), "reference": SAME,
        "current": {**SAME, "age": (44.0, 10.0), "strings": 0.5},
        "embedding": {"method": "distance", "bootstrap": True},
    },
    {
        "name": "large_reference",
        "description": "1200 vs 700 rows: Evidently's defaults above 1000 (wasserstein, "
                       "jensenshannon, abs_text_content_drift, model without bootstrap); cities "
                       "drift, the embedding barely (AUC just above 0.55), age and reviews do not",
        "seed": 4, "rows": (1200, 700), "reference": SAME,
        "current": {**SAME, "city": [0.15, 0.2, 0.2, 0.15, 0.1, 0.2],
                    "emb": {"weights": [0.4, 0.3, 0.2, 0.1], "shift": 0.2}},
        "embedding": None,
    },
    {
        "name": "distance_cosine",
        "description": "400 vs 300 rows, the embedding cloud moved along its subspace; cosine "
                       "distance between the means with threshold 0.05",
        "seed": 5, "rows": (400, 300), "reference": SAME,
        "current": {**SAME, "emb": {"weights": [0.4, 0.3, 0.2, 0.1], "shift": 1.0}},
        "embedding": {"method": "distance", "dist": "cosine", "threshold": 0.05},
    },
    {
        "name": "ratio",
        "description": "400 vs 300 rows, four raw dimensions shifted by 0.3: the share of drifted "
                       "components lands just above the 0.2 threshold",
        "seed": 6, "rows": (400, 300), "reference": SAME,
        "current": {**SAME, "emb": {"weights": [0.4, 0.3, 0.2, 0.1], "dims": {"from": 0, "to": 4, "by": 0.3}}},
        "embedding": {"method": "ratio"},
    },
    {
        "name": "mmd",
        "description": "400 vs 300 rows, a mild change of mixture weights: MMD a little under its "
                       "0.015 threshold. The cities, from one distribution, drift by chance "
                       "(Evidently's chi-square takes the reference's shares as exact)",
        "seed": 7, "rows": (400, 300), "reference": SAME,
        "current": {**SAME, "emb": {"weights": [0.28, 0.3, 0.2, 0.22]}},
        "embedding": {"method": "mmd"},
    },
    {
        "name": "mmd_bootstrap",
        "description": "300 vs 250 rows, the mixture weights change; MMD against its bootstrapped "
                       "5% quantile",
        "seed": 8, "rows": (300, 250), "reference": SAME,
        "current": {**SAME, "emb": {"weights": [0.25, 0.25, 0.25, 0.25]}},
        "embedding": {"method": "mmd", "bootstrap": True},
    },
    {
        "name": "model_pca",
        "description": "400 vs 300 rows, the cloud moved by 0.6 along its subspace; domain classifier on the "
                       "first 5 principal components of the reference",
        "seed": 9, "rows": (400, 300), "reference": SAME,
        "current": {**SAME, "emb": {"weights": [0.4, 0.3, 0.2, 0.1], "shift": 0.6}},
        "embedding": {"method": "model", "pca_components": 5},
    },
]


def sentence_pools():
    """English sentences of the pydoc topics: every sentence, and those of STRING_TOPICS. Code
    samples, grammar rules and tables are left out."""
    every, strings = [], []
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key]):
            p = " ".join(para.split())
            if not p or any(t in p for t in (">>>", "::=", "...", "def ", "{", "}")):
                continue
            for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"])", p):
                prose = sum(ch.isalpha() or ch == " " for ch in s) / len(s)
                if 5 <= len(s.split()) <= 40 and s.isascii() and s[0].isupper() and s[-1] in ".!?" and prose > 0.9:
                    every.append(s)
                    if key in STRING_TOPICS:
                        strings.append(s)
    return every, strings


def latent_model(rng):
    """Four components in a 6-dim latent space, mapped into 32 dims with an offset."""
    centers = rng.normal(0.0, 1.5, size=(4, 6))
    loading = rng.normal(0.0, 1.0 / np.sqrt(6), size=(6, DIMS))
    offset = rng.normal(0.0, 0.5, size=DIMS)
    direction = rng.normal(size=6)
    return centers, loading, offset, direction / np.linalg.norm(direction)


def embeddings(rng, model, n, spec):
    centers, loading, offset, direction = model
    component = rng.choice(4, size=n, p=spec["weights"])
    z = centers[component] + rng.normal(0.0, 0.7, size=(n, 6)) + spec.get("shift", 0.0) * direction
    x = z @ loading + offset + rng.normal(0.0, 0.3, size=(n, DIMS))
    if "dims" in spec:
        x[:, spec["dims"]["from"]:spec["dims"]["to"]] += spec["dims"]["by"]
    # Unit length, as sentence-transformer embeddings are; then on a 2^-12 grid (exact in
    # float32, well below the noise), so the files compress to about half.
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return (np.round(x * 4096) / 4096).astype(np.float32)


def side(rng, model, pools, n, spec):
    every, strings = pools
    reviews = []
    for _ in range(n):
        pool = strings if rng.rand() < spec["strings"] else every
        k = 1 + (rng.rand() < 0.3)
        reviews.append(" ".join(pool[i] for i in rng.randint(len(pool), size=k)))
    emb = embeddings(rng, model, n, spec["emb"])
    return pa.table({
        "age": pa.array(np.round(rng.normal(*spec["age"], size=n), 2), pa.float64()),
        "city": pa.array(rng.choice(CITIES, size=n, p=spec["city"]).tolist(), pa.string()),
        "review": pa.array(reviews, pa.string()),
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), DIMS),
    })


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def report_toml(case):
    lines = ["# Evidently's ColumnMapping for this case (see analyzer/golden/report_pair.py).",
             "[columns.age]", 'kind = "num"', "", "[columns.city]", 'kind = "cat"', "",
             "[columns.review]", 'kind = "text"']
    if case["embedding"] is None:
        lines += ["", "# emb: no embedding table, so EmbeddingsDriftMetric's default method."]
    else:
        table = ", ".join(f"{k} = {toml_value(v)}" for k, v in case["embedding"].items())
        lines += ["", "[columns.emb]", f"embedding = {{ {table} }}"]
    return "\n".join(lines) + "\n"


def frame(path):
    """A Parquet file as Evidently gets it: pandas, the vectors spread over float64 columns."""
    df = pd.read_parquet(path)
    vectors = np.stack(df.pop("emb").to_numpy()).astype(np.float64)
    return pd.concat([df, pd.DataFrame(vectors, columns=EMB, index=df.index)], axis=1)


def spread(method, ref, cur, runs=8, noise=1e-15):
    """Evidently's own precision on this input: its scores with every value moved by a few ulps.
    Each case must be well-conditioned (a spread far below the Rust test's tolerance): the
    domain classifier's SGD on vectors that are not unit length, for one, turned 1e-15 of input
    noise into AUCs from 0.45 to 0.68 while this generator was written."""
    rng = np.random.RandomState(0)
    scores = []
    for _ in range(runs):
        r = ref * (1 + noise * rng.normal(size=ref.shape))
        c = cur * (1 + noise * rng.normal(size=cur.shape))
        scores.append(float(method(c, r)[0]))
    return [min(scores), max(scores)]


def evidently(case, ref, cur):
    options = case["embedding"] or {}
    method = None
    if case["embedding"] is not None:
        method = METHODS[options["method"]](**{k: v for k, v in options.items() if k != "method"})
    mapping = ColumnMapping(numerical_features=["age"], categorical_features=["city"],
                            text_features=["review"], embeddings={"emb": EMB})
    table, dataset, emb = DataDriftTable(), DatasetDriftMetric(), EmbeddingsDriftMetric("emb", drift_method=method)
    Report(metrics=[table, dataset, emb]).run(reference_data=ref, current_data=cur, column_mapping=mapping)
    table, dataset, emb = table.get_result(), dataset.get_result(), emb.get_result()

    columns = []
    for name in ("age", "city", "review"):
        c = table.drift_by_columns[name]
        columns.append({"name": name, "kind": c.column_type, "stattest": DISPLAY_TO_NAME[c.stattest_name],
                        "score": float(c.drift_score), "threshold": float(c.stattest_threshold),
                        "drifted": bool(c.drift_detected)})

    # The method EmbeddingsDriftMetric ran, its options spelled out as the Rust side names them.
    if method is None:
        method = edm.model(bootstrap=len(ref) < 1000)
    name = emb.method_name
    kwargs = {k: v for k, v in method.dict().items() if v is not None and k != "type"}
    if kwargs.get("bootstrap"):
        threshold = bootstrap_threshold(name, kwargs, ref[EMB].copy(), cur[EMB].copy())
        # Evidently's MMD compares the unclipped statistic and returns it clipped at 0.
        assert (emb.drift_score > threshold) == bool(emb.drift_detected) or name == "mmd", \
            (emb.drift_score, threshold)
    else:
        threshold = kwargs["threshold"]
    columns.append({"name": "emb", "kind": "embedding", "stattest": name, "score": float(emb.drift_score),
                    "threshold": float(threshold), "drifted": bool(emb.drift_detected), "options": kwargs,
                    "evidently_spread": spread(method, ref[EMB], cur[EMB])})

    assert (dataset.number_of_columns, dataset.number_of_drifted_columns) == \
        (table.number_of_columns, table.number_of_drifted_columns)
    drift = {"drifted": bool(dataset.dataset_drift), "share": float(dataset.share_of_drifted_columns),
             "threshold": float(dataset.drift_share), "drifted_columns": int(dataset.number_of_drifted_columns),
             "columns": int(dataset.number_of_columns)}
    return columns, drift


def build(case, pools):
    rng = np.random.RandomState(case["seed"])
    model = latent_model(rng)
    n_ref, n_cur = case["rows"]
    reference = side(rng, model, pools, n_ref, case["reference"])
    current = side(rng, model, pools, n_cur, case["current"])

    out = OUT / case["name"]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pq.write_table(reference, out / "reference.parquet", compression="zstd")
    pq.write_table(current, out / "current.parquet", compression="zstd")
    (out / "report.toml").write_text(report_toml(case))

    columns, drift = evidently(case, frame(out / "reference.parquet"), frame(out / "current.parquet"))
    fixture = {"name": case["name"], "description": case["description"],
               "rows": {"reference": n_ref, "current": n_cur}, "columns": columns, "dataset_drift": drift}
    (out / "evidently.json").write_text(json.dumps(fixture, indent=1, allow_nan=False) + "\n")

    size = sum(f.stat().st_size for f in out.iterdir())
    verdicts = ", ".join(f"{c['name']} {c['stattest']} {c['score']:.4g}/{c['threshold']:.4g}"
                         f"{' DRIFT' if c['drifted'] else ''}" for c in columns)
    print(f"{case['name']}: {verdicts}; dataset {drift['share']:.3g}{' DRIFT' if drift['drifted'] else ''}; "
          f"{size // 1024} KiB", file=sys.stderr)


def main():
    only = set(sys.argv[1:])
    unknown = only - {c["name"] for c in CASES}
    if unknown:
        sys.exit(f"no such case: {', '.join(sorted(unknown))}")
    pools = sentence_pools()
    for case in CASES:
        if not only or case["name"] in only:
            build(case, pools)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"{OUT}: {total // 1024} KiB in all", file=sys.stderr)
    assert total < 2 * 1024 * 1024, "the fixtures must stay under 2 MB"


if __name__ == "__main__":
    main()

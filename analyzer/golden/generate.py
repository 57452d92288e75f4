#!/usr/bin/env python3
"""Generate golden drift fixtures by running scipy and Evidently themselves.

Usage (from the repository root):

    python3 -m venv .venv && .venv/bin/pip install -r analyzer/golden/requirements.txt
    DO_NOT_TRACK=1 .venv/bin/python analyzer/golden/generate.py

Writes one JSON file per dataset into analyzer/golden/fixtures/. Each column carries its input
data (exact floats via repr; null = NaN, "inf"/"-inf" strings), the kind Evidently inferred,
Evidently's default test choice and verdict (ColumnDriftMetric), and the score and verdict of
every test Evidently allows for that kind, called by name. The Rust test
analyzer/tests/golden.rs walks these files; adding a case means adding a dataset below.
"""

import json
import math
import os
import sys
import warnings
from pathlib import Path

# Evidently orders categories by iterating Python sets; a fixed hash seed makes the fixtures
# byte-for-byte reproducible (otherwise sums differ in the last bit between runs).
if os.environ.get("PYTHONHASHSEED") != "0" or os.environ.get("DO_NOT_TRACK") != "1":
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**os.environ, "PYTHONHASHSEED": "0", "DO_NOT_TRACK": "1"})
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import datasets  # noqa: E402

from evidently.legacy.calculations.stattests import registry  # noqa: E402
from evidently.legacy.core import ColumnType  # noqa: E402
from evidently.legacy.pipeline.column_mapping import ColumnMapping  # noqa: E402
from evidently.legacy.utils import data_drift_utils  # noqa: E402
from evidently.legacy.metrics import ColumnDriftMetric  # noqa: E402
from evidently.legacy.report import Report  # noqa: E402
import evidently.legacy.calculations.stattests as st_module  # noqa: E402

OUT = Path(__file__).resolve().parent / "fixtures"

NUM_TESTS = ["ks", "psi", "jensenshannon", "wasserstein", "kl_div", "hellinger", "t_test",
             "mannw", "anderson", "cramer_von_mises", "ed", "empirical_mmd"]
CAT_TESTS = ["chisquare", "z", "psi", "jensenshannon", "kl_div", "hellinger", "g_test",
             "fisher_exact", "TVD"]
TEXT_TESTS = ["abs_text_content_drift", "perc_text_content_drift"]
# O((n+m)^2) memory and 100 permutations: only on small columns.
MMD_MAX_ROWS = 700

DISPLAY_TO_NAME = {}
for obj in vars(st_module).values():
    if isinstance(obj, registry.StatTest):
        DISPLAY_TO_NAME[obj.display_name] = obj.name


def enc_value(v):
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, str):
        return v
    f = float(v)
    if math.isnan(f):
        return None
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return int(v) if isinstance(v, (int, np.integer)) else f


def enc_score(v):
    if v is None:
        return None
    f = float(v)
    if math.isnan(f):
        return None
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def dtype_name(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "str"
    if pd.api.types.is_integer_dtype(s):
        return "int"
    if pd.api.types.is_float_dtype(s):
        return "float"
    return "str"


def clean(s: pd.Series) -> pd.Series:
    return s.replace([-np.inf, np.inf], np.nan).dropna()


def run_default(ref: pd.DataFrame, cur: pd.DataFrame, col: str, text: bool = False):
    metric = ColumnDriftMetric(column_name=col)
    report = Report(metrics=[metric])
    # Evidently infers no text column: text is declared in the column mapping.
    mapping = ColumnMapping(text_features=[col]) if text else None
    try:
        report.run(reference_data=ref[[col]], current_data=cur[[col]], column_mapping=mapping)
        res = metric.get_result()
    except Exception as e:  # Evidently refuses the column: record that it did
        return {"error": f"{type(e).__name__}: {e}"}, None
    return {
        "stattest": DISPLAY_TO_NAME[res.stattest_name],
        "score": enc_score(res.drift_score),
        "threshold": float(res.stattest_threshold),
        "drifted": bool(res.drift_detected),
    }, res.column_type


def random_percentile(ref: pd.Series, cur: pd.Series) -> float:
    """The bootstrapped random-classifier ROC AUC percentile perc_text_content_drift compares
    against, replayed with Evidently's own split and helper (it is not part of its result)."""
    domain = pd.concat([pd.DataFrame({"text": ref, "target": 0}), pd.DataFrame({"text": cur, "target": 1})])
    from sklearn.model_selection import train_test_split
    _, _, _, y_test = train_test_split(domain["text"], domain["target"], test_size=0.5, random_state=42,
                                       shuffle=True)
    return float(data_drift_utils.roc_auc_random_classifier_percentile(y_test, p_value=1 - 0.95))


def run_test(name, ref: pd.Series, cur: pd.Series, kind: str):
    ctype = {"num": ColumnType.Numerical, "cat": ColumnType.Categorical, "text": ColumnType.Text}[kind]
    r, c = clean(ref.copy()), clean(cur.copy())
    if name == "empirical_mmd":
        if len(r) + len(c) > MMD_MAX_ROWS:
            return None
        # Evidently does not seed this test; seed it as anchorwatch documents.
        np.random.seed(0)
    if name == "fisher_exact" and len(set(r.unique()) | set(c.unique())) > 2:
        # Evidently maps categories beyond the first two of an unordered set to NaN, so its
        # result depends on set iteration order; anchorwatch refuses such columns instead.
        return {"deviation": "fisher_exact on more than two categories in the union"}
    try:
        test = registry.get_stattest(r, c, ctype, name)
        res = test(r.copy(), c.copy(), ctype, None)
    except Exception as e:
        if name == "cramer_von_mises" and type(e).__name__ == "UFuncTypeError":
            # Evidently's copy of the exact method breaks under numpy 2 (uint16 casting);
            # scipy's own cramervonmises_2samp is the reference it copied.
            from scipy.stats import cramervonmises_2samp
            p = cramervonmises_2samp(r.to_numpy(), c.to_numpy(), method="auto").pvalue
            return {"score": enc_score(p), "drifted": bool(p <= 0.1), "threshold": 0.1,
                    "reference": "scipy", "evidently_error": f"{type(e).__name__}: {e}"}
        return {"error": f"{type(e).__name__}: {e}"}
    out = {"score": enc_score(res.drift_score), "drifted": bool(res.drifted),
           "threshold": float(res.actual_threshold)}
    if name == "perc_text_content_drift":
        out["random_percentile"] = random_percentile(r, c)
    return out


def build(name: str, description: str, ref: pd.DataFrame, cur: pd.DataFrame, text_columns=()):
    columns = []
    for col in ref.columns:
        default, ctype = run_default(ref, cur, col, text=col in text_columns)
        kind = {"num": "num", "cat": "cat", "text": "text"}.get(getattr(ctype, "value", ctype))
        entry = {
            "name": col,
            "dtype": dtype_name(ref[col]),
            "reference": [enc_value(v) for v in ref[col].tolist()],
            "current": [enc_value(v) for v in cur[col].tolist()],
            "kind": kind,
            "default": default,
            "tests": {},
        }
        if kind is not None:
            for t in {"num": NUM_TESTS, "cat": CAT_TESTS, "text": TEXT_TESTS}[kind]:
                out = run_test(t, ref[col], cur[col], kind)
                if out is not None:
                    entry["tests"][t] = out
        columns.append(entry)
    fixture = {"name": name, "description": description, "columns": columns}
    path = OUT / f"{name}.json"
    text = json.dumps(fixture, indent=1, allow_nan=False)
    path.write_text(text + "\n")
    print(f"{path.name}: {len(columns)} columns, {len(text) // 1024} KiB", file=sys.stderr)


def shifted_split(df: pd.DataFrame, seed: int, shift_cols, scale: float):
    """Half of the rows as reference; the other half resampled with replacement and some
    columns shifted by `scale` standard deviations, as drift."""
    rng = np.random.RandomState(seed)
    idx = rng.permutation(len(df))
    half = len(df) // 2
    ref = df.iloc[idx[:half]].reset_index(drop=True)
    cur = df.iloc[idx[half:]].sample(frac=1.0, replace=True, random_state=seed).reset_index(drop=True)
    for c in shift_cols:
        cur[c] = cur[c] + scale * df[c].std()
    return ref, cur


def sklearn_sets():
    iris = datasets.load_iris(as_frame=True).frame
    ref, cur = shifted_split(iris, 1, ["petal length (cm)", "sepal width (cm)"], 0.5)
    build("iris", "iris, half vs resampled half with two columns shifted by 0.5 sd", ref, cur)

    wine = datasets.load_wine(as_frame=True).frame
    ref, cur = shifted_split(wine, 2, list(wine.columns[:4]), 0.3)
    build("wine", "wine, four columns shifted by 0.3 sd", ref, cur)

    bc = datasets.load_breast_cancer(as_frame=True).frame
    bc = bc[list(bc.columns[:8]) + ["target"]]
    ref, cur = shifted_split(bc, 3, list(bc.columns[:3]), 0.2)
    build("breast_cancer", "breast_cancer (8 features + target), three columns shifted by 0.2 sd", ref, cur)

    diab = datasets.load_diabetes(as_frame=True, scaled=False).frame
    ref, cur = shifted_split(diab, 4, ["bmi", "bp"], 0.4)
    build("diabetes", "diabetes (unscaled), bmi and bp shifted by 0.4 sd", ref, cur)


def synthetic_large():
    rng = np.random.RandomState(10)
    n_ref, n_cur = 1500, 1200
    cats = np.array(["alpha", "beta", "gamma", "delta"])

    def frame(n, shift):
        return pd.DataFrame({
            "normal": rng.normal(shift, 1.0, n),
            "lognormal": rng.lognormal(0.0 + shift, 1.0, n),
            "int_small": rng.randint(0, 4, n),
            "int_wide": rng.randint(0, 100 + int(shift * 20), n),
            "float_three": rng.choice([0.5, 1.5, 2.5], n, p=[0.2, 0.3 + shift / 10, 0.5 - shift / 10]),
            "float_six": rng.choice([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], n),
            "category": rng.choice(cats, n, p=[0.4, 0.3, 0.2 + shift / 10, 0.1 - shift / 10]),
            "flag": rng.choice([True, False], n),
        })

    build("synthetic_large", "n_ref > 1000: wasserstein / jensenshannon regime", frame(n_ref, 0.0),
          frame(n_cur, 0.5))
    build("synthetic_small", "n_ref <= 1000: ks / chisquare / z regime",
          frame(400, 0.0), frame(350, 0.3))


def ks_asymptotic():
    rng = np.random.RandomState(20)
    ref = pd.DataFrame({"same": rng.normal(0, 1, 150), "shifted": rng.normal(0, 1, 150),
                        "tiny_shift": rng.normal(0, 1, 150)})
    cur = pd.DataFrame({"same": rng.normal(0, 1, 10050), "shifted": rng.normal(0.6, 1, 10050),
                        "tiny_shift": rng.normal(0.05, 1, 10050)})
    cur = cur.round(3)
    build("ks_asymptotic", "current above 10000 rows: ks_2samp's asymptotic path", ref, cur)


def edge_cases():
    rng = np.random.RandomState(30)
    n = 60
    ref = pd.DataFrame({
        "constant": np.full(n, 3.0),
        "constant_vs_other": np.full(n, 1.0),
        "heavy_ties": rng.choice([0.0, 1.0, 2.0, 2.5, 7.0, 9.0, 11.0], n),
        "two_values": rng.choice([0.0, 1.0], n),
        "three_values": rng.choice([1.0, 2.0, 3.0], n),
        "six_values": rng.choice([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], n),
        "int_small_range": rng.randint(0, 3, n),
        "int_six": rng.randint(0, 6, n),
        "huge": rng.normal(1e15, 1e13, n),
        "with_nan_inf": np.where(rng.rand(n) < 0.2, np.nan, rng.normal(0, 1, n)),
        "only_new_categories": rng.choice(["a", "b"], n),
        "string_three": rng.choice(["x", "y", "z"], n),
        "all_missing_current": rng.normal(0, 1, n),
    })
    ref.loc[3, "with_nan_inf"] = np.inf
    cur = pd.DataFrame({
        "constant": np.full(n, 3.0),
        "constant_vs_other": np.full(n, 2.0),
        "heavy_ties": rng.choice([0.0, 1.0, 2.0, 2.5, 7.0, 9.0, 11.0], n, p=[0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
        "two_values": rng.choice([0.0, 1.0], n, p=[0.8, 0.2]),
        "three_values": rng.choice([1.0, 2.0, 3.0], n),
        "six_values": rng.choice([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], n),
        "int_small_range": rng.randint(0, 3, n),
        "int_six": rng.randint(1, 7, n),
        "huge": rng.normal(1.001e15, 1e13, n),
        "with_nan_inf": np.where(rng.rand(n) < 0.2, -np.inf, rng.normal(0.5, 1, n)),
        "only_new_categories": rng.choice(["c", "d"], n),
        "string_three": rng.choice(["x", "y", "z"], n, p=[0.6, 0.2, 0.2]),
        "all_missing_current": np.full(n, np.nan),
    })
    build("edge_cases", "constant, ties, 2/3/6 values, small ints, 1e15, NaN/inf, new categories, all missing",
          ref, cur)

    one_ref = pd.DataFrame({"x": [1.5], "c": ["a"]})
    one_cur = pd.DataFrame({"x": rng.normal(1.5, 1, 30), "c": rng.choice(["a", "b"], 30)})
    build("one_row", "a single reference row", one_ref, one_cur)

    tiny_ref = pd.DataFrame({"x": [0.1, 0.4, 0.35, 0.8, 1.2], "y": [5.0, 6.0, 7.0, 8.0, 9.0]})
    tiny_cur = pd.DataFrame({"x": [0.9, 1.4, 1.1, 2.0, 0.7, 1.9], "y": [5.5, 6.5, 7.5, 8.5, 9.5, 10.5]})
    build("tiny_exact", "tiny untied samples: exact mannw and cramer_von_mises", tiny_ref, tiny_cur)


def sentences(rng, n, vocabularies, weights, length=(4, 12)):
    """n sentences; each word is drawn from one of `vocabularies` with the given weights, glued
    with stop words and punctuation so the tokenizer and the stop list have work to do."""
    glue = ["the", "a", "and", "of", "is", "was", "with", "for", "it", "this"]
    out = []
    for _ in range(n):
        words = []
        for _ in range(rng.randint(length[0], length[1] + 1)):
            vocab = vocabularies[rng.choice(len(vocabularies), p=weights)]
            words.append(vocab[rng.randint(len(vocab))])
            if rng.rand() < 0.3:
                words.append(glue[rng.randint(len(glue))])
        text = " ".join(words)
        if rng.rand() < 0.2:
            text = text.capitalize() + rng.choice([".", "!", "?", "..."])
        out.append(text)
    return out


def text_sets():
    """Text-content drift (Evidently's domain classifier): two vocabularies, a no-drift case,
    both sides of the 1000-row default-choice boundary, missing values and empty texts."""
    rng = np.random.RandomState(40)
    shop = ["battery", "screen", "charger", "delivery", "price", "refund", "cable", "warranty", "box",
            "seller", "quality", "keyboard", "speaker", "camera", "order", "size", "colour", "fit"]
    travel = ["flight", "hotel", "luggage", "beach", "museum", "train", "ticket", "passport", "tour",
              "breakfast", "airport", "guide", "view", "room", "pool", "taxi", "visa", "island"]
    common = ["good", "bad", "great", "slow", "fast", "cheap", "broken", "nice", "late", "early",
              "friendly", "awful", "excellent", "ok", "terrible", "perfect", "café", "naïve", "x2", "e-mail"]

    ref = pd.DataFrame({
        "review": sentences(rng, 600, [shop, common], [0.6, 0.4]),
        "same_source": sentences(rng, 600, [shop, common], [0.6, 0.4]),
    })
    cur = pd.DataFrame({
        "review": sentences(rng, 500, [shop, travel, common], [0.3, 0.3, 0.4]),
        "same_source": sentences(rng, 500, [shop, common], [0.6, 0.4]),
    })
    ref.loc[[5, 70], "review"] = None
    cur.loc[[3], "review"] = ""
    build("text_small", "text columns, 600 vs 500 rows: perc_text_content_drift regime; drift and no drift",
          ref, cur, text_columns=("review", "same_source"))

    ref = pd.DataFrame({
        "comment": sentences(rng, 1500, [shop, common], [0.6, 0.4]),
        "subtle": sentences(rng, 1500, [shop, common], [0.6, 0.4]),
        "same_source": sentences(rng, 1500, [travel, common], [0.5, 0.5]),
    })
    cur = pd.DataFrame({
        "comment": sentences(rng, 1200, [shop, travel, common], [0.4, 0.2, 0.4]),
        "subtle": sentences(rng, 1200, [shop, travel, common], [0.58, 0.02, 0.4]),
        "same_source": sentences(rng, 1200, [travel, common], [0.5, 0.5]),
    })
    build("text_large", "text columns, 1500 vs 1200 rows: abs_text_content_drift regime; strong, subtle "
          "and no drift", ref, cur, text_columns=("comment", "subtle", "same_source"))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    only = set(sys.argv[1:])
    # `generate.py text_sets` regenerates only the named groups; no argument regenerates all.
    for group in (sklearn_sets, synthetic_large, ks_asymptotic, edge_cases, text_sets):
        if not only or group.__name__ in only:
            group()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generate golden performance-metric fixtures by running scikit-learn and NannyML themselves.

Usage (from the repository root, with the pinned environment of requirements.txt):

    .venv/bin/python analyzer/golden/performance.py

Writes analyzer/golden/fixtures/performance_<dataset>.json. Each file is a list of cases; a
case names its kind, carries its inputs (exact floats via repr) and the reference's outputs
(null where scikit-learn returns NaN, i.e. the metric is undefined). analyzer/tests/
performance_golden.rs walks every file; adding a case means adding a dataset below.

Kinds:
  classification  labels, predictions, scores -> sklearn accuracy / precision / recall / f1
                  (binary and macro, zero_division=0), roc_auc_score (binary, ovr macro),
                  log_loss
  regression      sklearn mean_absolute_error, root_mean_squared_error,
                  mean_absolute_percentage_error, r2_score
  isotonic        sklearn IsotonicRegression(out_of_bounds="clip").fit(x, y).predict(t)
  threshold       NannyML StandardDeviationThreshold + calculate_threshold_values
                  (numpy nanmean / nanstd when NannyML is not installed)
  cbpe_binary / cbpe_multiclass
                  a full NannyML CBPE run (fit on reference, estimate per analysis chunk),
                  with NannyML's calibration decision, estimates and thresholds
The CBPE fixtures need nannyml (pinned in requirements.txt); without it they are left as they
are and the script says so.
"""

import json
import math
import os
import sys
import warnings
from pathlib import Path

if os.environ.get("DO_NOT_TRACK") != "1" or os.environ.get("NML_DISABLE_USAGE_LOGGING") != "1":
    os.execve(sys.executable, [sys.executable, *sys.argv],
              {**os.environ, "DO_NOT_TRACK": "1", "NML_DISABLE_USAGE_LOGGING": "1",
               "PYTHONHASHSEED": "0"})
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import datasets, metrics  # noqa: E402
from sklearn.isotonic import IsotonicRegression  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402

try:
    import nannyml as nml  # noqa: E402
    from nannyml.thresholds import StandardDeviationThreshold, calculate_threshold_values
except ImportError:  # pragma: no cover
    nml = None

OUT = Path(__file__).resolve().parent / "fixtures"


def num(x):
    """A float for JSON: None for NaN (undefined metric)."""
    x = float(x)
    return None if math.isnan(x) else x


def safe(f):
    try:
        return num(f())
    except ValueError:
        return None


def floats(a, digits=None):
    a = np.asarray(a, dtype=float)
    if digits is not None:
        a = np.round(a, digits)
    return [float(v) for v in a]


def classification_case(name, y_true, y_pred, pos_label=None, classes=None, scores=None):
    """scores: dict class -> column (all classes) or None."""
    y_true = [str(v) for v in y_true]
    y_pred = [str(v) for v in y_pred]
    exp = {"accuracy": num(metrics.accuracy_score(y_true, y_pred))}
    for avg in ["macro", "binary"]:
        if avg == "binary" and pos_label is None:
            continue
        kw = dict(average=avg, zero_division=0)
        if avg == "binary":
            # Binary against the rest, the way sklearn sees it on two labels.
            yt = [v if v == pos_label else "__rest__" for v in y_true]
            yp = [v if v == pos_label else "__rest__" for v in y_pred]
            kw["pos_label"] = pos_label
        else:
            yt, yp = y_true, y_pred
        exp[f"precision_{avg}"] = num(metrics.precision_score(yt, yp, **kw))
        exp[f"recall_{avg}"] = num(metrics.recall_score(yt, yp, **kw))
        exp[f"f1_{avg}"] = num(metrics.f1_score(yt, yp, **kw))
    case = {"kind": "classification", "case": name, "y_true": y_true, "y_pred": y_pred,
            "pos_label": pos_label}
    if scores is not None:
        classes = sorted(scores)
        case["classes"] = classes
        case["scores"] = {c: floats(scores[c]) for c in classes}
        cols = np.column_stack([np.asarray(scores[c], dtype=float) for c in classes])
        if pos_label is not None:
            pos = np.asarray(scores[pos_label], dtype=float)
            is_pos = np.array([v == pos_label for v in y_true])
            exp["roc_auc"] = safe(lambda: metrics.roc_auc_score(is_pos, pos))
            exp["log_loss_binary"] = safe(
                lambda: metrics.log_loss(is_pos, pos, labels=[False, True]))
        if len(classes) > 2:
            exp["roc_auc_ovr_macro"] = safe(lambda: metrics.roc_auc_score(
                y_true, cols, multi_class="ovr", average="macro", labels=classes))
        exp["log_loss"] = safe(lambda: metrics.log_loss(y_true, cols, labels=classes))
    case["expected"] = exp
    return case


def regression_case(name, y_true, y_pred):
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    return {"kind": "regression", "case": name, "y_true": floats(y_true),
            "y_pred": floats(y_pred), "expected": {
                "mae": num(metrics.mean_absolute_error(y_true, y_pred)),
                "rmse": num(metrics.root_mean_squared_error(y_true, y_pred)),
                "mape": num(metrics.mean_absolute_percentage_error(y_true, y_pred)),
                "r2": num(metrics.r2_score(y_true, y_pred)),
            }}


def isotonic_case(name, x, y, t):
    x, y, t = (np.asarray(v, dtype=float) for v in (x, y, t))
    ir = IsotonicRegression(out_of_bounds="clip").fit(x, y)
    return {"kind": "isotonic", "case": name, "x": floats(x), "y": floats(y), "t": floats(t),
            "expected": floats(ir.predict(t))}


def threshold_case(name, values, k_lower, k_upper, lo_limit, hi_limit):
    values = np.asarray(values, dtype=float)
    if nml is not None:
        lower, upper = calculate_threshold_values(
            StandardDeviationThreshold(std_lower_multiplier=k_lower, std_upper_multiplier=k_upper),
            values, lower_threshold_value_limit=lo_limit, upper_threshold_value_limit=hi_limit)
        source = "nannyml"
    else:
        mean, std = np.nanmean(values), np.nanstd(values)
        lower = None if k_lower is None else mean - std * k_lower
        upper = None if k_upper is None else mean + std * k_upper
        if lo_limit is not None and lower is not None and lower <= lo_limit:
            lower = lo_limit
        if hi_limit is not None and upper is not None and upper >= hi_limit:
            upper = hi_limit
        source = "numpy"
    return {"kind": "threshold", "case": name, "source": source,
            "values": [None if math.isnan(v) else float(v) for v in values],
            "k_lower": k_lower, "k_upper": k_upper, "lo_limit": lo_limit, "hi_limit": hi_limit,
            "expected": [None if lower is None else float(lower),
                         None if upper is None else float(upper)]}


def write(name, cases):
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"performance_{name}.json"
    text = json.dumps({"dataset": name, "cases": cases}, separators=(",", ":"))
    path.write_text(text + "\n")
    print(f"{path.name}: {len(cases)} cases, {len(text) // 1024} KiB")


def split_fit(model, X, y, seed):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    half = len(y) // 2
    model.fit(X[idx[:half]], y[idx[:half]])
    return idx[half:]


# --- realized classification -----------------------------------------------------------------

def breast_cancer():
    data = datasets.load_breast_cancer()
    X, y = data.data, data.target
    test = split_fit(LogisticRegression(max_iter=5000), X, y, 1)
    model = LogisticRegression(max_iter=5000, C=0.01)
    model.fit(X[:200], y[:200])
    names = np.array(data.target_names)
    proba = model.predict_proba(X[test])
    y_true, y_pred = names[y[test]], names[model.predict(X[test])]
    scores = {names[k]: proba[:, k] for k in range(2)}
    cases = [classification_case("logreg", y_true, y_pred, "malignant", scores=scores),
             classification_case("logreg_pos_benign", y_true, y_pred, "benign", scores=scores)]
    # Scores rounded to 1 decimal: many ties.
    tied = {k: np.round(v, 1) for k, v in scores.items()}
    cases.append(classification_case("tied_scores", y_true, y_pred, "malignant", scores=tied))
    return cases


def multiclass(loader, seed, C):
    data = loader()
    X, y = data.data, data.target
    model = LogisticRegression(max_iter=10000, C=C)
    test = split_fit(model, X, y, seed)
    names = np.array([str(n) for n in data.target_names])
    proba = model.predict_proba(X[test])
    y_true, y_pred = names[y[test]], names[model.predict(X[test])]
    scores = {names[k]: proba[:, k] for k in range(len(names))}
    return [classification_case("logreg", y_true, y_pred, names[0], scores=scores),
            classification_case("logreg_uncalibrated_rows", y_true, y_pred, names[1],
                                scores={k: v ** 2 for k, v in scores.items()})]


def synthetic_classification():
    rng = np.random.default_rng(7)
    n = 1000
    p = rng.beta(2, 3, n)
    y = np.where(rng.random(n) < p, "yes", "no")
    pred = np.where(p >= 0.5, "yes", "no")
    cases = [classification_case("beta_scores", y, pred, "yes", scores={"yes": p, "no": 1 - p})]
    # Scores on a coarse grid of 11 values with exact 0 and 1: ties and clipped log loss.
    g = np.round(p * 10) / 10
    cases.append(classification_case("grid_scores_with_0_and_1", y, pred, "yes",
                                     scores={"yes": g, "no": 1 - g}))
    # Rows whose probabilities do not sum to one (log loss does not renormalise).
    cases.append(classification_case("rows_not_normalised", y, pred, "yes",
                                     scores={"yes": p * 0.9, "no": (1 - p) * 0.8}))
    # Four classes, one never predicted, macro averages with zero division.
    labels = np.array(["a", "b", "c", "d"])
    logits = rng.normal(size=(n, 4)) + np.array([0.5, 0.0, -0.5, -3.0])
    pr = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    yt = labels[[rng.choice(4, p=row) for row in pr]]
    yp = labels[np.minimum(pr.argmax(axis=1), 2)]
    cases.append(classification_case("four_classes_one_never_predicted", yt, yp, "a",
                                     scores={labels[k]: pr[:, k] for k in range(4)}))
    return cases


def classification_edges():
    cases = []
    y = ["a"] * 6 + ["b"] * 4
    s = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2, 0.1, 0.0]
    sc = {"a": s, "b": [1 - v for v in s]}
    cases.append(classification_case("all_correct", y, y, "a", scores=sc))
    wrong = ["b" if v == "a" else "a" for v in y]
    cases.append(classification_case("all_wrong", y, wrong, "a",
                                     scores={"a": sc["b"], "b": sc["a"]}))
    one = ["a"] * 10
    cases.append(classification_case("one_class_only", one, ["a"] * 7 + ["b"] * 3, "a",
                                     scores=sc))
    cases.append(classification_case("positive_never_seen", ["b"] * 10, ["b"] * 10, "a",
                                     scores=sc))
    cases.append(classification_case("certain_and_wrong", ["a", "b", "a", "b"],
                                     ["b", "a", "a", "b"], "a",
                                     scores={"a": [0.0, 1.0, 1.0, 0.0],
                                             "b": [1.0, 0.0, 0.0, 1.0]}))
    cases.append(classification_case("all_scores_tied", y, y, "a",
                                     scores={"a": [0.5] * 10, "b": [0.5] * 10}))
    cases.append(classification_case("single_row", ["a"], ["b"], "a",
                                     scores={"a": [0.3], "b": [0.7]}))
    return cases


# --- realized regression ---------------------------------------------------------------------

def regression():
    data = datasets.load_diabetes()
    X, y = data.data, data.target
    model = LinearRegression()
    test = split_fit(model, X, y, 3)
    cases = [regression_case("diabetes_linear", y[test], model.predict(X[test])),
             regression_case("diabetes_mean_only", y[test], np.full(len(test), y.mean()))]
    rng = np.random.default_rng(11)
    n = 2000
    t = rng.lognormal(1, 1, n)
    t[rng.random(n) < 0.05] = 0.0
    cases.append(regression_case("zero_targets_for_mape", t, t + rng.normal(0, 0.5, n)))
    cases.append(regression_case("constant_exact_target_perfect", [3.0] * 50, [3.0] * 50))
    cases.append(regression_case("constant_exact_target_wrong", [3.0] * 50, [3.0] * 49 + [3.5]))
    # 0.1 is not exact: the mean of 200 copies differs from 0.1 in the last bit, so
    # scikit-learn's denominator is tiny but not zero, and R² is hugely negative.
    cases.append(regression_case("constant_inexact_target", [0.1] * 200, [0.1] * 199 + [0.2]))
    cases.append(regression_case("constant_inexact_target_small", [0.1] * 3, [0.1, 0.1, 0.2]))
    cases.append(regression_case("all_zero", [0.0] * 10, [0.0] * 10))
    cases.append(regression_case("single_row", [2.0], [1.0]))
    cases.append(regression_case("large_values", rng.normal(1e9, 1e3, 500),
                                 rng.normal(1e9, 1e3, 500)))
    return cases


# --- calibration and thresholds --------------------------------------------------------------

def isotonic():
    rng = np.random.default_rng(5)
    n = 2000
    s = rng.random(n)
    y = (rng.random(n) < s ** 2).astype(float)
    t = np.concatenate([rng.random(300) * 1.2 - 0.1, s[:50], [0.0, 1.0, -1.0, 2.0]])
    cases = [isotonic_case("squared_calibration", s, y, t)]
    g = np.round(s, 2)
    cases.append(isotonic_case("tied_scores", g, y, t))
    # Scores within 1e-15 of each other are merged by _make_unique.
    x = np.array([0.1, 0.1 + 4e-16, 0.2, 0.3, 0.3 + 1e-15, 0.4])
    cases.append(isotonic_case("near_ties", x, [1, 0, 0, 1, 0, 1], [0.1, 0.15, 0.3, 0.35, 0.5]))
    cases.append(isotonic_case("decreasing_targets", [1, 2, 3, 4, 5], [5, 4, 3, 2, 1],
                               [0, 1.5, 3, 6]))
    cases.append(isotonic_case("single_point", [0.5, 0.5], [0, 1], [0.1, 0.9]))
    cases.append(isotonic_case("real_targets", rng.normal(size=500), rng.normal(size=500),
                               rng.normal(size=100) * 2))
    return cases


def thresholds():
    rng = np.random.default_rng(9)
    acc = 0.9 + rng.normal(0, 0.01, 10)
    return [
        threshold_case("accuracy_chunks", acc, 3, 3, 0, 1),
        threshold_case("near_upper_limit", [0.99, 1.0, 0.995, 1.0], 3, 3, 0, 1),
        threshold_case("one_sided_lower", acc, 2, None, 0, 1),
        threshold_case("with_nan", [0.8, float("nan"), 0.85, 0.83], 3, 3, 0, 1),
        threshold_case("unbounded_mae", rng.lognormal(0, 0.3, 20), 1.5, 2.5, 0, None),
        threshold_case("constant_chunks", [0.5] * 8, 3, 3, 0, 1),
    ]


# --- CBPE ------------------------------------------------------------------------------------

def cbpe_binary(name, n_ref, n_ana, chunk, shift, miscalibrate, seed):
    """Scores from a logistic model of one feature; labels drawn from the true probability."""
    rng = np.random.default_rng(seed)

    def frame(n, mean):
        x = rng.normal(mean, 1, n)
        p_true = 1 / (1 + np.exp(-(1.5 * x - 0.3)))
        y = (rng.random(n) < p_true).astype(int)
        score = p_true ** miscalibrate
        score = np.round(score, 10)
        return pd.DataFrame({"score": score, "pred": (score >= 0.5).astype(int), "y": y})

    ref, ana = frame(n_ref, 0.0), frame(n_ana, shift)
    metric_names = ["roc_auc", "f1", "precision", "recall", "accuracy"]
    est = nml.CBPE(y_pred_proba="score", y_pred="pred", y_true="y",
                   problem_type="classification_binary", metrics=metric_names,
                   chunk_size=chunk)
    est.fit(ref)
    res = est.estimate(ana).filter(period="analysis").to_df()
    out = {"kind": "cbpe_binary", "case": name, "chunk_size": chunk,
           "reference": {"score": floats(ref.score), "pred": ref.pred.tolist(),
                         "y": ref.y.tolist()},
           "analysis": {"score": floats(ana.score), "pred": ana.pred.tolist(),
                        "y": ana.y.tolist()},
           "nannyml_needs_calibration": bool(est.needs_calibration),
           "expected": {}}
    for m in metric_names:
        out["expected"][m] = {
            "value": [num(v) for v in res[(m, "value")]],
            "lower_threshold": num(res[(m, "lower_threshold")].iloc[0]),
            "upper_threshold": num(res[(m, "upper_threshold")].iloc[0]),
        }
    return out


def cbpe_multiclass(name, n_ref, n_ana, chunk, shift, seed):
    rng = np.random.default_rng(seed)
    classes = ["cat", "dog", "fox"]

    def frame(n, mean):
        x = rng.normal(mean, 1, (n, 2))
        logits = np.column_stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]]) * 1.3
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = np.array([classes[rng.choice(3, p=row)] for row in p])
        # The model is overconfident: squared then renormalised probabilities.
        s = p ** 2 / (p ** 2).sum(axis=1, keepdims=True)
        s = np.round(s, 10)
        d = {f"p_{c}": s[:, k] for k, c in enumerate(classes)}
        d["pred"] = np.array(classes)[s.argmax(axis=1)]
        d["y"] = y
        return pd.DataFrame(d)

    ref, ana = frame(n_ref, 0.0), frame(n_ana, shift)
    metric_names = ["roc_auc", "f1", "precision", "recall", "accuracy"]
    est = nml.CBPE(y_pred_proba={c: f"p_{c}" for c in classes}, y_pred="pred", y_true="y",
                   problem_type="classification_multiclass", metrics=metric_names,
                   chunk_size=chunk)
    est.fit(ref)
    res = est.estimate(ana).filter(period="analysis").to_df()
    calibrated = {c: type(cal).__name__ != "NoopCalibrator"
                  for c, cal in est._calibrators.items()}
    out = {"kind": "cbpe_multiclass", "case": name, "chunk_size": chunk, "classes": classes,
           "reference": {"scores": {c: floats(ref[f"p_{c}"]) for c in classes},
                         "pred": ref.pred.tolist(), "y": ref.y.tolist()},
           "analysis": {"scores": {c: floats(ana[f"p_{c}"]) for c in classes},
                        "pred": ana.pred.tolist(), "y": ana.y.tolist()},
           "nannyml_needs_calibration": calibrated,
           "expected": {}}
    for m in metric_names:
        out["expected"][m] = {
            "value": [num(v) for v in res[(m, "value")]],
            "lower_threshold": num(res[(m, "lower_threshold")].iloc[0]),
            "upper_threshold": num(res[(m, "upper_threshold")].iloc[0]),
        }
    return out


def main():
    write("breast_cancer", breast_cancer())
    write("iris", multiclass(datasets.load_iris, 2, 0.05))
    write("wine", multiclass(datasets.load_wine, 4, 0.001))
    write("synthetic_classification", synthetic_classification())
    write("classification_edges", classification_edges())
    write("regression", regression())
    write("isotonic", isotonic())
    write("thresholds", thresholds())
    if nml is None:
        print("nannyml is not installed: CBPE fixtures left as they are", file=sys.stderr)
        return
    write("cbpe_binary_miscalibrated",
          [cbpe_binary("miscalibrated_shifted", 3000, 3000, 500, 0.7, 2.0, 21)])
    write("cbpe_binary_calibrated",
          [cbpe_binary("calibrated_shifted", 3000, 3000, 500, -0.5, 1.0, 22)])
    write("cbpe_multiclass", [cbpe_multiclass("overconfident", 2000, 2000, 500, 0.5, 23)])


if __name__ == "__main__":
    main()

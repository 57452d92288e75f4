#!/usr/bin/env python3
"""An external trainer for anchorwatch's retraining loop (`trainer = "command"`).

anchorwatch runs it with the environment variables below, and then loads ANCHORWATCH_OUTPUT with
ONNX Runtime, scores it against the champion on the holdout, and promotes it only if it wins.

  ANCHORWATCH_MODEL    the model's name
  ANCHORWATCH_TRAIN    Parquet: the training rows (features, prediction, label, timestamp, score_*)
  ANCHORWATCH_HOLDOUT  Parquet: the holdout rows (same columns)
  ANCHORWATCH_SCHEMA   JSON: the model's schema (features with their kinds, prediction, label, scores)
  ANCHORWATCH_OUTPUT   where to write the ONNX model

Needs scikit-learn, skl2onnx, pandas and pyarrow (tests/requirements.txt pins them).
Config:

  [models.retrain]
  enabled = true
  trainer = "command"
  command = [".venv/bin/python", "examples/train_sklearn.py"]

The ONNX model follows docs/models.md: one [N, 1] input per feature named as the feature
(float for numbers and booleans, string for categories), and `label` + `probabilities`
(classifiers, no ZipMap) or `variable` (regressors) out.
"""

import json
import os
import sys

import numpy as np
import pandas as pd
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def main():
    schema = json.load(open(os.environ["ANCHORWATCH_SCHEMA"]))
    train = pd.read_parquet(os.environ["ANCHORWATCH_TRAIN"])
    holdout = pd.read_parquet(os.environ["ANCHORWATCH_HOLDOUT"])
    numeric = [f["name"] for f in schema["features"] if f["kind"] in ("numerical", "boolean")]
    categorical = [f["name"] for f in schema["features"] if f["kind"] in ("categorical", "text")]
    if len(numeric) + len(categorical) != len(schema["features"]):
        sys.exit("embedding features are not supported by this example trainer")

    def frame(df):
        out = pd.DataFrame({c: df[c].astype("float32") for c in numeric})
        for c in categorical:
            out[c] = df[c].fillna("").astype(str)
        return out[[f["name"] for f in schema["features"]]]

    prep = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    classifier = schema["prediction"] != "numerical"
    if classifier:
        model = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=1000))])
        y = train["label"].astype(str)
    else:
        model = Pipeline([("prep", prep), ("reg", HistGradientBoostingRegressor())])
        y = train["label"].astype(float)
    model.fit(frame(train), y)
    if len(holdout):
        print(f"holdout score ({'accuracy' if classifier else 'R²'}): {model.score(frame(holdout), holdout['label'].astype(str) if classifier else holdout['label'].astype(float)):.4f}")
    types = [(c, FloatTensorType([None, 1])) if c in numeric else (c, StringTensorType([None, 1])) for c in frame(train).columns]
    options = {id(model): {"zipmap": False}} if classifier else None
    onx = to_onnx(model, initial_types=types, options=options, target_opset=17)
    with open(os.environ["ANCHORWATCH_OUTPUT"], "wb") as f:
        f.write(onx.SerializeToString())
    print(f"wrote {os.environ['ANCHORWATCH_OUTPUT']} ({len(train)} training rows)")


if __name__ == "__main__":
    np.random.seed(0)
    main()

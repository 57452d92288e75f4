#!/usr/bin/env python3
"""anchorwatch report vs Evidently 0.7.23 on the same generated files, side by side.

Not a test: it prints wall time, peak RSS and their ratios, and whether every column's test
and verdict are identical. Run from the repository root with the virtualenv that has
Evidently (see docs/report.md; pinned packages in
benches/report_vs_evidently.requirements.txt):

    cargo build --release
    DO_NOT_TRACK=1 .venv/bin/python benches/report_vs_evidently.py            # 100k and 1M rows
    DO_NOT_TRACK=1 .venv/bin/python benches/report_vs_evidently.py --rows 100000

Each dataset: 20 columns (15 numerical, 5 categorical), reference and current of the same size,
a fixed seed, drift in 5 numerical and 2 categorical columns. Both tools start as fresh
processes, read the same Parquet files and write a JSON report; peak RSS is GNU time's
maximum resident set size of each process (apt-get install time if /usr/bin/time is missing).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "anchorwatch"
SEED = 20240611

# Evidently orders categories by iterating Python sets: a fixed hash seed keeps its run
# reproducible. It must be set before the interpreter starts, hence the re-exec.
if os.environ.get("PYTHONHASHSEED") != "0" or os.environ.get("DO_NOT_TRACK") != "1":
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0", "DO_NOT_TRACK": "1"})


def generate(rows: int, directory: Path):
    """Writes reference.parquet and current.parquet; returns their paths."""
    import numpy as np
    import pandas as pd

    def frame(rng, drift: bool):
        data = {}
        for i in range(15):
            kind = i % 5
            shift = drift and i < 5
            if kind == 0:
                v = rng.normal(10.0 + (1.5 if shift else 0.0), 3.0, rows)
            elif kind == 1:
                v = rng.lognormal(0.0, 0.8 if not shift else 1.2, rows)
            elif kind == 2:
                v = rng.uniform(0.0, 1.0 + (0.5 if shift else 0.0), rows)
            elif kind == 3:
                # Integers with a wide range: numerical in Evidently's inference.
                v = rng.integers(0, 1000 + (400 if shift else 0), rows).astype("int64")
            else:
                v = rng.exponential(2.0 if not shift else 3.0, rows)
            data[f"num_{i:02d}"] = v
        for j in range(5):
            n_cats = [3, 8, 20, 50, 5][j]
            cats = np.array([f"c{k}" for k in range(n_cats)])
            p = np.ones(n_cats) / n_cats
            if drift and j < 2:
                p = np.linspace(1.0, 3.0, n_cats)
                p /= p.sum()
            data[f"cat_{j}"] = cats[rng.choice(n_cats, rows, p=p)]
        return pd.DataFrame(data)

    rng = np.random.default_rng(SEED)
    ref, cur = frame(rng, False), frame(rng, True)
    paths = directory / "reference.parquet", directory / "current.parquet"
    ref.to_parquet(paths[0], index=False)
    cur.to_parquet(paths[1], index=False)
    return paths


def evidently_main(reference: str, current: str, output: str):
    """Runs Evidently's DataDriftPreset the way a user would: read, run, save JSON."""
    import warnings

    warnings.filterwarnings("ignore")
    import pandas as pd
    import evidently.legacy.calculations.stattests as st_module
    from evidently.legacy.calculations.stattests import registry
    from evidently.legacy.metric_preset import DataDriftPreset
    from evidently.legacy.report import Report

    ref = pd.read_parquet(reference)
    cur = pd.read_parquet(current)
    report = Report(metrics=[DataDriftPreset()])
    report.run(reference_data=ref, current_data=cur)
    result = report.as_dict()
    names = {o.display_name: o.name for o in vars(st_module).values() if isinstance(o, registry.StatTest)}
    out = {"columns": {}, "dataset_drift": None}
    for metric in result["metrics"]:
        r = metric["result"]
        if "drift_by_columns" in r:
            for name, c in r["drift_by_columns"].items():
                out["columns"][name] = {
                    "stattest": names.get(c["stattest_name"], c["stattest_name"]),
                    "score": c["drift_score"],
                    "drifted": c["drift_detected"],
                }
            out["dataset_drift"] = r.get("dataset_drift")
    Path(output).write_text(json.dumps(out))


def measure(cmd, env=None):
    """Runs cmd; returns (wall seconds, peak RSS bytes) of that process alone.

    GNU time measures it: it forks from a small C process, whereas the peak RSS wait4(2)
    reports for a child forked from this Python (pandas loaded) starts at Python's own size.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name, *cmd], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"{cmd[0]} failed:\n{proc.stderr.decode(errors='replace')}")
        peak_kib = int(t.read().strip().splitlines()[-1])
    return wall, peak_kib * 1024


def compare(aw_path: Path, ev_path: Path):
    aw = json.loads(aw_path.read_text())
    ev = json.loads(ev_path.read_text())
    mismatches, max_rel = [], 0.0
    for c in aw["columns"]:
        e = ev["columns"].get(c["name"])
        if e is None:
            mismatches.append(f"{c['name']}: not in Evidently's report")
            continue
        if c.get("stattest") != e["stattest"] or c.get("drifted") != e["drifted"]:
            mismatches.append(f"{c['name']}: anchorwatch {c.get('stattest')}/{c.get('drifted')} "
                              f"vs Evidently {e['stattest']}/{e['drifted']}")
        if c.get("score") is not None and e["score"] is not None:
            denom = max(abs(e["score"]), 1e-300)
            max_rel = max(max_rel, abs(c["score"] - e["score"]) / denom)
    if aw["dataset_drift"]["drifted"] != ev["dataset_drift"]:
        mismatches.append("dataset verdict differs")
    return mismatches, max_rel, len(aw["columns"])


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--run-evidently":
        evidently_main(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--binary", type=Path, default=BINARY)
    parser.add_argument("--keep", type=Path, help="keep generated files and reports here")
    args = parser.parse_args()
    if not args.binary.exists():
        sys.exit(f"{args.binary} is missing: run `cargo build --release` first")

    print(f"{'rows':>9} {'tool':<11} {'wall s':>8} {'peak RSS MiB':>13}")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            directory = args.keep / str(rows) if args.keep else Path(tmp)
            directory.mkdir(parents=True, exist_ok=True)
            ref, cur = generate(rows, directory)
            aw_out, ev_out = directory / "anchorwatch.json", directory / "evidently.json"
            aw = measure([str(args.binary), "report", "-q", "--reference", str(ref), "--current", str(cur),
                          "--output", str(aw_out)])
            ev = measure([sys.executable, __file__, "--run-evidently", str(ref), str(cur), str(ev_out)],
                         env={**os.environ, "PYTHONHASHSEED": "0", "DO_NOT_TRACK": "1"})
            for name, (wall, rss) in [("anchorwatch", aw), ("evidently", ev)]:
                print(f"{rows:>9} {name:<11} {wall:>8.2f} {rss / 2**20:>13.1f}")
            mismatches, max_rel, n = compare(aw_out, ev_out)
            print(f"{rows:>9} ratio       {ev[0] / aw[0]:>7.1f}x {ev[1] / aw[1]:>12.1f}x   "
                  f"(Evidently / anchorwatch: time, memory)")
            verdict = "identical" if not mismatches else f"{len(mismatches)} DIFFER"
            print(f"{rows:>9} verdicts    {verdict} over {n} columns; max relative score difference {max_rel:.2e}")
            for m in mismatches:
                print(f"{'':>9}   {m}")


if __name__ == "__main__":
    main()

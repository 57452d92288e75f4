#!/usr/bin/env python3
"""anchorwatch's embedding drift methods vs Evidently 0.7.23's on the same pair, side by side.

Not a test: it prints each method's best time in both tools, their ratio, both scores and
whether the verdicts are equal. Run from the repository root with the virtualenv that has
Evidently (pinned in analyzer/golden/requirements.txt; `make bench-embeddings` does all of it):

    DO_NOT_TRACK=1 .venv/bin/python benches/embeddings_vs_evidently.py            # 100k x 384
    DO_NOT_TRACK=1 .venv/bin/python benches/embeddings_vs_evidently.py --quick    # 5000 x 384

The pair: reference and current of --rows rows x --dims dims, unit-normalised like sentence
embeddings: a shared direction, one of 24 topic directions and anisotropic noise, from a fixed
numpy seed. The current moves 20% of the topic mix onto three topics (a new subject showing up),
a change some methods flag and others do not at Evidently's default thresholds. The pair is
written as raw little-endian float32, row-major (reference.f32, current.f32); both tools read
those files and widen them to float64, so both see identical values.

anchorwatch: `cargo bench --workspace --bench embeddings` (analyzer/benches/embeddings.rs;
`--workspace` because the analyzer is not a default member of the workspace; the first run
builds it in release, which takes long), niced. Evidently: a worker process of this
script, niced too, calls each method object of
evidently/legacy/metrics/data_drift/embedding_drift_methods.py as EmbeddingsDriftMetric does,
`method(current_df, reference_df)`, on fresh float64 DataFrames. Methods, Evidently's defaults
otherwise: distance, distance(bootstrap=True), ratio, model, model(pca_components=20), and mmd.

mmd is quadratic in rows in both tools, and Evidently holds the (m+n)^2 kernel (100k rows a
side would need 80 GB): it runs on the first --mmd-rows rows of each side (default 5000), in
both tools, and the table says so. Evidently's peak RSS for mmd, the loaded 100k pair included,
was 1.7 GiB at 5000 rows a side and 4.0 GiB at 10000; the largest of a default run was 2.6 GiB
(model). The Evidently worker stops itself if its resident set passes --memory-limit-gib
(default 12), and an --mmd-rows whose kernel could come near that is refused up front.

Each method runs up to --repeat times, stopping once its runs took --budget seconds; the best
run counts. Peak RSS is each process's peak during the method, the loaded pair included.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 20240917
TOPICS = 24
PCA_COMPONENTS = 20
METHODS = ["distance", "distance_bootstrap", "ratio", "model", "model_pca", "mmd"]

if os.environ.get("PYTHONHASHSEED") != "0" or os.environ.get("DO_NOT_TRACK") != "1":
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0", "DO_NOT_TRACK": "1"})


def generate(rows: int, dims: int, directory: Path):
    """Writes reference.f32 and current.f32 (rows x dims, little-endian float32, row-major)."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    shared = unit(rng.normal(size=dims))
    topics = unit(rng.normal(size=(TOPICS, dims)))
    # Anisotropic noise: a random orthonormal basis with a power-law spectrum, as trained
    # embeddings spend most of their variance in few directions.
    basis, _ = np.linalg.qr(rng.normal(size=(dims, dims)))
    spectrum = np.arange(1, dims + 1) ** -0.5
    scale = spectrum * 0.9 / np.linalg.norm(spectrum)
    mix = rng.dirichlet(np.full(TOPICS, 2.0))
    rising = np.zeros(TOPICS)
    rising[[3, 11, 17]] = [0.5, 0.3, 0.2]
    paths = directory / "reference.f32", directory / "current.f32"
    for path, p in zip(paths, [mix, 0.8 * mix + 0.2 * rising]):
        topic = rng.choice(TOPICS, size=rows, p=p)
        with open(path, "wb") as f:
            for start in range(0, rows, 20_000):
                t = topic[start:start + 20_000]
                noise = (rng.normal(size=(len(t), dims)) * scale) @ basis.T
                x = 0.45 * shared + 0.7 * topics[t] + noise
                unit(x).astype("<f4").tofile(f)
    return paths


def unit(x):
    import numpy as np

    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def read_pair(reference: str, current: str, dims: int):
    import numpy as np

    ref = np.fromfile(reference, dtype="<f4").astype(np.float64).reshape(-1, dims)
    cur = np.fromfile(current, dtype="<f4").astype(np.float64).reshape(-1, dims)
    return ref, cur


def rss_kib(field: str):
    """VmRSS or VmHWM of this process, in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def guard_memory(limit_gib: float):
    """Exits the process when its resident set passes limit_gib (polled every 50 ms)."""
    def watch():
        while True:
            rss = rss_kib("VmRSS")
            if rss is not None and rss > limit_gib * 2**20:
                print(f"\nEvidently worker: resident set {rss / 2**20:.1f} GiB passed the "
                      f"{limit_gib} GiB limit; stopping", file=sys.stderr, flush=True)
                os._exit(3)
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()


def evidently_worker(args):
    """Runs Evidently's methods, prints one JSON line per method (the Rust bench's format)."""
    import warnings

    warnings.filterwarnings("ignore")
    import pandas as pd
    from evidently.legacy.metrics.data_drift import embedding_drift_methods as edm

    guard_memory(args.memory_limit_gib)
    start = time.perf_counter()
    ref, cur = read_pair(args.reference, args.current, args.dims)
    print(f"Evidently: read {len(ref)} + {len(cur)} rows x {args.dims} dims in "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    columns = [f"e{i}" for i in range(args.dims)]
    make = {
        "distance": lambda: edm.distance(),
        "distance_bootstrap": lambda: edm.distance(bootstrap=True),
        "ratio": lambda: edm.ratio(),
        "model": lambda: edm.model(),
        "model_pca": lambda: edm.model(pca_components=args.pca),
        "mmd": lambda: edm.mmd(),
    }
    for name in args.methods:
        r, c = (ref[:args.mmd_rows], cur[:args.mmd_rows]) if name == "mmd" and args.mmd_rows else (ref, cur)
        tracked = reset_peak_rss()
        best, spent, runs, result = float("inf"), 0.0, 0, None
        while runs < args.repeat and (runs == 0 or spent < args.budget):
            print(f"Evidently {name} ({len(r)} + {len(c)} rows): run {runs + 1} ... ", end="",
                  file=sys.stderr, flush=True)
            # Fresh frames each run: the model method adds a "target" column to both.
            current_df, reference_df = pd.DataFrame(c, columns=columns), pd.DataFrame(r, columns=columns)
            method = make[name]()
            t = time.perf_counter()
            score, drifted, _ = method(current_df, reference_df)
            seconds = time.perf_counter() - t
            print(f"{seconds:.3f} s", file=sys.stderr, flush=True)
            result = (float(score), bool(drifted))
            best, spent, runs = min(best, seconds), spent + seconds, runs + 1
            del current_df, reference_df
        peak = rss_kib("VmHWM") / 1024 if tracked else None
        threshold = {"distance": 0.2, "model": 0.55, "model_pca": 0.55, "ratio": 0.2, "mmd": 0.015}.get(name)
        print(json.dumps({"method": name, "reference_rows": len(r), "current_rows": len(c), "dims": args.dims,
                          "runs": runs, "seconds": best, "score": result[0], "drifted": result[1],
                          "threshold": threshold, "peak_rss_mib": peak}), flush=True)


def run_lines(cmd, label):
    """Runs cmd niced, stderr passed through; returns its stdout's JSON lines by method."""
    start = time.perf_counter()
    proc = subprocess.run(["nice", *cmd], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"{label} failed (exit {proc.returncode}): {' '.join(cmd)}")
    print(f"{label}: {time.perf_counter() - start:.0f} s in all", file=sys.stderr)
    return {d["method"]: d for d in map(json.loads, filter(None, proc.stdout.splitlines()))}


def kernel_gib(mmd_rows: int) -> float:
    """Evidently's mmd, in GiB: the (m+n)^2 kernel and a temporary of its size (a bound; the
    peak measured above the loaded pair was about one kernel)."""
    return 2 * (2 * mmd_rows) ** 2 * 8 / 2**30


def fmt_score(v):
    return "nan" if v is None else f"{v:.6g}"


def relative(a, e):
    """|a - e| / |e|, as text ("-" when a score is NaN)."""
    if a is None or e is None:
        return "-"
    return f"{abs(a - e) / abs(e):.1e}" if e else f"{abs(a):.1e}"


def table(aw, ev, args):
    header = (f"{'method':<19} {'rows':>13} {'anchorwatch s':>13} {'Evidently s':>11} {'ratio':>7} "
              f"{'anchorwatch score':>18} {'Evidently score':>16} {'rel. diff':>9} {'threshold':>10} {'verdicts':>11} "
              f"{'equal':>5} "
              f"{'peak MiB aw/ev':>15}")
    lines = [header, "-" * len(header)]
    for name in args.methods:
        a, e = aw[name], ev[name]
        rows = f"{a['reference_rows']}+{a['current_rows']}"
        ratio = e["seconds"] / a["seconds"]
        verdicts = f"{str(a['drifted']).lower()}/{str(e['drifted']).lower()}"
        equal = "yes" if a["drifted"] == e["drifted"] else "NO"
        peaks = "/".join("-" if p is None else f"{p:.0f}" for p in (a["peak_rss_mib"], e["peak_rss_mib"]))
        label = name if name != "model_pca" else f"model_pca{args.pca}"
        lines.append(f"{label:<19} {rows:>13} {a['seconds']:>13.3f} {e['seconds']:>11.3f} {ratio:>6.3g}x "
                     f"{fmt_score(a['score']):>18} {fmt_score(e['score']):>16} {relative(a['score'], e['score']):>9} "
                     f"{fmt_score(a['threshold']):>10} "
                     f"{verdicts:>11} {equal:>5} "
                     f"{peaks:>15}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of each side (default 100000)")
    parser.add_argument("--dims", type=int, default=384, help="dimensions (default 384)")
    parser.add_argument("--mmd-rows", type=int, default=5000,
                        help="rows of each side mmd runs on, in both tools (default 5000; 0: all)")
    parser.add_argument("--quick", action="store_true", help="5000 rows, mmd on 1000, 2 runs at most")
    parser.add_argument("--repeat", type=int, default=5, help="runs per method at most (default 5)")
    parser.add_argument("--budget", type=float, default=20.0,
                        help="no further run of a method once its runs took this many seconds (default 20)")
    parser.add_argument("--pca", type=int, default=PCA_COMPONENTS, help="model_pca's pca_components (default 20)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--memory-limit-gib", type=float, default=12.0,
                        help="the Evidently worker stops past this resident set (default 12)")
    parser.add_argument("--dir", type=Path, help="write (and keep) the pair and the results here")
    parser.add_argument("--evidently-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--current", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.methods = args.methods.split(",")
    if unknown := set(args.methods) - set(METHODS):
        sys.exit(f"unknown methods {sorted(unknown)}; known: {METHODS}")
    if args.evidently_worker:
        evidently_worker(args)
        return
    if args.quick:
        args.rows, args.mmd_rows, args.repeat = 5000, 1000, 2
    mmd_rows = min(args.mmd_rows or args.rows, args.rows)
    if "mmd" in args.methods and kernel_gib(mmd_rows) > args.memory_limit_gib * 0.8:
        sys.exit(f"--mmd-rows {mmd_rows}: Evidently's kernel alone would take about {kernel_gib(mmd_rows):.1f} GiB, "
                 f"too close to --memory-limit-gib {args.memory_limit_gib}")

    with tempfile.TemporaryDirectory() as tmp:
        directory = args.dir or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        ref, cur = generate(args.rows, args.dims, directory)
        print(f"wrote {args.rows} + {args.rows} rows x {args.dims} dims (float32) to {directory} in "
              f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
        common = ["--reference", str(ref), "--current", str(cur), "--dims", str(args.dims),
                  "--mmd-rows", str(mmd_rows), "--pca", str(args.pca), "--repeat", str(args.repeat),
                  "--budget", str(args.budget), "--methods", ",".join(args.methods)]
        aw = run_lines([os.environ.get("CARGO", "cargo"), "bench", "--workspace", "--bench", "embeddings", "--", *common], "anchorwatch")
        ev = run_lines([sys.executable, __file__, "--evidently-worker", *common,
                        "--memory-limit-gib", str(args.memory_limit_gib)], "Evidently")
        if args.dir:
            (directory / "results.json").write_text(json.dumps({"anchorwatch": aw, "evidently": ev}, indent=1))

    subsample = f" (mmd on the first {mmd_rows} rows of each side, both tools)" if "mmd" in args.methods else ""
    print(f"embedding drift, {args.rows} + {args.rows} rows x {args.dims} dims{subsample}; "
          f"best of up to {args.repeat} runs; ratio = Evidently s / anchorwatch s; "
          f"threshold: what anchorwatch compared the score with (bootstrapped: the percentile); "
          f"verdicts: drifted, anchorwatch/Evidently")
    print(table(aw, ev, args))
    differ = [m for m in args.methods if aw[m]["drifted"] != ev[m]["drifted"]]
    print("verdicts: all equal" if not differ else f"verdicts: {len(differ)} DIFFER: {', '.join(differ)}")


if __name__ == "__main__":
    main()

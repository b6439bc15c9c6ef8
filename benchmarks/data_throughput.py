"""Data-path throughput: ingest + statistics + normalize + window a generated 3-channel series to TFRecord windows,
on Beam's DirectRunner and on the Dask runner (local cluster), against a plain NumPy implementation of the same
work (read the CSV, split by time, z-score with train statistics, ``sliding_window_view``, write the same GZIP
TFRecord window Examples with the same encoder), all timed in the same run.

Prints ONE JSON line::

    {"samples": 10000000, "windows": ..., "numpy_s": ..., "direct_s": ..., "dask_s": ...,
     "numpy_samples_per_s": ..., "direct_samples_per_s": ..., "dask_samples_per_s": ...,
     "direct_vs_numpy": <direct time / numpy time>, "dask_vs_numpy": ..., "peak_rss_mb": {...},
     "stages_s": {mode: {component: s}}, "peak_rss_after_mb": {mode: {component: MB}}, "outputs_match": true}

Each mode runs in its own process so ``peak_rss_mb`` is that mode's own peak (Dask: the client plus its
workers; the CSV is generated in a child too, since Linux keeps a parent's ``ru_maxrss`` across fork+exec).
Usage: ``python benchmarks/data_throughput.py [--samples N] [--size 32] [--stride 4] [--dask-workers 2]``
(default 10,000,000 samples: ~0.5 GB of CSV and a few minutes; try ``--samples 200000`` first).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np

CHANNELS = ("a", "b", "c")
SPLIT = {"train": 0.6, "eval": 0.2, "test": 0.2}
STEP_S = 10


def generate(path: Path, samples: int, seed: int = 0) -> None:
    """timestamp,a,b,c with a 10 s step: sines of three periods plus noise (not timed)."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01T00:00:00", "s")
    with open(path, "w") as handle:
        handle.write("timestamp," + ",".join(CHANNELS) + "\n")
        for lo in range(0, samples, 1_000_000):
            n = min(1_000_000, samples - lo)
            t = np.arange(lo, lo + n)
            stamps = (start + t * np.timedelta64(STEP_S, "s")).astype(str)
            values = np.stack([np.sin(t / p) for p in (50.0, 333.0, 4000.0)], 1) + rng.normal(0, 0.1, (n, 3))
            body = np.char.add(np.char.replace(stamps, "T", " "), ",")
            text = np.char.add(body, np.char.mod("%.5f", values[:, 0]))
            for c in (1, 2):
                text = np.char.add(np.char.add(text, ","), np.char.mod("%.5f", values[:, c]))
            handle.write("\n".join(text.tolist()) + "\n")


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round((own + children) / 1024, 1)


# ---- the NumPy reference ------------------------------------------------------------------------------------------
def run_numpy(csv_path: Path, out: Path, size: int, stride: int) -> dict:
    from edgepipe.components.data.beam.example_encode import encode_batch
    from edgepipe.components.data.beam.files import shard_name, write_shard
    from edgepipe.components.data.splits import time_bounds
    from edgepipe.pipeline.artifacts import Examples

    started = time.perf_counter()
    dtype = [("t", "U32"), *[(c, "f8") for c in CHANNELS]]
    stamps, values = [], []
    with open(csv_path) as handle:
        next(handle)
        while True:
            lines = list(islice(handle, 1 << 20))
            if not lines:
                break
            table = np.loadtxt(lines, delimiter=",", dtype=dtype, comments=None, ndmin=1, quotechar=None)
            stamps.append(table["t"].astype("datetime64[s]").astype(np.int64))
            values.append(np.stack([table[c] for c in CHANNELS], 1).astype(np.float32))
    stamps, values = np.concatenate(stamps), np.concatenate(values)
    order = np.argsort(stamps, kind="stable")
    stamps, values = stamps[order], values[order]
    bounds = time_bounds(len(stamps), SPLIT.values())
    train = values[bounds[0]:bounds[1]].astype(np.float64)
    center, scale = train.mean(axis=0), train.std(axis=0)
    examples = Examples(out)
    windows = 0
    for name, lo, hi in zip(SPLIT, bounds[:-1], bounds[1:]):
        part = ((values[lo:hi].astype(np.float64) - center) / scale).astype(np.float32)
        if len(part) < size:
            continue
        view = np.lib.stride_tricks.sliding_window_view(part, size, axis=0)
        offsets = np.arange(0, len(part) - size + 1, stride)
        for k in range(0, len(offsets), 1 << 16):
            pos = offsets[k:k + (1 << 16)]
            blob = encode_batch({"window": view[pos].transpose(0, 2, 1), "label": np.zeros(len(pos), np.int64),
                                 "series": np.full(len(pos), "series", dtype=object),
                                 "start_time": stamps[lo + pos], "start": lo + pos})
            write_shard(examples, name, shard_name("np", name, k), blob)
            windows += len(pos)
    return {"seconds": time.perf_counter() - started, "windows": windows}


# ---- the Beam pipeline -------------------------------------------------------------------------------------------
def run_beam(csv_path: Path, out: Path, size: int, stride: int, beam_args: list[str]) -> dict:
    from edgepipe.components.data import compute_statistics, ingest_timeseries, make_windows, normalize

    stages, peaks = {}, {}

    def run(comp, name, **params):
        began = time.perf_counter()
        outputs = {key: typ(out / name / key) for key, typ in comp.outputs.items()}
        metrics = comp.fn(**outputs, **params)
        for artifact in outputs.values():
            artifact.finalize()
        stages[name] = round(time.perf_counter() - began, 2)
        peaks[name] = peak_rss_mb()  # running peak after this stage (ru_maxrss never falls)
        return metrics, outputs

    started = time.perf_counter()
    _, ing = run(ingest_timeseries, "ingest", source=str(csv_path), split=SPLIT, beam_args=beam_args)
    _, st = run(compute_statistics, "stats", examples=ing["examples"], beam_args=beam_args)
    _, nm = run(normalize, "normalize", examples=ing["examples"], statistics=st["statistics"], beam_args=beam_args)
    metrics, win = run(make_windows, "windows", examples=nm["transformed"], size=size, stride=stride,
                       beam_args=beam_args)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "windows": sum(metrics[f"windows_{s}"] for s in SPLIT), "stages_s": stages,
            "peak_rss_after_mb": peaks}


def child(args) -> None:
    """One mode in this process; prints its JSON result."""
    if args.mode == "generate":
        generate(Path(args.csv), args.samples)
        return
    out = Path(args.out)
    if args.mode == "numpy":
        result = run_numpy(Path(args.csv), out, args.size, args.stride)
    elif args.mode == "direct":
        result = run_beam(Path(args.csv), out, args.size, args.stride, ["--runner=DirectRunner"])
    else:
        from distributed import LocalCluster

        with LocalCluster(n_workers=args.dask_workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, memory_limit=0) as cluster:
            result = run_beam(Path(args.csv), out, args.size, args.stride,
                              ["--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}"])
    result["peak_rss_mb"] = peak_rss_mb()
    result["checksum"] = checksum(out, args.mode)
    print("RESULT " + json.dumps(result))


def checksum(out: Path, mode: str) -> dict:
    """Count and float sum of windows per split, from the written files (the outputs must agree across modes)."""
    from edgepipe.components.data.beam.example_decode import float_spans
    from edgepipe.components.data.beam.tfrecord import read_records

    root = out if mode == "numpy" else out / "windows" / "windows"
    sums = {}
    for split in SPLIT:
        total, n = 0.0, 0
        for path in sorted((root / f"Split-{split}").glob("data*")):
            for record in read_records(str(path)):
                lo, hi = float_spans(record)["window"]
                total += float(np.frombuffer(record, "<f4", (hi - lo) // 4, lo).astype(np.float64).sum())
                n += 1
        sums[split] = [n, round(total, 1)]
    return sums


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--modes", default="numpy,direct,dask")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="edgepipe-bench-") as tmp:
        csv_path = Path(tmp) / "series.csv"
        # in a child: Linux keeps ru_maxrss across fork+exec, so a parent that held the generated data would
        # hand every mode its peak as a floor
        subprocess.run([sys.executable, __file__, "--mode", "generate", "--csv", str(csv_path), "--samples",
                        str(args.samples)], check=True)
        results = {}
        for mode in args.modes.split(","):
            cmd = [sys.executable, __file__, "--mode", mode, "--csv", str(csv_path), "--out", f"{tmp}/{mode}",
                   "--size", str(args.size), "--stride", str(args.stride), "--dask-workers", str(args.dask_workers)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode or not lines:
                raise SystemExit(f"mode {mode} failed:\n{proc.stderr[-3000:]}")
            results[mode] = json.loads(lines[-1][len("RESULT "):])
        out = {"samples": args.samples, "channels": len(CHANNELS), "window_size": args.size, "stride": args.stride,
               "csv_mb": round(csv_path.stat().st_size / 2**20, 1)}
        for mode, r in results.items():
            out[f"{mode}_s"] = round(r["seconds"], 2)
            out[f"{mode}_samples_per_s"] = round(args.samples / r["seconds"])
        for mode in results:
            if mode != "numpy" and "numpy" in results:
                out[f"{mode}_vs_numpy"] = round(results[mode]["seconds"] / results["numpy"]["seconds"], 2)
        out["windows"] = {mode: r["windows"] for mode, r in results.items()}
        out["peak_rss_mb"] = {mode: r["peak_rss_mb"] for mode, r in results.items()}
        out["stages_s"] = {mode: r["stages_s"] for mode, r in results.items() if "stages_s" in r}
        out["peak_rss_after_mb"] = {mode: r["peak_rss_after_mb"] for mode, r in results.items()
                                    if "peak_rss_after_mb" in r}
        checks = [r["checksum"] for r in results.values()]
        out["outputs_match"] = all(c == checks[0] for c in checks)
        out["checksums"] = checks[0]
        print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Issue 14's corpus benchmark: every NAB series, one config, streamed causally through its exported int8 bundle.

For each CSV under ``../shared/datasets/nab`` (labels from ``labels/combined_windows.json``), ``edgepipe run
configs/nab.yaml`` with one set of overrides for all series (:data:`CONFIG`: trained on the first 15% of the series,
as a detector installed on a new machine would be; no labels used in training; the score is nab.yaml's, the newest
4 steps of each window), then the whole series goes through
the exported bundle with the runtime (``Bundle.predict`` on the raw series: causal likelihood and alert onsets,
``runtime/likelihood.py``). Per series and in total: exported or why not, labelled windows detected (an alert
inside the window), delay from the window's start, false alerts outside windows, int8/Keras agreement (decisions on
all windows, on the windows clear of the threshold that the gate judges, score rank correlation); and, from
the same series in the same run, a causal rolling z-score baseline (each value against its previous 288 samples,
alert at |z| > 4, the same refractory period; ``baseline_sweep``: the same at stricter limits, to compare detections
at a matched false-alert count). Prints one JSON line with the totals; ``--table FILE`` writes the per-series
Markdown table.

Usage: python benchmarks/anomaly_corpus.py [--limit N] [--match TEXT] [--table docs/anomaly_corpus.md]
           [--work DIR [--rescore] [--label=-NAME]] [--jobs N] [--interleave] [--full] [--likelihood KEY=VALUE ...]
           [--set key=value ...]

Only the variants ``convert.primary: auto`` can ship are converted (:data:`FAST`; ``--full``: the default list), which
cannot change the shipped bundle. ``--work DIR`` keeps each series' pipeline root under DIR (default: a temporary
folder per series), so a re-run after a change to the evaluation or the export re-uses the cached training steps;
``--rescore`` then only streams the series again through the bundles a run left there (a change to the runtime's
scoring, or ``--likelihood`` parameters: a sensitivity check, never a per-series setting); ``--label`` keeps another
setting's bundle beside the first on the same cached root (e.g. ``--label=-noclip --set evaluate.input_clip=none``).
``--interleave`` takes the groups in turn, so a run cut short still samples every group.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NAB = REPO.parent / "shared" / "datasets" / "nab"
CONFIG = ["data.split={train: 0.15, eval: 0.425, test: 0.425}", "window.size=64", "window.stride=1",
          "training.epochs=10", "training.train_on=all"]
# Only the variants `convert.primary: auto` can ship (and float32): float16, dynamic and clustered cannot change
# which bundle ships, and leaving them out saves a third of each run on a shared machine.
FAST = ["convert.variants=[float32, int8_ptq, int8_qat, pruned_int8, pqat]", "cluster.enabled=false"]
Z_WINDOW, Z_LIMIT = 288, 4.0
Z_SWEEP = (5.0, 6.0, 8.0)  # stricter z limits: the baseline's detections at fewer false alerts (matched comparison)


def read_series(path: Path) -> tuple[list[datetime], np.ndarray]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    stamps = [datetime.fromisoformat(r["timestamp"]) for r in rows]
    return stamps, np.array([float(r["value"]) for r in rows], dtype=np.float32)


def label_steps(stamps: list[datetime], windows: list[list[str]]) -> list[tuple[int, int]]:
    """Labelled windows as step ranges [first, last] of the series."""
    times = np.array([s.timestamp() for s in stamps])
    out = []
    for start, end in windows:
        lo, hi = datetime.fromisoformat(start).timestamp(), datetime.fromisoformat(end).timestamp()
        inside = np.flatnonzero((times >= lo) & (times <= hi))
        if len(inside):
            out.append((int(inside[0]), int(inside[-1])))
    return out


def rolling_z(values: np.ndarray) -> np.ndarray:
    """Causal |z| of every step: its value against the mean and std of the previous Z_WINDOW values (0 before the
    first Z_WINDOW steps and where the previous values are constant)."""
    z = np.zeros(len(values))
    for t in range(Z_WINDOW, len(values)):
        past = values[t - Z_WINDOW:t]
        std = float(past.std())
        if std > 0:
            z[t] = abs(float(values[t]) - float(past.mean())) / std
    return z


def onsets(flags: np.ndarray, refractory: int) -> list[int]:
    """Alert onsets: flagged steps with no onset in the previous ``refractory`` steps (the runtime's rule)."""
    alerts, last = [], -10 ** 9
    for t in np.flatnonzero(flags):
        if t - last > refractory:
            alerts.append(int(t))
            last = t
    return alerts


def score(alerts: list[int], windows: list[tuple[int, int]]) -> dict:
    detected = [min((a for a in alerts if lo <= a <= hi), default=None) for lo, hi in windows]
    false = [a for a in alerts if not any(lo <= a <= hi for lo, hi in windows)]
    return {"windows": len(windows), "detected": sum(d is not None for d in detected),
            "delays": [d - lo for d, (lo, _) in zip(detected, windows) if d is not None], "false_alerts": len(false)}


def run_series(path: Path, key: str, labels: dict, overrides: list[str], work: Path, rescore: bool = False,
               label: str = "", likelihood: dict | None = None) -> dict:
    """One series: the pipeline (or, with ``rescore``, the outcome recorded by an earlier run in ``work``), then
    the whole series through the bundle and through the z-score baseline."""
    from edgepipe.runtime.bundle import Bundle

    root, output, record = work / "root", work / f"bundle{label}", work / f"run{label}.json"
    if rescore and record.exists():
        row = json.loads(record.read_text())
    else:
        cmd = [sys.executable, "-m", "edgepipe", "run", str(REPO / "configs" / "nab.yaml"), "--root", str(root),
               "--output", str(output), "--set", f"data.source={path}", "--set", f"data.labels_key={key}"]
        for override in [*CONFIG, *overrides]:
            cmd += ["--set", override]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        row = {"series": key, "exit": proc.returncode, "run_s": round(time.perf_counter() - started, 1)}
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            row["reason"] = lines[-1][:200] if lines else "no message"
        work.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(row))
    stamps, values = read_series(path)
    windows = label_steps(stamps, labels.get(key, []))
    refractory = 4 * 64
    if row["exit"] == 0:
        bundle = Bundle.load(output)
        result = bundle.predict(values[:, None], "series", **(likelihood or {}))
        refractory = int(result.likelihood.refractory) if result.likelihood is not None else refractory
        row["model"] = score([a["step"] for a in result.alerts()], windows)
        agreement = bundle.doc["metrics"]["agreement_with_keras"].get("int8") or {}
        if not isinstance(agreement, dict):
            agreement = {"all": agreement}
        row["agreement"] = agreement.get("all")  # decisions on every eval+test window
        row["agreement_decisive"] = agreement.get("decisive")  # what the gate judges (away from the threshold)
        row["score_correlation"] = agreement.get("score_correlation")
        row["primary"] = bundle.doc["primary_variant"]
    z = rolling_z(values)
    row["baseline"] = score(onsets(z > Z_LIMIT, refractory), windows)
    row["baseline_sweep"] = {str(limit): score(onsets(z > limit, refractory), windows) for limit in Z_SWEEP}
    return row


def totals(rows: list[dict]) -> dict:
    def total(kind: str, key: str) -> int:
        return sum(r[kind][key] for r in rows if kind in r)

    exported = [r for r in rows if r["exit"] == 0]
    delays = [d for r in exported for d in r["model"]["delays"]]
    base_delays = [d for r in rows for d in r["baseline"]["delays"]]
    return {"series": len(rows), "exported": len(exported),
            "refused": {str(code): sum(r["exit"] == code for r in rows) for code in sorted({r["exit"] for r in rows})
                        if code != 0},
            "windows": total("baseline", "windows"), "windows_in_exported": sum(r["model"]["windows"] for r in exported),
            "detected": total("model", "detected"), "false_alerts": total("model", "false_alerts"),
            "median_delay_steps": float(np.median(delays)) if delays else None,
            "baseline_detected": total("baseline", "detected"), "baseline_false_alerts": total("baseline", "false_alerts"),
            "baseline_median_delay_steps": float(np.median(base_delays)) if base_delays else None,
            "min_agreement": min((r["agreement"] for r in exported if r.get("agreement") is not None), default=None),
            "min_agreement_decisive": min((r["agreement_decisive"] for r in exported
                                           if r.get("agreement_decisive") is not None), default=None),
            "min_score_correlation": min((r["score_correlation"] for r in exported
                                          if r.get("score_correlation") is not None), default=None),
            "baseline_sweep": {str(z): {k: sum(r["baseline_sweep"][str(z)][k] for r in rows if "baseline_sweep" in r)
                                        for k in ("detected", "false_alerts")} for z in Z_SWEEP},
            "primaries": {p: sum(r.get("primary") == p for r in exported)
                          for p in sorted({r["primary"] for r in exported})},
            "config": CONFIG}


def table(rows: list[dict]) -> str:
    def num(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = ["| series | exported (variant) | int8 agreement: all / clear decisions / rank corr. | windows | detected "
             "| false alerts | z detected | z false |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m, b = r.get("model") or {}, r["baseline"]
        shipped = f"yes ({r.get('primary')})" if r["exit"] == 0 else f"exit {r['exit']}"
        lines.append(f"| {r['series']} | {shipped} | {num(r.get('agreement'))} / {num(r.get('agreement_decisive'))} "
                     f"/ {num(r.get('score_correlation'))} | {b['windows']} | {m.get('detected', '-')} | "
                     f"{m.get('false_alerts', '-')} | {b['detected']} | {b['false_alerts']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N series (sorted by name)")
    parser.add_argument("--match", default="", help="only series whose key contains this")
    parser.add_argument("--table", default=None, help="write the per-series Markdown table here")
    parser.add_argument("--work", default=None, help="keep each series' pipeline root here (cache across runs)")
    parser.add_argument("--rescore", action="store_true", help="with --work: re-use each series' recorded run and "
                        "bundle, only stream the series again (after a change to the runtime's scoring)")
    parser.add_argument("--full", action="store_true", help="every default variant, not only those auto can ship")
    parser.add_argument("--label", default="", help="with --work: suffix of the bundle and record names, so runs "
                        "with other --set values share each series' cached root (e.g. --label=-noclip)")
    parser.add_argument("--jobs", type=int, default=1, help="series run at once")
    parser.add_argument("--likelihood", action="append", default=[], metavar="KEY=VALUE",
                        help="a runtime likelihood parameter for every series (e.g. threshold=0.999), as predict's")
    parser.add_argument("--interleave", action="store_true", help="take the groups in turn (first series of each "
                        "group, then the second ...), so a run stopped early is still a sample of every group")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    labels = json.loads((NAB / "labels" / "combined_windows.json").read_text())
    series = sorted(p for p in NAB.rglob("*.csv") if "labels" not in p.parts)
    series = [p for p in series if args.match in str(p.relative_to(NAB))]
    if args.interleave:
        groups = [[p for p in series if p.parent == g] for g in sorted({p.parent for p in series})]
        series = [g[i] for i in range(max(map(len, groups), default=0)) for g in groups if i < len(g)]
    series = series[:args.limit]
    overrides = [*([] if args.full else FAST), *args.overrides]
    likelihood = {k: float(v) if k in ("threshold", "min_std_ratio") else int(v)
                  for k, v in (item.split("=", 1) for item in args.likelihood)}
    def one(path: Path) -> dict | None:
        key = str(path.relative_to(NAB))
        if args.work:
            work = Path(args.work) / key.replace("/", "__").removesuffix(".csv")
            if args.rescore and not (work / f"run{args.label}.json").exists():
                return None  # not run yet: rescoring never starts a pipeline
            if not args.rescore:  # a refused run must not leave the last bundle
                shutil.rmtree(work / f"bundle{args.label}", ignore_errors=True)
            row = run_series(path, key, labels, overrides, work, args.rescore, args.label, likelihood)
        else:
            with tempfile.TemporaryDirectory(prefix="edgepipe-corpus-") as tmp:
                row = run_series(path, key, labels, overrides, Path(tmp))
        print(json.dumps(row), file=sys.stderr, flush=True)
        return row

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:  # each series is its own process; threads only wait
        rows = [row for row in pool.map(one, series) if row is not None]
    if args.table:
        Path(args.table).write_text(table(rows))
    print(json.dumps({**totals(rows), "overrides": overrides}))


if __name__ == "__main__":
    main()

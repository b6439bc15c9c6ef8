"""Issue 14's corpus benchmark: every NAB series, one config, streamed causally through its exported int8 bundle.

For each CSV under ``../shared/datasets/nab`` (labels from ``labels/combined_windows.json``), ``edgepipe run
configs/nab.yaml`` with one set of overrides for all series (:data:`CONFIG`: trained on the first 15% of the series,
as a detector installed on a new machine would be; no labels used in training), then the whole series goes through
the exported bundle with the runtime (``Bundle.predict`` on the raw series: causal likelihood and alert onsets,
``runtime/likelihood.py``). Per series and in total: exported or why not, labelled windows detected (an alert
inside the window), delay from the window's start, false alerts outside windows, int8/Keras agreement; and, from
the same series in the same run, a causal rolling z-score baseline (each value against its previous 288 samples,
alert at |z| > 4, the same refractory period). Prints one JSON line with the totals; ``--table FILE`` writes the
per-series Markdown table.

Usage: python benchmarks/anomaly_corpus.py [--limit N] [--match TEXT] [--table docs/anomaly_corpus.md]
                                           [--set key=value ...]
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NAB = REPO.parent / "shared" / "datasets" / "nab"
CONFIG = ["data.split={train: 0.15, eval: 0.425, test: 0.425}", "window.size=64", "window.stride=1",
          "training.epochs=10", "training.train_on=all"]
Z_WINDOW, Z_LIMIT = 288, 4.0


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


def zscore_alerts(values: np.ndarray, refractory: int) -> list[int]:
    """Causal: step t's value against the mean and std of the previous Z_WINDOW values; one alert per refractory."""
    alerts, last = [], -10 ** 9
    for t in range(Z_WINDOW, len(values)):
        past = values[t - Z_WINDOW:t]
        std = float(past.std())
        if std > 0 and abs(float(values[t]) - float(past.mean())) / std > Z_LIMIT and t - last > refractory:
            alerts.append(t)
            last = t
    return alerts


def score(alerts: list[int], windows: list[tuple[int, int]]) -> dict:
    detected = [min((a for a in alerts if lo <= a <= hi), default=None) for lo, hi in windows]
    false = [a for a in alerts if not any(lo <= a <= hi for lo, hi in windows)]
    return {"windows": len(windows), "detected": sum(d is not None for d in detected),
            "delays": [d - lo for d, (lo, _) in zip(detected, windows) if d is not None], "false_alerts": len(false)}


def run_series(path: Path, key: str, labels: dict, overrides: list[str], work: Path) -> dict:
    from edgepipe.runtime.bundle import Bundle

    root, output = work / "root", work / "bundle"
    cmd = [sys.executable, "-m", "edgepipe", "run", str(REPO / "configs" / "nab.yaml"), "--root", str(root),
           "--output", str(output), "--set", f"data.source={path}", "--set", f"data.labels_key={key}"]
    for override in [*CONFIG, *overrides]:
        cmd += ["--set", override]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    row: dict = {"series": key, "exit": proc.returncode, "run_s": round(time.perf_counter() - started, 1)}
    stamps, values = read_series(path)
    windows = label_steps(stamps, labels.get(key, []))
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        row["reason"] = lines[-1][:200] if lines else "no message"
        refractory = 4 * 64
    else:
        bundle = Bundle.load(output)
        result = bundle.predict(values[:, None], "series")
        refractory = int(result.likelihood.refractory) if result.likelihood is not None else 4 * 64
        row["model"] = score([a["step"] for a in result.alerts()], windows)
        agreement = bundle.doc["metrics"]["agreement_with_keras"].get("int8") or {}
        row["agreement"] = agreement.get("all") if isinstance(agreement, dict) else agreement
        row["primary"] = bundle.doc["primary_variant"]
    row["baseline"] = score(zscore_alerts(values, refractory), windows)
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
            "config": CONFIG}


def table(rows: list[dict]) -> str:
    lines = ["| series | exported | int8 agreement | windows | detected | false alerts | z detected | z false |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m, b = r.get("model") or {}, r["baseline"]
        lines.append(f"| {r['series']} | {'yes' if r['exit'] == 0 else 'exit ' + str(r['exit'])} | "
                     f"{r.get('agreement') if r.get('agreement') is not None else 'n/a'} | {b['windows']} | "
                     f"{m.get('detected', '-')} | {m.get('false_alerts', '-')} | {b['detected']} | "
                     f"{b['false_alerts']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N series (sorted by name)")
    parser.add_argument("--match", default="", help="only series whose key contains this")
    parser.add_argument("--table", default=None, help="write the per-series Markdown table here")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    labels = json.loads((NAB / "labels" / "combined_windows.json").read_text())
    series = sorted(p for p in NAB.rglob("*.csv") if "labels" not in p.parts)
    series = [p for p in series if args.match in str(p.relative_to(NAB))][:args.limit]
    rows = []
    for path in series:
        key = str(path.relative_to(NAB))
        with tempfile.TemporaryDirectory(prefix="edgepipe-corpus-") as tmp:
            rows.append(run_series(path, key, labels, args.overrides, Path(tmp)))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.table:
        Path(args.table).write_text(table(rows))
    print(json.dumps(totals(rows)))


if __name__ == "__main__":
    main()

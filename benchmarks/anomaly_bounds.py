"""How far could any threshold take the corpus benchmark? Upper bounds on issue 14's detection target.

Issue 14 asks the exported detectors to find 1.5x the labelled NAB windows that a rolling z-score (|z| > 4) finds,
with no more false alerts. Before building more detectors against that number, this measures what the bundles
that :mod:`anomaly_corpus` left in ``--work`` (and the z-score itself) could reach at all, on the same series and
with the same alert rule (onsets with the bundle's refractory period):

* ``oracle``: the most windows each detector finds when *every series gets its own best threshold* (per-file tuning,
  which the product may not do), with the total false alerts held to the z-score's at |z| > 4. Per series, every
  threshold gives a (false alerts, detected) point; a knapsack over the series then picks one point each. No single
  threshold shared by all series can do better than this. ``either``: each series also picks the better detector.
* ``union``: the model's alerts and the z-score's together (one refractory period for both).
* ``quiet``: labelled windows in which nothing unusual happens to the values (every |z| < 3 against the previous
  Z_WINDOW steps, every value inside the range of the previous QUIET_PAST steps; windows that start before the
  z-score's first Z_WINDOW steps are never counted). A detector of unusual values
  cannot find these; a detector that does must alert on ordinary values, and would do so outside windows too.
* ``in_training``: windows that start inside the first 15% (the training split: learned as normal).
* ``refractory``: both detectors at refractory periods other than the bundle's, each detector with the same period.
* ``shared``: the model with one likelihood threshold for all series (as the product ships), at each of
  ``SHARED_THRESHOLDS``; ``shared_best`` is the one detecting most windows within the z-score's false alerts.

Usage: python benchmarks/anomaly_bounds.py --work DIR [--label=-NAME] [--detail]
(DIR and label as given to ``anomaly_corpus.py``; ``--detail`` prints every window the model misses to stderr.)
Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anomaly_corpus as corpus  # noqa: E402  (a sibling script, not a package)

QUIET_Z, QUIET_PAST = 3.0, 864  # "nothing unusual": |z| under 3, values within the last 3 days' range
REFRACTORY_SWEEP = (64, 128, 256, 512)
SHARED_THRESHOLDS = (0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999)
CANDIDATES = 200  # thresholds tried per series and detector (quantiles of its scores, plus its top values)


def frontier(scores: np.ndarray, windows: list[tuple[int, int]], refractory: int) -> list[tuple[int, int]]:
    """(false alerts, detected) of every candidate threshold on one series, reduced to the Pareto front (for each
    false-alert count, the most windows detected), with (0, 0) for "never alert"."""
    finite = scores[np.isfinite(scores)]
    if not len(finite):
        return [(0, 0)]
    candidates = np.unique(np.concatenate([np.quantile(finite, np.linspace(0.5, 1.0, CANDIDATES)),
                                           np.sort(finite)[-CANDIDATES:]]))
    best: dict[int, int] = {0: 0}
    flags_of = np.nan_to_num(scores, nan=-np.inf)
    for threshold in candidates:
        result = corpus.score(corpus.onsets(flags_of >= threshold, refractory), windows)
        false = result["false_alerts"]
        best[false] = max(best.get(false, 0), result["detected"])
    front, top = [], -1
    for false in sorted(best):
        if best[false] > top:
            front.append((false, best[false]))
            top = best[false]
    return front


def knapsack(fronts: list[list[tuple[int, int]]], budget: int) -> int:
    """Most windows detected over all series choosing one point per series, false alerts summing to <= budget."""
    best = np.zeros(budget + 1, dtype=np.int64)  # best[b]: most detected with at most b false alerts so far
    for front in fronts:
        nxt = np.full(budget + 1, -1, dtype=np.int64)
        for false, detected in front:
            if false <= budget:
                nxt[false:] = np.maximum(nxt[false:], best[:budget + 1 - false] + detected)
        best = nxt
    return int(best.max())


def best_within(points: dict[str, dict], budget: int) -> str | None:
    """The key of the point detecting most windows with at most ``budget`` false alerts (fewer false alerts break
    ties); None if every point raises more."""
    within = [(v["detected"], -v["false_alerts"], key) for key, v in points.items() if v["false_alerts"] <= budget]
    return max(within)[2] if within else None


def quiet(values: np.ndarray, z: np.ndarray, lo: int, hi: int) -> bool:
    """Nothing unusual in the window (see the module docstring). A window starting before the z-score has a full
    past (``Z_WINDOW`` steps) is never counted quiet: its z is not defined there."""
    if lo < corpus.Z_WINDOW:
        return False
    inside, past = values[lo:hi + 1], values[max(0, lo - QUIET_PAST):lo]
    in_range = past.min() <= inside.min() and inside.max() <= past.max()
    return bool(z[lo:hi + 1].max() < QUIET_Z and in_range)


def series_row(path: Path, key: str, labels: dict, work: Path, label: str) -> dict | None:
    from edgepipe.runtime.bundle import Bundle

    output = work / f"bundle{label}"
    if not (output / "bundle.json").exists():
        return None
    stamps, values = corpus.read_series(path)
    windows = corpus.label_steps(stamps, labels.get(key, []))
    result = Bundle.load(output).predict(values[:, None], "series")
    likelihood = np.asarray(result.step_likelihood, dtype=np.float64)
    threshold, refractory = result.likelihood.threshold, int(result.likelihood.refractory)
    z = corpus.rolling_z(values)
    model_flags, z_flags = np.nan_to_num(likelihood) >= threshold, z > corpus.Z_LIMIT
    model_alerts = corpus.onsets(model_flags, refractory)
    model = corpus.score(model_alerts, windows)
    baseline = corpus.score(corpus.onsets(z_flags, refractory), windows)
    quiet_windows = [quiet(values, z, lo, hi) for lo, hi in windows]
    misses = [{"series": key, "window": [lo, hi], "quiet": calm,
               "max_likelihood": float(np.nanmax(likelihood[lo:hi + 1])), "max_z": float(z[lo:hi + 1].max())}
              for (lo, hi), calm in zip(windows, quiet_windows) if not any(lo <= a <= hi for a in model_alerts)]
    return {"series": key, "windows": len(windows), "model": model, "baseline": baseline,
            "union": corpus.score(corpus.onsets(model_flags | z_flags, refractory), windows),
            "front_model": frontier(likelihood, windows, refractory), "front_z": frontier(z, windows, refractory),
            "quiet": sum(quiet_windows),
            "in_training": sum(lo < 0.15 * len(values) for lo, _ in windows), "misses": misses,
            "shared": {str(t): corpus.score(corpus.onsets(np.nan_to_num(likelihood) >= t, refractory), windows)
                       for t in SHARED_THRESHOLDS},
            "refractory": {str(r): {"model": corpus.score(corpus.onsets(model_flags, r), windows),
                                    "baseline": corpus.score(corpus.onsets(z_flags, r), windows)}
                           for r in REFRACTORY_SWEEP}}


def totals(rows: list[dict]) -> dict:
    def total(kind: str, key: str) -> int:
        return sum(r[kind][key] for r in rows)

    budget = total("baseline", "false_alerts")
    shared = {t: {k: sum(row["shared"][t][k] for row in rows) for k in ("detected", "false_alerts")}
              for t in map(str, SHARED_THRESHOLDS)}
    return {"series": len(rows), "windows": sum(r["windows"] for r in rows),
            "model": {"detected": total("model", "detected"), "false_alerts": total("model", "false_alerts")},
            "baseline": {"detected": total("baseline", "detected"), "false_alerts": budget},
            "target_detected": int(np.ceil(1.5 * total("baseline", "detected"))),
            "union": {"detected": total("union", "detected"), "false_alerts": total("union", "false_alerts")},
            "oracle": {"false_alert_budget": budget, "model": knapsack([r["front_model"] for r in rows], budget),
                       "baseline": knapsack([r["front_z"] for r in rows], budget),
                       "either": knapsack([r["front_model"] + r["front_z"] for r in rows], budget)},
            "quiet_windows": sum(r["quiet"] for r in rows), "in_training": sum(r["in_training"] for r in rows),
            "refractory": {r: {kind: {k: sum(row["refractory"][r][kind][k] for row in rows)
                                      for k in ("detected", "false_alerts")} for kind in ("model", "baseline")}
                           for r in map(str, REFRACTORY_SWEEP)},
            "shared": shared, "shared_best": best_within(shared, budget)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="the --work folder of an anomaly_corpus.py run")
    parser.add_argument("--label", default="", help="the --label of that run")
    parser.add_argument("--detail", action="store_true", help="print every window the model misses to stderr")
    args = parser.parse_args()
    labels = json.loads((corpus.NAB / "labels" / "combined_windows.json").read_text())
    rows = []
    for path in sorted(p for p in corpus.NAB.rglob("*.csv") if "labels" not in p.parts):
        key = str(path.relative_to(corpus.NAB))
        work = Path(args.work) / key.replace("/", "__").removesuffix(".csv")
        row = series_row(path, key, labels, work, args.label)
        if row is not None:
            rows.append(row)
            for miss in row["misses"] if args.detail else []:
                print(json.dumps(miss), file=sys.stderr)
    print(json.dumps(totals(rows)))


if __name__ == "__main__":
    main()

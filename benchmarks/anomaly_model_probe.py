"""Would a different anomaly model move the NAB corpus benchmark? A float-only probe before building one in.

The corpus benchmark (:mod:`anomaly_corpus`) runs the whole pipeline per series (about 2 minutes each). To ask
whether a longer context or a forecasting objective would find more labelled windows, this probe trains only the
float Keras model, the same way for every series, and streams its scores through the runtime's likelihood
(:mod:`edgepipe.runtime.likelihood`, alerts with a refractory period of 256 steps, as the bundles do), scoring them
with the benchmark's own rules. Variants (:data:`VARIANTS`), all the pipeline's Conv1D autoencoder
(``models/autoencoder.py``), 10 epochs, trained on the first 15% of the series, the newest 4 steps scored:

* ``reconstruction``: the window in, the window out (what the pipeline ships);
* ``forecast``: the newest 4 steps of the input are masked (held at the last value before them), so the model must
  predict them from the context: a forecasting detector in the same network and the same TFLite I/O.

each with a context of 64 (the benchmark's) or 256 steps (most of a day of 5-minute samples, enough to see a daily
cycle's shape). Inputs are z-scored with the train split's mean and std and clipped to its range (the pipeline's
``input_clip: train_range``); the score compares the reconstruction with the unclipped values. A variant skips
series whose train split holds fewer than its context + 64 steps (the 256-step variants skip the 9 shortest), so
totals are also given over the series every variant ran (``common``).

Usage: python benchmarks/anomaly_model_probe.py [--variants NAME ...] [--match TEXT] [--limit N]
Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import anomaly_corpus as corpus  # noqa: E402  (a sibling script, not a package)

VARIANTS = {"reconstruction-64": (64, False), "forecast-64": (64, True),
            "reconstruction-256": (256, False), "forecast-256": (256, True)}
STEPS, EPOCHS, TRAIN, REFRACTORY = 4, 10, 0.15, 256


def alerts(values: np.ndarray, context: int, forecast: bool) -> list[int] | None:
    """Train one variant on the series' first 15% and return its alert onsets over the whole series (None when the
    train split is too short for the context)."""
    import edgepipe  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
    import tf_keras as keras

    from edgepipe.models.autoencoder import build_conv1d_autoencoder
    from edgepipe.runtime.likelihood import LikelihoodConfig, LikelihoodState
    from edgepipe.runtime.scores import window_scores

    n, n_train = len(values), int(TRAIN * len(values))
    if n_train < context + 64:
        return None
    train = values[:n_train].astype(np.float64)
    x = ((values - train.mean()) / (train.std() or 1.0)).astype(np.float32)
    low, high = x[:n_train].min(), x[:n_train].max()
    windows = x[np.arange(context)[None, :] + np.arange(n - context + 1)[:, None]][..., None]  # window i ends at i+c-1
    inputs = np.clip(windows, low, high)
    if forecast:
        inputs = inputs.copy()
        inputs[:, context - STEPS:, 0] = inputs[:, context - STEPS - 1:context - STEPS, 0]
    fitted = n_train - context + 1  # windows wholly inside the train split
    keras.utils.set_random_seed(0)
    model = build_conv1d_autoencoder(context, 1)
    model.fit(inputs[:fitted], np.clip(windows[:fitted], low, high), epochs=EPOCHS, batch_size=32, verbose=0,
              validation_split=0.1)
    scores = window_scores(windows, model.predict(inputs, batch_size=512, verbose=0), "newest_mse", STEPS)
    prior = scores[:fitted]
    state = LikelihoodState(LikelihoodConfig(initial_mean=float(prior.mean()), initial_std=float(prior.std()),
                                             refractory=REFRACTORY))
    return [context - 1 + i for i, s in enumerate(scores) if state.update(float(s), context - 1 + i)[1]]


def totals(rows: dict[str, dict], keys: set[str]) -> dict:
    picked = [rows[k] for k in sorted(keys)]
    delays = [d for r in picked for d in r["delays"]]
    return {"series": len(picked), "windows": sum(r["windows"] for r in picked),
            "detected": sum(r["detected"] for r in picked), "false_alerts": sum(r["false_alerts"] for r in picked),
            "median_delay_steps": float(np.median(delays)) if delays else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--match", default="", help="only series whose key contains this")
    parser.add_argument("--limit", type=int, default=None, help="only the first N series (sorted by name)")
    args = parser.parse_args()
    labels = json.loads((corpus.NAB / "labels" / "combined_windows.json").read_text())
    series = sorted(p for p in corpus.NAB.rglob("*.csv") if "labels" not in p.parts)
    series = [p for p in series if args.match in str(p.relative_to(corpus.NAB))][:args.limit]
    rows: dict[str, dict[str, dict]] = {v: {} for v in args.variants}
    for path in series:
        key = str(path.relative_to(corpus.NAB))
        stamps, values = corpus.read_series(path)
        windows = corpus.label_steps(stamps, labels.get(key, []))
        for variant in args.variants:
            found = alerts(values, *VARIANTS[variant])
            if found is not None:
                rows[variant][key] = corpus.score(found, windows)
        print(json.dumps({"series": key, **{v: {k: rows[v][key][k] for k in ("detected", "false_alerts")}
                                            for v in args.variants if key in rows[v]}}), file=sys.stderr, flush=True)
    common = set.intersection(*(set(r) for r in rows.values())) if rows else set()
    print(json.dumps({"variants": {v: {"all": totals(r, set(r)), "common": totals(r, common)}
                                   for v, r in rows.items()},
                      "config": {"steps_scored": STEPS, "epochs": EPOCHS, "train": TRAIN, "refractory": REFRACTORY}}))


if __name__ == "__main__":
    main()

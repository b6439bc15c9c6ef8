"""Deterministic generator of the default dataset: multichannel industrial sensor series with known anomalies.

Why a generator and not a downloaded file: the default pipeline must run offline, the committed CSV must be
explainable (every anomaly has a recorded position and kind), and anyone can regenerate it bit-for-bit from the
seed (``python -m edgepipe.data.generate --out data/default --seed 7``) to check nothing was edited by hand.

Model of one machine (10-minute steps, 4 weeks from 2024-01-01 00:00, a Monday):

* ``load`` in [0, 1]: a two-shift daily cycle (busy 06:00-22:00, quiet at night), lighter on weekends, with a
  slowly wandering AR(1) disturbance.
* ``current`` (A) follows load around a machine-specific nominal current, plus measurement noise.
* ``temperature`` (deg C) = ambient day/night swing + a lagged (thermal inertia) response to load + slow drift.
* ``vibration`` (mm/s RMS) grows with load, has multiplicative noise and slow wear drift.

Anomalies (about five per machine, 1-12 hours, at most two in the first 60% of the series so the train split is
mostly normal): ``vibration_spikes`` (impulsive burst), ``bearing_fault`` (vibration rising several-fold, slight
heating), ``overheat`` (temperature climbing 10-18 degC above normal), ``current_shift`` (current level jumps by
+-50-70%), ``stuck_sensor`` (one channel drops out and flatlines at 0). Each is far outside normal variation so a
small Conv1D autoencoder over 32-step windows can find it. ``anomalies.json`` holds ``start``/``end`` as the ISO
timestamps of the first and last anomalous step (both inclusive, like NAB's windows).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

MACHINES = {  # nominal levels: vibration mm/s, temperature degC, current A
    "m1": {"vibration": 2.2, "temperature": 46.0, "current": 12.0},
    "m2": {"vibration": 3.1, "temperature": 53.0, "current": 18.5},
    "m3": {"vibration": 1.6, "temperature": 39.0, "current": 8.5},
}
CHANNELS = ("vibration", "temperature", "current")
START = np.datetime64("2024-01-01T00:00:00", "s")
STEP_SECONDS = 600
DAYS = 28
STEPS = DAYS * 24 * 3600 // STEP_SECONDS  # 4032
KINDS = ("vibration_spikes", "bearing_fault", "overheat", "current_shift", "stuck_sensor")
DURATION_HOURS = {"vibration_spikes": (1, 3), "bearing_fault": (6, 12), "overheat": (4, 10),
                  "current_shift": (3, 8), "stuck_sensor": (2, 6)}
# Where anomalies may start, as fractions of the series: one in the train part, two in eval, two in test (for the
# default 0.6/0.2/0.2 time split), each slot wide enough for the longest anomaly.
SLOTS = ((0.15, 0.55), (0.62, 0.70), (0.71, 0.79), (0.81, 0.89), (0.90, 0.98))


def _normal_series(rng: np.random.Generator, level: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Normal operation of one machine: (load [T], values [T, 3])."""
    t = np.arange(STEPS)
    hours = (t * STEP_SECONDS / 3600.0) % 24.0
    weekday = (t * STEP_SECONDS // 86400) % 7  # 0 = Monday
    shift = 1.0 / (1.0 + np.exp(-(hours - 6.0) * 2.0)) - 1.0 / (1.0 + np.exp(-(hours - 22.0) * 2.0))
    daily = 0.25 + 0.6 * shift + 0.08 * np.sin(2 * np.pi * (hours - 9.0) / 24.0)
    weekly = np.where(weekday >= 5, 0.6, 1.0)
    wander = np.zeros(STEPS)
    shocks = rng.normal(0.0, 0.02, STEPS)
    for i in range(1, STEPS):  # AR(1): slowly varying production rate
        wander[i] = 0.97 * wander[i - 1] + shocks[i]
    load = np.clip(daily * weekly + wander, 0.05, 1.0)

    current = level["current"] * (0.35 + 0.65 * load) + rng.normal(0.0, 0.12, STEPS)
    lagged = np.zeros(STEPS)  # first-order thermal lag, time constant ~1 hour
    for i in range(1, STEPS):
        lagged[i] = lagged[i - 1] + (load[i] - lagged[i - 1]) / 6.0
    lagged[0] = lagged[1]
    ambient = 2.0 * np.sin(2 * np.pi * (hours - 9.0) / 24.0)
    drift_t = rng.uniform(0.3, 1.0) * t / STEPS
    temperature = level["temperature"] - 6.0 + 10.0 * lagged + ambient + drift_t + rng.normal(0.0, 0.2, STEPS)
    wear = 1.0 + rng.uniform(0.02, 0.05) * t / STEPS
    vibration = level["vibration"] * (0.55 + 0.6 * load) * wear * rng.lognormal(0.0, 0.05, STEPS)
    return load, np.stack([vibration, temperature, current], axis=1)


def _inject(rng: np.random.Generator, values: np.ndarray, kind: str, lo: int, hi: int, level: dict) -> None:
    """Apply one anomaly in place on steps [lo, hi)."""
    n = hi - lo
    ramp = np.linspace(0.0, 1.0, n)
    if kind == "vibration_spikes":
        hits = rng.random(n) < 0.5
        values[lo:hi, 0] *= 1.6
        values[lo:hi, 0] += hits * np.abs(rng.normal(4.0, 1.5, n)) * level["vibration"]
    elif kind == "bearing_fault":
        values[lo:hi, 0] *= 1.0 + 3.0 * np.sqrt(ramp) + np.abs(rng.normal(0.0, 0.3, n))
        values[lo:hi, 1] += 3.0 * ramp
    elif kind == "overheat":
        values[lo:hi, 1] += rng.uniform(10.0, 18.0) * np.minimum(1.0, 2.5 * ramp)
        values[lo:hi, 2] *= 1.06
    elif kind == "current_shift":
        values[lo:hi, 2] *= 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 0.7)
        values[lo:hi, 0] *= 1.15
    elif kind == "stuck_sensor":
        values[lo:hi, rng.integers(0, len(CHANNELS))] = 0.0
    else:  # pragma: no cover - KINDS is closed
        raise ValueError(kind)


def generate(seed: int = 7) -> tuple[list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], list[dict]]:
    """Return ([(machine, timestamps, values [T,3], anomaly [T])...], anomalies) for a seed."""
    rng = np.random.default_rng(seed)
    timestamps = START + np.arange(STEPS) * np.timedelta64(STEP_SECONDS, "s")
    series, anomalies = [], []
    for machine, level in MACHINES.items():
        _, values = _normal_series(rng, level)
        labels = np.zeros(STEPS, dtype=np.int64)
        kinds = list(rng.permutation(KINDS))
        for kind, (f_lo, f_hi) in zip(kinds, SLOTS):
            h_lo, h_hi = DURATION_HOURS[kind]
            length = int(rng.integers(h_lo * 6, h_hi * 6 + 1))
            first = int(rng.integers(int(f_lo * STEPS), int(f_hi * STEPS) - length))
            _inject(rng, values, kind, first, first + length, level)
            labels[first:first + length] = 1
            anomalies.append({"machine": machine, "kind": kind, "start": str(timestamps[first]),
                              "end": str(timestamps[first + length - 1])})
        values = np.maximum(values, 0.0)  # physical quantities here are non-negative
        series.append((machine, timestamps, values, labels))
    return series, anomalies


def write(out: str | Path, seed: int = 7) -> tuple[Path, Path]:
    """Write ``sensors.csv`` and ``anomalies.json`` into ``out``; byte-identical for equal seeds."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    series, anomalies = generate(seed)
    lines = ["machine,timestamp," + ",".join(CHANNELS) + ",anomaly"]
    for machine, timestamps, values, labels in series:
        for ts, row, label in zip(timestamps.astype(str), values, labels):
            lines.append(f"{machine},{ts},{row[0]:.4f},{row[1]:.4f},{row[2]:.4f},{label}")
    csv_path = out / "sensors.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    json_path = out / "anomalies.json"
    json_path.write_text(json.dumps(anomalies, indent=2) + "\n", encoding="utf-8", newline="\n")
    return csv_path, json_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (sensors.csv, anomalies.json)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    csv_path, json_path = write(args.out, args.seed)
    print(f"wrote {csv_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

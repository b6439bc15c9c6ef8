"""Offline datasets for the model-family templates, written as ``.npz`` files (deterministic for a seed).

* ``digits``: scikit-learn's bundled 8x8 digits (1797 images, no download), ``x`` [n, 8, 8, 1] in 0..1, ``y`` 0..9;
* ``shapes``: generated images of circles/squares/triangles with a per-pixel mask (``mask``: 0 background, 1 circle,
  2 square, 3 triangle) for segmentation, ``y`` = the shape class of the image;
* ``waveforms``: sequences of sine/square/sawtooth waves with noise (classification, ``x`` [n, steps, 1]);
* ``forecast``: windows of a noisy multi-periodic signal and the next value (sequence-to-one forecasting).

``python -m edgepipe.data.synthetic NAME OUT.npz`` writes one; :func:`ensure` writes it once into a folder.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    return {"x": x, "y": bunch.target.astype(np.int64), "class_names": np.array([str(i) for i in range(10)])}


def shapes(n: int = 600, size: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    x = np.zeros((n, size, size, 1), np.float32)
    mask = np.zeros((n, size, size), np.int64)
    y = rng.integers(0, 3, size=n)
    for i in range(n):
        r = rng.uniform(size * 0.15, size * 0.3)
        cy, cx = rng.uniform(r, size - r, size=2)
        if y[i] == 0:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
        elif y[i] == 1:
            inside = (np.abs(yy - cy) <= r * 0.8) & (np.abs(xx - cx) <= r * 0.8)
        else:
            inside = (yy >= cy - r) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - (cy - r)) / 2)
        mask[i][inside] = y[i] + 1
        x[i, ..., 0] = np.where(inside, rng.uniform(0.6, 1.0), 0.0) + rng.normal(0, 0.05, (size, size))
    return {"x": np.clip(x, 0, 1), "y": y.astype(np.int64), "mask": mask,
            "class_names": np.array(["circle", "square", "triangle"])}


def waveforms(n: int = 900, steps: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[None, :]
    y = rng.integers(0, 3, size=n)
    period = rng.uniform(8, 24, size=(n, 1))
    phase = rng.uniform(0, 1, size=(n, 1))
    u = (t / period + phase) % 1.0
    waves = np.stack([np.sin(2 * np.pi * u), np.where(u < 0.5, 1.0, -1.0), 2 * u - 1], axis=0)
    x = waves[y, np.arange(n)] * rng.uniform(0.5, 1.5, size=(n, 1)) + rng.normal(0, 0.2, size=(n, steps))
    return {"x": x[..., None].astype(np.float32), "y": y.astype(np.int64),
            "class_names": np.array(["sine", "square", "sawtooth"])}


def forecast(n: int = 1200, steps: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    total = n + steps + 1
    t = np.arange(total)
    series = np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 168) + rng.normal(0, 0.1, total)
    idx = np.arange(n)[:, None] + np.arange(steps)[None, :]
    return {"x": series[idx][..., None].astype(np.float32), "y": series[np.arange(n) + steps].astype(np.float32)}


DATASETS = {"digits": digits, "shapes": shapes, "waveforms": waveforms, "forecast": forecast}


def write(name: str, path: str | Path) -> Path:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset '{name}' (allowed: {', '.join(DATASETS)})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez(tmp, **DATASETS[name]())  # uncompressed: the Beam ingest reads row ranges by seeking into the arrays
    tmp.replace(path)
    return path


def ensure(name: str, folder: str | Path) -> Path:
    """``folder/name.npz``, generated on first use (the content is deterministic, so caches stay valid)."""
    path = Path(folder) / f"{name}.npz"
    return path if path.exists() else write(name, path)


if __name__ == "__main__":  # pragma: no cover
    write(sys.argv[1], sys.argv[2])

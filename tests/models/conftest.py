"""Tiny Examples artifacts for the model-family tests, written with the Examples contract."""
from __future__ import annotations

import numpy as np
import pytest

import edgepipe  # noqa: F401
from edgepipe.components.training.arrays import write_examples
from edgepipe.pipeline.artifacts import Examples


def blobs(n: int, seed: int = 0, features: int = 4, classes: int = 3):
    """Separable Gaussian blobs: ``x`` [n, features] float32, ``label`` [n] int64."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    return (centers[y] + rng.normal(0, 0.5, size=(n, features))).astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="session")
def tabular_examples(tmp_path_factory) -> Examples:
    root = tmp_path_factory.mktemp("tabular")
    splits = {}
    for i, (split, n) in enumerate({"train": 128, "eval": 32, "test": 32}.items()):
        x, y = blobs(n, seed=0)
        x = x + np.random.default_rng(i).normal(0, 0.01, x.shape).astype(np.float32)
        splits[split] = {"x": x, "label": y}
    return write_examples(Examples(root / "examples"), splits, shards=2, kind="arrays")

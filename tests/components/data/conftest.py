"""Helpers to run data components outside the runner: fresh output artifacts under tmp_path, finalize after."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepipe.components.data.beam.example_decode import iter_examples


def run_component(comp, root: Path, **params):
    """Call ``comp.fn`` with new Output artifacts in ``root/<name>``; returns (metrics, {name: artifact})."""
    outputs = {name: typ(Path(root) / name) for name, typ in comp.outputs.items()}
    metrics = comp.fn(**outputs, **params)
    for artifact in outputs.values():
        artifact.finalize()
    return metrics, outputs


def series_rows(examples, split: str) -> dict[str, dict[str, np.ndarray]]:
    """Chunks of one split re-assembled per series (ordered by start): start, timestamp, values, label."""
    channels = len(examples.properties["channels"])
    grouped: dict[str, list] = {}
    for ex in iter_examples(examples, split):
        grouped.setdefault(ex["series"], []).append(ex)
    out = {}
    for sid, chunks in grouped.items():
        chunks.sort(key=lambda c: int(c["start"][0]))
        out[sid] = {
            "start": np.concatenate([c["start"][0] + np.arange(len(c["timestamp"])) for c in chunks]),
            "timestamp": np.concatenate([c["timestamp"] for c in chunks]),
            "values": np.concatenate([c["values"].reshape(-1, channels) for c in chunks]),
            "label": np.concatenate([c["label"] for c in chunks]),
        }
    return out


@pytest.fixture(scope="session")
def run():
    return run_component


@pytest.fixture(scope="session")
def rows():
    return series_rows

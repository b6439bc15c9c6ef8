"""One real run of the default pipeline on a small configuration, shared by the runtime and report tests.

The run happens in a subprocess (``python -m edgepipe run``) so the pytest process never imports TensorFlow, and is
memoized per session: each test module asks for it through a module-scoped fixture, but the pipeline runs once.
"""
from __future__ import annotations

import csv
import functools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgepipe.pipeline.metadata import MetadataStore

REPO = Path(__file__).resolve().parents[2]
TAXI = REPO.parent / "shared" / "datasets" / "taxi" / "data.csv"
SENSORS = REPO / "data" / "default" / "sensors.csv"
SMALL = ["training.epochs=3", "prune.epochs=1", "qat.epochs=1"]
CHANNELS = ["vibration", "temperature", "current"]
SPLIT = {"train": 0.6, "eval": 0.2, "test": 0.2}  # configs/default.yaml's data.split


def edgepipe(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgepipe", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def run_args(root: Path, output: Path, overrides: list[str]) -> list[str]:
    args = ["run", "--root", str(root), "--output", str(output)]
    for override in overrides:
        args += ["--set", override]
    return args


@dataclass(frozen=True)
class PipelineRun:
    root: Path
    bundle: Path
    stdout: str

    def artifact(self, node: str, output: str) -> Path:
        """Directory of ``node``'s output ``output`` in the latest run."""
        store = MetadataStore(self.root / "metadata.sqlite")
        run = store.runs(1)[0]
        for execution in store.executions(run["id"]):
            if execution["node"] == node:
                return Path(next(a["uri"] for a in execution["artifacts"] if a["name"] == output))
        raise KeyError(node)


@functools.cache
def _run(base: str) -> PipelineRun:
    root, bundle = Path(base) / "root", Path(base) / "bundle"
    result = edgepipe(*run_args(root, bundle, SMALL))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return PipelineRun(root, bundle, result.stdout)


def default_run(tmp_path_factory) -> PipelineRun:
    return _run(str(tmp_path_factory.getbasetemp() / "default-run"))


def raw_series(machine: str) -> np.ndarray:
    """The raw rows of one machine from the embedded CSV, in file (= time) order, as float64 [T, 3]."""
    with SENSORS.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["machine"] == machine]
    return np.array([[float(r[c]) for c in CHANNELS] for r in rows], dtype=np.float64)


def split_bounds(length: int) -> dict[str, tuple[int, int]]:
    """Step ranges of each split of a series, computed as ingest does (rounded cumulative fractions)."""
    bounds = np.round(np.cumsum([0.0, *SPLIT.values()]) * length).astype(int)
    bounds[-1] = length
    return {name: (int(lo), int(hi)) for name, lo, hi in zip(SPLIT, bounds[:-1], bounds[1:])}


def taxi_head(n: int = 40) -> tuple[list[str], list[list[str]]]:
    """The shared taxi sample's header and first ``n`` rows as text (the test is skipped without ../shared)."""
    import pytest

    if not TAXI.is_file():
        pytest.skip(f"taxi data not found at {TAXI}")
    with TAXI.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [row for _, row in zip(range(n), reader)]

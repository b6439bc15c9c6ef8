"""A real pipeline root for the UI tests, built once per session: two runs of a tiny anomaly config (the second
trains one more epoch, so its data nodes are cache hits of the first), plus a directory holding that config, the
only one the UI under test may launch."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgepipe.pipeline.metadata import MetadataStore

REPO = Path(__file__).resolve().parents[2]
# Small enough for seconds per run: no prune/QAT/cluster stages, two variants, few latency invokes.
TINY = """\
pipeline: {name: tiny, template: anomaly_detection}
training: {epochs: 2, batch_size: 64}
prune: {enabled: false}
qat: {enabled: false}
cluster: {enabled: false}
convert: {variants: [float32, int8_ptq], primary: int8_ptq}
evaluate: {latency_runs: 5}
"""


@dataclass
class Fixture:
    root: Path
    configs: Path
    first: str   # run id: epochs 2, nothing cached
    second: str  # run id: epochs 3, data nodes cached from the first
    workdir: Path
    nodes: list[str]  # node names of the pipeline, in execution order (as the template names them today)


def edgepipe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgepipe", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="session")
def ui_fixture(tmp_path_factory) -> Fixture:
    base = tmp_path_factory.mktemp("ui")
    configs = base / "configs"
    configs.mkdir()
    (configs / "tiny.yaml").write_text(TINY)
    root = base / "root"
    ids = []
    for n, epochs in enumerate((2, 3)):
        done = edgepipe("run", str(configs / "tiny.yaml"), "--root", str(root), "--output", str(base / f"b{n}"),
                        "--set", f"training.epochs={epochs}", cwd=base)
        assert done.returncode == 0, done.stderr[-2000:]
        ids.append(MetadataStore(root / "metadata.sqlite").runs(1)[0]["id"])
    nodes = [e["node"] for e in MetadataStore(root / "metadata.sqlite").executions(ids[0])]
    return Fixture(root, configs, ids[0], ids[1], base, nodes)


def live_run(ui_fixture: Fixture, tmp_path: Path) -> tuple[Path, MetadataStore, str, int]:
    """A copy of the fixture's store with one more run, started by this (live) process, at its first node:
    ``(root, store, run_id, execution id of ingest_timeseries)``.

    Copied with SQLite's backup API, not as a file: opening and closing the database file in a process that holds
    SQLite connections to it drops that process's POSIX locks on it, and this process's readers then kept an old
    snapshot while another process wrote (the queue test, run after this, never saw its job's run start)."""
    import sqlite3

    root = tmp_path / "root"
    root.mkdir()
    source, copy = sqlite3.connect(ui_fixture.root / "metadata.sqlite"), sqlite3.connect(root / "metadata.sqlite")
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    store = MetadataStore(root / "metadata.sqlite")
    run_id = store.start_run("tiny", {"pipeline": {"template": "anomaly_detection"}, "model": {"family": "x"}})
    return root, store, run_id, store.start_execution(run_id, "ingest_timeseries", "ingest_timeseries", "v", "k1", {})

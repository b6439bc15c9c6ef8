"""Ctrl-C on ``edgepipe run``: the first stops training between batches within seconds (exit 130, run
``interrupted``), and the next run resumes the training from its checkpoint and completes."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.pipeline.conftest import sigint_as_on_a_terminal

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(3, 4))
    y = rng.integers(0, 3, 400)
    x = centers[y] + rng.normal(0, 0.5, (400, 4))
    rows = ["a,b,c,d,label"] + [",".join(f"{v:.4f}" for v in row) + f",{k}" for row, k in zip(x, y)]
    (tmp_path / "blobs.csv").write_text("\n".join(rows) + "\n")
    config = tmp_path / "ctrlc.yaml"
    config.write_text(f"""
pipeline: {{name: ctrlc, template: supervised}}
data: {{source: {tmp_path / 'blobs.csv'}, label_column: label, feature_columns: [a, b, c, d],
        split: {{train: 0.7, eval: 0.1, test: 0.2}}}}
model: {{family: mlp, task: classification, hparams: {{units: [16], dropout: 0.0, learning_rate: 0.01}}}}
training: {{epochs: 40, batch_size: 1, patience: 0, seed: 0}}
prune: {{enabled: false}}
qat: {{enabled: false}}
cluster: {{enabled: false}}
convert: {{variants: [float32, int8_ptq]}}
evaluate: {{split: test}}
""")
    return config


def _edgepipe(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgepipe", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_as_on_a_terminal,
                            **kwargs)


class Lines:
    """Collects a stream's lines in a thread; ``wait_for`` blocks until one contains a text."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self.closed = False
        self._seen = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()
        with self._seen:
            self.closed = True
            self._seen.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        with self._seen:
            self._seen.wait_for(lambda: self.closed or any(text in line for line in self.lines), timeout)
            return any(text in line for line in self.lines)


@pytest.mark.slow
def test_first_ctrl_c_stops_training_within_seconds_and_the_next_run_resumes(tmp_path):
    config, root = _config(tmp_path), tmp_path / "root"
    args = ("run", str(config), "--root", str(root), "--output", str(tmp_path / "bundle"))
    proc = _edgepipe(*args)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    assert out.wait_for("train_model                  epoch 2/40", timeout=240), "\n".join(out.lines + err.lines)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    seconds = time.monotonic() - sent
    assert code == 130, "\n".join(out.lines + err.lines)
    assert seconds < 5, f"took {seconds:.1f}s to stop"
    assert err.wait_for("stopping after the current step ... (Ctrl-C again to abort now)", 5)
    assert any("train_model" in line and "interrupted" in line for line in out.lines)
    (checkpoint,) = (root / "checkpoints").iterdir()
    assert (checkpoint / "phase1" / "state.json").exists()

    runs = subprocess.run([sys.executable, "-m", "edgepipe", "runs", "--root", str(root)], cwd=REPO,
                          capture_output=True, text=True)
    assert runs.returncode == 0 and " interrupted " in runs.stdout.splitlines()[1], runs.stdout

    again = _edgepipe(*args)
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stdout + stderr
    epochs = [int(m.group(1)) for m in re.finditer(r"train_model +epoch (\d+)/40", stdout)]
    assert epochs[0] > 2 and epochs[-1] == 40  # resumed after the last checkpointed epoch
    assert not checkpoint.exists()  # removed once training succeeded

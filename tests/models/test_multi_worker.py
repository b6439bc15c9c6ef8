"""REAL multi-worker training: two worker processes on localhost under MultiWorkerMirroredStrategy (TF_CONFIG)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

WORKER = Path(__file__).with_name("multiworker_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("localhost", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _weights(h5_file: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(h5_file, "r") as f:
        f["model_weights"].visititems(lambda name, obj: out.__setitem__(name, obj[()])
                                      if isinstance(obj, h5py.Dataset) else None)
    return out


def test_two_workers_train_in_sync_and_loss_decreases(tabular_examples, tmp_path):
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                      "task": {"type": "worker", "index": index}}),
               "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
        procs.append(subprocess.Popen(
            [sys.executable, str(WORKER), str(tabular_examples.path), str(tmp_path / f"model{index}"),
             str(tmp_path / f"ckpt{index}")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for code, out, err in results:
        assert code == 0, err[-3000:]
    histories = [json.loads((tmp_path / f"model{i}" / "history.json").read_text()) for i in range(2)]
    for history in histories:
        assert history["strategy"]["class"] in ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")
        assert history["strategy"]["replicas"] == 2
        assert history["global_batch_size"] == 32
        loss = history["phases"]["phase1"]["loss"]
        assert len(loss) == 4 and loss[-1] < loss[0] * 0.7, loss
    assert histories[0]["phases"]["phase1"]["loss"] == histories[1]["phases"]["phase1"]["loss"]
    w0, w1 = (_weights(tmp_path / f"model{i}" / "model.h5") for i in range(2))
    assert w0.keys() == w1.keys() and len(w0) >= 4
    for name in w0:
        np.testing.assert_allclose(w0[name], w1[name], rtol=1e-6, atol=1e-6, err_msg=name)

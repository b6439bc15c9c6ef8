"""train_autoencoder: trains on normal windows by default, early-stops on eval normal windows, saves the model."""
import numpy as np
import pytest

from edgepipe.components.training import train_autoencoder
from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Model
from edgepipe.pipeline.errors import ConfigError
from tests.components.fixtures import CHANNELS, SPLITS, TINY, WINDOW, make_windows_examples


def test_trained_model_artifact_is_complete(trained_model, windows_examples):
    net = trained_model.load_keras()
    assert net.input_shape == (None, WINDOW, CHANNELS)
    history = trained_model.read_json("history.json")
    assert history["monitor"] == "val_loss"
    assert history["train_windows"] == SPLITS["train"][0] - SPLITS["train"][1]  # anomalous windows dropped
    assert history["eval_normal_windows"] == SPLITS["eval"][0] - SPLITS["eval"][1]
    assert history["history"]["loss"][-1] < history["history"]["loss"][0]
    assert trained_model.properties["window_size"] == WINDOW and trained_model.properties["train_on"] == "normal"
    assert ModelCard.of(trained_model).to_properties() == trained_model.properties  # the card stores them as-is
    x = windows_examples.read_numpy("eval")["window"][:4]
    assert net.predict(x, verbose=0).shape == x.shape


def test_train_on_all_with_mirrored_strategy(windows_examples, tmp_path):
    model = Model(tmp_path / "m")
    metrics = train_autoencoder.fn(windows=windows_examples, model=model, epochs=1, batch_size=32, train_on="all",
                                   strategy="mirrored", **TINY)
    history = model.read_json("history.json")
    assert metrics["train_windows"] == SPLITS["train"][0]
    assert history["strategy"]["class"] == "MirroredStrategy"
    assert history["global_batch_size"] == 32 * history["strategy"]["replicas"]


def test_without_eval_split_early_stopping_watches_training_loss(tmp_path):
    windows = make_windows_examples(tmp_path / "w", splits={"train": (24, 0)})
    model = Model(tmp_path / "m")
    train_autoencoder.fn(windows=windows, model=model, epochs=2, batch_size=8, strategy="default", **TINY)
    history = model.read_json("history.json")
    assert history["monitor"] == "loss" and history["eval_normal_windows"] == 0
    assert np.isfinite(history["history"]["loss"]).all()


def test_bad_train_on_and_window_size_are_config_errors(windows_examples, tmp_path):
    with pytest.raises(ConfigError, match="train_on must be one of"):
        train_autoencoder.fn(windows=windows_examples, model=Model(tmp_path / "a"), train_on="anomalies")
    with pytest.raises(ConfigError, match="divisible"):
        train_autoencoder.fn(windows=windows_examples, model=Model(tmp_path / "b"), filters=[4, 4, 4, 4, 4],
                             epochs=1)


def test_strategy_is_an_execution_parameter():
    assert "strategy" in train_autoencoder.execution_params


def _train_with(windows, out, execution, **params):
    from edgepipe.pipeline.executor import invoke

    params = {"epochs": 6, "batch_size": 16, "patience": 2, "strategy": "default", **TINY, **params}
    outputs, _ = invoke(train_autoencoder, {"windows": windows}, {"model": out}, params, execution=execution)
    return outputs["model"]


def test_stopped_training_resumes_at_its_epoch_and_ends_with_the_uninterrupted_weights(windows_examples, tmp_path):
    """Stop (as the first Ctrl-C does) after epoch 3 of 6, run again: epochs 4-6 only, bitwise the same weights."""
    import threading

    from edgepipe.pipeline import progress

    reference = _train_with(windows_examples, tmp_path / "ref", None).load_keras().get_weights()
    events = []

    def stop_after_3(event):
        events.append(event)
        if event.kind == "epoch" and event.step == 3:
            first.stop.set()

    key = "f" * 64
    first = progress.Execution("train", "e1", key, sink=stop_after_3, stop=threading.Event())
    root = tmp_path / "ckpt"
    with pytest.raises(progress.StopRequested):
        _train_with(windows_examples, tmp_path / "a", first, checkpoint_root=str(root))
    assert [e.step for e in events if e.kind == "epoch"] == [1, 2, 3]
    assert any(e.kind == "batch" for e in events)
    (saved,) = root.iterdir()
    assert saved.name == f"train_autoencoder-{key[:24]}"

    resumed_events = []
    second = progress.Execution("train", "e2", key, sink=resumed_events.append)
    model = _train_with(windows_examples, tmp_path / "b", second, checkpoint_root=str(root))
    assert [e.step for e in resumed_events if e.kind == "epoch"] == [4, 5, 6]
    history = model.read_json("history.json")
    assert history["resumed_at_epoch"] == 3 and len(history["history"]["loss"]) == 6
    for got, want in zip(model.load_keras().get_weights(), reference):
        np.testing.assert_array_equal(got, want)
    assert not saved.exists()  # deleted once the training succeeded


def test_a_different_cache_key_does_not_resume(windows_examples, tmp_path):
    from edgepipe.pipeline import progress

    root = tmp_path / "ckpt"
    stop_at_1 = progress.Execution("train", "e1", "a" * 64)
    stop_at_1.sink = lambda e: stop_at_1.stop.set() if e.kind == "epoch" else None
    with pytest.raises(progress.StopRequested):
        _train_with(windows_examples, tmp_path / "a", stop_at_1, checkpoint_root=str(root), epochs=3)
    other = progress.Execution("train", "e2", "b" * 64)
    model = _train_with(windows_examples, tmp_path / "b", other, checkpoint_root=str(root), epochs=3)
    assert model.read_json("history.json")["resumed_at_epoch"] == 0
    assert [p.name for p in root.iterdir()] == [f"train_autoencoder-{'a' * 24}"]  # the other one's stays


KILLED_TRAINING = """
import sys
import edgepipe  # noqa: F401
from edgepipe.components.training import train_autoencoder
from edgepipe.pipeline import progress
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.executor import invoke
from tests.components.fixtures import TINY

windows, out, root = sys.argv[1:4]
invoke(train_autoencoder, {"windows": Examples.open(windows)}, {"model": out},
       {"epochs": 40, "batch_size": 16, "patience": 40, "strategy": "default", **TINY, "checkpoint_root": root},
       execution=progress.Execution("train", "e1", "9" * 64))
"""


def test_training_killed_with_sigkill_resumes_at_its_last_checkpoint_with_the_same_final_weights(
        windows_examples, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from edgepipe.pipeline import progress

    repo, root = Path(__file__).resolve().parents[3], tmp_path / "ckpt"
    state = root / f"train_autoencoder-{'9' * 24}" / "state.json"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_TRAINING, str(windows_examples.path), str(tmp_path / "a"),
                             str(root)], cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    saved_epoch = json.loads(state.read_text())["epoch"]
    assert 3 <= saved_epoch < 40

    epochs = []
    resumed = _train_with(windows_examples, tmp_path / "b", progress.Execution(
        "train", "e2", "9" * 64, sink=lambda e: epochs.append(e.step) if e.kind == "epoch" else None),
        checkpoint_root=str(root), epochs=40, patience=40)
    assert epochs[0] == saved_epoch + 1 and epochs[-1] == 40
    reference = _train_with(windows_examples, tmp_path / "ref", None, epochs=40, patience=40)
    for got, want in zip(resumed.load_keras().get_weights(), reference.load_keras().get_weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=0)

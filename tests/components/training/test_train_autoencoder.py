"""train_autoencoder: trains on normal windows by default, early-stops on eval normal windows, saves the model."""
import numpy as np
import pytest

from edgepipe.components.training import train_autoencoder
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

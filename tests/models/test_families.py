"""Every registered family builds, trains a step on tiny data and rejects bad hyperparameters and misfit data."""
import numpy as np
import pytest

import edgepipe  # noqa: F401
from edgepipe.models import available, build
from edgepipe.models.registry import family, hyperparameters
from edgepipe.models.spec import DataSpec
from edgepipe.pipeline.errors import ConfigError

RNG = np.random.default_rng(0)


def _fit_one_step(model, x, y):
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    return history


CASES = {
    "mlp": (DataSpec((5,), "classification", 3), {"units": [8]}, (5,), "cls3"),
    "mlp_regression": (DataSpec((5,), "regression"), {"units": [8], "batch_norm": True}, (5,), "reg"),
    "cnn": (DataSpec((8, 8, 1), "classification", 4), {"filters": [4, 8]}, (8, 8, 1), "cls4"),
    "rnn": (DataSpec((10, 2), "classification", 2), {"units": [4], "cell": "gru"}, (10, 2), "cls2"),
    "rnn_forecast": (DataSpec((10, 1), "forecasting", output_dim=1), {"units": [4]}, (10, 1), "reg"),
    "conv1d": (DataSpec((16, 3), "classification", 2), {"filters": [4, 4]}, (16, 3), "cls2"),
    "unet": (DataSpec((8, 8, 1), "segmentation", 3), {"filters": [4, 8]}, (8, 8, 1), "seg3"),
    "mobilenet_v2": (DataSpec((8, 8, 1), "classification", 3), {"image_size": 32}, (8, 8, 1), "cls3"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_supervised_family_builds_and_trains_a_step(case):
    spec, hparams, shape, target = CASES[case]
    model = build(case.split("_")[0] if case != "mobilenet_v2" else case, spec, **hparams)
    x = RNG.uniform(0, 1, size=(6, *shape)).astype("float32")
    if target.startswith("cls"):
        y = RNG.integers(0, int(target[3:]), size=6)
        assert model.output_shape == (None, int(target[3:]))
    elif target.startswith("seg"):
        y = RNG.integers(0, int(target[3:]), size=(6, *shape[:2]))
        assert model.output_shape == (None, *shape[:2], int(target[3:]))
    else:
        y = RNG.normal(size=(6, 1)).astype("float32")
    _fit_one_step(model, x, y)


def test_every_issue_family_is_registered_with_a_description():
    names = available()
    for name in ("mlp", "cnn", "rnn", "conv1d", "autoencoder", "unet", "mobilenet_v2", "dcgan", "cgan", "dqn"):
        assert names.get(name), name


def test_dense_autoencoder_and_its_encoder():
    from edgepipe.models.autoencoder import encoder

    model = build("autoencoder", DataSpec((12, 2), "reconstruction"), variant="dense", units=[8], embedding_dim=3)
    x = RNG.normal(size=(4, 12, 2)).astype("float32")
    _fit_one_step(model, x, x)
    enc = encoder(model)
    assert enc.output_shape == (None, 3)
    assert enc.get_layer("embedding").get_weights()[0] is not None


@pytest.mark.parametrize("name,spec,what", [
    ("rnn", DataSpec((8, 8, 1), "classification", 3), "expects sequences"),
    ("cnn", DataSpec((4,), "classification", 3), "expects images"),
    ("mlp", DataSpec((8, 8, 1), "classification", 3), "expects tabular"),
    ("unet", DataSpec((8, 8, 1), "classification", 3), "does not do task 'classification'"),
    ("cnn", DataSpec((8, 8, 1), "regression"), "does not do task 'regression'"),
    ("unet", DataSpec((10, 10, 1), "segmentation", 2), "divisible"),
    ("dcgan", DataSpec((6, 6, 1), "generation"), "divisible"),
    ("autoencoder", DataSpec((8, 8, 1), "reconstruction"), "variant: dense"),
])
def test_data_spec_that_does_not_fit_the_family_is_one_config_error(name, spec, what):
    with pytest.raises(ConfigError, match=what) as info:
        build(name, spec)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("hparams,what", [
    ({"filters": "abc"}, "hyperparameter 'filters'"),
    ({"dropout": "high"}, "hyperparameter 'dropout'"),
    ({"pooling": "median"}, "hyperparameter 'pooling'"),
    ({"dropout": 1.5}, r"'dropout' must be in \[0.0, 1.0\)"),
    ({"filters": [0, 4]}, "positive integers"),
    ({"kernel": 3}, "no hyperparameter 'kernel'"),
])
def test_bad_hyperparameters_are_one_config_error(hparams, what):
    with pytest.raises(ConfigError, match=what) as info:
        build("cnn", DataSpec((8, 8, 1), "classification", 3), **hparams)
    assert "\n" not in str(info.value)


def test_hyperparameters_have_defaults_and_families_know_their_trainer():
    assert hyperparameters("cnn")["filters"] == (32, 64)
    assert family("dcgan").trainer == "gan" and family("dqn").trainer == "rl" and family("mlp").trainer == "supervised"


def test_mobilenet_never_downloads_a_missing_weights_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*never downloads"):
        build("mobilenet_v2", DataSpec((8, 8, 1), "classification", 3), weights=str(tmp_path / "none.h5"))


def test_mobilenet_loads_a_local_weights_file_and_fine_tunes(tmp_path):
    from edgepipe.models.mobilenet import BASE_NAME, unfreeze_for_fine_tuning

    spec = DataSpec((8, 8, 3), "classification", 2)
    first = build("mobilenet_v2", spec, image_size=32)
    path = tmp_path / "base.h5"
    first.get_layer(BASE_NAME).save_weights(str(path))
    model = build("mobilenet_v2", spec, image_size=32, weights=str(path))
    base = model.get_layer(BASE_NAME)
    np.testing.assert_array_equal(base.get_weights()[0], first.get_layer(BASE_NAME).get_weights()[0])
    assert not base.trainable and len(model.trainable_weights) == 2  # phase 1: only the head
    n = unfreeze_for_fine_tuning(model, spec, fine_tune_at=140, learning_rate=1e-4)
    assert 0 < n < len(base.layers) and len(model.trainable_weights) > 2
    _fit_one_step(model, RNG.uniform(size=(4, 8, 8, 3)).astype("float32"), np.array([0, 1, 0, 1]))


def test_build_from_python_by_name_with_a_dict_spec():
    model = build("mlp", {"input_shape": [3], "task": "classification", "num_classes": 2})
    assert model.output_shape == (None, 2)

"""Model registry and the Conv1D autoencoder builder."""
import numpy as np
import pytest

import edgepipe  # noqa: F401
from edgepipe.models import available, build, register
from edgepipe.pipeline.errors import ConfigError


def test_autoencoder_is_registered_with_a_description():
    families = available()
    assert "autoencoder" in families and families["autoencoder"]


def test_unknown_family_lists_allowed_names():
    with pytest.raises(ConfigError, match="unknown model family 'lstm'.*allowed: .*autoencoder"):
        build("lstm", window_size=16, channels=2)


def test_unknown_hyperparameter_is_a_config_error():
    with pytest.raises(ConfigError, match="no hyperparameter 'dropout'"):
        build("autoencoder", window_size=16, channels=2, dropout=0.1)


def test_duplicate_registration_of_another_builder_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register("autoencoder", "dup")(lambda **kw: None)


def test_window_size_must_be_divisible_by_downsampling():
    with pytest.raises(ConfigError, match=r"window_size 18 must be divisible by 2\*\*len\(filters\) = 4"):
        build("autoencoder", window_size=18, channels=2, filters=[8, 4])


def test_autoencoder_reconstructs_window_shape_and_is_compiled():
    model = build("autoencoder", window_size=16, channels=3, filters=[8, 4], kernel_size=3, learning_rate=1e-2)
    x = np.random.default_rng(0).normal(size=(4, 16, 3)).astype("float32")
    assert model.predict(x, verbose=0).shape == x.shape
    assert model.loss == "mse"
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Conv1D", "Conv1D", "Conv1DTranspose", "Conv1DTranspose", "Conv1D"]
    assert model.layers[-1].get_config()["activation"] == "linear"

"""Model artifact save/load round trips (HDF5) for plain, pruned-and-stripped and QAT models."""
import numpy as np
import pytest

import edgepipe  # noqa: F401
from edgepipe.models import build
from edgepipe.pipeline.artifacts import Model

X = np.sin(np.linspace(0, 30, 32 * 16 * 2)).reshape(32, 16, 2).astype("float32")


@pytest.fixture(scope="module")
def plain():
    model = build("autoencoder", window_size=16, channels=2, filters=[8, 4], kernel_size=3)
    model.fit(X, X, epochs=1, batch_size=16, verbose=0)
    return model


def _round_trip(model, path):
    artifact = Model(path)
    artifact.save_keras(model)
    artifact.finalize()
    return Model.open(path).load_keras()


def test_plain_model_round_trip(plain, tmp_path):
    loaded = _round_trip(plain, tmp_path / "plain")
    np.testing.assert_allclose(loaded.predict(X, verbose=0), plain.predict(X, verbose=0), rtol=1e-6, atol=1e-6)


def test_pruned_stripped_model_round_trip_keeps_zeros(plain, tmp_path):
    from edgepipe.components.optimization.pruning import measured_sparsity, prune

    pruned = prune(plain, X, target_sparsity=0.5, epochs=1, batch_size=16)
    loaded = _round_trip(pruned, tmp_path / "pruned")
    assert measured_sparsity(loaded) == pytest.approx(measured_sparsity(pruned))
    np.testing.assert_allclose(loaded.predict(X, verbose=0), pruned.predict(X, verbose=0), rtol=1e-6, atol=1e-6)


def test_qat_model_round_trip(plain, tmp_path):
    from edgepipe.components.optimization.qat import quantize_aware

    qat, _ = quantize_aware(plain)
    qat.compile("adam", "mse")
    qat.fit(X, X, epochs=1, batch_size=16, verbose=0)  # moves the quantizer ranges away from their initial values
    loaded = _round_trip(qat, tmp_path / "qat")
    assert [type(layer).__name__ for layer in loaded.layers][1:] == [type(layer).__name__ for layer in qat.layers][1:]
    np.testing.assert_allclose(loaded.predict(X, verbose=0), qat.predict(X, verbose=0), rtol=1e-6, atol=1e-6)


def test_unpruned_wrapped_model_loads_too(plain, tmp_path):
    """A model saved mid-pruning (not stripped) still loads: the pruning wrapper is in the custom object scope."""
    import tensorflow_model_optimization as tfmot

    wrapped = tfmot.sparsity.keras.prune_low_magnitude(
        build("autoencoder", window_size=16, channels=2, filters=[8, 4], kernel_size=3).layers[1])
    import tf_keras as keras

    model = keras.Sequential([keras.Input((16, 2)), wrapped])
    loaded = _round_trip(model, tmp_path / "wrapped")
    assert type(loaded.layers[0]).__name__ == "PruneLowMagnitude"

"""micro_check on a model with two inputs of different kinds (the cGAN generator's shape: int8 noise and an int32
class label that is not quantized): each input reaches its own tensor in TFLM and in LiteRT."""
import numpy as np
import pytest

from edgepipe.components.export.micro import micro_check

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro", reason="tflite-micro is not installed (pip install '.[micro]')")


@pytest.fixture(scope="module")
def conditional_model():
    from edgepipe.components.optimization.tflite import convert

    keras = tf.keras
    keras.utils.set_random_seed(0)  # some draws hit TFLM's FULLY_CONNECTED rounding 1 LSB off (docs/device.md)
    # names sort opposite to the Keras order, so an input fed by name order instead of index would swap them
    noise = keras.Input((8,), name="z_noise")
    label = keras.Input((1,), dtype="int32", name="a_label")
    emb = keras.layers.Flatten()(keras.layers.Embedding(4, 4)(label))
    x = keras.layers.Concatenate()([noise, emb])
    model = keras.Model([noise, label], keras.layers.Dense(6, activation="tanh")(x))
    rng = np.random.default_rng(0)
    rep = [[rng.normal(size=(1, 8)).astype(np.float32), rng.integers(0, 4, size=(1, 1)).astype(np.int32)]
           for _ in range(32)]
    return convert(model, "int8", representative=lambda: iter(rep))


def test_two_inputs_match_litert(conditional_model):
    from edgepipe.runtime.litert import ModelRunner

    specs = ModelRunner(conditional_model).inputs
    assert [s.dtype for s in specs] == [np.int8, np.int32] and not specs[1].quantized
    rng = np.random.default_rng(1)
    noise = rng.integers(-128, 128, size=(8, 8)).astype(np.int8)
    labels = (np.arange(8) % 4).reshape(8, 1).astype(np.int32)
    result = micro_check(conditional_model, [noise, labels])
    assert result["ok"] and result["reference_max_abs_diff_lsb"] == 0, result
    assert result["examples"] == 8 and result["arena_bytes"] > 0 and "error" not in result

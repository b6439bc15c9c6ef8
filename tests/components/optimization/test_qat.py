"""QAT of Conv1D models: custom annotation, reporting of layers left float, full-int8 fidelity."""
import numpy as np

from edgepipe.components.optimization.qat import quantize_aware
from edgepipe.runtime.litert import ModelRunner


def test_conv1d_autoencoder_is_fully_quantized(qat_model):
    report = qat_model.read_json("quantization.json")
    assert report["not_quantized"] == []
    assert report["custom"] == ["enc_conv0", "enc_conv1", "dec_deconv0", "dec_deconv1", "reconstruction"]
    assert all(type(layer).__name__ in ("InputLayer", "QuantizeLayer", "QuantizeWrapperV2")
               for layer in qat_model.load_keras().layers)


def test_full_int8_model_matches_qat_keras_model(qat_model, tflite_models, windows_examples):
    runner = ModelRunner(tflite_models.variant_path("int8_qat"))
    assert runner.input.dtype == np.int8
    assert runner.output.dtype == np.int8
    ops = runner.op_names()
    assert {"CONV_2D", "TRANSPOSE_CONV"} <= set(ops) and "DEQUANTIZE" not in ops and "QUANTIZE" not in ops
    x = windows_examples.read_numpy("eval")["window"]
    expected = qat_model.load_keras().predict(x, verbose=0)
    got = runner.run(x)
    step = runner.output.scale
    diff = np.abs(got - expected)
    assert diff.max() <= 3 * step, (diff.max(), step)
    assert diff.mean() <= 0.5 * step


def test_unquantizable_layer_is_reported_by_name():
    import tf_keras as keras

    inputs = keras.Input((16, 2))
    x = keras.layers.Conv1D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.LayerNormalization(name="odd_norm")(x)
    x = keras.layers.Flatten(name="flat")(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(inputs, outputs)
    qat, report = quantize_aware(model)
    assert report["custom"] == ["conv"]
    assert set(report["default"]) == {"flat", "head"}
    assert [(item["layer"], item["class"]) for item in report["not_quantized"]] == [("odd_norm",
                                                                                     "LayerNormalization")]
    assert qat.predict(np.zeros((2, 16, 2), np.float32), verbose=0).shape == (2, 3)


def test_quantize_aware_keeps_the_trained_weights(trained_model):
    float_model = trained_model.load_keras()
    qat, _ = quantize_aware(float_model)
    trained = {w.name: w.numpy() for w in float_model.weights}
    copied = {w.name: w.numpy() for w in qat.weights if w.name in trained}
    assert set(copied) == set(trained)
    for name, value in trained.items():
        np.testing.assert_array_equal(copied[name], value)

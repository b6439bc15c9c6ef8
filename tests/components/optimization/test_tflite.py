"""Conversion modes load and run in ai_edge_litert; int8 (de)quantization round-trips; convert_tflite outputs."""
import numpy as np
import pytest

from edgepipe.components.optimization.tflite import MODES, convert
from edgepipe.pipeline.errors import ConfigError
from edgepipe.runtime.litert import ModelRunner

# Mean |tflite - keras| relative to mean |keras| output.
TOLERANCE = {"float32": 1e-5, "float16": 1e-2, "dynamic": 0.1, "int8": 0.1}


@pytest.fixture(scope="module")
def float_net(trained_model):
    return trained_model.load_keras()


@pytest.fixture(scope="module")
def eval_windows(windows_examples):
    return windows_examples.read_numpy("eval")["window"]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_loads_and_tracks_the_keras_model(mode, float_net, windows_examples, eval_windows):
    train = windows_examples.read_numpy("train")["window"]
    runner = ModelRunner(convert(float_net, mode, representative=train[:32] if mode == "int8" else None))
    expected_io = np.int8 if mode == "int8" else np.float32
    assert runner.input.dtype == expected_io
    assert runner.output.dtype == expected_io
    got = runner.run(eval_windows)
    want = float_net.predict(eval_windows, verbose=0)
    assert got.shape == want.shape and got.dtype == np.float32
    relative = np.abs(got - want).mean() / np.abs(want).mean()
    assert relative <= TOLERANCE[mode], relative


def test_int8_quantization_round_trip(tflite_models):
    runner = ModelRunner(tflite_models.variant_path("int8_qat"))
    scale, zero_point = runner.input.scale, runner.input.zero_point
    lo, hi = (-128 - zero_point) * scale, (127 - zero_point) * scale
    x = np.linspace(lo, hi, 101, dtype=np.float32)
    q = runner.quantize(x)
    assert q.dtype == np.int8
    np.testing.assert_allclose((q.astype(np.float32) - zero_point) * scale, x, atol=scale / 2 + 1e-7)
    assert runner.quantize(np.array([hi + 10, lo - 10], np.float32)).tolist() == [127, -128]
    out_scale, out_zero = runner.output.scale, runner.output.zero_point
    raw = np.array([-128, 0, 127], dtype=np.int8)
    np.testing.assert_allclose(runner.dequantize(raw), (raw.astype(np.float32) - out_zero) * out_scale)


def test_batched_run_equals_one_by_one(tflite_models, eval_windows):
    batched = ModelRunner(tflite_models.variant_path("int8_qat"), max_batch=7)
    single = ModelRunner(tflite_models.variant_path("int8_qat"), max_batch=1)
    assert batched.dynamic_batch
    np.testing.assert_array_equal(batched.run(eval_windows[:20]), single.run(eval_windows[:20]))
    assert batched.run(eval_windows[:0]).shape == (0, *eval_windows.shape[1:])


def test_conversion_errors_are_config_errors(float_net):
    with pytest.raises(ConfigError, match="unknown TFLite conversion mode 'int4'"):
        convert(float_net, "int4")
    with pytest.raises(ConfigError, match="representative"):
        convert(float_net, "int8")


def test_convert_tflite_component_outputs(tflite_models):
    assert tflite_models.variants() == ["float32", "int8_ptq", "int8_qat"]
    index = tflite_models.read_json("variants.json")
    assert index["int8_qat"]["source"] == "qat" and index["int8_qat"]["input_dtype"] == "int8"
    assert index["int8_ptq"]["source"] == "float" and index["int8_ptq"]["float_ops"] == []
    assert index["float32"]["input_dtype"] == "float32"
    assert "DELEGATE" not in index["int8_qat"]["ops"]
    for name, entry in index.items():
        assert tflite_models.variant_path(name).stat().st_size == entry["size_bytes"]

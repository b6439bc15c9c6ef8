"""convert_tflite gathers int8 calibration inputs only when a requested variant needs them
(``Variant.calibrated``): float32 / float16 / dynamic alone read no data, so they convert without any."""
import pytest

from edgepipe.components.optimization import convert_tflite
from edgepipe.pipeline.artifacts import TFLiteModels
from edgepipe.runtime.litert import ModelRunner
from edgepipe.tasks.variants import VARIANTS


def test_only_full_integer_variants_need_calibration():
    assert [n for n in ("float32", "float16", "dynamic") if VARIANTS[n].calibrated] == []
    assert all(VARIANTS[n].calibrated for n in ("int8_ptq", "int8_qat", "pruned_int8", "pqat", "clustered"))


@pytest.mark.parametrize("variants", [["float32"], ["float32", "float16"], ["float32", "float16", "dynamic"]])
def test_float_variants_convert_without_any_calibration_data(trained_model, variants, tmp_path):
    tflite = TFLiteModels(tmp_path / "tflite")
    # no examples at all: gathering calibration windows would fail on the missing artifact
    metrics = convert_tflite.fn(model=trained_model, tflite=tflite, examples=None, variants=variants)
    assert metrics["representative_samples"] == 0 and metrics["variants"] == len(variants)
    assert tflite.properties["calibration"] is None and "window_size" not in tflite.properties
    index = tflite.read_json("variants.json")
    assert sorted(index) == sorted(variants)
    for name in variants:  # every file is a model LiteRT runs, with float I/O
        runner = ModelRunner((tflite.path / index[name]["file"]).read_bytes())
        assert runner.input.dtype.name == "float32" and index[name]["float_ops"] is None


def test_an_int8_variant_still_calibrates_on_the_declared_source(tflite_models, trained_model):
    # the session chain converted float32, int8_ptq and int8_qat on its windows
    assert tflite_models.properties["calibration"] == "windows"
    assert tflite_models.properties["window_size"] == trained_model.properties["window_size"]
    index = tflite_models.read_json("variants.json")
    assert index["int8_ptq"]["input_dtype"] == "int8" and index["float32"]["input_dtype"] == "float32"

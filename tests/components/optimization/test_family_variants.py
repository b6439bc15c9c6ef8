"""Int8 variants beyond the supervised variant stage: a nested base model (MobileNetV2) is quantized layer by layer;
a cGAN generator gets int8 PTQ/QAT files verified against Keras and gated at export (int8, else float32 + reason)."""
import json

import numpy as np
import pytest

import edgepipe  # noqa: F401
from edgepipe.components.training.arrays import write_examples
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.executor import invoke


def test_nested_mobilenet_base_is_flattened_for_qat():
    import tf_keras as keras

    from edgepipe.components.optimization.flatten import flatten_nested, has_nested_models
    from edgepipe.components.optimization.qat import quantize_aware
    from edgepipe.models.registry import build
    from edgepipe.models.spec import DataSpec

    net = build("mobilenet_v2", DataSpec(input_shape=(8, 8, 1), num_classes=3), alpha=0.35, image_size=32,
                train_base=True)
    assert has_nested_models(net)
    flat = flatten_nested(net)
    assert not has_nested_models(flat) and flat.count_params() == net.count_params()
    x = np.random.default_rng(0).uniform(size=(4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(flat.predict(x, verbose=0), net.predict(x, verbose=0), atol=1e-5)
    qat, report = quantize_aware(net, scheme="pqat")  # the collaborative scheme too (Rescaling used to fail it)
    assert not report["not_quantized"], report["not_quantized"]
    assert {"Conv1", "expanded_conv_depthwise", "to_pm1", "resize"} <= set(report["default"])
    assert not any(isinstance(layer, keras.Model) for layer in qat.layers)


@pytest.fixture(scope="module")
def cgan(tmp_path_factory):
    from edgepipe.components.training.train_gan import train_gan

    rng = np.random.default_rng(0)
    splits = {s: {"x": rng.uniform(size=(n, 8, 8, 1)).astype("float32"), "label": rng.integers(0, 3, n)}
              for s, n in {"train": 32, "test": 16}.items()}
    root = tmp_path_factory.mktemp("cgan")
    images = write_examples(Examples(root / "ex"), splits, class_names=["a", "b", "c"])
    out, _ = invoke(train_gan, {"examples": images}, {"model": root / "m"},
                    {"family": "cgan", "epochs": 1, "batch_size": 8, "verbose": 0,
                     "hparams": {"latent_dim": 4, "generator_filters": [8], "discriminator_filters": [4]}})
    return images, out["model"]


@pytest.mark.parametrize("min_agreement,expect_int8", [(0.9, True), (0.9999, False)])
def test_generator_int8_is_verified_and_gated(cgan, tmp_path, min_agreement, expect_int8):
    from edgepipe.components.evaluation.families import evaluate_gan
    from edgepipe.components.export.family_bundle import export_model
    from edgepipe.components.optimization.family_variants import convert_generator

    images, model = cgan
    conv, _ = invoke(convert_generator, {"model": model}, {"tflite": tmp_path / "t"},
                     {"variants": ["float32", "int8_ptq", "int8_qat"], "representative_samples": 32,
                      "qat_epochs": 1, "qat_samples": 64})
    index = conv["tflite"].read_json("variants.json")
    assert set(index) == {"float32", "int8_ptq", "int8_qat"} and index["int8_ptq"]["input_dtype"] == "int8"
    ev, metrics = invoke(evaluate_gan, {"examples": images, "model": model, "tflite": conv["tflite"]},
                         {"evaluation": tmp_path / "e"}, {"samples": 32, "samples_per_class": 2, "latency_runs": 2})
    rows = {r["variant"]: r for r in json.loads((tmp_path / "e" / "variants.json").read_text())}
    assert rows["float32"]["mean_abs_pixel_diff"] < 1e-5
    assert rows["int8_ptq"]["mean_abs_pixel_diff"] < 0.05 and metrics["int8_ptq_agreement"] > 0.95
    invoke(export_model, {"model": model, "evaluation": ev["evaluation"], "tflite": conv["tflite"]},
           {"bundle": tmp_path / "b"}, {"min_agreement": min_agreement, "max_metric_drop": None,
                                        "float_fallback": True})
    doc = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert doc["quantization"]["int8"] is expect_int8
    if expect_int8:
        assert doc["primary_variant"] in ("int8_qat", "int8_ptq") and doc["quantization"]["reason"] is None
    else:  # nothing passes agreement 0.9999 but float32 itself: float32 ships, saying why
        assert doc["primary_variant"] == "float32" and "fails the export bounds" in doc["quantization"]["reason"]
    names = {i["name"] for m in doc["models"].values() for i in m["inputs"]}
    assert names == {"noise", "label"}  # one name per input across float32 and int8 files

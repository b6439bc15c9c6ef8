"""Int8 variants beyond the supervised variant stage: a nested base model (MobileNetV2) is quantized layer by layer;
a cGAN generator gets int8 PTQ/QAT files verified against Keras and gated at export (int8, else float32 + reason)."""
import importlib.util
import json

import numpy as np
import pytest

import edgepipe  # noqa: F401
from edgepipe import tasks
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
    from edgepipe.components.evaluation import evaluate
    from edgepipe.components.export import export_bundle
    from edgepipe.components.optimization import convert_tflite

    images, model = cgan
    conv, _ = invoke(convert_tflite, {"model": model}, {"tflite": tmp_path / "t"},
                     {"variants": ["float32", "int8_ptq", "int8_qat"], "representative_samples": 32,
                      "qat_epochs": 1, "qat_samples": 64})
    index = conv["tflite"].read_json("variants.json")
    assert set(index) == {"float32", "int8_ptq", "int8_qat"} and index["int8_ptq"]["input_dtype"] == "int8"
    ev, metrics = invoke(evaluate, {"examples": images, "model": model, "tflite": conv["tflite"]}, {"evaluation": tmp_path / "e"},
                         {"settings": tasks.get("generation").evaluate(samples=32, samples_per_class=2, latency_runs=2)})
    rows = {r["variant"]: r for r in json.loads((tmp_path / "e" / "variants.json").read_text())}
    assert rows["float32"]["mean_abs_pixel_diff"] < 1e-5
    assert rows["int8_ptq"]["mean_abs_pixel_diff"] < 0.05 and metrics["int8_ptq_agreement"] > 0.95
    invoke(export_bundle, {"model": model, "evaluation": ev["evaluation"], "tflite": conv["tflite"]},
           {"bundle": tmp_path / "b"}, {"min_agreement": min_agreement, "max_metric_drop": None,
                                        "float_fallback": True})
    doc = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert doc["quantization"]["int8"] is expect_int8
    if expect_int8:
        assert doc["primary_variant"] in ("int8_qat", "int8_ptq") and doc["quantization"]["reason"] is None
    else:  # nothing passes agreement 0.9999 but float32 itself: float32 ships, saying why
        assert doc["primary_variant"] == "float32" and doc["quantization"]["reason"].startswith(
            "no int8 variant passed verification (int8_qat agreement ")
    names = {i["name"] for m in doc["models"].values() for i in m["inputs"]}
    assert names == {"noise", "label"}  # one name per input across float32 and int8 files
    if not expect_int8:
        assert "micro" not in doc  # TFLite Micro runs int8 models only
    elif importlib.util.find_spec("tflite_micro"):  # both inputs fed from verification.npz, the output compared
        micro = doc["micro"]
        assert micro["inputs"] == {"noise": "latent", "label": "label"} and micro.get("error") is None, micro
        assert micro["examples"] == 8 and micro["outputs"] == 1 and micro["arena_bytes"] > 0
        assert isinstance(micro["max_abs_diff_lsb"], int) and (tmp_path / "b" / "model_data.cc").is_file()


def test_a_judging_classifier_scores_the_samples_of_every_variant(cgan, tmp_path):
    """A classifier that always answers class 'b' (known verdicts): labels asked for cycle over 3 classes, so a third
    of the samples agree, 'b' holds every sample and the other classes none."""
    import tf_keras as keras

    from edgepipe.components.evaluation import evaluate
    from edgepipe.components.optimization import convert_tflite
    from edgepipe.models.spec import DataSpec
    from edgepipe.pipeline.artifacts import Model

    images, model = cgan
    inputs = keras.Input((8, 8, 1))
    logits = keras.layers.Dense(3, kernel_initializer="zeros",
                                bias_initializer=keras.initializers.Constant([0.0, 5.0, 0.0]))(
        keras.layers.Flatten()(inputs))
    judge = Model(tmp_path / "judge")
    judge.save_keras(keras.Model(inputs, keras.layers.Softmax()(logits)))
    judge.properties.update({"family": "constant", "class_names": ["a", "b", "c"],
                             "data_spec": DataSpec((8, 8, 1), "classification", num_classes=3).to_json()})
    judge.finalize()
    conv, _ = invoke(convert_tflite, {"model": model}, {"tflite": tmp_path / "t"},
                     {"variants": ["float32", "int8_ptq"], "representative_samples": 32})
    ev, metrics = invoke(evaluate, {"examples": images, "model": model, "tflite": conv["tflite"],
                                        "classifier": judge},
                         {"evaluation": tmp_path / "e"}, {"settings": tasks.get("generation").evaluate(samples=30, samples_per_class=2, latency_runs=2)})
    report = ev["evaluation"].read_json("evaluation.json")["metrics"]
    assert report["class_shares"] == {"a": 0.0, "b": 1.0, "c": 0.0} and report["min_class_share"] == 0.0
    assert report["classifier"]["family"] == "constant"
    test_labels = images.read_numpy("test")["label"]
    assert report["classifier"]["test_accuracy"] == pytest.approx(float(np.mean(test_labels == 1)))
    rows = {r["variant"]: r for r in json.loads((tmp_path / "e" / "variants.json").read_text())}
    assert {r["metric_name"] for r in rows.values()} == {"label_agreement"}
    for name in ("keras", "float32", "int8_ptq"):  # latents' labels cycle 0, 1, 2: exactly a third asked for 'b'
        assert rows[name]["metric"] == pytest.approx(1 / 3)
    assert rows["int8_ptq"]["metric_drop"] == pytest.approx(0.0)
    assert 0.0 <= metrics["label_agreement"] <= 1.0

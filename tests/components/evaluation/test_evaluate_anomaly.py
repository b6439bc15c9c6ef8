"""evaluate_anomaly on the fixture windows: sensible metrics, per-model thresholds, agreement, saved errors."""
import numpy as np
import pytest

from edgepipe import tasks
from edgepipe.components.evaluation.anomaly import evaluate_anomaly
from edgepipe.pipeline.artifacts import ModelEvaluation
from tests.components.fixtures import SPLITS


def test_evaluation_report_is_sensible(evaluation):
    report = evaluation.read_json("evaluation.json")
    assert report["splits"] == ["eval", "test"]
    assert set(report["models"]) == set(report["thresholds"]) == set(report["metrics"]) == {
        "keras", "float32", "int8_ptq", "int8_qat"}
    assert set(report["agreement"]) == {"float32", "int8_ptq", "int8_qat"}
    assert report["counts"] == {"train_normal": SPLITS["train"][0] - SPLITS["train"][1],
                                "eval": {"windows": SPLITS["eval"][0], "anomalous": SPLITS["eval"][1]},
                                "test": {"windows": SPLITS["test"][0], "anomalous": SPLITS["test"][1]}}
    for model in ("keras", "int8_qat"):
        pooled = report["metrics"][model]["all"]
        assert pooled["auc"] > 0.95 and pooled["recall"] >= 0.9 and pooled["precision"] >= 0.5, (model, pooled)
        assert pooled["mean_error_anomalous"] > 5 * pooled["mean_error_normal"]
    assert report["agreement"]["float32"]["all"] == 1.0
    assert report["agreement"]["int8_qat"]["all"] >= 0.9
    assert report["models"]["float32"]["score_relative_difference"] < 1e-4


def test_errors_file_backs_the_thresholds(evaluation):
    report = evaluation.read_json("evaluation.json")
    errors = np.load(evaluation.path / report["errors_file"])
    for model, limit in report["thresholds"].items():
        expected = np.quantile(errors[f"train__{model}"].astype(np.float64), report["threshold_quantile"])
        assert limit == pytest.approx(expected * report["threshold_margin"], rel=1e-5)
    for split in report["splits"]:
        n = report["counts"][split]["windows"]
        assert errors[f"{split}__keras"].shape == errors[f"{split}__int8_qat"].shape == errors[f"{split}__label"].shape
        assert len(errors[f"{split}__label"]) == n and errors[f"{split}__series"][0] in ("m0", "m1")


def test_huge_margin_flags_nothing_and_still_reports(windows_examples, trained_model, tflite_models, tmp_path):
    evaluation = ModelEvaluation(tmp_path / "e")
    summary = evaluate_anomaly(examples=windows_examples, model=trained_model, tflite=tflite_models,
                                  evaluation=evaluation,
                                  settings=tasks.get("anomaly").evaluate(threshold_quantile=0.5, threshold_margin=1e6, latency_runs=3))
    report = evaluation.read_json("evaluation.json")
    keras_all = report["metrics"]["keras"]["all"]
    assert keras_all["flagged"] == 0 and keras_all["precision"] is None and keras_all["recall"] == 0.0
    assert summary["int8_qat_agreement"] == 1.0  # nobody flags anything: decisions agree trivially


def test_input_clip_feeds_every_model_the_train_range(windows_examples, trained_model, tflite_models, tmp_path):
    """evaluate.input_clip=train_range: every model (Keras included) scores x against its reconstruction of x clipped
    to the normal train windows' [min, max]; the domain is recorded for the bundle (and the runtime) to apply."""
    from edgepipe.runtime.scores import window_scores
    from edgepipe.components.training.inputs import load_windows

    evaluation = ModelEvaluation(tmp_path / "e")
    evaluate_anomaly(examples=windows_examples, model=trained_model, tflite=tflite_models,
                        evaluation=evaluation, settings=tasks.get("anomaly").evaluate(latency_runs=3, input_clip="train_range"))
    report = evaluation.read_json("evaluation.json")
    train = load_windows(windows_examples, "train", only_normal=True)["window"]
    assert report["input_clip"] == {"min": pytest.approx(float(train.min())), "max": pytest.approx(float(train.max()))}
    x = load_windows(windows_examples, "test")["window"]
    fed = np.clip(x, report["input_clip"]["min"], report["input_clip"]["max"])
    assert not np.array_equal(fed, x)  # the fixture's anomalies leave the train range
    expected = window_scores(x, trained_model.load_keras().predict(fed, verbose=0))
    errors = np.load(evaluation.path / "errors.npz")
    np.testing.assert_allclose(errors["test__keras"], expected.astype(np.float32), rtol=1e-5)


def test_streamed_scores_equal_the_whole_array_computation(trained_model, tflite_models, tmp_path):
    """Evaluation streams windows a batch at a time (issue 12: memory bounded by a batch, not the data); the scores
    must be bit-for-bit those of loading every split and predicting in chunks of 256, across several batches and
    with the train split filtered to normal windows (batches re-filled after filtering)."""
    from edgepipe.runtime.scores import window_scores
    from edgepipe.runtime.litert import ModelRunner
    from edgepipe.components.training.inputs import load_windows
    from tests.components.fixtures import make_windows_examples

    windows = make_windows_examples(tmp_path / "w", {"train": (700, 40), "eval": (600, 30), "test": (260, 12)})
    evaluation = ModelEvaluation(tmp_path / "e")
    evaluate_anomaly(examples=windows, model=trained_model, tflite=tflite_models, evaluation=evaluation,
                        settings=tasks.get("anomaly").evaluate(latency_runs=3, input_clip="none"))
    errors = np.load(evaluation.path / "errors.npz")
    keras_model = trained_model.load_keras()
    for split in ("train", "eval", "test"):
        data = load_windows(windows, split, only_normal=split == "train")
        expected = {"keras": keras_model.predict(data["window"], batch_size=256, verbose=0)}
        expected.update({name: ModelRunner(tflite_models.variant_path(name)).run(data["window"])
                         for name in tflite_models.variants()})
        for model, reconstruction in expected.items():
            np.testing.assert_array_equal(errors[f"{split}__{model}"],
                                          window_scores(data["window"], reconstruction).astype(np.float32))
        np.testing.assert_array_equal(errors[f"{split}__label"], data["label"])
        np.testing.assert_array_equal(errors[f"{split}__start"], data["start"])
    assert evaluation.read_json("evaluation.json")["counts"]["train_normal"] == 660


def _drifting_examples(root, shift: float):
    """The fixture's windows, except that the eval/test windows' level drifts up by as much as ``shift`` (the later
    the window, the further its values leave the training range), as a real sensor's later data does."""
    import tensorflow as tf

    from tests.components.fixtures import STRIDE, _example, make_windows_examples, synthetic_windows

    examples = make_windows_examples(root)
    for offset, split in enumerate(("eval", "test"), start=1):  # same seeds as make_windows_examples, then drifted
        n, n_anomalous = SPLITS[split]
        x, labels = synthetic_windows(n, n_anomalous, offset)
        x = x + (shift * offset / 2 * np.arange(n) / n)[:, None, None].astype(np.float32)
        path = examples.split_dir(split) / "data-00000-of-00001"
        with tf.io.TFRecordWriter(str(path), options=tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
            for i in range(n):
                writer.write(_example(x[i], labels[i], f"m{i % 2}", STRIDE * i))
    return examples


def test_later_values_outside_the_training_range_still_export_a_verified_int8_model(trained_model, tflite_models,
                                                                                    tmp_path):
    """Issue 14: on real series the int8 model saturated where later values left the trained range while the float
    model extrapolated, and 21 of 58 NAB series exported nothing. With the default input clip both see the same
    domain; the gate (decisions away from the threshold, >= 0.98) passes and the numbers are all reported."""
    from edgepipe.components.export.gate import gate_variants
    from edgepipe.components.training.inputs import load_windows

    windows = _drifting_examples(tmp_path / "w", shift=3.0)
    train = load_windows(windows, "train", only_normal=True)["window"]
    late = load_windows(windows, "test")["window"]
    assert late.max() > train.max() + 1.5  # the drift really leaves the training range
    evaluation = ModelEvaluation(tmp_path / "e")
    evaluate_anomaly(examples=windows, model=trained_model, tflite=tflite_models, evaluation=evaluation,
                     settings=tasks.get("anomaly").evaluate(latency_runs=3))
    report = evaluation.read_json("evaluation.json")
    assert report["input_clip"]["max"] == pytest.approx(float(train.max()))
    assert report["agreement_gate"]["on"] == "decisive"
    gated = gate_variants(tflite_models, evaluation, report, min_agreement=0.98, max_metric_drop=0.1, primary="auto")
    agreement = report["agreement"][gated.chosen]
    assert gated.chosen in ("int8_qat", "int8_ptq")
    assert agreement["decisive"] >= 0.98 and agreement["all"] >= 0.98, agreement
    assert agreement["score_correlation"] > 0.95
    assert 0 <= agreement["near_threshold"] < report["counts"]["eval"]["windows"] + report["counts"]["test"]["windows"]
    # the calibration (train windows plus those holding the extremes) makes the int8 input range the clip domain:
    # nothing the model is fed saturates, and no int8 step is spent outside what it is fed
    from edgepipe.runtime.litert import io_spec

    q = io_spec(tflite_models.variant_path(gated.chosen).read_bytes())["input"]["quantization"]
    low, high = (-128 - q["zero_point"]) * q["scale"], (127 - q["zero_point"]) * q["scale"]
    clip = report["input_clip"]
    assert low <= clip["min"] + q["scale"] and high >= clip["max"] - q["scale"]
    assert low >= clip["min"] - 2 * q["scale"] and high <= clip["max"] + 2 * q["scale"]


def test_a_flat_training_series_has_no_clip_range_and_is_still_gated(trained_model, tflite_models, tmp_path):
    """NAB's art_flatline: constant training windows give no [min, max] to clip to (bundle.json needs max > min),
    and with every window on the threshold none is clear of it, so the gate judges decisions on all windows."""
    import tensorflow as tf

    from tests.components.fixtures import STRIDE, _example, make_windows_examples

    windows = make_windows_examples(tmp_path / "w")
    for split, (n, _) in SPLITS.items():  # same layout, every window the same constant
        path = windows.split_dir(split) / "data-00000-of-00001"
        with tf.io.TFRecordWriter(str(path), options=tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
            for i in range(n):
                writer.write(_example(np.full((16, 2), 0.5, np.float32), 0, f"m{i % 2}", STRIDE * i))
    evaluation = ModelEvaluation(tmp_path / "e")
    evaluate_anomaly(examples=windows, model=trained_model, tflite=tflite_models, evaluation=evaluation,
                     settings=tasks.get("anomaly").evaluate(latency_runs=3))
    report = evaluation.read_json("evaluation.json")
    assert report["input_clip"] is None and any("constant" in w for w in report["warnings"])
    for variant, agreement in report["agreement"].items():
        assert agreement["decisive"] == agreement["all"] is not None, variant


def test_newest_mse_scores_the_newest_steps_and_says_so(windows_examples, trained_model, tflite_models, tmp_path):
    """evaluate.score=newest_mse: every model's errors (so thresholds, metrics and the likelihood prior) are the
    runtime's newest-steps score, and evaluation.json records the kind and steps the bundle ships."""
    from edgepipe.components.training.inputs import load_windows
    from edgepipe.runtime.scores import window_scores

    evaluation = ModelEvaluation(tmp_path / "e")
    evaluate_anomaly(examples=windows_examples, model=trained_model, tflite=tflite_models, evaluation=evaluation,
                     settings=tasks.get("anomaly").evaluate(latency_runs=3, input_clip="none", score="newest_mse",
                                                            score_steps=3))
    report = evaluation.read_json("evaluation.json")
    assert report["score"]["kind"] == "newest_mse" and report["score"]["steps"] == 3
    x = load_windows(windows_examples, "test")["window"]
    reconstruction = trained_model.load_keras().predict(x, batch_size=256, verbose=0)
    errors = np.load(evaluation.path / "errors.npz")
    np.testing.assert_allclose(errors["test__keras"], window_scores(x, reconstruction, "newest_mse", 3)
                               .astype(np.float32), rtol=1e-5)
    assert not np.allclose(errors["test__keras"], window_scores(x, reconstruction).astype(np.float32), rtol=1e-3)


def test_score_steps_beyond_the_window_is_a_config_error(windows_examples, trained_model, tflite_models, tmp_path):
    from edgepipe.pipeline.errors import ConfigError

    size = windows_examples.feature_spec["window"]["shape"][0]
    with pytest.raises(ConfigError, match=f"evaluate.score_steps {size + 1} exceeds the window size"):
        evaluate_anomaly(examples=windows_examples, model=trained_model, tflite=tflite_models,
                         evaluation=ModelEvaluation(tmp_path / "e"),
                         settings=tasks.get("anomaly").evaluate(latency_runs=3, score="newest_mse",
                                                                score_steps=size + 1))

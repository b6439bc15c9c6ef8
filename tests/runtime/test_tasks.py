"""Decoders of the vector families (classification, regression) and their part of the schema.

No exported bundle of these families exists yet, so the model is a stub with the runner's interface (input spec,
``run``); what is tested is the runtime's own work: input checks, normalization, softmax, labels, denormalization.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from edgepipe.runtime import BundleError, InputError, UsageError
from edgepipe.runtime import schema
from edgepipe.runtime.tasks import TASKS


class StubRunner:
    """Returns ``x @ weights`` (flattened per example), records what it was given."""

    def __init__(self, feature_shape, weights):
        self.name = "stub.tflite"
        self.input = SimpleNamespace(shape=(None, *feature_shape))
        self.weights = np.asarray(weights, dtype=np.float32)
        self.seen = None

    def run(self, x):
        self.seen = x
        return x.reshape(len(x), -1) @ self.weights


def spec(shape, dtype="float32"):
    return {"name": "t", "shape": shape, "dtype": dtype, "quantization": None}


def vector_doc(task, features=2, outputs=3, **extra):
    model = {"file": "model.tflite", "sha256": "0" * 64, "threshold": None, "input": spec([None, features]),
             "output": spec([None, outputs])}
    return {"schema_version": 1, "task": task, "default_model": "model.tflite", "input": model["input"],
            "output": model["output"], "models": {"main": model}, **extra}


def test_classification_softmaxes_logits_and_names_classes():
    doc = vector_doc("classification", labels=["idle", "run", "fault"], output_kind="logits",
                     normalization={"center": [1.0, 1.0], "scale": [2.0, 2.0]})
    schema.validate(doc)
    runner = StubRunner((2,), [[1, 0, 0], [0, 1, 0]])
    task = TASKS["classification"](doc, doc["models"]["main"], runner)
    result = task.predict([[5.0, 1.0], [1.0, 9.0]])
    np.testing.assert_allclose(runner.seen, [[2.0, 0.0], [0.0, 4.0]])  # (x - 1) / 2
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-6)
    records = result.to_dict()["predictions"]
    assert [r["label"] for r in records] == ["idle", "run"] and [r["class"] for r in records] == [0, 1]
    assert records[1]["probability"] == pytest.approx(expected[1, 1])


def test_classification_single_example_and_bad_shapes():
    doc = vector_doc("classification")
    task = TASKS["classification"](doc, doc["models"]["main"], StubRunner((2,), np.eye(2, 3)))
    assert task.predict([0.2, 0.7]).classes.tolist() == [1]
    assert task.predict([0.2, 0.7]).labels == ["0", "1", "2"]
    with pytest.raises(InputError, match=r"expected shape \[n, 2\], got \[1, 3\]"):
        task.predict([[1.0, 2.0, 3.0]])
    with pytest.raises(UsageError, match="no streaming mode"):
        task.stream()


def test_regression_undoes_target_normalization():
    doc = vector_doc("regression", outputs=2, target_names=["rul_h", "temp"],
                     target_normalization={"center": [100.0, 20.0], "scale": [10.0, 2.0]})
    schema.validate(doc)
    task = TASKS["regression"](doc, doc["models"]["main"], StubRunner((2,), np.eye(2)))
    result = task.predict([[1.0, -1.0]])
    assert result.records() == [{"rul_h": 110.0, "temp": 18.0}]


@pytest.mark.parametrize("task, change, pattern", [
    ("classification", lambda d: d.update(labels=["a", "b"]), r"key 'labels' has 2 names, expected 3"),
    ("classification", lambda d: d.update(output_kind="scores"), r"key 'output_kind' must be one of"),
    ("classification", lambda d: d["output"].update(shape=[None, 4, 4]) or d["models"]["main"].update(
        output=d["output"]), r"key 'output.shape' must be \[batch, outputs\]"),
    ("regression", lambda d: d.update(target_normalization={"center": [0.0], "scale": [1.0]}),
     r"key 'target_normalization.center' has 1 values, expected 3"),
    ("classification", lambda d: d["models"]["main"].pop("sha256"), r"missing key 'models\.main\.sha256'"),
    ("regression", lambda d: d["models"]["main"].update(sha256="ABC"), r"key 'models\.main\.sha256' must be 64"),
])
def test_vector_schema_refuses_inconsistent_fields(task, change, pattern):
    doc = copy.deepcopy(vector_doc(task))
    change(doc)
    with pytest.raises(BundleError, match=pattern):
        schema.validate(doc)


def test_reconstruction_encoder_needs_its_digest():
    doc = vector_doc("reconstruction", features=4, outputs=4)
    doc["encoder"] = {"file": "encoder.tflite", "sha256": "1" * 64, "input": spec([None, 4]),
                      "output": spec([None, 2])}
    schema.validate(doc)
    doc["encoder"].pop("sha256")
    with pytest.raises(BundleError, match=r"missing key 'encoder\.sha256'"):
        schema.validate(doc)


def test_image_model_takes_images_and_anomaly_bundles_do_not(tmp_path):
    from PIL import Image

    from edgepipe.runtime.inputs import read_input

    doc = vector_doc("classification")
    doc["models"]["main"]["input"] = doc["input"] = spec([None, 4, 6, 3])
    task = TASKS["classification"](doc, doc["models"]["main"], StubRunner((4, 6, 3), np.ones((72, 2))))
    image = tmp_path / "cat.png"
    Image.new("RGB", (12, 8), (10, 20, 30)).save(image)
    [(name, kind, values, _)] = read_input(image, task)
    assert (name, kind, values.shape) == ("cat", "image", (4, 6, 3))
    assert values[0, 0].tolist() == [10.0, 20.0, 30.0]
    assert task.predict(values).probabilities.shape == (1, 2)

    anomaly = SimpleNamespace(name="anomaly_detection", input_kinds=("series", "windows"))
    with pytest.raises(UsageError, match="takes series or windows input, not images"):
        read_input(image, anomaly)


def test_anomaly_input_clip_feeds_the_clipped_window_and_scores_the_raw_one():
    """bundle.json ``input_clip``: the model sees the normalized window clipped to [min, max] (as the pipeline's
    evaluation fed every model), the score compares the unclipped window with the reconstruction."""
    from edgepipe.runtime.tasks.anomaly import AnomalyTask

    window = {"size": 2, "stride": 1, "channels": 1, "channel_names": ["v"]}
    norm = {"method": "zscore", "center": [0.0], "scale": [1.0], "channels": ["v"]}
    doc = {"window": window, "normalization": norm, "input_clip": {"min": -1.0, "max": 1.0}}
    runner = SimpleNamespace(seen=None, name="stub.tflite")
    runner.run = lambda x: (setattr(runner, "seen", x.copy()), x)[1]  # identity model: error = clipped-off part
    task = AnomalyTask(doc, {"threshold": 0.5}, runner)
    result = task.predict(np.array([[[0.5], [3.0]]]), kind="windows")
    np.testing.assert_allclose(runner.seen[0, :, 0], [0.5, 1.0])
    assert result.window_score.tolist() == pytest.approx([(3.0 - 1.0) ** 2 / 2])
    assert result.window_anomaly.tolist() == [True]
    del doc["input_clip"]
    unclipped = AnomalyTask(doc, {"threshold": 0.5}, runner).predict(np.array([[[0.5], [3.0]]]), kind="windows")
    assert unclipped.window_score.tolist() == [0.0]


def test_anomaly_scores_a_long_series_in_bounded_chunks_with_the_same_scores():
    """A max-size request holds ~70k windows; the model sees at most SCORE_CHUNK of them at once (issue 12: their
    reconstructions and float64 differences were most of a request's memory), and the scores equal the whole-array
    computation bit for bit (an elementwise stub model, so only the chunking itself can differ)."""
    from edgepipe.runtime import preprocess
    from edgepipe.runtime.tasks.anomaly import SCORE_CHUNK, AnomalyTask

    window = {"size": 4, "stride": 1, "channels": 2, "channel_names": ["a", "b"]}
    norm = {"method": "zscore", "center": [1.0, -2.0], "scale": [2.0, 0.5], "channels": ["a", "b"]}
    calls = []
    runner = SimpleNamespace(name="stub.tflite", run=lambda x: (calls.append(len(x)), np.tanh(x) * 0.9)[1])
    task = AnomalyTask({"window": window, "normalization": norm}, {"threshold": 1.0}, runner)
    series = np.random.default_rng(0).normal(size=(2 * SCORE_CHUNK + 100, 2))
    result = task.predict(series, kind="series")
    assert max(calls) == SCORE_CHUNK and sum(calls) == len(series) - 3
    _, windows = preprocess.windows(preprocess.normalize(series, task.center, task.scale), 4, 1)
    diff = windows.astype(np.float64) - (np.tanh(windows) * 0.9).astype(np.float64)
    np.testing.assert_array_equal(result.window_score, (diff ** 2).reshape(len(diff), -1).mean(axis=1))

"""Fine-tuning, calibration and evaluation stream the windows (issue 12): none of them loads a whole split.

A 200 MB CSV at stride 4 is ~1.2M windows; loading a split as NumPy (``Examples.read_numpy``) and handing it to
Keras peaked at several GB. Here ``read_numpy`` is made to fail, so any component that still materialises a split
fails this test (the old prune/QAT/cluster/convert/evaluate all did).
"""
from __future__ import annotations

import pytest

from edgepipe import tasks
from edgepipe.components.evaluation.anomaly import evaluate_anomaly
from edgepipe.components.optimization import cluster_model, convert_tflite, prune_model, quantize_model
from edgepipe.pipeline.artifacts import Examples, Model, ModelEvaluation, TFLiteModels


@pytest.fixture
def no_whole_splits(monkeypatch):
    def refuse(self, split):
        raise AssertionError(f"split '{split}' of {self.path} was loaded whole")

    monkeypatch.setattr(Examples, "read_numpy", refuse)


def test_optimizations_conversion_and_evaluation_stream_the_windows(windows_examples, trained_model, tmp_path,
                                                                     no_whole_splits):
    def run(component, output, key, **params):
        artifact = (TFLiteModels if key == "tflite" else Model)(tmp_path / output)
        component.fn(windows=windows_examples, **{key: artifact}, **params)
        artifact.finalize()
        return type(artifact).open(artifact.path)

    pruned = run(prune_model, "pruned", "pruned", model=trained_model, target_sparsity=0.5, epochs=1, batch_size=16)
    assert pruned.read_json("pruning.json")["measured_sparsity"] == pytest.approx(0.5, abs=0.05)
    qat = run(quantize_model, "qat", "qat_model", model=trained_model, epochs=1, batch_size=16)
    run(cluster_model, "clustered", "clustered", model=trained_model, number_of_clusters=8, epochs=1, batch_size=16)
    tflite = TFLiteModels(tmp_path / "tflite")
    convert_tflite.fn(examples=windows_examples, model=trained_model, tflite=tflite, qat_model=qat,
                      pruned_model=pruned, variants=["float32", "int8_ptq", "int8_qat", "pruned_int8"],
                      representative_samples=16)
    tflite.finalize()
    tflite = TFLiteModels.open(tflite.path)
    evaluation = ModelEvaluation(tmp_path / "evaluation")
    evaluate_anomaly(examples=windows_examples, model=trained_model, tflite=tflite, evaluation=evaluation,
                        settings=tasks.get("anomaly").evaluate(latency_runs=2, input_clip="train_range"))
    report = evaluation.read_json("evaluation.json")
    assert set(report["agreement"]) == {"float32", "int8_ptq", "int8_qat", "pruned_int8"}
    assert report["agreement"]["float32"]["all"] == 1.0

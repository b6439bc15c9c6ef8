"""The supervised tasks: classification, regression, forecasting, segmentation, and reconstruction (autoencoders).

Each declares its label, loss and variant metric; the bundle fields say what a device needs to turn the model's
output into an answer (class labels, target names, the reconstruction score's definition).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # models.spec imports edgepipe.tasks: the card is only an annotation here
    from edgepipe.models.card import ModelCard

from pydantic import Field

from edgepipe.tasks.base import Task, register
from edgepipe.tasks.metrics import TaskMetric, accuracy, classes, close, mae, mean_iou
from edgepipe.tasks.sections import ExamplesEvaluate


class ClassificationEvaluate(ExamplesEvaluate):
    """``evaluate`` of a classifier: the split's metrics plus its lowest-confidence examples."""

    lowest_confidence: int = Field(10, ge=0)  # the examples the model is least sure of, listed in the report


def _classification_fields(card: ModelCard, io: dict[str, Any]) -> dict[str, Any]:
    k = io["output"]["shape"][-1]
    names = card.labels
    return {"labels": list(names) if names and len(names) == k else [str(i) for i in range(k)],
            "output_kind": "probabilities"}


def _segmentation_fields(card: ModelCard, io: dict[str, Any]) -> dict[str, Any]:
    k = io["output"]["shape"][-1]
    names = card.labels
    labels = ["background", *names] if names and len(names) + 1 == k else names  # masks add a background class
    return {"labels": list(labels) if labels and len(labels) == k else [str(i) for i in range(k)]}


def _regression_fields(card: ModelCard, io: dict[str, Any]) -> dict[str, Any]:
    return {"target_names": [f"y{i}" for i in range(io["output"]["shape"][-1])]}


def _reconstruction_fields(card: ModelCard, io: dict[str, Any]) -> dict[str, Any]:
    return {"score": {"kind": "reconstruction_mse", "definition": "mean over all non-batch axes of (x - y)^2, "
                      "x the model input, y the model output"}}


def _classification_report(x, y, out, names, lowest: int):
    from edgepipe.components.evaluation.family_metrics import classification_report

    report = classification_report(out, y, names, lowest)
    return report, {"accuracy": report["accuracy"]}


def _segmentation_report(x, y, out, names, lowest: int):
    from edgepipe.components.evaluation.family_metrics import segmentation_report

    report = segmentation_report(out, y, ["background", *names] if names and len(names) + 1 == out.shape[-1]
                                 else names)
    return report, {"mean_iou": report["mean_iou"], "pixel_accuracy": report["pixel_accuracy"]}


def _reconstruction_report(x, y, out, names, lowest: int):
    from edgepipe.runtime.scores import window_scores  # the runtime's reconstruction_mse, in float64

    errors = window_scores(x, out)
    report = {"examples": int(len(x)), "mean_error": float(errors.mean()),
              "quantiles": {str(q): float(np.quantile(errors, q)) for q in (0.5, 0.9, 0.99)}}
    return report, {"mean_reconstruction_error": report["mean_error"]}


def _reconstruction_bundle(ctx):
    """The standard bundle plus the bottleneck encoder (``encoder.h5`` saved by training) as float32 TFLite,
    checked against Keras like the model (the runtime reads it from bundle.json only)."""
    import hashlib

    from edgepipe.runtime.litert import io_spec
    from edgepipe.tasks.bundle import standard_bundle

    parts = standard_bundle(ctx)
    path = ctx.model_dir / (ctx.card.encoder or "encoder.h5")
    if path.is_file():
        from edgepipe.components.export.float32 import verified_float32

        content, diff = verified_float32(path, ctx.tolerance, ctx.verify_samples, "encoder.tflite")
        parts.files["encoder.tflite"] = content
        parts.fields["encoder"] = {"file": "encoder.tflite", "size_bytes": len(content),
                                   "sha256": hashlib.sha256(content).hexdigest(), "max_abs_diff_vs_keras": diff,
                                   **io_spec(content)}
    return parts


CLASSIFICATION = register(Task(
    name="classification", description="one class per example (softmax probabilities)", runtime="classification",
    metric=TaskMetric("accuracy", True, accuracy, lambda r, p: classes(r) == classes(p)), label="class",
    loss="sparse_categorical_crossentropy", bundle_fields=_classification_fields,
    evaluation_report=_classification_report, evaluate=ClassificationEvaluate))
REGRESSION = register(Task(
    name="regression", description="one or more float targets per example", runtime="regression",
    metric=TaskMetric("mae", False, mae, close), label="value", loss="mse", bundle_fields=_regression_fields))
FORECASTING = register(Task(
    name="forecasting", description="the next value(s) of a sequence: regression on a window", runtime="regression",
    metric=TaskMetric("mae", False, mae, close), label="value", loss="mse", bundle_fields=_regression_fields))
SEGMENTATION = register(Task(
    name="segmentation", description="one class per pixel (mask)", runtime="segmentation",
    metric=TaskMetric("mean_iou", True, mean_iou, lambda r, p: np.asarray(r).argmax(-1) == np.asarray(p).argmax(-1)),
    label="mask", loss="sparse_categorical_crossentropy", bundle_fields=_segmentation_fields,
    evaluation_report=_segmentation_report))
RECONSTRUCTION = register(Task(
    name="reconstruction", description="an autoencoder's reconstruction and bottleneck embedding",
    runtime="reconstruction", metric=None, label="none", loss="mse", configurable=False,
    float_reason="a reconstruction has no decision to compare int8 variants on, so the supervised pipeline ships "
                 "autoencoders float32 (the anomaly_detection template ships them int8, gated on its alarms)",
    bundle_fields=_reconstruction_fields, bundle=_reconstruction_bundle, evaluation_report=_reconstruction_report))

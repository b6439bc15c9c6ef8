"""Anomaly-detection scoring in NumPy: reconstruction error, thresholds, detection metrics, agreement.

Kept free of TensorFlow so the same definitions can be reused on device-side logs. Undefined ratios (no flagged
windows, no anomalies in a split) are ``None`` rather than 0, so a report never claims a precision it did not
measure.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def reconstruction_error(x: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Per-window mean squared error over steps and channels (the anomaly score)."""
    diff = np.asarray(x, dtype=np.float64) - np.asarray(reconstruction, dtype=np.float64)
    return (diff ** 2).reshape(len(diff), -1).mean(axis=1)


def threshold(normal_errors: np.ndarray, quantile: float, margin: float = 1.0) -> float | None:
    """``quantile`` of the errors on normal training windows, times ``margin``; None without any."""
    if len(normal_errors) == 0:
        return None
    return float(np.quantile(normal_errors, quantile) * margin)


def _ratio(num: int, den: int) -> float | None:
    return float(num / den) if den else None


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve via the rank-sum statistic (ties averaged); None with a single class."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_metrics(errors: np.ndarray, labels: np.ndarray, limit: float | None) -> dict[str, Any]:
    """Precision/recall/F1 of ``errors > limit`` against ``labels`` (1 = anomalous), plus counts and AUC."""
    labels = np.asarray(labels).astype(bool)
    errors = np.asarray(errors, dtype=np.float64)
    result: dict[str, Any] = {
        "windows": int(len(labels)), "anomalous": int(labels.sum()), "auc": roc_auc(errors, labels),
        "mean_error_normal": float(errors[~labels].mean()) if (~labels).any() else None,
        "mean_error_anomalous": float(errors[labels].mean()) if labels.any() else None}
    if limit is None:
        return {**result, "precision": None, "recall": None, "f1": None}
    flagged = errors > limit
    tp = int((flagged & labels).sum())
    fp = int((flagged & ~labels).sum())
    fn = int((~flagged & labels).sum())
    tn = int((~flagged & ~labels).sum())
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = (2 * precision * recall / (precision + recall) if precision is not None and recall is not None
          and (precision + recall) > 0 else (0.0 if tp == 0 and (fp or fn) else None))
    return {**result, "flagged": int(flagged.sum()), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": precision, "recall": recall, "f1": f1}


def agreement(errors_a: np.ndarray, limit_a: float | None, errors_b: np.ndarray, limit_b: float | None) -> float | None:
    """Fraction of windows on which two models (each with its own threshold) make the same decision."""
    if limit_a is None or limit_b is None or len(errors_a) == 0:
        return None
    return float(np.mean((np.asarray(errors_a) > limit_a) == (np.asarray(errors_b) > limit_b)))


# ---- pluggable per-task metrics for comparing a model's variants ---------------------------------------------------
# Each family's evaluation produces, per variant, one headline metric and the agreement of its decisions with the
# Keras float model's; the variant table and the export gate only need those two numbers and the metric's direction.
# Anomaly detection computes them itself (per-model thresholds, F1); other tasks plug in here.


class TaskMetric:
    """A headline metric ``score(y_true, y_pred)`` and ``agree(y_ref, y_pred)`` -> per-element agreement (bool)."""

    def __init__(self, name: str, higher_is_better: bool, score=None, agree=None):
        self.name, self.higher_is_better, self.score, self.agree = name, higher_is_better, score, agree

    def drop(self, value: float | None, reference: float | None) -> float | None:
        """How much worse ``value`` is than ``reference`` (positive = worse), in the metric's own units."""
        if value is None or reference is None:
            return None
        return float(reference - value) if self.higher_is_better else float(value - reference)


def _classes(y_pred: np.ndarray) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
        return (y_pred.reshape(len(y_pred)) > 0.5).astype(np.int64)
    return y_pred.argmax(axis=-1)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Top-1 accuracy of class scores ``y_pred [n, classes]`` (or one sigmoid column) against integer labels."""
    return float(np.mean(_classes(y_pred) == np.asarray(y_true).reshape(-1)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    n = len(y_pred)
    return float(np.mean(np.abs(np.asarray(y_true, np.float64).reshape(n, -1) -
                                np.asarray(y_pred, np.float64).reshape(n, -1))))


def mean_iou(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over classes present in labels or predictions of |pred & true| / |pred | true| (per-pixel class maps)."""
    pred = np.asarray(y_pred).argmax(axis=-1).ravel()
    true = np.asarray(y_true).reshape(-1)
    ious = [np.sum((pred == c) & (true == c)) / np.sum((pred == c) | (true == c))
            for c in np.union1d(np.unique(true), np.unique(pred))]
    return float(np.mean(ious)) if ious else 0.0


def _close(y_ref: np.ndarray, y_pred: np.ndarray, tolerance: float = 0.05) -> np.ndarray:
    """Regression agreement: within ``tolerance`` x the reference predictions' spread (quantization noise passes)."""
    ref = np.asarray(y_ref, np.float64)
    return np.abs(np.asarray(y_pred, np.float64) - ref) <= tolerance * (ref.std() + 1e-12)


TASK_METRICS: dict[str, TaskMetric] = {
    "anomaly": TaskMetric("f1", True),  # computed by evaluate_anomaly (each model its own threshold)
    "classification": TaskMetric("accuracy", True, accuracy, lambda r, p: _classes(r) == _classes(p)),
    "regression": TaskMetric("mae", False, mae, _close),
    "forecasting": TaskMetric("mae", False, mae, _close),
    "segmentation": TaskMetric("mean_iou", True, mean_iou,
                               lambda r, p: np.asarray(r).argmax(-1) == np.asarray(p).argmax(-1)),
}


def task_metric(task: str) -> TaskMetric:
    if task not in TASK_METRICS:
        raise KeyError(f"no variant metric for task '{task}' (known: {', '.join(TASK_METRICS)})")
    return TASK_METRICS[task]


def compare_variants(task: str, y_true: np.ndarray, outputs: dict[str, np.ndarray],
                     reference: str = "keras") -> dict[str, dict[str, float | None]]:
    """``{variant: {"metric", "agreement"}}`` for a registered task, agreement against ``outputs[reference]``."""
    metric = task_metric(task)
    if metric.score is None:
        raise KeyError(f"task '{task}' computes its variant metric in its own evaluation component")
    result = {}
    for name, y_pred in outputs.items():
        agree = np.asarray(metric.agree(outputs[reference], y_pred))
        result[name] = {"metric": metric.score(y_true, y_pred),
                        "agreement": float(agree.mean()) if agree.size else None}
    return result

"""Per-task variant metrics in NumPy: a headline score and per-element decision agreement with a reference.

Each task's evaluation produces, per model variant, one headline metric and the agreement of its decisions with the
Keras float model's; the variant table and the export gate only need those two numbers and the metric's direction.
Tasks declare their :class:`TaskMetric` (``edgepipe.tasks``); tasks whose evaluation computes both itself (anomaly
detection: each model its own threshold; generation; control) declare one without ``score``. No TensorFlow, so the
same definitions can check a device's logged outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class TaskMetric:
    """A headline metric ``score(y_true, y_pred)`` and ``agree(y_ref, y_pred)`` -> per-element agreement (bool)."""

    name: str
    higher_is_better: bool
    score: Callable[[np.ndarray, np.ndarray], float] | None = None
    agree: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    def drop(self, value: float | None, reference: float | None) -> float | None:
        """How much worse ``value`` is than ``reference`` (positive = worse), in the metric's own units."""
        if value is None or reference is None:
            return None
        return float(reference - value) if self.higher_is_better else float(value - reference)


def classes(y_pred: np.ndarray) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 1 or y_pred.shape[-1] == 1:
        return (y_pred.reshape(len(y_pred)) > 0.5).astype(np.int64)
    return y_pred.argmax(axis=-1)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Top-1 accuracy of class scores ``y_pred [n, classes]`` (or one sigmoid column) against integer labels."""
    return float(np.mean(classes(y_pred) == np.asarray(y_true).reshape(-1)))


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


def close(y_ref: np.ndarray, y_pred: np.ndarray, tolerance: float = 0.05) -> np.ndarray:
    """Regression agreement: within ``tolerance`` x the reference predictions' spread (quantization noise passes)."""
    ref = np.asarray(y_ref, np.float64)
    return np.abs(np.asarray(y_pred, np.float64) - ref) <= tolerance * (ref.std() + 1e-12)


def compare_variants(metric: TaskMetric, y_true: np.ndarray, outputs: dict[str, np.ndarray],
                     reference: str = "keras") -> dict[str, dict[str, float | None]]:
    """``{variant: {"metric", "agreement"}}`` by ``metric``, agreement against ``outputs[reference]``."""
    if metric.score is None:
        raise KeyError(f"metric '{metric.name}' is computed by its task's own evaluation")
    result = {}
    for name, y_pred in outputs.items():
        agree = np.asarray(metric.agree(outputs[reference], y_pred))
        result[name] = {"metric": metric.score(y_true, y_pred),
                        "agreement": float(agree.mean()) if agree.size else None}
    return result

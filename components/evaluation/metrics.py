"""Anomaly-detection scoring in NumPy: thresholds, detection metrics, agreement (the window score itself is
``runtime/scores.py``'s, shared with the device).

Kept free of TensorFlow so the same definitions can be reused on device-side logs. Undefined ratios (no flagged
windows, no anomalies in a split) are ``None`` rather than 0, so a report never claims a precision it did not
measure.
"""
from __future__ import annotations

from typing import Any

import numpy as np


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
    ranks = _ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def shown_precision(metrics: dict[str, Any]) -> float | None:
    """Precision as summaries and reports show it: None (n/a) where recall is, i.e. without a labelled anomaly
    (no labels): every flag then counts as false, so a precision of 0 would only restate that there was nothing to
    find. ``evaluation.json`` keeps the computed value."""
    return None if metrics.get("recall") is None else metrics.get("precision")


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
    if tp + fn == 0:  # no labelled anomaly (unlabelled data, or none in this split): recall, so F1, is undefined
        f1 = None
    elif precision is not None and recall is not None and precision + recall > 0:
        f1 = 2 * precision * recall / (precision + recall)
    else:  # anomalies labelled, none of them flagged
        f1 = 0.0
    return {**result, "flagged": int(flagged.sum()), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": precision, "recall": recall, "f1": f1}


def agreement(errors_a: np.ndarray, limit_a: float | None, errors_b: np.ndarray, limit_b: float | None) -> float | None:
    """Fraction of windows on which two models (each with its own threshold) make the same decision."""
    if limit_a is None or limit_b is None or len(errors_a) == 0:
        return None
    return float(np.mean((np.asarray(errors_a) > limit_a) == (np.asarray(errors_b) > limit_b)))


def decisive_agreement(errors: np.ndarray, limit: float | None, reference: np.ndarray, reference_limit: float | None,
                       band: float) -> tuple[float | None, int]:
    """``(agreement, near)``: agreement of decisions on the windows whose *reference* score is outside the band
    ``[limit_ref / (1 + band), limit_ref * (1 + band)]``, and how many windows lie inside it (left out).

    Why: a window scored within a few percent of the threshold is a coin toss for any model -- int8 rounding moves
    scores by a few percent, so such windows flip without either decision being wrong. What a user needs from the
    int8 file is that every *clear* decision (well above or well below the threshold) is the float model's. Where no
    window is clear of the band (a flat series: every score 0, and so the threshold), decisions on all windows are
    judged instead. None when undefined (no threshold or no window)."""
    if limit is None or reference_limit is None or len(errors) == 0:
        return None, 0
    reference = np.asarray(reference, dtype=np.float64)
    low, high = reference_limit / (1.0 + band), reference_limit * (1.0 + band)
    outside = (reference < low) | (reference > high)
    near = int((~outside).sum())
    if not outside.any():
        outside[:] = True
    same = (np.asarray(errors)[outside] > limit) == (reference[outside] > reference_limit)
    return float(same.mean()), near


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two score vectors (ties averaged): whether a variant *orders* windows as the
    reference does, which is what a threshold-free consumer (the streaming likelihood) relies on. None when
    undefined (fewer than 2 values, or a constant vector)."""
    if len(a) < 2:
        return None
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]

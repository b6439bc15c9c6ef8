"""Metrics per task in NumPy: classification, regression, segmentation (no TensorFlow, reusable on device logs)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``[true, predicted]`` counts."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true).reshape(-1).astype(int), np.asarray(y_pred).reshape(-1).astype(int)), 1)
    return cm


def _div(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def classification_report(probabilities: np.ndarray, y_true: np.ndarray, class_names: Sequence[str] | None = None,
                          lowest: int = 10) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, confusion matrix and the ``lowest``-confidence examples."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = np.asarray(y_true).reshape(-1).astype(int)
    k = probabilities.shape[-1]
    names = list(class_names) if class_names and len(class_names) == k else [str(i) for i in range(k)]
    y_pred = probabilities.argmax(-1)
    confidence = probabilities.max(-1)
    cm = confusion_matrix(y_true, y_pred, k)
    per_class = {}
    for c, name in enumerate(names):
        tp, fp, fn = cm[c, c], cm[:, c].sum() - cm[c, c], cm[c, :].sum() - cm[c, c]
        p, r = _div(tp, tp + fp), _div(tp, tp + fn)
        per_class[name] = {"precision": p, "recall": r, "support": int(cm[c, :].sum()),
                           "f1": (2 * p * r / (p + r)) if p is not None and r is not None and p + r > 0 else None}
    order = np.argsort(confidence, kind="mergesort")[:lowest]
    return {"examples": int(len(y_true)), "accuracy": _div(np.trace(cm), cm.sum()),
            "per_class": per_class, "class_names": names, "confusion_matrix": cm.tolist(),
            "lowest_confidence": [{"index": int(i), "true": names[y_true[i]], "predicted": names[y_pred[i]],
                                   "confidence": float(confidence[i]), "correct": bool(y_true[i] == y_pred[i])}
                                  for i in order]}


def regression_report(predictions: np.ndarray, y_true: np.ndarray) -> dict[str, Any]:
    pred = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
    true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    err = pred - true
    baseline = true - true.mean(axis=0)
    ss_tot = float((baseline ** 2).sum())
    return {"examples": int(len(true)), "mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())),
            "r2": (1 - float((err ** 2).sum()) / ss_tot) if ss_tot else None,
            "max_abs_error": float(np.abs(err).max()) if err.size else None}


def segmentation_report(probabilities: np.ndarray, masks: np.ndarray, class_names: Sequence[str] | None = None
                        ) -> dict[str, Any]:
    """Per-class IoU, mean IoU over classes present, pixel accuracy."""
    k = probabilities.shape[-1]
    pred = np.asarray(probabilities).argmax(-1).reshape(-1)
    true = np.asarray(masks).reshape(-1).astype(int)
    cm = confusion_matrix(true, pred, k)
    names = list(class_names) if class_names and len(class_names) == k else [str(i) for i in range(k)]
    iou = {}
    for c, name in enumerate(names):
        union = cm[c, :].sum() + cm[:, c].sum() - cm[c, c]
        iou[name] = _div(cm[c, c], union)
    present = [v for v in iou.values() if v is not None]
    return {"examples": int(len(masks)), "pixel_accuracy": _div(np.trace(cm), cm.sum()), "iou": iou,
            "mean_iou": float(np.mean(present)) if present else None, "confusion_matrix": cm.tolist()}


def sample_classes(predicted: np.ndarray, num_classes: int, asked: np.ndarray | None = None,
                   class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """What an independent classifier sees in generated samples (the Inception-score idea, with a classifier
    trained on the same data): each class's share of the samples, the smallest share (mode collapse drives it to
    0) and, for a conditional generator, ``label_agreement``: the fraction of samples classified as the class they
    were generated for (chance is 1 / classes)."""
    predicted = np.asarray(predicted).reshape(-1).astype(int)
    shares = np.bincount(predicted, minlength=num_classes)[:num_classes] / max(len(predicted), 1)
    names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
    report: dict[str, Any] = {"class_shares": {names[c]: float(shares[c]) for c in range(num_classes)},
                              "min_class_share": float(shares.min()), "classes_seen": int((shares > 0).sum())}
    if asked is not None:
        report["label_agreement"] = float((predicted == np.asarray(asked).reshape(-1)).mean())
    return report


def image_grid(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """Tile ``[n, H, W(, C)]`` images (0..1) into one ``uint8 [rows*(H+pad), cols*(W+pad), C]`` image."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32)
    for i in range(min(n, rows * cols)):
        r, q = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = images[i]
    return (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)

"""Families whose model maps one input to one vector: classification (class + probabilities) and regression.

Both take a batch of inputs shaped like the model's input without the batch dimension (``features``; for an image
model [H, W, C], also decoded images), apply the optional ``normalization`` (``(x - center) / scale`` over the last
axis), quantize, run and dequantize. A table bundle with a fitted transform takes raw rows only (``rows``, the
default kind): its model input is z-scored, encoded and ordered by the transform, so numbers sent as ``features``
would skip it and give confident wrong answers; they are refused, saying to send rows. Only an explicit
``kind="transformed"`` (Python) takes the already-transformed model input, as the pipeline's parity checks do. Classification applies a
softmax when ``output_kind`` is ``logits``; regression undoes ``target_normalization`` (``y * scale + center``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgepipe.runtime.bodies import _rows, refuse_model_input
from edgepipe.runtime.errors import InputError
from edgepipe.runtime.rejects import numeric_columns
from edgepipe.runtime.scores import window_scores
from edgepipe.runtime.skew import TableTransform
from edgepipe.runtime.tasks.base import Task, register, usable_kinds


def _affine(doc: dict[str, Any], key: str) -> tuple[np.ndarray, np.ndarray] | None:
    value = doc.get(key)
    if not value:
        return None
    return np.asarray(value["center"], np.float64), np.asarray(value["scale"], np.float64)


class VectorTask(Task):
    input_kinds = ("features", "image")

    def __init__(self, doc: dict[str, Any], model: dict[str, Any], runner):
        super().__init__(doc, model, runner)
        self.feature_shape = tuple(int(d) for d in runner.input.shape[1:])
        self.normalization = _affine(doc, "normalization")
        pre = doc.get("preprocessing") or {}
        #: a transformed table: raw rows -> model input, and the skew report (runtime/skew.py)
        self.table = TableTransform(pre) if isinstance(pre.get("transform"), dict) else None
        if self.table is not None:
            self.input_kinds = ("rows",)
        #: table bundles: the CSV columns read (a transformed table: its raw columns; else the model inputs in order)
        self.feature_names: list[str] | None = (self.table.columns if self.table is not None else
                                                pre.get("features") if pre.get("kind") == "table" else None)
        image = pre.get("image") or {}
        self.image_scale = (float(image.get("scale", 1 / 255)), float(image.get("offset", 0.0)))

    @property
    def takes_images(self) -> bool:
        return len(self.feature_shape) == 3

    def prepare(self, raw: Any, kind: str | None = None) -> tuple[np.ndarray, dict[str, Any] | None]:
        """``(model input, skew report or None)``: ``rows`` (a transformed table's raw rows: a dict of columns, a
        list of row objects or ``{"rows": [...]}``; the default kind of such a bundle) go through the bundle's
        transform and are checked against training; anything else is :meth:`batch`'s."""
        if self.table is not None and kind is None:  # numbers are model input, refused in check_kind
            numbers = isinstance(raw, np.ndarray) or (isinstance(raw, (list, tuple)) and bool(raw)
                                                      and not isinstance(raw[0], dict))
            kind = "features" if numbers else "rows"
        if kind == "rows":
            self.check_kind(kind)
            if isinstance(raw, list):
                raw = {"rows": raw}
            if isinstance(raw, dict) and set(raw) == {"rows"} and isinstance(raw["rows"], list):
                raw = _rows(raw, ["rows"], numeric_columns(self.table))  # checked as a request's rows are
            return self.table.prepare(raw)
        if kind == "transformed" and self.table is not None:  # Python only, explicit: the pipeline's own model
            return self.batch(raw), None  # input (preprocessing.features order), as parity checks feed it
        return self.batch(raw, kind), None

    def check_kind(self, kind: str) -> None:
        if self.table is not None and kind != "rows":
            refuse_model_input(self)
        super().check_kind(kind)

    def batch(self, raw: Any, kind: str | None = None) -> np.ndarray:
        """Model input for raw ``features`` (values as in the pipeline's data) or ``image`` (8-bit pixel values,
        already resized: scaled by ``preprocessing.image`` exactly as the pipeline's data was)."""
        if kind is not None:
            self.check_kind(kind)
        try:
            x = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"features: not a numeric array shaped {list(self.feature_shape)}") from None
        if kind == "image":
            if not self.takes_images:
                raise InputError(f"image input: this bundle's model takes {list(self.feature_shape)}, not images")
            x = x * self.image_scale[0] + self.image_scale[1]
        if x.shape == self.feature_shape:
            x = x[None]
        if x.ndim != len(self.feature_shape) + 1 or x.shape[1:] != self.feature_shape:
            raise InputError(f"features: expected shape [n, {', '.join(map(str, self.feature_shape))}], "
                             f"got {list(x.shape)}")
        if len(x) == 0:
            raise InputError("features: empty (no examples)")
        if not np.isfinite(x).all():
            raise InputError("features: non-finite values")
        if self.normalization is not None:
            center, scale = self.normalization
            x = (x - center) / scale
        return x.astype(np.float32)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "input_kinds": usable_kinds(self), "feature_shape": list(self.feature_shape),
                "images": self.takes_images,
                "feature_names": self.feature_names, **({"columns": self.table.columns} if self.table else {})}


@dataclass
class ClassificationResult:
    model: str
    labels: list[str]
    probabilities: np.ndarray  # [n, classes]
    skew: dict[str, Any] | None = None  # raw table rows: what differs from training (runtime/skew.py)

    @property
    def classes(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    def records(self) -> list[dict[str, Any]]:
        return [{"class": int(c), "label": self.labels[c], "probability": float(p[c]),
                 "probabilities": [float(v) for v in p]} for c, p in zip(self.classes.tolist(), self.probabilities)]

    def to_dict(self) -> dict[str, Any]:
        return {"task": "classification", "model": self.model, "labels": self.labels,
                "predictions": self.records(), **({"skew": self.skew} if self.skew is not None else {})}


@register
class ClassificationTask(VectorTask):
    name = "classification"

    def predict(self, raw: Any, kind: str | None = None) -> ClassificationResult:
        x, skew = self.prepare(raw, kind)
        y = self.runner.run(x).astype(np.float64)
        if self.doc.get("output_kind") == "logits":
            y = np.exp(y - y.max(axis=1, keepdims=True))
            y /= y.sum(axis=1, keepdims=True)
        labels = self.doc.get("labels") or [str(i) for i in range(y.shape[1])]
        return ClassificationResult(model=self.runner.name, labels=list(labels), probabilities=y, skew=skew)


@dataclass
class RegressionResult:
    model: str
    names: list[str]
    values: np.ndarray  # [n, outputs]
    skew: dict[str, Any] | None = None  # raw table rows: what differs from training (runtime/skew.py)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.names, (float(v) for v in row))) for row in self.values]

    def to_dict(self) -> dict[str, Any]:
        return {"task": "regression", "model": self.model, "names": self.names, "predictions": self.records(),
                **({"skew": self.skew} if self.skew is not None else {})}


@register
class RegressionTask(VectorTask):
    name = "regression"

    def predict(self, raw: Any, kind: str | None = None) -> RegressionResult:
        x, skew = self.prepare(raw, kind)
        y = self.runner.run(x).astype(np.float64)
        target = _affine(self.doc, "target_normalization")
        if target is not None:
            y = y * target[1] + target[0]
        names = self.doc.get("target_names") or [f"y{i}" for i in range(y.shape[1])]
        return RegressionResult(model=self.runner.name, names=list(names), values=y, skew=skew)


@dataclass
class ReconstructionResult:
    model: str
    reconstruction: np.ndarray  # like the (normalized) input
    score: np.ndarray  # float64 [n]: mean squared error over everything but the batch axis
    threshold: float | None = None

    @property
    def anomaly(self) -> np.ndarray | None:
        return None if self.threshold is None else self.score > self.threshold

    def records(self) -> list[dict[str, Any]]:
        flags = self.anomaly
        return [{"score": float(s), **({"anomaly": bool(flags[i])} if flags is not None else {}),
                 "reconstruction": r.tolist()} for i, (s, r) in enumerate(zip(self.score, self.reconstruction))]

    def to_dict(self) -> dict[str, Any]:
        return {"task": "reconstruction", "model": self.model, "threshold": self.threshold,
                "predictions": self.records()}


@register
class ReconstructionTask(VectorTask):
    """An autoencoder outside the windowed anomaly contract (the supervised template's ``autoencoder`` family):
    examples shaped like the model input -> reconstruction and ``reconstruction_mse`` score (``x`` after the
    optional ``normalization``, ``y`` the dequantized output); flagged only when the model entry has a threshold."""
    name = "reconstruction"

    def predict(self, raw: Any, kind: str | None = None) -> ReconstructionResult:
        x = self.batch(raw, kind)
        y = self.runner.run(x)
        threshold = self.model.get("threshold")
        return ReconstructionResult(model=self.runner.name, reconstruction=np.asarray(y, np.float32),
                                    score=window_scores(x, np.asarray(y).reshape(x.shape)),
                                    threshold=None if threshold is None else float(threshold))

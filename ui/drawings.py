"""How "try a bundle" draws a prediction: one drawer per runtime result type, registered with :func:`draws`.

Why: the drawing used to be an if-ladder over result class names inside the upload route; a task added to the
runtime (``edgepipe.runtime.tasks``) now gets its picture by registering one function here, and a result type
without a drawer still shows its records as text. A drawer returns ``{"name", "summary", "items": [{"title",
"svg", "image"}]}`` (``image``: a PNG data URI).
"""
from __future__ import annotations

import base64
import io
from typing import Any, Callable

import numpy as np

from edgepipe.runtime.tasks.anomaly import AnomalyResult
from edgepipe.runtime.tasks.families import GenerationResult, PolicyResult, SegmentationResult
from edgepipe.runtime.tasks.vector import ClassificationResult
from edgepipe.ui import svg

MAX_POINTS, MAX_EXAMPLES = 2000, 16
DRAWERS: dict[type, Callable[..., dict[str, Any]]] = {}


def draws(result_type: type):
    """Register the decorated ``f(result, name, values, kind)`` as the drawer of ``result_type`` (and subclasses)."""

    def register(drawer):
        DRAWERS[result_type] = drawer
        return drawer

    return register


def draw(result: Any, name: str, values: Any, kind: str | None) -> dict[str, Any]:
    """One part's picture (SVG or PNG data URI), a short text summary, and ``skew``: the runtime's findings of how the
    input differs from training (runtime/skew.py; a series thousands of train std away would otherwise show only
    "every window anomalous"). The drawer of the result's type (its nearest registered base class), else its
    records as text."""
    skew = [f"{a['feature']}: {a['detail']}" for a in (getattr(result, "skew", None) or {}).get("anomalies", [])]
    for klass in type(result).__mro__:
        if klass in DRAWERS:
            return {**DRAWERS[klass](result, name, values, kind), "skew": skew}
    records = result.records() if hasattr(result, "records") else [result.to_dict()]
    return {"name": name, "summary": f"{len(records)} predictions", "skew": skew,
            "items": [{"title": str(r)[:300], "svg": None, "image": None} for r in records[:MAX_EXAMPLES]]}


@draws(ClassificationResult)
def _classes(result: ClassificationResult, name: str, values: Any, kind: str | None) -> dict[str, Any]:
    rows = []
    for i, probs in enumerate(result.probabilities[:MAX_EXAMPLES]):
        best = int(np.argmax(probs))
        rows.append({"title": f"{name} #{i}: {result.labels[best]} ({probs[best]:.3f})",
                     "svg": svg.bars(result.labels, probs.tolist(), highlight=best),
                     "image": _png(values[i]) if kind == "image" or _is_image(values, i) else None})
    return {"name": name, "summary": f"{len(result.probabilities)} inputs classified", "items": rows}


@draws(SegmentationResult)
def _masks(result: SegmentationResult, name: str, values: Any, kind: str | None) -> dict[str, Any]:
    rows = [{"title": f"{name} #{i}: " + ", ".join(f"{k} {v}" for k, v in rec["pixels"].items()),
             "image": _overlay(values[i] if values is not None and np.ndim(values) == 4 else values,
                               result.masks[i]), "svg": None}
            for i, rec in enumerate(result.records()[:MAX_EXAMPLES])]
    return {"name": name, "summary": f"{len(result.masks)} masks", "items": rows}


@draws(GenerationResult)
def _samples(result: GenerationResult, name: str, values: Any, kind: str | None) -> dict[str, Any]:
    rows = [{"title": f"sample {i}" + (f" (label {int(result.labels[i])})" if result.labels is not None else ""),
             "image": _png(np.asarray(s) * 255.0), "svg": None} for i, s in enumerate(result.samples[:32])]
    return {"name": name, "summary": f"{len(result.samples)} samples", "items": rows}


@draws(PolicyResult)
def _q_values(result: PolicyResult, name: str, values: Any, kind: str | None) -> dict[str, Any]:
    rows = [{"title": f"{name} #{i}: action {int(np.argmax(q))}",
             "svg": svg.bars([f"action {a}" for a in range(len(q))], _unit(q), highlight=int(np.argmax(q))),
             "image": None} for i, q in enumerate(result.q_values[:MAX_EXAMPLES])]
    return {"name": name, "summary": f"{len(result.q_values)} observations", "items": rows}


@draws(AnomalyResult)
def _scores(result: AnomalyResult, name: str, values: Any, kind: str | None) -> dict[str, Any]:
    scores = result.step_score if result.step_score is not None else result.window_score
    length = len(scores)
    flags = result.step_anomaly if result.step_anomaly is not None else result.window_anomaly
    factor = max(1, int(np.ceil(len(scores) / MAX_POINTS)))  # max-pool: an alert never disappears when shrunk
    if factor > 1:
        pad = (-len(scores)) % factor
        scores = np.pad(scores, (0, pad), constant_values=np.nan).reshape(-1, factor)
        scores = np.array([np.nanmax(row) if np.isfinite(row).any() else np.nan for row in scores])
        flags = np.pad(flags, (0, pad)).reshape(-1, factor).any(axis=1)
    marks = np.flatnonzero(flags).tolist()
    axis = "step" if result.step_score is not None else "window"
    chart = svg.line_chart({"score": [None if not np.isfinite(v) else float(v) for v in scores]}, width=900,
                           height=260, x_label=axis + (f" (max of every {factor})" if factor > 1 else ""),
                           x_span=(0, length - 1),
                           hlines={"threshold": result.threshold}, marks=marks, css_class="chart scores")
    alerts = int(result.window_anomaly.sum())
    return {"name": name, "summary": f"{len(result.window_score)} windows, {alerts} anomalous (threshold "
                                     f"{result.threshold:.4g}, model {result.model})",
            "items": [{"title": f"{name}: anomaly score per {axis}", "svg": chart, "image": None}],
            "alerts": alerts}


def _unit(values: Any) -> list[float]:
    v = np.asarray(values, dtype=np.float64)
    span = v.max() - v.min()
    return ((v - v.min()) / span).tolist() if span > 0 else [1.0] * len(v)


def _is_image(values: Any, i: int) -> bool:
    return values is not None and np.ndim(values) == 4 and np.shape(values)[-1] in (1, 3)


def _png(pixels: Any) -> str | None:
    """``data:`` URI of a PNG for 0..255 pixels [H, W] or [H, W, C] (PIL is a runtime dependency already)."""
    try:
        from PIL import Image
    except ImportError:
        return None
    array = np.clip(np.asarray(pixels, dtype=np.float64), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    image = Image.fromarray(array)
    if max(image.size) < 128:
        scale = 128 // max(image.size)
        image = image.resize((image.size[0] * scale, image.size[1] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _overlay(image: Any, mask: np.ndarray) -> str | None:
    """The mask's classes in colour over the (grey) input image, half transparent."""
    colors = np.array([[0, 0, 0], [214, 39, 40], [31, 119, 180], [44, 160, 44], [255, 127, 14], [148, 103, 189]])
    tint = colors[np.asarray(mask) % len(colors)].astype(np.float64)
    if image is None or np.shape(image)[:2] != np.shape(mask):
        return _png(tint)
    base = np.asarray(image, dtype=np.float64)
    base = base.mean(axis=-1) if base.ndim == 3 else base
    grey = np.repeat(base[..., None], 3, axis=-1)
    return _png(np.where(np.asarray(mask)[..., None] > 0, 0.5 * grey + 0.5 * tint, grey))

"""Try a bundle: upload a CSV, NPZ, JSON or image and see the prediction drawn, computed by the TensorFlow-free
runtime (``edgepipe.runtime``) exactly as a device would: the anomaly score over time with its threshold and
alerts, class probabilities, a segmentation mask over the image, generated samples, a policy's Q-values.

Uploads are bounded (``max_upload``: the declared size is refused before reading, and each part while it
streams), written to a private temporary file whose name keeps only a known suffix, read by the runtime's own
readers (its errors are the one line shown), and deleted at once.
"""
from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from edgepipe.runtime.errors import RuntimeBundleError
from edgepipe.ui import svg
from edgepipe.ui.app import UIError, ui

router = APIRouter()
SUFFIXES = (".csv", ".txt", ".npz", ".json", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_PARTS, MAX_POINTS, MAX_EXAMPLES = 8, 2000, 16


def _bundle_artifact(request: Request, artifact_id: str) -> dict[str, Any]:
    artifact = ui(request).store.artifact(artifact_id)
    if artifact is None or artifact["type"] != "Bundle":
        raise UIError(404, f"no bundle '{artifact_id}' in {ui(request).root}")
    return artifact


def _load(request: Request, artifact: dict[str, Any]):
    from edgepipe.runtime.bundle import Bundle

    cache = ui(request).bundles
    if artifact["id"] not in cache:
        try:
            cache[artifact["id"]] = Bundle.load(artifact["uri"])
        except RuntimeBundleError as err:
            raise UIError(422, str(err)) from None
    return cache[artifact["id"]]


@router.get("/bundles", response_class=HTMLResponse)
def bundles_page(request: Request):
    items = ui(request).store.artifacts_of_type("Bundle")
    return ui(request).render(request, "bundles.html", bundles=items)


@router.get("/bundles/{artifact_id}", response_class=HTMLResponse)
def bundle_page(request: Request, artifact_id: str):
    artifact = _bundle_artifact(request, artifact_id)
    bundle = _load(request, artifact)
    return ui(request).render(request, "bundle.html", artifact=artifact, meta=bundle.metadata(), result=None,
                              error=None, limit=ui(request).max_upload)


@router.post("/bundles/{artifact_id}/predict", response_class=HTMLResponse)
async def predict(request: Request, artifact_id: str):
    state = ui(request)
    artifact = _bundle_artifact(request, artifact_id)
    form = await _bounded_form(request, state.max_upload)
    bundle = await run_in_threadpool(_load, request, artifact)
    upload = form.get("file")
    options = {k: str(form.get(k) or "") for k in ("series_column", "timestamp_column", "n", "seed", "label")}
    try:
        if bundle.task == "generation":
            result = await run_in_threadpool(_generate, bundle, options)
        else:
            if upload is None or not hasattr(upload, "read") or not upload.filename:
                raise UIError(400, "choose a file to upload (CSV, NPZ, JSON or an image)")
            data = await upload.read()
            if len(data) > state.max_upload:
                raise UIError(413, f"upload too large: the limit is {state.max_upload} bytes")
            result = await run_in_threadpool(_predict_file, bundle, upload.filename, data, options)
    except RuntimeBundleError as err:
        return state.render(request, "bundle.html", code=422, artifact=artifact, meta=bundle.metadata(),
                            result=None, error=str(err), limit=state.max_upload)
    return state.render(request, "bundle.html", artifact=artifact, meta=bundle.metadata(), result=result,
                        error=None, limit=state.max_upload)


async def _bounded_form(request: Request, limit: int):
    """The multipart form, refused with 413 once the body exceeds ``limit`` (+ room for the form's other fields):
    a declared size at once, a chunked body as it streams. Starlette's own limit covers only non-file parts; a
    file part would otherwise spool to disk without bound."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    ceiling = limit + 64 * 1024
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > ceiling:
        raise UIError(413, f"upload too large: {int(declared)} bytes, the limit is {limit}")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UIError(400, "expected a multipart/form-data upload (the page's form)")

    async def counted():
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > ceiling:
                raise UIError(413, f"upload too large: over {limit} bytes")
            yield chunk

    try:
        return await MultiPartParser(request.headers, counted(), max_files=1, max_fields=20).parse()
    except MultiPartException as err:
        raise UIError(400, f"upload refused: {err.message}") from None


def _predict_file(bundle, filename: str, data: bytes, options: dict[str, str]) -> dict[str, Any]:
    from edgepipe.runtime.inputs import read_input

    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise UIError(400, f"'{Path(filename).name[:80]}': unknown input type (use {', '.join(SUFFIXES)})")
    from edgepipe.runtime.errors import RuntimeBundleError

    shown = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(filename).name)[:100] or f"upload{suffix}"
    with tempfile.TemporaryDirectory(prefix="edgepipe-ui-upload-") as tmp:
        path = Path(tmp) / shown  # errors name the user's file, not a temporary path
        path.write_bytes(data)
        try:
            parts = read_input(path, bundle.impl, options["series_column"] or None,
                               options["timestamp_column"] or None)
            drawn = [draw(bundle.predict(values, kind), name, values, kind)
                     for name, kind, values, _stamps in parts[:MAX_PARTS]]
        except RuntimeBundleError as err:
            raise type(err)(str(err).replace(f"{tmp}/", "")) from None
    return {"file": Path(filename).name, "parts": drawn, "more": max(0, len(parts) - MAX_PARTS)}


def _generate(bundle, options: dict[str, str]) -> dict[str, Any]:
    try:
        request: dict[str, Any] = {"n": int(options["n"] or 8), "seed": int(options["seed"] or 0)}
        if options["label"]:
            request["label"] = [int(options["label"])] * request["n"]
    except ValueError:
        raise UIError(400, "n, seed and label must be integers") from None
    return {"file": "generated", "parts": [draw(bundle.predict(request), "samples", None, "latent")], "more": 0}


def draw(result: Any, name: str, values: Any, kind: str | None) -> dict[str, Any]:
    """One part's picture (SVG or PNG data URI) and a short text summary, by the result's task."""
    task = type(result).__name__
    if hasattr(result, "window_score"):
        return _draw_anomaly(result, name)
    if task == "ClassificationResult":
        rows = []
        for i, probs in enumerate(result.probabilities[:MAX_EXAMPLES]):
            best = int(np.argmax(probs))
            rows.append({"title": f"{name} #{i}: {result.labels[best]} ({probs[best]:.3f})",
                         "svg": svg.bars(result.labels, probs.tolist(), highlight=best),
                         "image": _png(values[i]) if kind == "image" or _is_image(values, i) else None})
        return {"name": name, "summary": f"{len(result.probabilities)} inputs classified", "items": rows}
    if task == "SegmentationResult":
        rows = [{"title": f"{name} #{i}: " + ", ".join(f"{k} {v}" for k, v in rec["pixels"].items()),
                 "image": _overlay(values[i] if values is not None and np.ndim(values) == 4 else values,
                                   result.masks[i]), "svg": None}
                for i, rec in enumerate(result.records()[:MAX_EXAMPLES])]
        return {"name": name, "summary": f"{len(result.masks)} masks", "items": rows}
    if task == "GenerationResult":
        rows = [{"title": f"sample {i}" + (f" (label {int(result.labels[i])})" if result.labels is not None else ""),
                 "image": _png(np.asarray(s) * 255.0), "svg": None} for i, s in enumerate(result.samples[:32])]
        return {"name": name, "summary": f"{len(result.samples)} samples", "items": rows}
    if task == "PolicyResult":
        rows = [{"title": f"{name} #{i}: action {int(np.argmax(q))}",
                 "svg": svg.bars([f"action {a}" for a in range(len(q))], _unit(q), highlight=int(np.argmax(q))),
                 "image": None} for i, q in enumerate(result.q_values[:MAX_EXAMPLES])]
        return {"name": name, "summary": f"{len(result.q_values)} observations", "items": rows}
    records = result.records() if hasattr(result, "records") else [result.to_dict()]
    return {"name": name, "summary": f"{len(records)} predictions",
            "items": [{"title": str(r)[:300], "svg": None, "image": None} for r in records[:MAX_EXAMPLES]]}


def _draw_anomaly(result: Any, name: str) -> dict[str, Any]:
    scores = result.step_score if result.step_score is not None else result.window_score
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
                           height=260, x_label=axis + (f" / {factor}" if factor > 1 else ""),
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

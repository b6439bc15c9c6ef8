"""Try a bundle: upload a CSV, NPZ, JSON or image and see the prediction drawn, computed by the TensorFlow-free
runtime (``edgepipe.runtime``) exactly as a device would: the anomaly score over time with its threshold and
alerts, class probabilities, a segmentation mask over the image, generated samples, a policy's Q-values.

Uploads are bounded (``max_upload``: the declared size is refused before reading, and each part while it
streams), written to a private temporary file whose name keeps only a known suffix, read by the runtime's own
readers (its errors are the one line shown), and deleted at once.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from edgepipe.runtime.errors import RuntimeBundleError
from edgepipe.ui.app import UIError, ui
from edgepipe.ui.drawings import draw

router = APIRouter()
SUFFIXES = (".csv", ".txt", ".npz", ".json", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_PARTS = 8


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
    """Each bundle with what tells it from the others: its run's pipeline, template, data source and headline
    metric, and when it was made (a date, as the runs list shows it)."""
    from edgepipe.ui import runs as R

    store = ui(request).store
    items = []
    for artifact in store.artifacts_of_type("Bundle"):
        run = store.run(artifact["run_id"])
        info = R.summary(store, run) if run else {}
        config = R.load_json(run.get("config"), {}) if run else {}
        items.append({**artifact, "created_text": time.strftime("%Y-%m-%d %H:%M:%S",
                                                                time.localtime(artifact["created"])),
                      "pipeline": info.get("pipeline", ""), "template": info.get("template", ""),
                      "metric": info.get("metric"), "source": ((config or {}).get("data") or {}).get("source")})
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
        if "latent" in bundle.metadata().get("input_kinds", ()):  # a generator takes a request, not a file
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
            message = str(err).replace(f"{tmp}/", "")
            if not message.startswith(shown):  # the model's refusals (too short ...) name the file as the readers do
                message = f"{shown}: {message}"
            raise type(err)(message) from None
    return {"file": Path(filename).name, "parts": drawn, "more": max(0, len(parts) - MAX_PARTS)}


def _generate(bundle, options: dict[str, str]) -> dict[str, Any]:
    try:
        request: dict[str, Any] = {"n": int(options["n"] or 8), "seed": int(options["seed"] or 0)}
        if options["label"]:
            request["label"] = [int(options["label"])] * request["n"]
    except ValueError:
        raise UIError(400, "n, seed and label must be integers") from None
    return {"file": "generated", "parts": [draw(bundle.predict(request), "samples", None, "latent")], "more": 0}

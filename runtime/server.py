"""A small HTTP service around one loaded bundle (FastAPI + uvicorn: the ``serve`` extra).

    POST /predict   {"series": [[c1, c2, ...], ...]} or {"windows": [[[...]]]}  -> the task's result as JSON
    GET  /healthz   liveness: {"status": "ok", ...}
    GET  /metadata  what the bundle expects and returns (channels, window, threshold, tensors, versions)

Why bodies are parsed by hand (``inputs.parse_body``) rather than by pydantic models: the error must say which
element is wrong in the bundle's own terms (``series[3][1]: not a number``, ``2 channels, the bundle expects 3``),
and the same validation serves the CLI. Bodies are bounded: a ``Content-Length`` over the limit is refused before
reading, and a chunked body is counted while it streams (413 either way). Status codes: 400 malformed request
(not JSON, wrong keys for the task), 413 too large, 422 well-formed but unusable data (wrong channel count,
non-numbers, too short, empty). Inference runs in the threadpool on a pool of interpreters, so slow requests do
not block the event loop.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any, Iterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from edgepipe.runtime.bundle import Bundle
from edgepipe.runtime.errors import InputError, UsageError
from edgepipe.runtime.inputs import BodyError, parse_body

DEFAULT_MAX_BODY = 8 * 1024 * 1024
LIMIT_CONCURRENCY = 64  # connections+requests beyond this get 503 instead of queueing without bound


class _TooLarge(Exception):
    pass


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ValueError(f"invalid Content-Length '{declared[:20]}'")
        if int(declared) > limit:
            raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def create_app(bundle: Bundle, max_body_bytes: int = DEFAULT_MAX_BODY) -> FastAPI:
    """The ASGI app for ``bundle``; ``max_body_bytes`` bounds each request body."""
    app = FastAPI(title="edgepipe runtime", description=f"{bundle.task} bundle {bundle.path}",
                  version=str(bundle.doc.get("versions", {}).get("edgepipe") or "0"))
    metadata = bundle.metadata()
    health = {"status": "ok", "task": bundle.task, "model": bundle.model_file}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return health

    @app.get("/metadata")
    def get_metadata() -> dict[str, Any]:
        return metadata

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        try:
            raw = await _read_bounded(request, max_body_bytes)
        except _TooLarge:
            return _error(413, f"request body exceeds the limit of {max_body_bytes} bytes")
        except ValueError as err:
            return _error(400, str(err))
        if not raw.strip():
            return _error(400, "empty body: send JSON such as {\"series\": [[...], ...]}")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            return _error(400, f"body is not valid JSON ({err})")
        try:
            kind, array = parse_body(body, bundle.impl)
        except InputError as err:
            return _error(400 if isinstance(err, BodyError) else 422, str(err))
        try:
            result = await run_in_threadpool(bundle.predict, array, kind)
        except InputError as err:
            return _error(422, str(err))
        except UsageError as err:
            return _error(400, str(err))
        return JSONResponse(result.to_dict())

    return app


def _config(bundle: Bundle, host: str, port: int, max_body_bytes: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(create_app(bundle, max_body_bytes), host=host, port=port, log_level=log_level,
                          limit_concurrency=LIMIT_CONCURRENCY, timeout_keep_alive=5, access_log=False)


def serve(bundle: Bundle, host: str = "127.0.0.1", port: int = 8080, max_body_bytes: int = DEFAULT_MAX_BODY,
          log_level: str = "warning") -> None:
    """Serve until interrupted (uvicorn handles SIGINT/SIGTERM and drains connections)."""
    print(f"edgepipe: serving {bundle.model_file} ({bundle.task}) from {bundle.path} on http://{host}:{port}",
          flush=True)
    uvicorn.Server(_config(bundle, host, port, max_body_bytes, log_level)).run()


@contextlib.contextmanager
def running(bundle: Bundle, host: str = "127.0.0.1", port: int = 0, max_body_bytes: int = DEFAULT_MAX_BODY,
            startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve ``bundle`` in a background thread for the duration of the block; yields the base URL (port 0 picks a
    free port). For tests, benchmarks and embedding; the thread stops when the block exits."""
    server = uvicorn.Server(_config(bundle, host, port, max_body_bytes, "warning"))
    thread = threading.Thread(target=server.run, name="edgepipe-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

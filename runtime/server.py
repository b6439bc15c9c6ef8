"""A small HTTP service around one loaded bundle (FastAPI + uvicorn: the ``serve`` extra).

    POST /predict   {"series": [[c1, c2, ...], ...]} or {"windows": [[[...]]]}  -> the task's result as JSON
                    (anomaly series: + causal likelihood and alert per window and step, and the alert events;
                    ``?threshold=0.9999&refractory=100`` override the bundle's alert parameters for the request)
    GET  /healthz   liveness: {"status": "ok", ...}
    GET  /metadata  what the bundle expects and returns (channels, window, threshold, tensors, versions)

Why bodies are parsed by hand (``bodies.parse_body``) rather than by pydantic models: the error must say which
element is wrong in the bundle's own terms (``series[3][1]: not a number``, ``2 channels, the bundle expects 3``),
and the same validation serves the CLI. Bodies are bounded: a ``Content-Length`` over the limit is refused before
reading, and a chunked body is counted while it streams (413 either way). Status codes: 400 malformed request
(not JSON, wrong keys for the task, an unknown or bad query parameter), 413 too large, 422 well-formed but
unusable data (wrong channel count, non-numbers, too short, empty), 503 + Retry-After busy (the memory budget for
bodies in flight, ``--max-memory``, stayed full for a few seconds, or 64 requests are already in progress;
/healthz is never refused, see runtime/admission.py). Parsing and inference run in the threadpool on a pool of
interpreters, so slow requests do not block the event loop; a numeric body is parsed straight to one array
(runtime/fastbody.py).
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, Iterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from edgepipe.runtime import jsonsafe
from edgepipe.runtime.admission import (DEFAULT_WAIT_S, EXPANSION, BudgetExceeded, MemoryBudget, RequestLimiter,
                                        tune_malloc)
from edgepipe.runtime.bodies import BodyError, _body_keys, parse_body
from edgepipe.runtime.bundle import Bundle
from edgepipe.runtime.errors import InputError, UsageError
from edgepipe.runtime.fastbody import parse_numeric_body

DEFAULT_MAX_BODY = 8 * 1024 * 1024
LIMIT_CONCURRENCY = 64  # requests in the app beyond this get 503 instead of queueing without bound (not /healthz)
MAX_CONNECTIONS = 1024  # uvicorn's own backstop on open connections (it would refuse /healthz too beyond it)
DEFAULT_MAX_MEMORY = 192 * 1024 * 1024  # working memory of the bodies in flight, on top of the idle process


class _TooLarge(Exception):
    pass


class StrictJSONResponse(JSONResponse):
    """Always valid JSON: a score that overflowed to inf is ``null`` rather than a 500 (or an ``Infinity`` token
    a strict client cannot parse)."""

    def render(self, content: Any) -> bytes:
        return jsonsafe.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _declared_size(request: Request, limit: int) -> int | None:
    """The ``Content-Length`` (None when chunked); 413 (``_TooLarge``) or 400 (ValueError) before any reading."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        raise ValueError(f"invalid Content-Length '{declared[:20]}'")
    if int(declared) > limit:
        raise _TooLarge
    return int(declared)


async def _read_bounded(request: Request, limit: int) -> bytes:
    _declared_size(request, limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _TooLarge
    return b"".join(chunks)  # one copy of the body, not a growing buffer plus a copy of it


def _parse(raw: bytes, task) -> tuple[str | None, Any]:
    """``(kind, array)`` from a body: the lean numeric parser when it vouches for the body, else the full JSON
    parse whose errors name the offending element (see runtime/fastbody.py). Raises the 400/422 errors."""
    if "latent" not in task.input_kinds:
        fast = parse_numeric_body(raw, _body_keys(task))
        if fast is not None:
            key, array = fast
            return ("features" if key == "observations" else key), array
    try:
        body = jsonsafe.loads(raw)
    except jsonsafe.NestingError as err:
        raise BodyError(f"body: {err}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise BodyError(f"body is not valid JSON ({err})") from None
    return parse_body(body, task)


QUERY = {"threshold": float, "refractory": int}  # the query parameters /predict takes (anomaly bundles)


def _likelihood_options(request: Request, bundle: Bundle) -> dict[str, Any]:
    """``threshold`` / ``refractory`` query parameters of an anomaly request. Every way a parameter can be wrong
    (unknown -- a misspelt ``?treshold=`` must not be ignored --, not a number, out of range) is a 400 naming it: the
    request is at fault, not its data (422); the ranges are the likelihood's own checks."""
    unknown = sorted(set(request.query_params) - set(QUERY))
    if unknown:
        raise ValueError(f"unknown query parameter(s) {', '.join(unknown)} (known: {', '.join(QUERY)})")
    options: dict[str, Any] = {}
    for key, kind in QUERY.items():
        text = request.query_params.get(key)
        if text is None:
            continue
        if bundle.task != "anomaly_detection":
            raise ValueError(f"query parameter '{key}': only anomaly bundles take it")
        try:
            options[key] = kind(text)
        except ValueError:
            raise ValueError(f"query parameter '{key}': not {'a number' if kind is float else 'an integer'}: "
                             f"'{text[:20]}'") from None
    if options:
        try:
            bundle.impl.likelihood_config(options)
        except (InputError, UsageError) as err:
            raise ValueError(f"query parameter(s) {', '.join(options)}: {err}") from None
    return options


def _busy(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=503, headers={"Retry-After": "1"})


def create_app(bundle: Bundle, max_body_bytes: int = DEFAULT_MAX_BODY, max_memory: int = DEFAULT_MAX_MEMORY,
               admission_wait_s: float = DEFAULT_WAIT_S) -> FastAPI:
    """The ASGI app for ``bundle``; ``max_body_bytes`` bounds each request body, ``max_memory`` the estimated
    working memory of all bodies in flight (``EXPANSION`` x body bytes each; see runtime/admission.py): a request
    that finds no room within ``admission_wait_s`` gets 503 with Retry-After."""
    app = FastAPI(title="edgepipe runtime", description=f"{bundle.task} bundle {bundle.path}",
                  version=str(bundle.doc.get("versions", {}).get("edgepipe") or "0"))
    app.add_middleware(RequestLimiter, limit=LIMIT_CONCURRENCY)
    budget = app.state.budget = MemoryBudget(max_memory)
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
            declared = _declared_size(request, max_body_bytes)
            options = _likelihood_options(request, bundle)
        except _TooLarge:
            return _error(413, f"request body exceeds the limit of {max_body_bytes} bytes")
        except ValueError as err:
            return _error(400, str(err))
        try:  # reserve before reading: a chunked body may grow to the limit
            held = await budget.acquire(EXPANSION * (max_body_bytes if declared is None else declared),
                                        admission_wait_s)
        except BudgetExceeded:
            return _busy(f"server busy: request bodies in progress fill the memory budget of {budget.capacity} "
                         "bytes, retry shortly")
        try:
            try:
                raw = await _read_bounded(request, max_body_bytes)
            except ClientDisconnect:  # gone before sending its body: nobody to answer, the reservation is freed
                return _error(400, "client disconnected before sending the whole body")
            except _TooLarge:
                return _error(413, f"request body exceeds the limit of {max_body_bytes} bytes")
            except ValueError as err:
                return _error(400, str(err))
            held = budget.shrink(held, EXPANSION * len(raw))
            if not raw or raw.isspace():
                return _error(400, "empty body: send JSON such as {\"series\": [[...], ...]}")
            try:
                kind, array = await run_in_threadpool(_parse, raw, bundle.impl)
            except InputError as err:
                return _error(400 if isinstance(err, BodyError) else 422, str(err))
            del raw
            try:  # the answer is rendered off the event loop too (a max-size series answers ~8 MB of JSON)
                return await run_in_threadpool(lambda: StrictJSONResponse(
                    bundle.predict(array, kind, **options).to_dict()))
            except InputError as err:
                return _error(422, str(err))
            except UsageError as err:
                return _error(400, str(err))
        finally:
            budget.release(held)

    return app


def _config(bundle: Bundle, host: str, port: int, max_body_bytes: int, log_level: str,
            max_memory: int = DEFAULT_MAX_MEMORY, admission_wait_s: float = DEFAULT_WAIT_S) -> uvicorn.Config:
    app = create_app(bundle, max_body_bytes, max_memory, admission_wait_s)
    return uvicorn.Config(app, host=host, port=port, log_level=log_level,
                          limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=5, access_log=False)


def serve(bundle: Bundle, host: str = "127.0.0.1", port: int = 8080, max_body_bytes: int = DEFAULT_MAX_BODY,
          log_level: str = "warning", max_memory: int = DEFAULT_MAX_MEMORY) -> None:
    """Serve until interrupted (uvicorn handles SIGINT/SIGTERM and drains connections). The socket is bound
    before "serving" is printed: a busy port or an address this host does not have is one UsageError line."""
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    print(f"edgepipe: serving {bundle.model_file} ({bundle.task}) from {bundle.path} on http://{host}:{bound}",
          flush=True)
    try:
        tune_malloc()  # freed request buffers go back to the OS (runtime/admission.py)
        uvicorn.Server(_config(bundle, host, bound, max_body_bytes, log_level, max_memory)).run(sockets=[sock])
    finally:
        sock.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (what uvicorn would bind, but failing here, before startup)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, OverflowError, UnicodeError) as err:
        raise UsageError(f"--host {host} --port {port}: cannot resolve ({err})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.set_inheritable(True)
    except OSError as err:
        sock.close()
        reason = (err.strerror or str(err)).lower()
        raise UsageError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


@contextlib.contextmanager
def running(bundle: Bundle, host: str = "127.0.0.1", port: int = 0, max_body_bytes: int = DEFAULT_MAX_BODY,
            startup_timeout: float = 10.0, max_memory: int = DEFAULT_MAX_MEMORY,
            admission_wait_s: float = DEFAULT_WAIT_S) -> Iterator[str]:
    """Serve ``bundle`` in a background thread for the duration of the block; yields the base URL (port 0 picks a
    free port). For tests, benchmarks and embedding; the thread stops when the block exits."""
    server = uvicorn.Server(_config(bundle, host, port, max_body_bytes, "warning", max_memory, admission_wait_s))
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

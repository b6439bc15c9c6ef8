"""The ASGI app: shared state, the guard, error pages, and the routers of each page family.

Errors never reach the user as a traceback: an :class:`UIError` (unknown run, bad upload ...) or an edgepipe error
(a config the CLI would refuse) is one line on an error page (or ``{"error": ...}`` under ``/api``), with the
status code it deserves; anything unexpected is one line naming the exception type.
"""
from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgepipe.pipeline.errors import ConfigError, EdgepipeError
from edgepipe.pipeline.metadata import MetadataStore
from edgepipe.ui.jobs import JobQueue
from edgepipe.ui.security import Guard

HERE = Path(__file__).parent
DEFAULT_MAX_UPLOAD = 16 * 1024 * 1024


class UIError(Exception):
    """A request the UI cannot serve, with the one line the user sees."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class UIState:
    root: Path
    store: MetadataStore
    queue: JobQueue
    config_dirs: list[Path]
    templates: Jinja2Templates
    token: str | None = None
    max_upload: int = DEFAULT_MAX_UPLOAD
    bundles: dict[str, Any] = field(default_factory=dict)  # loaded runtime bundles by artifact id

    def render(self, request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        return self.templates.TemplateResponse(request, name, {"root": str(self.root), **context},
                                               status_code=code)


def default_config_dirs() -> list[Path]:
    from edgepipe import configs

    return [Path(configs.__file__).parent]


def create_app(root: str | os.PathLike, config_dirs: list[str | os.PathLike] | None = None, token: str | None = None,
               max_upload: int = DEFAULT_MAX_UPLOAD, start_worker: bool = True,
               workdir: str | os.PathLike | None = None) -> FastAPI:
    """The UI for the pipeline root ``root``; runs may be launched only from YAML files in ``config_dirs`` (default:
    the project's ``configs/``); ``token``: required on every request when set."""
    from edgepipe.ui import launch, live, pages, tryout

    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"pipeline root {root} is a file, not a directory (--root)")
    store = MetadataStore(root / "metadata.sqlite")
    queue = JobQueue(root, store, workdir=Path(workdir) if workdir else None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["seconds"] = _seconds
    templates.env.filters["num"] = number
    templates.env.filters["size"] = size
    dirs = [Path(d).resolve() for d in (config_dirs or [])] or default_config_dirs()
    state = UIState(root, store, queue, dirs, templates, token, max_upload)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if start_worker:
            queue.start()
        try:
            yield
        finally:
            queue.close()

    app = FastAPI(title="edgepipe ui", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.ui = state
    app.add_middleware(Guard, token=token)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (pages, live, launch, tryout):
        app.include_router(module.router)

    @app.exception_handler(UIError)
    async def _ui_error(request: Request, err: UIError):
        return _error_page(request, err.status, err.message)

    @app.exception_handler(EdgepipeError)
    async def _edgepipe_error(request: Request, err: EdgepipeError):
        return _error_page(request, 400, str(err))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        return _error_page(request, err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception):
        return _error_page(request, 500, f"unexpected {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")

    return app


def _error_page(request: Request, status: int, message: str):
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    state: UIState = request.app.state.ui
    return state.render(request, "error.html", code=status, message=message)


def ui(request: Request) -> UIState:
    return request.app.state.ui


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def number(value: Any) -> str:
    """A metric for reading: a float to 4 significant digits, a count exactly (never ``1.21e+04``), null as
    ``n/a``; anything else (lists, strings) as JSON."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return json.dumps(value, default=str)


def size(value: Any) -> str:
    """Bytes with a unit: ``512 B``, ``48.2 KiB``, ``3.1 MiB``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    if abs(value) < 1024:
        return f"{int(value)} B"
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
    return "-"  # not reached

"""Who may use the UI and what it may hand out.

* Bound to a loopback address the UI trusts the local user; on any other address ``edgepipe ui`` generates a token,
  prints it once, and every request must carry it (``?token=`` once, then a cookie; or ``Authorization: Bearer``).
* A request that changes something (POST) must come from the UI's own pages: a browser tab on another site could
  otherwise post a launch to 127.0.0.1 (its ``Origin`` header would name that site).
* Files are served only inside a registered artifact's directory (``resolve_inside``): no ``..``, no symlink out.
"""
from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
COOKIE = "edgepipe_ui_token"


def needs_token(host: str) -> bool:
    return host not in LOOPBACK and not host.startswith("127.")


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Guard(BaseHTTPMiddleware):
    """Token check (when a token is set) and same-origin check for POSTs, before any route runs."""

    def __init__(self, app, token: str | None):
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next) -> Response:
        if self.token is not None:
            given = request.query_params.get("token") or request.cookies.get(COOKIE) or ""
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                given = auth[7:].strip()
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return PlainTextResponse("edgepipe ui: a valid token is required (see the URL printed at start)",
                                         status_code=401)
            if request.query_params.get("token") and request.method == "GET":
                # drop the token from the address bar (and from Referer headers), keep it in a cookie
                query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                target = request.url.path + (f"?{query}" if query else "")
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
                return response
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin") or request.headers.get("referer")
            if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
                return PlainTextResponse("edgepipe ui: cross-site request refused", status_code=403)
        return await call_next(request)


def resolve_inside(base: str | Path, relative: str) -> Path | None:
    """``base/relative`` if it is a file inside ``base`` once symlinks and ``..`` are resolved, else None."""
    root = Path(base).resolve()
    if not relative or "\x00" in relative:
        return None
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        return None
    return target if target.is_file() else None

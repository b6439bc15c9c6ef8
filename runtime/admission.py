"""Admission control for ``edgepipe serve``: a memory budget for request bodies and a request limiter that
health checks bypass.

Why a budget and not only a concurrency limit: what a request costs is its body times the expansion of parsing and
scoring it (windows, model outputs, the JSON answer), so 64 admitted max-size bodies could need gigabytes while 64
small ones need almost nothing. Each request reserves ``body bytes x EXPANSION`` before its body is read (the
declared ``Content-Length``, or the body limit when it streams chunked; the excess is given back once the real size
is known), waits up to ``wait_s`` in arrival order when the budget is spent, and otherwise gets 503 with
``Retry-After``. Why the limiter is ours and not uvicorn's ``limit_concurrency``: uvicorn's counts every open
connection and answers 503 to *all* requests beyond it, /healthz included, so a busy server looks dead to its
orchestrator. Here /healthz never waits and is never refused; uvicorn keeps only a much higher connection backstop.
"""
from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
import json
from typing import Any, Awaitable, Callable

# Resident bytes per body byte of a series request (fast numeric parse, windows, chunked scores, JSON answer): 8
# concurrent 8 MiB bodies all admitted added 433 MB (6.4x) to an idle server on the default bundle (32-step windows,
# stride 4; 4.5x with 16-step windows), measured with benchmarks/serve_load.py (memory); rounded up.
EXPANSION = 7
DEFAULT_WAIT_S = 10.0
RETRY_AFTER_S = 1
HEALTH_PATHS = frozenset({"/healthz"})


class BudgetExceeded(Exception):
    """No room in the memory budget within the wait: answer 503 with Retry-After."""


class MemoryBudget:
    """An asyncio semaphore weighted by bytes, first come first served (a big request is not starved by small ones).

    A reservation larger than the whole budget is clamped to it, so one request alone is always admitted (the CLI
    refuses a budget below one max-size body, so the clamp only matters to embedders)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"memory budget must be >= 1 byte, got {capacity}")
        self.capacity = int(capacity)
        self.used = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future]] = collections.deque()

    def cost(self, nbytes: int) -> int:
        return min(self.capacity, max(1, int(nbytes)))

    async def acquire(self, nbytes: int, wait_s: float) -> int:
        """Reserve ``nbytes`` (clamped; returned); raise :class:`BudgetExceeded` after ``wait_s`` without room."""
        cost = self.cost(nbytes)
        if not self._waiters and self.used + cost <= self.capacity:
            self.used += cost
            return cost
        if wait_s <= 0:
            raise BudgetExceeded
        future = asyncio.get_running_loop().create_future()
        entry = (cost, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(future), wait_s)
        except asyncio.TimeoutError:
            if future.done() and not future.cancelled():  # granted just as the wait ran out: keep it
                return cost
            future.cancel()
            self._remove(entry)
            raise BudgetExceeded from None
        except BaseException:  # cancelled (client gone): give back whatever was granted
            if future.done() and not future.cancelled():
                self.release(cost)
            else:
                future.cancel()
                self._remove(entry)
            raise
        return cost

    def release(self, cost: int) -> None:
        self.used = max(0, self.used - int(cost))
        self._wake()

    def shrink(self, held: int, nbytes: int) -> int:
        """Give back the part of a reservation ``held`` above ``nbytes`` (once the real body size is known)."""
        keep = min(held, self.cost(nbytes))
        if keep < held:
            self.release(held - keep)
        return keep

    def _remove(self, entry: tuple[int, asyncio.Future]) -> None:
        try:
            self._waiters.remove(entry)
        except ValueError:
            pass
        self._wake()  # the head may have changed

    def _wake(self) -> None:
        while self._waiters:
            cost, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if self.used + cost > self.capacity:
                break
            self._waiters.popleft()
            self.used += cost
            future.set_result(None)


ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


async def send_unavailable(send, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(RETRY_AFTER_S).encode())]})
    await send({"type": "http.response.body", "body": body})


class RequestLimiter:
    """ASGI middleware: at most ``limit`` HTTP requests in the app at once (503 + Retry-After beyond it), except the
    health paths, which always go straight through."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = int(limit)
        self.in_flight = 0

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await send_unavailable(send, f"server busy: {self.limit} requests in progress, retry shortly")
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def tune_malloc() -> bool:
    """Make freed request buffers go back to the OS (glibc only; a no-op elsewhere).

    glibc raises its mmap threshold to the largest block freed so far (up to 32 MiB) and gives each thread its own
    arena, so after a few large requests every threadpool worker keeps its peak forever and RSS ratchets up to
    requests x threads. Fixing the threshold at 1 MiB (large arrays are mmapped and unmapped on free) and capping the
    arenas keeps resident memory near what requests in flight actually use."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    ok = mallopt(m_mmap_threshold, 1 << 20) == 1
    ok &= mallopt(m_trim_threshold, 4 << 20) == 1
    ok &= mallopt(m_arena_max, 2) == 1
    return bool(ok)

"""Progress and stop requests between a running component and whatever runs it, without importing the runner.

A component calls ``report("epoch", 15, 40, loss=0.012)`` between steps and ``check_stop()`` where stopping is
cheap; both are no-ops when nothing is listening (a benchmark or a test calling the function directly). The executor
binds an :class:`Execution` to a context variable for the duration of one component call (:func:`bound`), so the
component needs no extra parameter and several components running in a thread pool each report under their own
execution id. The runner's sink records events in the metadata store and hands them to the CLI's printer.

Fine-grained events (batches, windows) are throttled here, once for every consumer: at most one every
``THROTTLE_S`` per execution and kind, except the last step and the kinds in ``ALWAYS``.
"""
from __future__ import annotations

import contextvars
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

THROTTLE_S = 0.5
ALWAYS = frozenset({"epoch"})


class StopRequested(KeyboardInterrupt):
    """Raised inside a component at a step boundary once a stop was requested (first Ctrl-C).

    A ``KeyboardInterrupt`` so that nothing catching ``Exception`` swallows it and the runner records an
    interruption, not a failure."""


@dataclass(frozen=True)
class Event:
    execution_id: str | None
    node: str
    kind: str
    step: int
    total: int | None
    values: dict[str, Any]
    time: float


@dataclass
class Execution:
    """What a running component may know about its own execution."""

    node: str
    execution_id: str | None = None
    cache_key: Callable[[], str] | str | None = None  # callable: computed only when asked (checkpoints)
    sink: Callable[[Event], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    _last: dict[str, float] = field(default_factory=dict, repr=False)

    def key(self) -> str | None:
        if callable(self.cache_key):
            self.cache_key = self.cache_key()
        return self.cache_key


_current: contextvars.ContextVar[Execution | None] = contextvars.ContextVar("edgepipe_execution", default=None)


@contextmanager
def bound(execution: Execution) -> Iterator[Execution]:
    """Make ``execution`` the current one for the code run inside the block (this thread / context only)."""
    token = _current.set(execution)
    try:
        yield execution
    finally:
        _current.reset(token)


def current() -> Execution | None:
    return _current.get()


def report(kind: str, step: int, total: int | None = None, **values: Any) -> bool:
    """Report that ``step`` of ``total`` of ``kind`` ('epoch', 'batch', 'evaluate', 'convert' ...) is done, with
    JSON-able ``values`` (loss, val_loss, variant ...). Returns whether the event was passed on (not throttled)."""
    execution = _current.get()
    if execution is None or execution.sink is None:
        return False
    now = time.monotonic()
    final = total is not None and step >= total
    if kind not in ALWAYS and not final and now - execution._last.get(kind, -THROTTLE_S) < THROTTLE_S:
        return False
    execution._last[kind] = now
    event = Event(execution.execution_id, execution.node, kind, int(step), None if total is None else int(total),
                  {k: _plain(v) for k, v in values.items()}, time.time())
    try:
        execution.sink(event)
    except Exception:  # a broken display or a locked store must never fail the component
        pass
    return True


def would_report(kind: str) -> bool:
    """True when a ``report`` of ``kind`` now would not be throttled (lets callers skip costly value conversion)."""
    execution = _current.get()
    if execution is None or execution.sink is None:
        return False
    return kind in ALWAYS or time.monotonic() - execution._last.get(kind, -THROTTLE_S) >= THROTTLE_S


def stop_requested() -> bool:
    execution = _current.get()
    return execution is not None and execution.stop.is_set()


def check_stop() -> None:
    """Raise :class:`StopRequested` if a stop was requested; call between steps (batches, windows, variants)."""
    if stop_requested():
        raise StopRequested(f"stop requested while '{_current.get().node}' was running")


def cache_key() -> str | None:
    """The current execution's cache key (None outside an executor): what keys its resumable state."""
    execution = _current.get()
    return execution.key() if execution is not None else None


def _plain(value: Any) -> Any:
    """NumPy / TensorFlow scalars as Python numbers, so every sink can serialize them."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)

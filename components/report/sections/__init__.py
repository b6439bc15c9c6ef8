"""The report's section registry: each task adds its sections with ``@section(task, order=...)``.

Why a registry: the report is one component for every task, and a new task should add one module here (or
anywhere, e.g. a test) rather than edit the component. A section is ``fn(ctx: ReportContext) -> str | None``
returning an HTML ``<section>`` (None: nothing to show). Sections without a task apply to every task (data,
training curves, the variant table); a task replaces a common section by registering one with the same ``name``
(the DQN's training history is a return curve, not a loss curve). Sections render in ``order``:
10 data, 15 data validation, 20 training, 30-59 the task's evaluation, 70 a look inside the network, 85 a retrain's blessing, 90 the
model comparison.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgepipe.components.report.context import ReportContext


@dataclass(frozen=True)
class Section:
    name: str
    tasks: tuple[str, ...] | None  # None: every task
    order: int
    render: Callable[[ReportContext], str | None]


_REGISTRY: dict[tuple[str, str | None], Section] = {}


def section(*tasks: str, order: int = 50, name: str | None = None):
    """Register ``fn(ctx) -> html | None`` for ``tasks`` (none: every task). Registering the same (name, task)
    twice replaces the first (re-imports, tests)."""
    def register(fn: Callable[[ReportContext], str | None]):
        entry = Section(name or fn.__name__, tuple(tasks) or None, order, fn)
        for task in entry.tasks or (None,):
            _REGISTRY[(entry.name, task)] = entry
        return fn
    return register


def _load() -> None:
    """Import the built-in section modules (explicit imports: the cache key follows them)."""
    from edgepipe.components.report.sections import (anomaly, blessing, classification, common,  # noqa: F401
                                                     control, device, generation, network, reconstruction,
                                                     regression, search, segmentation, validation)


def sections_for(task: str | None) -> list[Section]:
    """The sections a ``task`` report renders, in order: its own, plus every common one it does not replace."""
    _load()
    own = {name: s for (name, t), s in _REGISTRY.items() if t == task and task is not None}
    common = {name: s for (name, t), s in _REGISTRY.items() if t is None and name not in own}
    return sorted([*own.values(), *common.values()], key=lambda s: (s.order, s.name))


def known_tasks() -> tuple[str, ...]:
    """Every registered pipeline task (``edgepipe.tasks``), plus any task only a section is registered for."""
    from edgepipe import tasks

    _load()
    return tuple(dict.fromkeys([*tasks.names(), *sorted({t for _, t in _REGISTRY if t is not None})]))

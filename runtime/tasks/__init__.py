"""Task families: how a bundle's model output becomes an answer, chosen by ``bundle.json``'s ``task``.

A family plugs in with two registrations: its part of the schema (``schema.task_check``) and a :class:`Task`
subclass here (``@register``). ``anomaly_detection`` is complete (batch and streaming); ``classification`` and
``regression`` decode vector outputs; ``segmentation`` (masks), ``generation`` (samples) and ``policy`` (greedy
actions) live in ``families``.
"""
from edgepipe.runtime.tasks.base import TASKS, Task, register
from edgepipe.runtime.tasks import anomaly, families, vector  # noqa: F401  (registers the families)

__all__ = ["TASKS", "Task", "register"]

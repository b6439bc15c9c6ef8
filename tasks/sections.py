"""The config's ``evaluate`` section, one pydantic class per task: the options that task's evaluation reads.

Why per task: one section mixing every task's keys accepted ``evaluate.episodes`` for the anomaly detector and
ignored it. Now each task declares its own class (``Task.evaluate``, in its module under ``edgepipe.tasks``), the
config's ``evaluate`` is validated against the class of the task the config resolves to (a key only another task
reads is refused, naming the key and the task), the builder's keys for the evaluate stage are that class's fields,
and the ``evaluate`` component takes the section whole. The classes here are the shared bases; the README's key
table is generated from the registry (:func:`key_table`).

No TensorFlow and no pipeline import: config validation reads these.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

if TYPE_CHECKING:
    from edgepipe.tasks.base import Task


class EvaluateSection(BaseModel):
    """What every evaluation reads: the latency measurement of each variant."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_runs: PositiveInt = 100  # batch-1 invokes per variant (median, single thread, XNNPACK)

    def splits(self) -> tuple[str, ...] | None:
        """The data splits the evaluation scores (the builder refuses a ``data.split`` making none of them);
        None: it reads no dataset split (a policy runs episodes)."""
        return None


class VerifiedEvaluate(EvaluateSection):
    """Tasks that may ship a float32 model verified against Keras at export (no int8 variant for the family)."""

    tolerance: float = Field(1e-3, gt=0.0)  # max |TFLite - Keras| allowed at export


class ExamplesEvaluate(VerifiedEvaluate):
    """Tasks fed Examples: the split their metrics are reported on."""

    split: str = "test"

    def splits(self) -> tuple[str, ...] | None:
        return (self.split,)


def readers(tasks: dict[str, "Task"]) -> dict[str, tuple[str, ...]]:
    """``{evaluate key: the tasks that read it}``, in field order then registration order."""
    out: dict[str, tuple[str, ...]] = {}
    for name, task in tasks.items():
        for key in task.evaluate.model_fields:
            out[key] = (*out.get(key, ()), name)
    return out


def key_table(tasks: dict[str, "Task"]) -> str:
    """The README's table of ``evaluate`` keys (markdown): key, default, the tasks that read it."""
    rows = ["| key | default | read by task |", "|---|---|---|"]
    for key, names in readers(tasks).items():
        field = next(t.evaluate.model_fields[key] for t in tasks.values() if key in t.evaluate.model_fields)
        default = field.get_default(call_default_factory=True)
        shown = "a section (see below)" if isinstance(default, BaseModel) else f"`{default!r}`"
        rows.append(f"| `evaluate.{key}` | {shown} | {', '.join(names)} |")
    return "\n".join(rows)

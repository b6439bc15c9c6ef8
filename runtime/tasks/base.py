"""The task interface and its registry (kept apart from the families so they can import it)."""
from __future__ import annotations

from typing import Any, ClassVar

from edgepipe.runtime.errors import UsageError
from edgepipe.runtime.litert import ModelRunner

TASKS: dict[str, type["Task"]] = {}


def register(cls: type["Task"]) -> type["Task"]:
    TASKS[cls.name] = cls
    return cls


class Task:
    """Preprocess raw input as exported, run the model, decode its output; one instance per loaded bundle."""

    name: ClassVar[str] = ""
    #: input kinds ``predict`` accepts: "series" [T, C], "windows" [n, W, C], "features" [n, ...], "image"
    input_kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, doc: dict[str, Any], model: dict[str, Any], runner: ModelRunner):
        self.doc, self.model, self.runner = doc, model, runner

    def predict(self, raw: Any, kind: str | None = None) -> Any:
        raise NotImplementedError

    def stream(self) -> Any:
        raise UsageError(f"task '{self.name}' has no streaming mode (it does not consume a sample sequence)")

    def metadata(self) -> dict[str, Any]:
        """What a client needs to build requests (the HTTP server's /metadata adds file and versions)."""
        return {"task": self.name, "input_kinds": list(self.input_kinds)}

    def check_kind(self, kind: str) -> None:
        if kind not in self.input_kinds:
            raise UsageError(f"task '{self.name}' takes {' or '.join(usable_kinds(self))} input, not {kind}")


def usable_kinds(task: Any) -> list[str]:
    """The input kinds a bundle can really use: a vector model that does not take images lists "image" among its
    kinds (the family's), but refuses images; an error line must not suggest them. (Any object with ``input_kinds``
    and, optionally, ``takes_images``.)"""
    return [k for k in task.input_kinds if k != "image" or getattr(task, "takes_images", True)]

"""``Bundle``: load an exported bundle directory, verify it, and predict with it.

Loading refuses anything it cannot trust, each time with one line naming the file and key: a missing or
unparsable ``bundle.json``, a schema version newer than this runtime, inconsistent fields (see ``schema``), a
missing model file, or a model whose content hash, tensor shapes, dtypes or quantization differ from what
``bundle.json`` says (see ``litert``). After that, ``predict`` and ``stream`` never re-check the bundle.

Only the model that will run must be present and is checked in full; the bundle's other model files are
digest-checked where present, so a board can be given just ``bundle.json`` and the one ``.tflite`` it runs. Every
digest is checked before LiteRT parses the file: a damaged model is named as such, not as a parse error.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from edgepipe.runtime import jsonsafe, schema
from edgepipe.runtime.errors import BundleError, UsageError
from edgepipe.runtime.litert import ModelRunner, check_digest
from edgepipe.runtime.tasks import TASKS, Task

BUNDLE_FILE = "bundle.json"
MAX_DEPTH = 32  # bundle.json nests about 6 levels; far deeper is damage or an attack, refused before any walk


class Bundle:
    """A verified bundle with one model file ready to run (the default one unless ``model`` names another)."""

    def __init__(self, path: Path, doc: dict[str, Any], model_key: str, task: Task):
        self.path = path
        self._doc = doc
        self.model_key = model_key
        self.impl = task

    @classmethod
    def load(cls, path: str | Path, model: str | None = None, num_threads: int | None = None,
             concurrency: int = 1) -> "Bundle":
        """Load and verify ``path``; ``model`` is a key of ``models`` ("int8") or a file name ("model.tflite");
        ``concurrency`` is how many interpreters concurrent callers may use at once."""
        path = Path(path)
        meta = path / BUNDLE_FILE
        if not path.is_dir():
            raise BundleError(f"{path}: " + ("not a bundle directory (a file)" if path.exists() else "does not exist"))
        if not meta.is_file():
            raise BundleError(f"{path}: no {BUNDLE_FILE} (not an exported bundle)")
        try:  # bounded nesting: a deep document would break every later walk of it (deepcopy, validation)
            doc = jsonsafe.loads(meta.read_text(encoding="utf-8"), max_depth=MAX_DEPTH)
        except jsonsafe.NestingError as err:
            raise BundleError(f"{meta}: {err}") from None
        except (ValueError, UnicodeDecodeError) as err:
            raise BundleError(f"{meta}: not valid JSON ({err})") from None
        schema.validate(doc, source=str(meta))
        if doc["task"] not in TASKS:
            raise BundleError(f"{meta}: task '{doc['task']}' has no decoder in this runtime")
        key = _model_key(doc, model, meta)
        entry = doc["models"][key]
        file = path / entry["file"]
        if not file.is_file():
            raise BundleError(f"{meta}: models.{key}.file '{entry['file']}' is missing from the bundle")
        content = file.read_bytes()
        check_digest(content, entry, f"models.{key}", entry["file"])  # before LiteRT parses a damaged file
        runner = ModelRunner(content, name=entry["file"], num_threads=num_threads, pool_size=concurrency)
        runner.check_against(entry, f"models.{key}")
        for name, other in doc["models"].items():  # the others: digest only, and only those present
            if name != key and (path / other["file"]).is_file():
                check_digest((path / other["file"]).read_bytes(), other, f"models.{name}", other["file"])
        task = TASKS[doc["task"]](doc, entry, runner)
        return cls(path, doc, key, task)

    # ---- what callers use ----------------------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self._doc["task"]

    @property
    def model_file(self) -> str:
        return self._doc["models"][self.model_key]["file"]

    @property
    def doc(self) -> dict[str, Any]:
        """A copy of ``bundle.json`` (mutating it cannot change the loaded bundle)."""
        return copy.deepcopy(self._doc)

    def predict(self, raw: Any, kind: str | None = None, **options: Any) -> Any:
        """The task's result for raw input (anomaly: a [T, C] series or [n, size, C] windows; a table bundle with a
        transform: raw rows -- a dict of columns, a list of row objects or ``{"rows": [...]}``); ``options``: task
        parameters for this call (anomaly: likelihood overrides such as ``threshold``, ``refractory``)."""
        return self.impl.predict(raw, kind, **options) if options else self.impl.predict(raw, kind)

    def stream(self, **options: Any) -> Any:
        """A stateful consumer: ``push(sample) -> result | None`` (sequence tasks only); ``options`` as predict's."""
        return self.impl.stream(**options) if options else self.impl.stream()

    def metadata(self) -> dict[str, Any]:
        entry = self._doc["models"][self.model_key]
        return {"schema_version": self._doc["schema_version"], "model": entry["file"], "model_key": self.model_key,
                "models": {k: m["file"] for k, m in self._doc["models"].items()},
                "input": entry["input"], "output": entry["output"], **self.impl.metadata(),
                "metrics": _summary_metrics(self._doc), "versions": self._doc.get("versions", {})}

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, task={self.task!r}, model={self.model_file!r})"


def _model_key(doc: dict[str, Any], model: str | None, meta: Path) -> str:
    models = doc["models"]
    wanted = model or doc["default_model"]
    for key, entry in models.items():
        if wanted in (key, entry["file"]):
            return key
    known = ", ".join(f"{k} ({m['file']})" for k, m in models.items())
    raise UsageError(f"{meta}: no model '{wanted}' (models: {known})")


def _summary_metrics(doc: dict[str, Any]) -> dict[str, Any]:
    """Per-model headline metrics if the exporter recorded them (informative; never validated)."""
    per_model = (doc.get("metrics") or {}).get("per_model") or {}
    return {name: {k: v.get("all", {}).get(k) for k in ("f1", "precision", "recall", "auc")}
            if "f1" in v.get("all", {}) else dict(v.get("all", {}))
            for name, v in per_model.items() if isinstance(v, dict)}

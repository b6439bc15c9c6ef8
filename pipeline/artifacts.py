"""Typed artifacts: the only things that know where and how a component's results are stored.

An artifact is a directory owned by one execution. Components receive artifact objects and use their methods
(``write_json``, ``split_prefix``, ``save_keras`` ...) instead of building paths, so the runner can hand them a
temporary directory, move it into place when the component finishes, and later hand the same object type pointing
at the cached location. Properties (small JSON metadata such as split names or a feature spec) live in
``_artifact.json`` beside the payload so an artifact can be re-opened without the metadata store.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

from edgepipe.pipeline.contracts import EvaluationReport, ExamplesInfo, VariantRow, rows_from_json
from edgepipe.pipeline.dir_replace import replace_with_copy

ARTIFACT_META = "_artifact.json"


class Artifact:
    """Base artifact: a directory plus JSON properties."""

    type_name: ClassVar[str] = "Artifact"

    def __init__(self, uri: str | os.PathLike, properties: dict[str, Any] | None = None):
        self.path = Path(uri)
        self.properties: dict[str, Any] = dict(properties or {})

    # ---- construction --------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, uri: str | os.PathLike) -> "Artifact":
        """Re-open a finished artifact from disk, restoring its properties."""
        path = Path(uri)
        meta_file = path / ARTIFACT_META
        if not meta_file.exists():
            raise FileNotFoundError(f"{path} is not a finished {cls.type_name} artifact (no {ARTIFACT_META})")
        meta = json.loads(meta_file.read_text())
        if meta.get("type") != cls.type_name and cls is not Artifact:
            raise TypeError(f"{path} holds a {meta.get('type')} artifact, not {cls.type_name}")
        return cls(path, meta.get("properties", {}))

    def finalize(self) -> None:
        """Write the properties file; called by the runner once the producing component returned."""
        self.path.mkdir(parents=True, exist_ok=True)
        meta = {"type": self.type_name, "properties": self.properties}
        (self.path / ARTIFACT_META).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))

    # ---- storage helpers used by components --------------------------------------------------------------------
    def file(self, name: str) -> Path:
        """Path of a named file inside the artifact (parent folders created)."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_json(self, name: str, obj: Any) -> Path:
        target = self.file(name)
        target.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))
        return target

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text())

    def files(self) -> Iterator[Path]:
        for path in sorted(self.path.rglob("*")):
            if path.is_file():
                yield path

    def content_fingerprint(self) -> str:
        """SHA-256 over relative names and bytes of every file: what a consumer of this artifact depends on."""
        digest = hashlib.sha256()
        for path in self.files():
            digest.update(str(path.relative_to(self.path)).encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    def copy_to(self, destination: str | os.PathLike,
                may_replace: Callable[[Path], str | None] | None = None) -> Path:
        """Copy the artifact's files (not its ``_artifact.json``) to ``destination``, replacing what is there,
        safely against concurrent copies (:func:`~edgepipe.pipeline.dir_replace.replace_with_copy`, which says how);
        ``may_replace(destination)`` returns why an existing destination must not be replaced, or None."""
        return replace_with_copy(self.path, destination, may_replace, ignore=(ARTIFACT_META,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


def _json_default(value: Any) -> Any:
    """Let NumPy scalars and arrays pass through json.dumps without every component converting them."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


class Examples(Artifact):
    """Sharded, GZIP-compressed TFRecords of ``tf.train.Example``, in TFX's ``Split-<name>/`` layout.

    Properties: ``splits`` (list of names), ``feature_spec`` ({feature: {"dtype", "shape"}}), and free-form
    descriptors such as ``channels`` or ``kind`` ("timeseries_chunks", "windows", ...).
    """

    type_name = "Examples"
    compression = "GZIP"

    def split_dir(self, split: str) -> Path:
        folder = self.path / f"Split-{split}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def split_prefix(self, split: str) -> str:
        """Prefix for ``beam.io.WriteToTFRecord`` (it appends the shard suffix)."""
        return str(self.split_dir(split) / "data")

    def split_files(self, split: str) -> list[str]:
        folder = self.path / f"Split-{split}"
        return sorted(str(p) for p in folder.glob("data*") if p.is_file())

    @property
    def splits(self) -> list[str]:
        return list(self.properties.get("splits", []))

    @property
    def feature_spec(self) -> dict[str, dict[str, Any]]:
        return dict(self.properties.get("feature_spec", {}))

    def info(self) -> ExamplesInfo:
        """The facts these examples state about themselves (kind, channels, counts, class names ...), typed."""
        return ExamplesInfo.from_dict(self.properties, f"{self.path} properties")

    def tf_feature_spec(self) -> dict[str, Any]:
        """The feature spec as ``tf.io`` parsing features."""
        import tensorflow as tf

        spec = {}
        for name, desc in self.feature_spec.items():
            dtype = tf.as_dtype(desc["dtype"])
            if desc.get("shape") is None:
                spec[name] = tf.io.VarLenFeature(dtype)
            else:
                spec[name] = tf.io.FixedLenFeature(desc["shape"], dtype)
        return spec

    def dataset(self, split: str, batch_size: int | None = None):
        """A parsed ``tf.data.Dataset`` over one split: parallel reads, batched parsing, prefetch."""
        import tensorflow as tf

        files = self.split_files(split)
        if not files:
            raise FileNotFoundError(f"{self.path}: split '{split}' has no files")
        ds = tf.data.TFRecordDataset(files, compression_type=self.compression, num_parallel_reads=tf.data.AUTOTUNE)
        spec = self.tf_feature_spec()
        if batch_size:
            ds = ds.batch(batch_size).map(lambda b: tf.io.parse_example(b, spec), num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = ds.map(lambda r: tf.io.parse_single_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def read_numpy(self, split: str) -> dict[str, Any]:
        """Load one split into memory as NumPy arrays (fixed-length features stacked)."""
        import numpy as np

        columns: dict[str, list] = {name: [] for name in self.feature_spec}
        for batch in self.dataset(split, batch_size=4096):
            for name, value in batch.items():
                if hasattr(value, "values") and hasattr(value, "dense_shape"):  # SparseTensor (VarLen)
                    import tensorflow as tf

                    value = tf.sparse.to_dense(value)
                columns[name].append(value.numpy())
        return {name: (np.concatenate(parts) if parts else np.zeros((0,))) for name, parts in columns.items()}


class ExampleStatistics(Artifact):
    """Per-split, per-feature statistics (``statistics.json``)."""

    type_name = "ExampleStatistics"


class Schema(Artifact):
    """Expected features, types and ranges inferred from the training split (``schema.json``)."""

    type_name = "Schema"


class ValidationReport(Artifact):
    """Anomalies found when checking splits or new data against a schema (``validation.json``)."""

    type_name = "ValidationReport"


class Rejects(Artifact):
    """Input rows that could not be used, one JSON object per line with file, line and reason."""

    type_name = "Rejects"


class TransformParams(Artifact):
    """Fitted preprocessing parameters (normalization, vocabularies), embedded verbatim in the export bundle."""

    type_name = "TransformParams"


class Model(Artifact):
    """A Keras model saved in the HDF5 format that tf_keras and tfmot both reload, plus its training history."""

    type_name = "Model"
    filename = "model.h5"

    def save_keras(self, model) -> Path:
        """Serialize the HDF5 file in memory, then write its bytes: HDF5 writing straight to a full disk floods
        stderr with errno 28 lines and then segfaults; a Python write fails once, with a plain OSError."""
        import io

        import h5py

        target = self.file(self.filename)
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as handle:
            model.save(handle, include_optimizer=False)
        target.write_bytes(buffer.getbuffer())
        return target

    def load_keras(self, compile: bool = False):
        """Load the model inside every registered Keras scope (:func:`register_keras_scope`: the model layer's
        custom objects, quantize wrappers, Conv1D configs ...)."""
        import contextlib

        import tf_keras as keras

        with contextlib.ExitStack() as stack:
            for scope in KERAS_SCOPES:
                stack.enter_context(scope())
            return keras.models.load_model(str(self.path / self.filename), compile=compile)


# Context managers a saved Keras model is opened in. The model layer registers its custom objects here when
# ``edgepipe.models`` is imported (every component that loads a model imports it), so the kernel imports no model
# code: a change to a model family does not change the code version of components that never build one.
KERAS_SCOPES: list = []


def register_keras_scope(scope) -> None:
    """Open every saved Keras model inside ``scope()`` (registered once per process)."""
    if scope not in KERAS_SCOPES:
        KERAS_SCOPES.append(scope)


class TFLiteModels(Artifact):
    """Converted ``.tflite`` variants by name (``float32``, ``int8`` ...), with a ``variants.json`` index."""

    type_name = "TFLiteModels"

    def variant_path(self, name: str) -> Path:
        return self.file(f"{name}.tflite")

    def write_variant(self, name: str, content: bytes) -> Path:
        target = self.variant_path(name)
        target.write_bytes(content)
        return target

    def variants(self) -> list[str]:
        return sorted(p.stem for p in self.path.glob("*.tflite"))


class ModelEvaluation(Artifact):
    """Metrics, thresholds and verification results (``evaluation.json``), the variant table (``variants.json``)."""

    type_name = "ModelEvaluation"

    def report(self) -> EvaluationReport | None:
        """``evaluation.json`` as an :class:`EvaluationReport`; None when there is none."""
        path = self.path / "evaluation.json"
        return EvaluationReport.from_dict(self.read_json(path.name), str(path)) if path.exists() else None

    def write_report(self, report: EvaluationReport) -> Path:
        """Write ``evaluation.json`` from the typed record; a field of the wrong type is a DataError here."""
        return self.write_json("evaluation.json", report.checked(str(self.path / "evaluation.json")).to_dict())

    def variant_rows(self) -> list[VariantRow] | None:
        """``variants.json`` (this evaluation's, or a bundle's) as :class:`VariantRow` s; None when there is none."""
        path = self.path / "variants.json"
        return rows_from_json(self.read_json(path.name), str(path)) if path.exists() else None


class ModelBlessing(Artifact):
    """A retrained candidate compared with the last exported bundle on the candidate's evaluation data
    (``blessing.json``: both metrics, the bound, the verdict the export gate enforces; TFX's ModelBlessing)."""

    type_name = "ModelBlessing"


class SearchResults(Artifact):
    """A budget search's trials (``search.json``: params, metric, flash, arena, latency, energy, fits, Pareto flag,
    the best trial under the budget; ``pipeline/search.py``)."""

    type_name = "SearchResults"
    filename = "search.json"


class Report(Artifact):
    """A self-contained HTML report of a run (``report.html``: inline CSS, plots embedded as base64 PNG)."""

    type_name = "Report"
    filename = "report.html"


class Bundle(Artifact):
    """The exported deliverable: models, ``bundle.json``, summary. Copied to ``--output`` by the CLI."""

    type_name = "Bundle"
    meta_file = "bundle.json"

    @classmethod
    def replace_refusal(cls, path: str | os.PathLike) -> str | None:
        """Why a bundle must not replace ``path``, or None when it may: ``path`` is missing, an empty directory, or
        an earlier bundle (its ``bundle.json`` holds ``schema_version`` and ``task``, which every exporter writes).
        Anything else may be the user's own files, which a copy would delete."""
        path = Path(path)
        if not path.exists():
            return None if not path.is_symlink() else "is a broken symbolic link"
        if not path.is_dir():
            return "exists and is not a directory"
        entries = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in path.iterdir())
        if not entries or cls.is_bundle_dir(path):
            return None
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        return (f"holds files that are not an edgepipe bundle ({shown}); refusing to replace them: choose a new or "
                "empty directory")

    @classmethod
    def is_bundle_dir(cls, path: str | os.PathLike) -> bool:
        try:
            doc = json.loads((Path(path) / cls.meta_file).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return (isinstance(doc, dict) and isinstance(doc.get("schema_version"), int)
                and isinstance(doc.get("task"), str))

    def copy_to(self, destination: str | os.PathLike,
                may_replace: Callable[[Path], str | None] | None = None) -> Path:
        """As :meth:`Artifact.copy_to`, refusing by default to replace anything but an earlier bundle."""
        return super().copy_to(destination, may_replace or self.replace_refusal)


ARTIFACT_TYPES: dict[str, type[Artifact]] = {
    cls.type_name: cls
    for cls in (Artifact, Examples, ExampleStatistics, Schema, ValidationReport, Rejects, TransformParams, Model,
                TFLiteModels, ModelEvaluation, ModelBlessing, SearchResults, Report, Bundle)
}


def artifact_type(name: str) -> type[Artifact]:
    return ARTIFACT_TYPES[name]

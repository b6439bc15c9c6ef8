"""What every ingest source shares: the split defaults, writing a batch of columns as one shard per split, the
final artifact properties, and typing CSV-like columns.

Why one module: each source (:mod:`.ingest_csv`, :mod:`.ingest_tfrecord`, :mod:`.ingest_npz`,
:mod:`.ingest_images`, :mod:`.ingest_tfds`) writes the same contract (sharded GZIP TFRecords of
``tf.train.Example`` under ``Split-<name>/``, properties ``splits``, ``feature_spec``, ``counts``, ``kind`` and
source-specific descriptors), so the writing and the bookkeeping live once, here.
"""
from __future__ import annotations

import csv
from typing import Any

import numpy as np

from edgepipe.components.data.beam.example_encode import encode_batch
from edgepipe.components.data.beam.files import shard_name, write_shard
from edgepipe.components.data.beam.job import count
from edgepipe.components.data.csv_rows import open_text
from edgepipe.components.data.splits import SplitSpec, assign
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.contracts import ExamplesInfo
from edgepipe.pipeline.errors import DataError

DEFAULT_SPLIT = {"train": 0.8, "eval": 0.1, "test": 0.1}
MISSING = ["", "NA", "NaN", "null"]
TYPES = ("float", "int", "string")
SPEC_DTYPE = {"float": "float32", "int": "int64", "string": "string"}


def write_batch(examples: str | Examples, spec: SplitSpec, columns: dict[str, Any], hashes: np.ndarray, *ident):
    """Assign rows to splits by ``hashes``, encode and write one shard per split; yields count records."""
    n = len(hashes)
    if n == 0:
        return
    which = assign(spec, hashes)
    for i, name in enumerate(spec.names):
        rows = np.flatnonzero(which == i)
        if len(rows) == 0:
            continue
        part = {k: (v[rows] if isinstance(v, np.ndarray) else [v[r] for r in rows.tolist()])
                for k, v in columns.items()}
        write_shard(examples, name, shard_name(*ident, name), encode_batch(part))
        yield count(f"examples_{name}", len(rows))


def finish(examples: Examples, spec: SplitSpec, result, **properties) -> dict:
    counts = {name: result.get(f"examples_{name}") for name in spec.names}
    if sum(counts.values()) == 0:
        raise DataError(f"{properties.get('source', examples.path)}: no usable examples")
    for name in spec.names:
        examples.split_dir(name)
    facts = dict(splits=list(spec.names), counts=counts, split=spec.to_json(), **properties)
    examples.properties.update(ExamplesInfo.from_dict(facts, f"{examples.path} properties").to_dict())  # typed
    return {f"examples_{k}": v for k, v in counts.items()}


def _column_kind(cells: list[str], missing: set[str]) -> str:
    present = [c.strip() for c in cells if c.strip() not in missing]
    if not present:
        return "float"
    parsed = []
    for c in present:
        try:
            parsed.append(float(c))
        except ValueError:
            pass
    if len(present) - len(parsed) > max(2, 0.05 * len(present)):  # a few bad cells in a numeric column: rejects
        return "string"
    has_missing = len(present) < len(cells)
    integral = all("." not in c and "e" not in c.lower() for c in present)
    if not has_missing and len(parsed) == len(present) and np.all(np.isfinite(parsed)) and integral:
        return "int"
    return "float"


def infer_column_types(path: str, header: list[str], delimiter: str, missing: set[str], sample: int = 2000
                       ) -> dict[str, str]:
    """float / int / string per column from the first ``sample`` rows (int only if no value is missing)."""
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader, None)
        rows = []
        for row in reader:
            if len(row) == len(header):
                rows.append(row)
            if len(rows) >= sample:
                break
    columns = list(zip(*rows)) if rows else [[] for _ in header]
    return {name: _column_kind(list(cells), missing) for name, cells in zip(header, columns)}

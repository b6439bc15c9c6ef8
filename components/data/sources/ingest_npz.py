"""NumPy ``.npz`` arrays -> one Example per row (``ingest_npz``): ``x`` and a ``label`` of any per-row shape.

Why a module of its own: one source a module, registered with :func:`.registry.source` for ``.npz`` paths. Rows are
read in ranges by seeking inside the archive, so no worker loads the whole array.
"""
from __future__ import annotations

import zipfile
from contextlib import contextmanager
from typing import Any

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam.files import base_name, open_input, worker_uri
from edgepipe.components.data.beam.job import Job, count, reject
from edgepipe.components.data.ingest import resolve_files
from edgepipe.components.data.sources.registry import source
from edgepipe.components.data.sources.shared import DEFAULT_SPLIT, finish, write_batch
from edgepipe.components.data.splits import SplitSpec, hash_values, identity_hash, parse_split
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.component import InputPath, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError


@contextmanager
def _zip(path: str):
    """An archive on any Beam filesystem (zipfile seeks in the handle)."""
    with open_input(path) as handle, zipfile.ZipFile(handle) as archive:
        yield archive


def npz_member(path: str, key: str) -> tuple[tuple, np.dtype, bool, int]:
    """(shape, dtype, fortran order, data offset) of an array in an .npz without loading it."""
    with _zip(path) as archive, archive.open(f"{key}.npy") as handle:
        major, _ = np.lib.format.read_magic(handle)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(handle)
        return shape, dtype, fortran, handle.tell()


def npz_rows(path: str, key: str, lo: int, hi: int) -> np.ndarray:
    """Rows [lo, hi) of an .npz member, read by seeking (no full load for C-ordered arrays)."""
    shape, dtype, fortran, offset = npz_member(path, key)
    if fortran or dtype.hasobject:
        with open_input(path) as handle:
            return np.load(handle, allow_pickle=False)[key][lo:hi]
    row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    with _zip(path) as archive, archive.open(f"{key}.npy") as handle:
        handle.seek(offset + lo * row)
        raw = handle.read((hi - lo) * row)
    return np.frombuffer(raw, dtype).reshape(hi - lo, *shape[1:])


class ReadNpz(beam.DoFn):
    def __init__(self, examples: str, spec: SplitSpec, x_key: str, y_key: str | None, y_float: bool):
        self.examples, self.spec, self.x_key, self.y_key, self.y_float = examples, spec, x_key, y_key, y_float

    def process(self, item):
        path, lo, hi = item
        columns = {"x": npz_rows(path, self.x_key, lo, hi).astype(np.float32)}
        if self.y_key:
            y = npz_rows(path, self.y_key, lo, hi)
            columns["label"] = y.astype(np.float32) if self.y_float else y.astype(np.int64)
        if self.spec.method == "hash":
            hashes = hash_values(npz_rows(path, self.spec.key, lo, hi).reshape(hi - lo, -1)[:, 0])
        else:
            hashes = identity_hash(base_name(path), 0, np.arange(lo, hi))
        bad = ~np.isfinite(columns["x"].reshape(hi - lo, -1)).all(axis=1)
        for i in np.flatnonzero(bad):
            yield reject(path, lo + i, f"non-finite value in '{self.x_key}' example {lo + i}")
        if bad.any():
            keep = np.flatnonzero(~bad)
            columns = {k: v[keep] for k, v in columns.items()}
            hashes = hashes[keep]
        yield count("rows_read", hi - lo)
        yield from write_batch(self.examples, self.spec, columns, hashes, "npz", path, lo)


@source("npz", suffixes=(".npz",))
@component(version="2")
def ingest_npz(examples: Output[Examples], source: InputPath, x_key: str = "x", y_key: str | None = "y",
               split: dict | None = None, rows_per_task: int = 4096, beam_args: list[str] | None = None) -> dict:
    """Arrays from an ``.npz`` (``x_key`` [n, ...], ``y_key`` [n, ...]) -> Examples ``x`` float32 with the
    per-example shape and ``label`` with the target's per-example shape (a class: []; a mask: [h, w]; int64, or
    float32 if ``y`` is not integer); rows with non-finite ``x`` are dropped and counted. Rows are read in ranges by
    seeking inside the archive, so no worker loads the whole array."""
    files = resolve_files(worker_uri(source, beam_args), "ingest_npz", "an .npz path")
    path = files[0]
    try:
        with _zip(path) as archive:
            names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"cannot read '{path}' as .npz: {err}") from None
    for key in [x_key, *([y_key] if y_key else [])]:
        if key not in names:
            raise DataError(f"'{path}' has no array '{key}' (arrays: {', '.join(names)})")
    shape, dtype, _, _ = npz_member(path, x_key)
    if not shape or dtype.kind not in "iufb":
        raise DataError(f"'{path}': '{x_key}' must be a numeric array [n, ...], got {dtype} {shape}")
    n = shape[0]
    y_float, y_shape = False, (n,)
    if y_key:
        y_shape, y_dtype, _, _ = npz_member(path, y_key)
        if y_shape[:1] != (n,):  # one target per example: both arrays' first axis counts examples
            has = f"{y_shape[0]} examples" if y_shape else "one value (a scalar)"
            raise DataError(f"'{path}': '{y_key}' has {has}, '{x_key}' has {n}")
        y_float = y_dtype.kind == "f"
    spec = parse_split(split, DEFAULT_SPLIT, where="ingest_npz split")
    if spec.method == "hash" and spec.key not in names:
        raise ConfigError(f"ingest_npz split: hash key '{spec.key}' is not an array of {path}")
    tasks = [(path, lo, min(lo + rows_per_task, n)) for lo in range(0, n, max(1, rows_per_task))]
    job = Job(beam_args, examples.path / "_report")
    job.report(job.pipeline | "Ranges" >> beam.Create(tasks)
               | "Read" >> beam.ParDo(ReadNpz(job.uri(examples.path), spec, x_key, y_key, y_float)))
    result = job.run()
    feature_spec = {"x": {"dtype": "float32", "shape": list(shape[1:])}}
    if y_key:
        # A per-example target may itself be an array (a segmentation mask [h, w]): its shape is declared.
        feature_spec["label"] = {"dtype": "float32" if y_float else "int64", "shape": list(y_shape[1:])}
    props: dict[str, Any] = {}
    with open_input(path) as handle, np.load(handle, allow_pickle=False) as data:
        if "class_names" in data.files:
            props["class_names"] = [str(c) for c in data["class_names"]]
    metrics = finish(examples, spec, result, kind="arrays", source=str(source), feature_spec=feature_spec, **props)
    return {"rows_read": result.get("rows_read"), "rows_dropped": len(result.rejects), **metrics}

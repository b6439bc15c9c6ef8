"""Ingest components for non-series sources: CSV tables, TFRecord files, ``.npz`` arrays, image folders, TFDS.

All write the same contract: sharded GZIP TFRecords of ``tf.train.Example`` under ``Split-<name>/``, properties
``splits``, ``feature_spec`` ({name: {"dtype": "float32"|"int64"|"string", "shape": [...] or None}}), ``counts``
(examples per split), ``kind`` ("table", "records", "arrays", "images") and source-specific descriptors; a
``Rejects`` artifact (``rejects.jsonl``: file, line or record number, reason) where inputs can be bad. Splits come
from :mod:`splits` (fraction by row identity, or hash of a key), so they are stable across runs and runners.

Work is cut into elements that a worker handles alone: byte ranges of CSV files, TFRecord files, row ranges of an
``.npz`` member, batches of image files, TFDS splits; each writes its own shards (``beam.files.write_shard``).
"""
from __future__ import annotations

import csv
from collections import Counter
from contextlib import contextmanager
import io
import zipfile
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam.example_decode import parse_example
from edgepipe.components.data.beam.example_encode import encode_batch
from edgepipe.components.data.beam.files import base_name, open_input, shard_name, worker_uri, write_shard
from edgepipe.components.data.beam.job import Job, count, reject, value
from edgepipe.components.data.beam.tfrecord import frame, read_records
from edgepipe.components.data.csv_rows import (FLOAT32_MAX, SPLIT_BYTES, has_surrogates, iter_blocks, plan_ranges,
                                               read_range_text, split_fields)
from edgepipe.components.data.ingest import check_rejects, read_header, resolve_files, resolve_lines, write_rejects
from edgepipe.components.data.splits import (SplitSpec, assign, hash_text, hash_values, identity_hash, mix64,
                                            parse_split)
from edgepipe.pipeline.artifacts import Examples, Rejects
from edgepipe.pipeline.component import InputPath, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError

DEFAULT_SPLIT = {"train": 0.8, "eval": 0.1, "test": 0.1}
MISSING = ["", "NA", "NaN", "null"]
TYPES = ("float", "int", "string")
SPEC_DTYPE = {"float": "float32", "int": "int64", "string": "string"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


# ---- shared: split + write a batch of columns ------------------------------------------------------------------
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
    examples.properties.update(splits=list(spec.names), counts=counts, split=spec.to_json(), **properties)
    return {f"examples_{k}": v for k, v in counts.items()}


# ---- CSV tables ------------------------------------------------------------------------------------------------
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
    from edgepipe.components.data.csv_rows import open_text

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


class ParseTable(beam.DoFn):
    """A byte range of a CSV table -> rows as typed columns, split and written; rejects with reasons."""

    def __init__(self, examples: str, spec: SplitSpec, headers: dict[str, list[str]], features: list[str],
                 types: dict[str, str], label: str | None, label_type: str | None, delimiter: str,
                 missing: list[str]):
        self.examples, self.spec, self.headers, self.features = examples, spec, headers, features
        self.types, self.label, self.label_type = types, label, label_type
        self.delimiter, self.missing = delimiter, list(missing)

    def process(self, item):
        _, path, start, end = item
        text, newlines = read_range_text(path, start, end)
        yield value(f"lines/{path}@{start}", newlines)
        header = self.headers[path]
        rows_read = 0
        for b, (kind, rows, lines, bad) in enumerate(iter_blocks(text, start == 0, self.delimiter)):
            for line, reason in bad:
                rows_read += 1
                yield reject(path, line, reason, range=start)
            rows_read += len(rows)
            table = rows if kind == "csv" else split_fields(rows, self.delimiter)
            yield from self._block(path, start, b, header, table, lines)
        yield count("rows_read", rows_read)

    def _block(self, path, start, block, header, rows, numbers):
        keep = []
        for i, row in enumerate(rows):
            if len(row) != len(header):
                what = "missing field" if len(row) < len(header) else "too many fields"
                yield reject(path, numbers[i], f"{what}: expected {len(header)} fields, got {len(row)}", range=start)
            else:
                keep.append(i)
        if not keep:
            return
        table = np.array([rows[i] for i in keep], dtype=str).reshape(len(keep), len(header))
        lines = np.asarray(numbers, np.int64)[keep]
        index = {name: i for i, name in enumerate(header)}
        reason = np.full(len(keep), None, dtype=object)
        missing_set = set(self.missing)
        columns: dict[str, Any] = {}
        wanted = [*self.features, *([self.label] if self.label else [])]
        for column in sorted(wanted, key=index.__getitem__):
            cells = np.char.strip(table[:, index[column]])
            kind = self.label_type if column == self.label else self.types[column]
            absent = np.isin(cells, list(missing_set))
            for i, text in enumerate(cells.tolist()):
                if reason[i] is None and has_surrogates(text):
                    reason[i] = f"invalid UTF-8 in column '{column}'"
            if column == self.label:
                for i in np.flatnonzero(absent):
                    reason[i] = reason[i] or f"missing label in column '{column}'"
            name = "label" if column == self.label else column
            if kind == "string":
                columns[name] = np.where(absent, "", cells).astype(object)
                yield count(f"missing/{column}", int(absent.sum()))
                continue
            parsed = np.full(len(cells), np.nan)
            try:
                parsed[~absent] = cells[~absent].astype(np.float64)
            except ValueError:
                for i in np.flatnonzero(~absent):
                    try:
                        parsed[i] = float(cells[i])
                    except ValueError:
                        reason[i] = reason[i] or f"not a number in column '{column}': {cells[i][:40]!r}"
            bad = ~absent & np.isinf(parsed)
            for i in np.flatnonzero(bad):
                reason[i] = reason[i] or f"non-finite value in column '{column}': {cells[i][:40]!r}"
            for i in np.flatnonzero(np.abs(parsed) > FLOAT32_MAX):  # finite, but inf once stored as float32
                reason[i] = reason[i] or f"value out of float32 range in column '{column}': {cells[i][:40]!r}"
            if kind == "int":
                for i in np.flatnonzero(absent):
                    reason[i] = reason[i] or f"missing value in int column '{column}'"
                frac = np.isfinite(parsed) & (parsed != np.round(parsed))
                for i in np.flatnonzero(frac):
                    reason[i] = reason[i] or f"not an integer in column '{column}': {cells[i][:40]!r}"
                columns[name] = np.where(np.isfinite(parsed), parsed, 0).astype(np.int64)
            else:
                columns[name] = parsed.astype(np.float32)
                if column != self.label:
                    yield count(f"missing/{column}", int((absent | np.isnan(parsed)).sum()))
        key_cells = None
        if self.spec.method == "hash":
            key_cells = np.char.strip(table[:, index[self.spec.key]])
        ok = np.equal(reason, None)
        for i in np.flatnonzero(~ok):
            yield reject(path, int(lines[i]), reason[i], range=start)
        good = np.flatnonzero(ok)
        if len(good) == 0:
            return
        columns = {k: v[good] for k, v in columns.items()}
        if "label" in columns and columns["label"].dtype.kind == "i":
            yield value("label_values", np.unique(columns["label"]).tolist())
        if key_cells is not None:
            hashes = hash_values(key_cells[good])
        else:  # the row's own text (and file name): independent of how files are cut into ranges
            text = np.array([self.delimiter.join(row) for row in table[good].tolist()], dtype=object)
            hashes = mix64(hash_values(text) ^ np.uint64(hash_text(base_name(path))))
        yield from write_batch(self.examples, self.spec, columns, hashes, "csv", path, start, block)


@component(version="1")
def ingest_csv(examples: Output[Examples], rejects: Output[Rejects], source: InputPath,
               label_column: str | None = None, feature_columns: list[str] | None = None,
               column_types: dict[str, str] | None = None, delimiter: str = ",", split: dict | None = None,
               missing_values: list[str] = MISSING, max_reject_fraction: float = 0.01,
               split_bytes: int = SPLIT_BYTES, beam_args: list[str] | None = None) -> dict:
    """CSV files (a path or glob, with header) -> one Example per row: numeric columns float32 (missing -> NaN,
    counted) or int64, categorical columns string, ``label`` (int64 if the label column is integer, else float32);
    bad rows to ``rejects``."""
    files = resolve_files(worker_uri(source, beam_args))
    headers = {path: read_header(path) if delimiter == "," else _header(path, delimiter) for path in files}
    first = headers[files[0]]
    features = list(feature_columns) if feature_columns else [c for c in first if c != label_column]
    if "label" in features and label_column:
        raise ConfigError("ingest_csv: a feature column is named 'label', which the label column would overwrite")
    for path, header in headers.items():
        for column in [*features, *([label_column] if label_column else [])]:
            if column not in header:
                raise DataError(f"{path}: column '{column}' not in header ({', '.join(header)})")
    spec = parse_split(split, DEFAULT_SPLIT, where="ingest_csv split")
    if spec.method == "hash" and spec.key not in first:
        raise ConfigError(f"ingest_csv split: hash key '{spec.key}' is not a column ({', '.join(first)})")
    types = infer_column_types(files[0], first, delimiter, set(missing_values))
    for name, kind in (column_types or {}).items():
        if kind not in TYPES:
            raise ConfigError(f"ingest_csv column_types: '{name}': unknown type '{kind}' (float, int, string)")
        if name not in first:
            raise ConfigError(f"ingest_csv column_types: '{name}' is not a column")
        types[name] = kind
    label_type = None
    if label_column:
        label_type = types[label_column]
        if label_type == "string":
            raise ConfigError(f"ingest_csv: label column '{label_column}' is not numeric; encode classes as 0..k-1")

    job = Job(beam_args, examples.path / "_report")
    job.report(job.pipeline | "Ranges" >> beam.Create(plan_ranges(files, split_bytes))
               | "Parse" >> beam.ParDo(ParseTable(job.uri(examples.path), spec, headers, features, types, label_column,
                                                  label_type, delimiter, missing_values)))
    result = job.run()
    records = resolve_lines(result.rejects, {k: v for k, v in result.values.items() if k.startswith("lines/")})
    write_rejects(rejects, records)
    rows_read = result.get("rows_read")
    check_rejects(records, rows_read, max_reject_fraction)
    feature_spec = {c: {"dtype": SPEC_DTYPE[types[c]], "shape": []} for c in features}
    props: dict[str, Any] = {}
    if label_column:
        feature_spec["label"] = {"dtype": "int64" if label_type == "int" else "float32", "shape": []}
        if label_type == "int":
            values = sorted({v for part in result.values.get("label_values", []) for v in part})
            props.update(label_values=values, num_classes=(max(values) + 1) if values else 0)
    missing = {c: result.get(f"missing/{c}") for c in features if result.get(f"missing/{c}")}
    rejects.properties.update(count=len(records), rows_read=rows_read)
    metrics = finish(examples, spec, result, kind="table", source=str(source), feature_spec=feature_spec,
                     feature_columns=features, label_column=label_column,
                     column_types={c: types[c] for c in features}, missing_counts=missing, **props)
    return {"rows_read": rows_read, "rows_rejected": len(records), "missing_values": sum(missing.values()),
            **metrics}


def _header(path: str, delimiter: str) -> list[str]:
    from edgepipe.components.data.csv_rows import open_text

    with open_text(path) as handle:
        rows = [r for r in csv.reader(handle, delimiter=delimiter) if r][:2]
    if not rows:
        raise DataError(f"{path}: empty file (no header)")
    if len(rows) < 2:
        raise DataError(f"{path}: no data rows after the header")
    return [c.strip().lstrip("\ufeff") for c in rows[0]]


# ---- TFRecord files --------------------------------------------------------------------------------------------
_KIND_DTYPE = {"bytes": "string", "float": "float32", "int64": "int64"}


def infer_feature_spec(path: str, compression: str | None, sample: int = 100) -> dict[str, dict]:
    records = read_records(path, compression)[:sample]
    if not records:
        raise DataError(f"{path}: no records")
    spec: dict[str, dict] = {}
    lengths: dict[str, set] = {}
    for record in records:
        try:
            parsed = parse_example(record)
        except ValueError:
            continue
        for name, (kind, values) in parsed.items():
            if kind == "none":
                continue
            spec.setdefault(name, {"dtype": _KIND_DTYPE[kind]})
            lengths.setdefault(name, Counter())[len(values)] += 1
    if not spec:
        raise DataError(f"{path}: the first records are not tf.train.Example protos")
    for name, desc in spec.items():  # one length in >= 95% of the sample: fixed (the others become rejects)
        size, seen = lengths[name].most_common(1)[0]
        fixed = seen >= 0.95 * sum(lengths[name].values())
        desc["shape"] = ([] if size == 1 else [size]) if fixed else None
    return spec


def check_record(parsed: dict, spec: dict[str, dict]) -> str | None:
    for name, desc in spec.items():
        if name not in parsed or parsed[name][0] == "none":
            if desc.get("shape") is None:
                continue
            return f"missing feature '{name}'"
        kind, values = parsed[name]
        if _KIND_DTYPE[kind] != desc["dtype"]:
            return f"feature '{name}' is {_KIND_DTYPE[kind]}, expected {desc['dtype']}"
        if desc.get("shape") is not None:
            size = int(np.prod(desc["shape"])) if desc["shape"] else 1
            if len(values) != size:
                return f"feature '{name}' has {len(values)} values, expected {size}"
    return None


class CopyRecords(beam.DoFn):
    """A TFRecord file -> records checked against the feature spec, split and re-framed (bytes unchanged)."""

    def __init__(self, examples: str, spec: SplitSpec, feature_spec: dict, compression: str | None):
        self.examples, self.spec, self.feature_spec, self.compression = examples, spec, feature_spec, compression

    def process(self, path):
        try:
            from edgepipe.components.data.beam.files import read_file_bytes
            from edgepipe.components.data.beam.tfrecord import inflate, tfrecord_payloads

            records = tfrecord_payloads(inflate(read_file_bytes(path), self.compression), check=True)
        except (ValueError, OSError, EOFError) as err:
            yield reject(path, 0, f"unreadable TFRecord file: {str(err).splitlines()[0]}")
            yield count("records_read", 1)
            return
        yield count("records_read", len(records))
        good, keys = [], []
        for i, record in enumerate(records, start=1):
            try:
                parsed = parse_example(record)
                problem = check_record(parsed, self.feature_spec)
            except (ValueError, UnicodeDecodeError):
                problem = "not a tf.train.Example"
            if problem:
                yield reject(path, i, problem)
                continue
            good.append(i)
            if self.spec.method == "hash":
                kind, values = parsed.get(self.spec.key, ("none", None))
                keys.append(repr(values[0]) if values is not None and len(values) else "")
        hashes = hash_values(np.array(keys, dtype=object)) if self.spec.method == "hash" else \
            identity_hash(base_name(path), 0, np.asarray(good, np.int64))
        which = assign(self.spec, hashes) if good else np.zeros(0, int)
        for s, name in enumerate(self.spec.names):
            chosen = [bytes(records[good[j] - 1]) for j in np.flatnonzero(which == s).tolist()]
            if chosen:
                write_shard(self.examples, name, shard_name("tfr", path, name), frame(chosen))
                yield count(f"examples_{name}", len(chosen))


@component(version="1")
def ingest_tfrecord(examples: Output[Examples], rejects: Output[Rejects], source: InputPath,
                    feature_spec: dict | None = None, split: dict | None = None, compression: str | None = None,
                    max_reject_fraction: float = 0.01, beam_args: list[str] | None = None) -> dict:
    """TFRecord files of tf.train.Example (path or glob; GZIP/ZLIB/none, auto-detected when ``compression`` is
    None) -> the same records re-sharded into splits; records not matching ``feature_spec`` (inferred from the first
    100 records of the first file if absent) are rejected with their record number."""
    files = resolve_files(worker_uri(source, beam_args))
    if compression is not None and compression.upper() not in ("GZIP", "ZLIB", "NONE", ""):
        raise ConfigError(f"ingest_tfrecord: unknown compression '{compression}' (GZIP, ZLIB or none)")
    try:
        spec_in = dict(feature_spec) if feature_spec else infer_feature_spec(files[0], compression)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{files[0]}: unreadable TFRecord file ({str(err).splitlines()[0]})") from None
    spec = parse_split(split, DEFAULT_SPLIT, where="ingest_tfrecord split")
    job = Job(beam_args, examples.path / "_report")
    job.report(job.pipeline | "Files" >> beam.Create(files)
               | "Copy" >> beam.ParDo(CopyRecords(job.uri(examples.path), spec, spec_in, compression)))
    result = job.run()
    records = sorted(result.rejects, key=lambda r: (r["file"], r["line"]))
    write_rejects(rejects, records)
    read = result.get("records_read")
    check_rejects(records, read, max_reject_fraction)
    rejects.properties.update(count=len(records), rows_read=read)
    metrics = finish(examples, spec, result, kind="records", source=str(source), feature_spec=spec_in)
    return {"records_read": read, "records_rejected": len(records), **metrics}


# ---- NumPy .npz ------------------------------------------------------------------------------------------------
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
            yield reject(path, lo + i, f"non-finite value in '{self.x_key}' row {lo + i}")
        if bad.any():
            keep = np.flatnonzero(~bad)
            columns = {k: v[keep] for k, v in columns.items()}
            hashes = hashes[keep]
        yield count("rows_read", hi - lo)
        yield from write_batch(self.examples, self.spec, columns, hashes, "npz", path, lo)


@component(version="2")
def ingest_npz(examples: Output[Examples], source: InputPath, x_key: str = "x", y_key: str | None = "y",
               split: dict | None = None, rows_per_task: int = 4096, beam_args: list[str] | None = None) -> dict:
    """Arrays from an ``.npz`` (``x_key`` [n, ...], ``y_key`` [n, ...]) -> Examples ``x`` float32 with the
    per-example shape and ``label`` with the target's per-example shape (a class: []; a mask: [h, w]; int64, or
    float32 if ``y`` is not integer); rows with non-finite ``x`` are dropped and counted. Rows are read in ranges by
    seeking inside the archive, so no worker loads the whole array."""
    files = resolve_files(worker_uri(source, beam_args))
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
        if y_shape[:1] != (n,):
            raise DataError(f"'{path}': '{y_key}' has {y_shape[:1]} rows, '{x_key}' has {n}")
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


# ---- image folders ---------------------------------------------------------------------------------------------
class DecodeImages(beam.DoFn):
    def __init__(self, examples: str, spec: SplitSpec, root: str, size: tuple[int, int], channels: int,
                 classes: list[str]):
        self.examples, self.spec, self.root, self.size = examples, spec, root, size
        self.channels, self.classes = channels, classes

    def process(self, batch):
        from PIL import Image

        index, paths = batch
        h, w = self.size
        xs, labels, names = [], [], []
        for path in paths:
            try:
                with open_input(path) as handle, Image.open(handle) as image:
                    image = image.convert("RGB" if self.channels == 3 else ("RGBA" if self.channels == 4 else "L"))
                    image = image.resize((w, h), Image.BILINEAR)
                    array = np.asarray(image, np.float32) / 255.0
            except Exception as err:  # PIL raises many kinds for a bad file
                yield reject(path, 0, f"cannot decode image: {type(err).__name__}: {str(err).splitlines()[0]}"
                             if str(err) else f"cannot decode image: {type(err).__name__}")
                continue
            xs.append(array.reshape(h, w, self.channels))
            rel = path[len(self.root):].lstrip("/")  # <label>/<file>, as the launcher listed it
            labels.append(self.classes.index(rel.split("/", 1)[0]))
            names.append(rel)
        yield count("images_read", len(paths))
        if xs:
            hashes = hash_values(np.array(names, dtype=object))
            yield from write_batch(self.examples, self.spec, {"x": np.stack(xs), "label": np.array(labels, np.int64)},
                                   hashes, "img", index)


@component(version="1")
def ingest_images(examples: Output[Examples], rejects: Output[Rejects], source: InputPath,
                  image_size: list[int] = [32, 32], channels: int = 3, split: dict | None = None,
                  max_reject_fraction: float = 0.01, batch_size: int = 256,
                  beam_args: list[str] | None = None) -> dict:
    """An image folder ``root/<label>/*.png|jpg|jpeg`` -> ``x`` float32 [H, W, C] in 0..1 and ``label`` int64 (class
    = index of the sorted sub-folder names, in ``class_names``); undecodable images -> rejects."""
    root = Path(str(source))
    if not root.is_dir():
        raise DataError(f"image folder not found: {source}")
    if channels not in (1, 3, 4) or len(image_size) != 2 or min(image_size) < 1:
        raise ConfigError(f"ingest_images: need channels 1, 3 or 4 and image_size [H, W], got {channels}, "
                          f"{image_size}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = sorted(str(p) for c in classes for p in (root / c).iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{source}: no images (expected <root>/<label>/*.png|jpg|jpeg)")
    spec = parse_split(split, DEFAULT_SPLIT, where="ingest_images split")
    if spec.method == "hash":
        raise ConfigError("ingest_images split: only fractions (by file name)")
    job = Job(beam_args, examples.path / "_report")
    files = [job.uri(f) for f in files]
    batches = [(i, files[i:i + batch_size]) for i in range(0, len(files), batch_size)]
    job.report(job.pipeline | "Batches" >> beam.Create(batches)
               | "Decode" >> beam.ParDo(DecodeImages(job.uri(examples.path), spec, job.uri(root), tuple(image_size), channels,
                                                     classes)))
    result = job.run()
    records = sorted(result.rejects, key=lambda r: r["file"])
    write_rejects(rejects, records)
    check_rejects(records, len(files), max_reject_fraction)
    rejects.properties.update(count=len(records), rows_read=len(files))
    feature_spec = {"x": {"dtype": "float32", "shape": [*image_size, channels]},
                    "label": {"dtype": "int64", "shape": []}}
    metrics = finish(examples, spec, result, kind="images", source=str(source), feature_spec=feature_spec,
                     class_names=classes, image_size=list(image_size), channels=channels)
    return {"images": len(files), "images_rejected": len(records), **metrics}


# ---- TensorFlow Datasets ---------------------------------------------------------------------------------------
DEFAULT_TFDS_SPLITS = {"train": "train[:80%]", "eval": "train[80%:]", "test": "test"}


class ReadTfds(beam.DoFn):
    def __init__(self, examples: str, name: str, data_dir: str | None, image_key: str, label_key: str | None,
                 batch_size: int):
        self.examples, self.name, self.data_dir = examples, name, data_dir
        self.image_key, self.label_key, self.batch_size = image_key, label_key, batch_size

    def process(self, item):
        import tensorflow_datasets as tfds

        split, spec = item
        ds = tfds.load(self.name, split=spec, data_dir=self.data_dir, shuffle_files=False)
        for b, batch in enumerate(tfds.as_numpy(ds.batch(self.batch_size))):
            x = np.asarray(batch[self.image_key])
            columns = {"x": x.astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)}
            if self.label_key:
                columns["label"] = np.asarray(batch[self.label_key]).astype(np.int64)
            write_shard(self.examples, split, shard_name("tfds", self.name, spec, b), encode_batch(columns))
            yield count(f"examples_{split}", len(x))


@component(version="1")
def ingest_tfds(examples: Output[Examples], name: str, splits: dict[str, str] | None = None,
                data_dir: str | None = None, batch_size: int = 1024, beam_args: list[str] | None = None) -> dict:
    """A TensorFlow Datasets dataset (``mnist``, ``fashion_mnist``, ``cifar10`` ...; prepared in ``data_dir`` or
    downloadable) -> ``x`` float32 (images scaled to 0..1) and ``label`` int64 per example; ``splits`` maps our
    split names to TFDS split specs (``{"train": "train[:80%]", "eval": "train[80%:]", "test": "test"}``)."""
    import tensorflow_datasets as tfds

    name = name[len("tfds:"):] if name.startswith("tfds:") else name
    splits = dict(splits or DEFAULT_TFDS_SPLITS)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        builder.download_and_prepare()
    except Exception as err:  # DatasetNotFoundError, network errors, ...
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"TFDS dataset '{name}' is not available ({detail}); prepare it in data_dir first") from None
    features = builder.info.features
    image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    label_keys = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    if not image_keys:
        raise DataError(f"TFDS dataset '{name}': no image feature (features: {', '.join(features)})")
    image_key, label_key = image_keys[0], (label_keys[0] if label_keys else None)
    shape = list(features[image_key].shape)
    job = Job(beam_args, examples.path / "_report")
    job.report(job.pipeline | "Splits" >> beam.Create(sorted(splits.items()))
               | "Read" >> beam.ParDo(ReadTfds(job.uri(examples.path), name, data_dir and job.uri(data_dir), image_key, label_key, batch_size)))
    result = job.run()
    feature_spec = {"x": {"dtype": "float32", "shape": shape}}
    props: dict[str, Any] = {}
    if label_key:
        feature_spec["label"] = {"dtype": "int64", "shape": []}
        props["class_names"] = list(features[label_key].names)
    counts = {s: result.get(f"examples_{s}") for s in splits}
    if sum(counts.values()) == 0:
        raise DataError(f"TFDS dataset '{name}': no examples in splits {splits}")
    for s in splits:
        examples.split_dir(s)
    examples.properties.update(splits=list(splits), counts=counts, kind="images", source=f"tfds:{name}",
                               tfds_splits=splits, feature_spec=feature_spec, **props)
    return {f"examples_{s}": n for s, n in counts.items()}

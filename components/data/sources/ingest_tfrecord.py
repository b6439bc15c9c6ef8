"""TFRecord files of tf.train.Example -> the same records checked and re-sharded into splits (``ingest_tfrecord``).

Why a module of its own: one source a module, registered with :func:`.registry.source` for ``.tfrecord`` paths.
Each file is one element; records are checked against a feature spec (given, or inferred from the first file) and
copied unchanged, except that a ``label_column`` is renamed ``label`` (the name every trainer reads) in the record's
bytes, so values of every kind (several bytes values too) pass through untouched.
"""
from __future__ import annotations

from collections import Counter

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam.example_decode import parse_example
from edgepipe.components.data.beam.files import base_name, read_file_bytes, shard_name, worker_uri, write_shard
from edgepipe.components.data.beam.job import Job, count, reject
from edgepipe.components.data.beam.tfrecord import frame, inflate, read_records, tfrecord_payloads
from edgepipe.components.data.ingest import record_rejects, resolve_files
from edgepipe.components.data.sources.registry import source
from edgepipe.components.data.sources.shared import DEFAULT_SPLIT, finish
from edgepipe.components.data.splits import SplitSpec, assign, hash_values, identity_hash, parse_split
from edgepipe.pipeline.artifacts import Examples, Rejects
from edgepipe.pipeline.component import InputPath, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError


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


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        bits, n = n & 0x7F, n >> 7
        out.append(bits | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _fields(buf: memoryview):
    """(field number, payload) of each length-delimited field of a protobuf message (all an Example has)."""
    pos = 0
    while pos < len(buf):
        values = []
        for _ in range(2):  # the tag, then the length
            shift = value = 0
            while True:
                byte = buf[pos]
                pos += 1
                value |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            values.append(value)
        tag, length = values
        if tag & 7 != 2 or pos + length > len(buf):
            raise ValueError("malformed Example")
        yield tag >> 3, buf[pos:pos + length]
        pos += length


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def rename_feature(record: bytes, old: str, new: str) -> bytes:
    """A serialized Example with feature ``old`` named ``new``; every other map entry and every value keeps its
    bytes (a feature already named ``new`` is dropped: the caller refuses that case up front)."""
    entries = []
    for _, features in _fields(memoryview(record)):
        for _, entry in _fields(features):
            parts = dict(_fields(entry))
            name = bytes(parts.get(1, b"")).decode()
            if name == old:
                entries.append(_field(1, _field(1, new.encode()) + _field(2, bytes(parts.get(2, b"")))))
            elif name != new:
                entries.append(_field(1, bytes(entry)))
    return _field(1, b"".join(entries))


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

    def __init__(self, examples: str, spec: SplitSpec, feature_spec: dict, compression: str | None,
                 label_column: str | None = None):
        self.examples, self.spec, self.feature_spec, self.compression = examples, spec, feature_spec, compression
        self.label_column = label_column

    def process(self, path):
        try:
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
            if self.label_column:
                chosen = [rename_feature(record, self.label_column, "label") for record in chosen]
            if chosen:
                write_shard(self.examples, name, shard_name("tfr", path, name), frame(chosen))
                yield count(f"examples_{name}", len(chosen))


@source("tfrecord", suffixes=(".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".tfrec"))
@component(version="1")
def ingest_tfrecord(examples: Output[Examples], rejects: Output[Rejects], source: InputPath,
                    feature_spec: dict | None = None, label_column: str | None = None, split: dict | None = None,
                    compression: str | None = None, max_reject_fraction: float = 0.01,
                    beam_args: list[str] | None = None) -> dict:
    """TFRecord files of tf.train.Example (path or glob; GZIP/ZLIB/none, auto-detected when ``compression`` is
    None) -> the same records re-sharded into splits; records not matching ``feature_spec`` (inferred from the first
    100 records of the first file if absent) are rejected with their record number. ``label_column``: the feature
    that is the label, renamed ``label`` in every record and in the feature spec."""
    files = resolve_files(worker_uri(source, beam_args), "ingest_tfrecord", "a TFRecord path")
    if compression is not None and compression.upper() not in ("GZIP", "ZLIB", "NONE", ""):
        raise ConfigError(f"ingest_tfrecord: unknown compression '{compression}' (GZIP, ZLIB or none)")
    try:
        spec_in = dict(feature_spec) if feature_spec else infer_feature_spec(files[0], compression)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{files[0]}: unreadable TFRecord file ({str(err).splitlines()[0]})") from None
    if label_column and label_column != "label":
        if label_column not in spec_in:
            raise DataError(f"{files[0]}: no feature '{label_column}' to use as the label "
                            f"(features: {', '.join(sorted(spec_in))})")
        if "label" in spec_in:
            raise ConfigError(f"ingest_tfrecord: the records already have a 'label' feature; set data.label_column "
                              f"to label (or leave it unset) instead of '{label_column}'")
    spec = parse_split(split, DEFAULT_SPLIT, where="ingest_tfrecord split")
    job = Job(beam_args, examples.path / "_report")
    job.report(job.pipeline | "Files" >> beam.Create(files)
               | "Copy" >> beam.ParDo(CopyRecords(job.uri(examples.path), spec, spec_in, compression,
                                                  label_column if label_column != "label" else None)))
    result = job.run()
    records = sorted(result.rejects, key=lambda r: (r["file"], r["line"]))
    read = result.get("records_read")
    record_rejects(rejects, records, read, max_reject_fraction, "records")
    props = {}
    if label_column:
        spec_in = {("label" if k == label_column else k): v for k, v in spec_in.items()}
        props["label_column"] = label_column
    metrics = finish(examples, spec, result, kind="records", source=str(source), feature_spec=spec_in, **props)
    return {"records_read": read, "records_rejected": len(records), **metrics}

"""Shared Beam plumbing for the data components: runner-portable jobs, TFRecord shards, bulk Example coding.

Why not Beam's own sinks and metrics: the same pipeline must give the same result on DirectRunner (in-process or
``multi_processing``), on a Dask cluster and on Dataflow/Flink/Spark, and Beam's Dask runner (2.77) supports only
Create, ParDo, GroupByKey and Flatten: no file sinks (``WriteToTFRecord`` writes empty files there), no metrics,
no multi-output ParDo (``with_outputs``/``Partition`` mix their outputs), no side inputs worth using, and it
computes only the *last* transform of the graph. So every data component is written against that common subset:

* data stays in NumPy batches inside DoFns (one element = a file, a byte range, a chunk, never a row);
* DoFns write their own GZIP TFRecord shards (:func:`write_shard`: deterministic names, written to a hidden
  temporary file and renamed, so a retried bundle overwrites instead of duplicating), through Beam's
  ``FileSystems`` so any Beam filesystem works (local, gs://, s3:// ...; paths from :func:`worker_uri`), and emit
  *report records* (counts, rejects, small values) instead of updating metrics;
* a :class:`Job` funnels every report record into one final sink, applied last, so that the last transform
  depends on all the work (what the Dask runner needs) and counts arrive by data on every runner.

Examples are encoded by :func:`encode_batch` (whole NumPy batches -> framed TFRecord bytes, vectorized; ~1 us a
window) and decoded by :func:`decode_example` (packed lists straight to NumPy), so workers never import TensorFlow.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import uuid
import zlib
from typing import Any, Iterable, Iterator

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

NAMESPACE = "edgepipe"
GZIP_LEVEL = 1  # TFRecords of floats barely compress; level 1 is ~4x faster than 6 for ~3% larger files
# Time-series chunks (raw float32 steps, read again by statistics, normalize and make_windows) are written as
# *stored* GZIP (level 0: still GZIP, every reader unchanged): deflating them costs ~18 ms/MB for a ratio of ~0.7,
# storing ~2 ms/MB, and reading a stored shard is 3x faster. Windows (each step repeated size/stride times)
# deflate to ~0.13 at level 1 cheaply and keep GZIP_LEVEL. Measured numbers in docs/data.md.
CHUNK_GZIP_LEVEL = 0
RUNNER_ALIASES = {"DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner"}
REPORT_DIR = "_report"


# ---- pipelines ------------------------------------------------------------------------------------------------------
def pipeline_options(beam_args: list[str] | None = None) -> PipelineOptions:
    """Options from command-line style args; DirectRunner unless ``--runner`` says otherwise; ``DaskRunner`` is
    accepted as a short name (Beam only knows it by its module path)."""
    args = []
    for arg in beam_args or []:
        if arg.startswith("--runner="):
            name = arg.split("=", 1)[1]
            arg = f"--runner={RUNNER_ALIASES.get(name, name)}"
        args.append(arg)
    options = PipelineOptions(args)
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    return options


def beam_pipeline(beam_args: list[str] | None = None) -> beam.Pipeline:
    return beam.Pipeline(options=pipeline_options([*(beam_args or []), *dask_partitioning(beam_args)]))


def dask_partitioning(beam_args: list[str] | None) -> list[str]:
    """``--dask_npartitions`` = 2 x the cluster's worker threads, unless a partitioning is given.

    Why: Beam's Dask ``Create`` packs 128 elements into one Dask partition by default, and every element here is
    already a coarse unit of work (a byte range, a shard, a time bucket): a component's few hundred elements would
    run on one or two workers. One partition an element is no better (each partition costs a bundle set-up and a
    wider shuffle: 2M samples took 20.5 s that way, 11.6 s with the default, 10.8 s with 2 per thread on 2
    threads). Without ``--dask_client_address`` Beam starts a local cluster: this machine's CPUs are counted."""
    args = list(beam_args or [])
    runner = pipeline_options(args).view_as(StandardOptions).runner or ""
    if not str(runner).endswith("DaskRunner") or any(
            a.startswith(("--dask_partition_size", "--dask_npartitions")) for a in args):
        return []
    address = next((a.split("=", 1)[1] for a in args if a.startswith("--dask_client_address=")), None)
    threads = os.cpu_count() or 1
    if address:
        from distributed import Client

        with Client(address, timeout=30, set_as_default=False) as client:
            threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
    return [f"--dask_npartitions={2 * threads}"]


def count(name: str, value: int = 1) -> tuple:
    """A report record adding ``value`` to counter ``name`` (yield it from a DoFn; see :func:`split_outputs`)."""
    return ("report", ("count", name, int(value)))


def reject(path: str, line: int, reason: str, **extra: Any) -> tuple:
    """A report record for one unusable input row/record/file: ``{"file", "line", "reason"}``."""
    return ("report", ("reject", {"file": str(path), "line": int(line), "reason": reason, **extra}))


def value(key: str, obj: Any) -> tuple:
    """A report record carrying a small result (statistics of a split, line counts of a range ...)."""
    return ("report", ("value", key, obj))


def data(payload: Any) -> tuple:
    return ("data", payload)


def _pick(item, tag: str):
    if item[0] == tag:
        yield item[1]


def split_outputs(pcoll: beam.PCollection, label: str) -> tuple[beam.PCollection, beam.PCollection]:
    """A DoFn's mixed output -> (data, report records), with two FlatMaps (portable, unlike ``with_outputs``)."""
    return (pcoll | f"{label}.data" >> beam.FlatMap(_pick, "data"),
            pcoll | f"{label}.report" >> beam.FlatMap(_pick, "report"))


class _WriteReport(beam.DoFn):
    def __init__(self, directory: str):
        self.directory = directory

    def process(self, item):
        key, records = item
        payload = pickle.dumps(list(records), protocol=pickle.HIGHEST_PROTOCOL)
        atomic_write(join_uri(self.directory, f"report-{key}.pkl"), payload)
        yield key


def _report_item(item):
    """Report records keyed for the sink: ``("report", record)`` unwrapped, bare records kept, data dropped."""
    if item[0] == "report":
        yield 0, item[1]
    elif item[0] in ("count", "reject", "value"):
        yield 0, item


class Job:
    """A Beam pipeline whose outputs all end in one report sink (see the module docstring).

    ``job.report(pcoll)`` adds report records; ``job.run()`` applies the sink last, runs, and returns a
    :class:`JobResult` with counters summed, rejects listed and values gathered. ``job.uri(path)`` is a path as
    the workers open it (:func:`worker_uri`), ``job.shards(examples, splits)`` the (split, shard URI) of an input.
    """

    def __init__(self, beam_args: list[str] | None, report_dir: str | os.PathLike):
        self.beam_args = list(beam_args or [])
        self.pipeline = beam_pipeline(beam_args)
        self.report_dir = self.uri(report_dir)
        self.reports: list[beam.PCollection] = []

    def uri(self, path: str | os.PathLike) -> str:
        return worker_uri(path, self.beam_args)

    def shards(self, examples, splits: list[str]) -> list[tuple[str, str]]:
        return shard_items(examples, splits, self.beam_args)

    def report(self, pcoll: beam.PCollection) -> None:
        self.reports.append(pcoll)

    def run(self) -> "JobResult":
        remove_tree(self.report_dir)
        (tuple(self.reports) | "Report.all" >> beam.Flatten()
         | "Report.key" >> beam.FlatMap(_report_item)
         | "Report.group" >> beam.GroupByKey()
         | "Report.write" >> beam.ParDo(_WriteReport(self.report_dir)))
        result = self.pipeline.run()
        try:
            result.wait_until_finish()
        finally:
            client = getattr(result, "client", None)  # the Dask runner leaves its distributed.Client open
            if client is not None:
                client.close()
        records = []
        for path in list_files(join_uri(self.report_dir, "report-*.pkl")):
            records.extend(pickle.loads(read_file_bytes(path)))
        remove_tree(self.report_dir)
        return JobResult(records)


class JobResult:
    def __init__(self, records: list[tuple]):
        self.counters: dict[str, int] = {}
        self.rejects: list[dict] = []
        self.values: dict[str, list] = {}
        for record in records:
            if record[0] == "count":
                self.counters[record[1]] = self.counters.get(record[1], 0) + record[2]
            elif record[0] == "reject":
                self.rejects.append(record[1])
            else:
                self.values.setdefault(record[1], []).append(record[2])

    def get(self, name: str, default: int = 0) -> int:
        return self.counters.get(name, default)


# ---- files: every shard/report read and write goes through Beam's FileSystems ----------------------------------------
# So a worker can write to gs://, s3://, hdfs:// ... as well as to a local disk. Launchers hand DoFns URIs made by
# :func:`worker_uri` (a Vertex task's /gcs/bucket/x FUSE path becomes gs://bucket/x for non-local runners).
LOCAL_RUNNERS = {"DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner", "PrismRunner"}


def runs_locally(beam_args: list[str] | None) -> bool:
    """True when the runner's workers are this machine's processes (they see the launcher's paths, FUSE too)."""
    runner = pipeline_options(beam_args).view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.rsplit(".", 1)[-1] in LOCAL_RUNNERS


def worker_uri(path: str | os.PathLike, beam_args: list[str] | None = None) -> str:
    """The path as the pipeline's workers must open it: ``/gcs/bucket/x`` -> ``gs://bucket/x`` when the runner is
    not local (Dataflow, Flink, Spark, Dask), unchanged otherwise (DirectRunner reads Vertex's FUSE mount
    directly, without needing ``apache-beam[gcp]``)."""
    from edgepipe.pipeline.beam_options import to_beam_uri

    return str(path) if runs_locally(beam_args) else to_beam_uri(path)


def _fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def join_uri(base: str | os.PathLike, *parts: str) -> str:
    return _fs().join(str(base), *parts)


def base_name(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def atomic_write(target: str | os.PathLike, payload: bytes | Iterable[bytes]) -> None:
    """Write ``target`` (any Beam filesystem) under a hidden temporary name in the same folder, then rename it:
    readers never see a partial file and a retried bundle overwrites instead of duplicating."""
    from apache_beam.io.filesystem import CompressionTypes

    fs, target = _fs(), str(target)
    head, name = target.rstrip("/").rsplit("/", 1) if "/" in target else (".", target)
    tmp = fs.join(head, f".tmp-{name}-{uuid.uuid4().hex[:8]}")
    blobs = [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else payload
    handle = fs.create(tmp, mime_type="application/octet-stream", compression_type=CompressionTypes.UNCOMPRESSED)
    try:
        for blob in blobs:
            handle.write(blob)
    finally:
        handle.close()
    try:
        fs.rename([tmp], [target])
    except Exception:
        if not fs.exists(target):
            raise
        fs.delete([target])  # a filesystem whose rename does not replace an existing file (a retry's leftover)
        fs.rename([tmp], [target])


def list_files(pattern: str) -> list[str]:
    """Files matching a glob on any Beam filesystem, sorted; none -> []."""
    try:
        found = _fs().match([str(pattern)])[0].metadata_list
    except Exception:  # BeamIOError: a folder that does not exist on this filesystem
        return []
    return sorted(m.path for m in found)


def remove_tree(uri: str | os.PathLike) -> None:
    """Delete a folder's files (object stores have no folders) and, where folders exist, the folder itself."""
    fs, uri = _fs(), str(uri)
    files = list_files(join_uri(uri, "*")) + list_files(join_uri(uri, ".tmp-*"))
    if files:
        fs.delete(files)
    try:
        if fs.exists(uri):
            fs.delete([uri])
    except Exception:
        pass


def shard_name(*parts: Any) -> str:
    """A deterministic shard file name from what identifies the work (so retries overwrite, never duplicate)."""
    digest = hashlib.sha1(repr(parts).encode()).hexdigest()[:16]
    return f"data-{digest}.gz"


def _root(examples) -> str:
    """An output's root URI: a str from :func:`worker_uri`, or an Examples artifact (its local path)."""
    return str(examples) if isinstance(examples, (str, os.PathLike)) else str(examples.path)


def split_uri(examples, split: str) -> str:
    return join_uri(_root(examples), f"Split-{split}")


def split_files(examples, split: str, beam_args: list[str] | None = None) -> list[str]:
    """Shard URIs of one split of an Examples artifact, listed through Beam's filesystems as workers will open
    them (see :func:`worker_uri`)."""
    root = worker_uri(examples.path if hasattr(examples, "path") else examples, beam_args)
    return list_files(join_uri(root, f"Split-{split}", "data*"))


def shard_items(examples, splits: list[str], beam_args: list[str] | None = None) -> list[tuple[str, str]]:
    """(split, shard URI) of every shard of the given splits: the elements of a per-shard pipeline."""
    return [(s, f) for s in splits for f in split_files(examples, s, beam_args)]


def write_shard(examples, split: str, name: str, framed: Iterable[bytes] | bytes, level: int | None = None) -> int:
    """Write framed TFRecord bytes (one blob or several) as one GZIP shard ``Split-<split>/<name>`` of ``examples``
    (an output URI from :func:`worker_uri` or an Examples artifact); returns the uncompressed byte count."""
    blobs = [framed] if isinstance(framed, (bytes, bytearray, memoryview)) else list(framed)
    compressor = zlib.compressobj(GZIP_LEVEL if level is None else level, zlib.DEFLATED, 31)
    out = [compressor.compress(b) for b in blobs]
    out.append(compressor.flush())
    atomic_write(join_uri(split_uri(examples, split), name), out)
    return sum(len(b) for b in blobs)


def open_input(path: str):
    """A binary, seekable handle on a file of any Beam filesystem (no decompression)."""
    from apache_beam.io.filesystem import CompressionTypes

    return _fs().open(str(path), compression_type=CompressionTypes.UNCOMPRESSED)


def read_file_bytes(path: str) -> bytes:
    with open_input(path) as handle:
        return handle.read()


def inflate(raw: bytes, compression: str | None = None) -> bytes:
    """Undo TFRecord file compression: ``GZIP``, ``ZLIB``, none, or auto (gzip magic bytes) when None."""
    kind = (compression or "").upper()
    if kind == "GZIP" or (not kind and raw[:2] == b"\x1f\x8b"):
        return gzip.decompress(raw)
    if kind == "ZLIB":
        return zlib.decompress(raw)
    if kind in ("", "NONE", "UNCOMPRESSED"):
        return raw
    raise ValueError(f"unknown compression '{compression}' (GZIP, ZLIB or none)")


def tfrecord_payloads(buffer: bytes, check: bool = False) -> list[memoryview]:
    """Split a TFRecord byte stream into record payloads; with ``check``, CRCs are verified (ValueError)."""
    view = memoryview(buffer)
    out, pos, end = [], 0, len(buffer)
    while pos < end:
        if end - pos < 12:
            raise ValueError(f"truncated TFRecord header at byte {pos}")
        length = int.from_bytes(view[pos:pos + 8], "little")
        start = pos + 12
        if start + length + 4 > end:
            raise ValueError(f"truncated TFRecord at byte {pos}")
        if check:
            if masked_crc(bytes(view[pos:pos + 8])) != int.from_bytes(view[pos + 8:start], "little"):
                raise ValueError(f"corrupt TFRecord length at byte {pos}")
            if masked_crc(view[start:start + length]) != int.from_bytes(view[start + length:start + length + 4],
                                                                         "little"):
                raise ValueError(f"corrupt TFRecord data at byte {pos}")
        out.append(view[start:start + length])
        pos = start + length + 4
    return out


def read_records(path: str, compression: str | None = "GZIP", check: bool = False) -> list[memoryview]:
    return tfrecord_payloads(inflate(read_file_bytes(path), compression), check=check)


def iter_examples(examples, split: str) -> Iterator[dict[str, Any]]:
    """Decoded Examples of one split, outside Beam (tests, debugging, small artifacts)."""
    for path in examples.split_files(split):
        for record in read_records(path):
            yield decode_example(record)


# ---- TFRecord framing ------------------------------------------------------------------------------------------
def _crc32c():
    import google_crc32c

    return google_crc32c.value


def masked_crc(payload) -> int:
    crc = _crc32c()(bytes(payload) if isinstance(payload, memoryview) else payload)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payloads: Iterable[bytes]) -> bytes:
    """TFRecord framing of serialized records (length, masked CRC of length, data, masked CRC of data)."""
    parts = []
    for payload in payloads:
        header = len(payload).to_bytes(8, "little")
        parts += [header, masked_crc(header).to_bytes(4, "little"), payload, masked_crc(payload).to_bytes(4, "little")]
    return b"".join(parts)


# ---- Example encoding ------------------------------------------------------------------------------------------
# Wire format (tf.train.Example): Example{1: Features{1: map<string, Feature>}}; map entry {1: key, 2: Feature};
# Feature{1: BytesList, 2: FloatList, 3: Int64List}; each list {1: repeated value} (floats/ints packed).
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized protobuf varints of int64 values (negatives as 10-byte two's complement): (bytes [n, w], lens)."""
    rest = np.ascontiguousarray(values, dtype=np.int64).ravel().view(np.uint64).copy()
    mat = np.zeros((len(rest), 10), np.uint8)
    lens = np.ones(len(rest), np.int64)
    seven = np.uint64(7)
    for i in range(10):
        low = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest >>= seven
        more = rest != 0
        mat[:, i] = low | (more.astype(np.uint8) << 7)
        if not more.any():
            return mat[:, :i + 1], lens
        lens += more
    return mat, lens


class Ragged:
    """Per-record byte strings as a zero-padded matrix [n, width] plus lengths: the unit of vectorized encoding."""

    def __init__(self, mat: np.ndarray, lens: np.ndarray):
        self.mat, self.lens = mat, lens

    @classmethod
    def const(cls, payload: bytes, n: int) -> "Ragged":
        row = np.frombuffer(payload, np.uint8)
        return cls(np.broadcast_to(row, (n, len(row))), np.full(n, len(row), np.int64))

    @classmethod
    def fixed(cls, mat: np.ndarray) -> "Ragged":
        return cls(mat, np.full(len(mat), mat.shape[1], np.int64))

    @classmethod
    def from_list(cls, items: list[bytes]) -> "Ragged":
        lens = np.fromiter((len(b) for b in items), np.int64, len(items))
        width = int(lens.max()) if len(items) else 0
        if len(items) and (lens == width).all():
            return cls.fixed(np.frombuffer(b"".join(items), np.uint8).reshape(len(items), width))
        mat = np.zeros((len(items), width), np.uint8)
        flat = np.frombuffer(b"".join(items), np.uint8)
        rows = np.repeat(np.arange(len(items)), lens)
        cols = np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)
        mat[rows, cols] = flat
        return cls(mat, lens)

    @classmethod
    def from_flat(cls, flat: np.ndarray, lens: np.ndarray) -> "Ragged":
        """Records laid end to end in ``flat`` with lengths ``lens``."""
        width = int(lens.max()) if len(lens) else 0
        if len(lens) and (lens == width).all():
            return cls.fixed(flat.reshape(len(lens), width))
        mat = np.zeros((len(lens), width), np.uint8)
        mat[np.arange(width) < lens[:, None]] = flat
        return cls(mat, lens)

    @property
    def is_fixed(self) -> bool:
        return len(self.lens) == 0 or bool((self.lens == self.mat.shape[1]).all())


def concat(parts: list[Ragged], extra_width: int = 0) -> Ragged:
    """Row-wise concatenation of ragged byte strings (slice copies while every row's offset is the same)."""
    n = len(parts[0].lens)
    width = sum(p.mat.shape[1] for p in parts) + extra_width
    out = np.zeros((n, width), np.uint8)
    pos = np.zeros(n, np.int64)
    aligned, col = True, 0
    rows = np.arange(n)
    for part in parts:
        w = part.mat.shape[1]
        if aligned:
            out[:, col:col + w] = part.mat
            if part.is_fixed:
                col += w
            else:
                aligned = False
                pos = col + part.lens
            continue
        mask = np.arange(w) < part.lens[:, None]
        r, c = np.nonzero(mask)
        out[r, pos[r] + c] = part.mat[r, c]
        pos = pos + part.lens
    if aligned:
        pos = np.full(n, col, np.int64)
    return Ragged(out, pos)


def _leaf(name: str, column, n: int) -> tuple[int, Ragged]:
    """(Feature tag, per-record list payload) of one feature: packed float32, packed int64 varints, or one bytes
    value a record. ``column``: array [n, ...] (float -> FloatList, integer/bool -> Int64List, str/bytes/object ->
    BytesList)."""
    array = column if isinstance(column, np.ndarray) else np.asarray(column, dtype=object)
    kind = array.dtype.kind
    if kind in "SUO":
        flat = array.reshape(n)
        same = _repeated_bytes(flat)
        if same is not None:
            return 0x0A, Ragged.const(same, n)
        values = [v if isinstance(v, bytes) else str(v).encode() for v in flat.tolist()]
        return 0x0A, Ragged.from_list(values)
    if kind == "f":
        floats = np.ascontiguousarray(array.reshape(n, -1), dtype="<f4")
        return 0x12, Ragged.fixed(floats.view(np.uint8).reshape(n, -1))
    if kind in "iub":
        ints = np.ascontiguousarray(array.reshape(n, -1), dtype=np.int64)
        k = ints.shape[1]
        if k == 0:
            return 0x1A, Ragged.fixed(np.zeros((n, 0), np.uint8))
        mat, lens = varints(ints)
        if k == 1:
            return 0x1A, Ragged(mat, lens)
        flat = mat[np.arange(mat.shape[1]) < lens[:, None]]  # every value's varint, record after record
        return 0x1A, Ragged.from_flat(flat, lens.reshape(n, k).sum(axis=1))
    raise TypeError(f"feature '{name}': cannot encode dtype {array.dtype}")


def _repeated_bytes(flat: np.ndarray) -> bytes | None:
    """The one encoded value when every record holds the same string, else None.

    Why: make_windows tags each of ~500k windows per 2M steps with the same series id; encoding it once replaces a
    Python loop. In an object array only exact ``str``/``bytes`` values qualify (checked before comparing), since
    other objects can compare equal yet encode differently (``bytearray``, ``1 == 1.0``).
    """
    if len(flat) == 0:
        return None
    first, last = flat[0], flat[-1]
    if flat.dtype.kind == "O":
        kind = type(first)
        if kind not in (str, bytes) or type(last) is not kind or last != first:  # cheap early exit
            return None
        if set(map(type, flat.tolist())) != {kind} or not (flat == first).all():
            return None
    elif not (flat == first).all():
        return None
    return bytes(first) if isinstance(first, bytes) else str(first).encode()


def _layout(keys: list[bytes], tags: list[int], lens: list[int]) -> tuple[bytes, list[int]]:
    """Template record (12 framing bytes reserved, zeroed leaves, 4 CRC bytes reserved) and leaf offsets, for one
    combination of leaf lengths."""
    entries, offsets = [], []
    for key, tag, length in zip(keys, tags, lens):
        body = b"" if (length == 0 and tag != 0x0A) else b"\x0a" + _varint(length)
        feature = bytes([tag]) + _varint(len(body) + length) + body
        entry = b"\x0a" + _varint(len(key)) + key + b"\x12" + _varint(len(feature) + length) + feature
        entries.append(b"\x0a" + _varint(len(entry) + length) + entry)
    features_len = sum(len(e) for e in entries) + sum(lens)
    head = b"\x00" * 12 + b"\x0a" + _varint(features_len)
    parts, pos = [head], len(head)
    for entry, length in zip(entries, lens):
        pos += len(entry)
        offsets.append(pos)
        parts += [entry, b"\x00" * length]
        pos += length
    parts.append(b"\x00" * 4)
    return b"".join(parts), offsets


def encode_batch(columns: dict[str, Any], framed: bool = True) -> bytes | list[bytes]:
    """Encode n Examples at once from columns of n rows (``[n, ...]`` arrays; strings as a list/array of n).

    Returns the framed TFRecord bytes of all n records (what :func:`write_shard` takes), or with ``framed=False``
    the list of serialized Examples (input order). Floats are stored as float32 and integers as int64.

    How: rows are grouped by the byte lengths of their values (varints and strings vary; a batch of windows has a
    handful of such layouts); within a group every record has the same layout, so a template row is broadcast and
    each feature's bytes are copied into their columns in one NumPy slice assignment. Only the CRCs are per record.
    """
    if not columns:
        return b"" if framed else []
    names = sorted(columns)
    n = len(columns[names[0]])
    if n == 0:
        return b"" if framed else []
    keys = [name.encode() for name in names]
    tags, leaves = zip(*(_leaf(name, columns[name], n) for name in names))
    signature = np.stack([leaf.lens for leaf in leaves], axis=1)
    if (signature == signature[0]).all():
        groups, inverse = signature[:1], np.zeros(n, np.int64)
    else:
        code = np.zeros(n, np.int64)
        for column in signature.T:  # one int64 per row: cheaper to np.unique than rows of a matrix
            code = code * (int(column.max()) + 1) + column
        _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
        groups = signature[first]
    crc = _crc32c()
    blobs, payloads = [], [None] * n
    for g, lens in enumerate(groups.tolist()):
        rows = np.flatnonzero(inverse == g) if len(groups) > 1 else np.arange(n)
        template, offsets = _layout(keys, list(tags), lens)
        width = len(template)
        mat = np.empty((len(rows), width), np.uint8)
        mat[:] = np.frombuffer(template, np.uint8)
        for leaf, off, length in zip(leaves, offsets, lens):
            if length:
                mat[:, off:off + length] = leaf.mat[rows, :length] if len(groups) > 1 else leaf.mat[:, :length]
        payload_len = width - 16
        header = payload_len.to_bytes(8, "little")
        mat[:, :8] = np.frombuffer(header, np.uint8)
        mat[:, 8:12] = np.frombuffer(masked_crc(header).to_bytes(4, "little"), np.uint8)
        flat = mat.tobytes()  # google_crc32c takes bytes only (not memoryviews): slice copies of one record each
        if not framed:
            for i, row in enumerate(rows.tolist()):
                payloads[row] = flat[i * width + 12:i * width + 12 + payload_len]
            continue
        starts = range(12, len(rows) * width, width)
        crcs = np.fromiter((crc(flat[s:s + payload_len]) for s in starts), np.uint32, len(rows))
        crcs = (((crcs >> 15) | (crcs << 17)) + np.uint32(0xA282EAD8)).astype("<u4")
        mat[:, width - 4:] = crcs.view(np.uint8).reshape(-1, 4)
        blobs.append(mat.tobytes())
    if not framed:
        return payloads
    return blobs[0] if len(blobs) == 1 else b"".join(blobs)


def encode_example(features: dict[str, Any]) -> bytes:
    """One serialized Example; scalars and arrays as in :func:`encode_batch` (a str/bytes is one bytes value)."""
    columns = {}
    for name, v in features.items():
        if isinstance(v, (str, bytes)):
            columns[name] = np.array([v], dtype=object)
        else:
            columns[name] = np.asarray(v)[None]
    return encode_batch(columns, framed=False)[0]


# ---- Example decoding ------------------------------------------------------------------------------------------
def _read_varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def decode_varints(buf) -> np.ndarray:
    """Packed varints -> int64 (vectorized)."""
    raw = np.frombuffer(buf, np.uint8)
    if len(raw) == 0:
        return np.zeros(0, np.int64)
    ends = np.flatnonzero(raw < 0x80)
    starts = np.concatenate([[0], ends[:-1] + 1])
    out = np.zeros(len(ends), np.uint64)
    for k in range(10):
        idx = starts + k
        live = idx <= ends
        if not live.any():
            break
        out[live] |= (raw[idx[live]] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
    return out.view(np.int64)


def _parse_list(buf, kind: int):
    """Values of a Bytes/Float/Int64List body; packed or not."""
    pos, end = 0, len(buf)
    floats, ints, strings = [], [], []
    while pos < end:
        tag, pos = _read_varint(buf, pos)
        wire = tag & 7
        if wire == 2:
            length, pos = _read_varint(buf, pos)
            chunk = buf[pos:pos + length]
            pos += length
            if kind == 1:
                strings.append(bytes(chunk))
            elif kind == 2:
                floats.append(np.frombuffer(chunk, "<f4"))
            else:
                ints.append(decode_varints(chunk))
        elif wire == 5:  # unpacked float
            floats.append(np.frombuffer(buf[pos:pos + 4], "<f4"))
            pos += 4
        elif wire == 0:  # unpacked int64
            v, pos = _read_varint(buf, pos)
            ints.append(np.array([v], np.uint64).view(np.int64))
        else:
            raise ValueError(f"unexpected wire type {wire} in a feature list")
    if kind == 1:
        return strings
    parts = floats if kind == 2 else ints
    dtype = np.float32 if kind == 2 else np.int64
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def parse_example(serialized, only: tuple[str, ...] | None = None) -> dict[str, tuple[str, Any]]:
    """Serialized Example -> {name: (kind, values)} with kind 'bytes' (list of bytes), 'float' or 'int64' (arrays),
    or 'none' (a feature whose list is unset); with ``only``, other features are skipped undecoded. Raises
    ValueError on malformed input."""
    buf = memoryview(serialized) if not isinstance(serialized, memoryview) else serialized
    out: dict[str, tuple[str, Any]] = {}
    try:
        pos, end = 0, len(buf)
        while pos < end:
            tag, pos = _read_varint(buf, pos)
            if tag != 0x0A:
                raise ValueError(f"unexpected field tag {tag} in Example")
            length, pos = _read_varint(buf, pos)
            features, pos = buf[pos:pos + length], pos + length
            fpos = 0
            while fpos < len(features):
                tag, fpos = _read_varint(features, fpos)
                length, fpos = _read_varint(features, fpos)
                entry, fpos = features[fpos:fpos + length], fpos + length
                name, feature, epos = "", None, 0
                while epos < len(entry):
                    tag, epos = _read_varint(entry, epos)
                    length, epos = _read_varint(entry, epos)
                    if tag == 0x0A:
                        name = bytes(entry[epos:epos + length]).decode()
                    elif tag == 0x12:
                        feature = entry[epos:epos + length]
                    epos += length
                if only is not None and name not in only:
                    continue
                if feature is None or len(feature) == 0:
                    out[name] = ("none", None)
                    continue
                tag, lpos = _read_varint(feature, 0)
                length, lpos = _read_varint(feature, lpos)
                kind = tag >> 3
                values = _parse_list(feature[lpos:lpos + length], kind)
                out[name] = ({1: "bytes", 2: "float", 3: "int64"}[kind], values)
    except (IndexError, KeyError) as err:
        raise ValueError(f"malformed Example: {err!r}") from None
    return out


def float_spans(serialized) -> dict[str, tuple[int, int]]:
    """Byte span of each packed FloatList payload in a serialized Example: lets a transform rewrite float values
    in place (same length) without re-encoding the record."""
    buf = memoryview(serialized)
    spans: dict[str, tuple[int, int]] = {}
    tag, pos = _read_varint(buf, 0)
    length, pos = _read_varint(buf, pos)
    end = pos + length
    while pos < end:
        _, pos = _read_varint(buf, pos)
        length, pos = _read_varint(buf, pos)
        entry_end = pos + length
        name, epos = "", pos
        while epos < entry_end:
            tag, epos = _read_varint(buf, epos)
            length, epos = _read_varint(buf, epos)
            if tag == 0x0A:
                name = bytes(buf[epos:epos + length]).decode()
            elif tag == 0x12 and length:
                ftag, fpos = _read_varint(buf, epos)
                flen, fpos = _read_varint(buf, fpos)
                if ftag == 0x12 and flen:
                    ltag, lpos = _read_varint(buf, fpos)
                    llen, lpos = _read_varint(buf, lpos)
                    if ltag == 0x0A and lpos + llen == fpos + flen:
                        spans[name] = (lpos, lpos + llen)
            epos += length
        pos = entry_end
    return spans


def decode_example(serialized) -> dict[str, Any]:
    """A serialized Example as NumPy arrays (bytes features as ``str``, or a list of ``str`` if not exactly one)."""
    out: dict[str, Any] = {}
    for name, (kind, values) in parse_example(serialized).items():
        if kind == "none":
            out[name] = np.zeros(0, np.float32)
        elif kind == "bytes":
            texts = [v.decode(errors="replace") for v in values]
            out[name] = texts[0] if len(texts) == 1 else texts
        else:
            out[name] = values
    return out


def decode_chunk(serialized, num_channels: int) -> dict[str, Any]:
    """A time-series chunk with ``values`` reshaped to [steps, channels] and scalar ``start``/``segment``."""
    chunk = decode_example(serialized)
    chunk["start"] = int(chunk["start"][0])
    chunk["segment"] = int(chunk["segment"][0]) if "segment" in chunk else 0
    chunk["values"] = np.asarray(chunk.get("values", np.zeros(0, np.float32))).reshape(-1, num_channels)
    chunk["timestamp"] = np.asarray(chunk.get("timestamp", np.zeros(0, np.int64)), np.int64)
    if len(chunk.get("label", ())) != len(chunk["values"]):
        chunk["label"] = np.zeros(len(chunk["values"]), np.int64)
    return chunk


def decode_columns(records: list, spec: dict[str, dict]) -> dict[str, np.ndarray]:
    """Serialized Examples with a known feature spec -> stacked columns (fixed shapes) or lists (var-length)."""
    cols: dict[str, list] = {name: [] for name in spec}
    for record in records:
        parsed = parse_example(record)
        for name in spec:
            kind, values = parsed.get(name, ("none", None))
            cols[name].append(values)
    out = {}
    for name, desc in spec.items():
        items = cols[name]
        if desc.get("dtype") == "string":
            out[name] = [v[0].decode(errors="replace") if v else None for v in items]
        elif desc.get("shape") is not None:
            shape = list(desc["shape"])
            dtype = np.float32 if desc["dtype"] == "float32" else np.int64
            size = int(np.prod(shape)) if shape else 1
            ok = [v is not None and len(v) == size for v in items]
            stacked = np.stack([v if good else np.full(size, np.nan if dtype == np.float32 else 0, dtype)
                                for v, good in zip(items, ok)]) if items else np.zeros((0, size), dtype)
            out[name] = stacked.reshape(len(items), *shape).astype(dtype, copy=False)
        else:
            out[name] = items
    return out


def relative_name(path: str) -> str:
    return base_name(path)

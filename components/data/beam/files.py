"""Files of the data components: every shard and report is read and written through Beam's ``FileSystems``.

Why: a worker must write to gs://, s3://, hdfs:// ... as well as to a local disk, and Beam's own file sinks do not
run on every runner (``WriteToTFRecord`` writes empty files on the Dask runner). So DoFns write their own GZIP
TFRecord shards (:func:`write_shard`: deterministic names, written under a hidden temporary name and renamed, so a
retried bundle overwrites instead of duplicating). Launchers hand DoFns URIs made by :func:`worker_uri` (a Vertex
task's /gcs/bucket/x FUSE path becomes gs://bucket/x for non-local runners).
"""
from __future__ import annotations

import hashlib
import os
import uuid
import zlib
from typing import Any, Iterable

from edgepipe.components.data.beam.options import runs_locally

GZIP_LEVEL = 1  # TFRecords of floats barely compress; level 1 is ~4x faster than 6 for ~3% larger files
# Time-series chunks (raw float32 steps, read again by statistics, normalize and make_windows) are written as
# *stored* GZIP (level 0: still GZIP, every reader unchanged): deflating them costs ~18 ms/MB for a ratio of ~0.7,
# storing ~2 ms/MB, and reading a stored shard is 3x faster. Windows (each step repeated size/stride times)
# deflate to ~0.13 at level 1 cheaply and keep GZIP_LEVEL. Measured numbers in docs/data.md.
CHUNK_GZIP_LEVEL = 0


def to_beam_uri(path: str | os.PathLike) -> str:
    """A Vertex task's ``/gcs/bucket/x`` (Cloud Storage FUSE) as ``gs://bucket/x``, which Dataflow workers can open."""
    text = str(path)
    return "gs://" + text[len("/gcs/"):] if text.startswith("/gcs/") else text


def worker_uri(path: str | os.PathLike, beam_args: list[str] | None = None) -> str:
    """The path as the pipeline's workers must open it: ``/gcs/bucket/x`` -> ``gs://bucket/x`` when the runner is
    not local (Dataflow, Flink, Spark, Dask), unchanged otherwise (DirectRunner reads Vertex's FUSE mount
    directly, without needing ``apache-beam[gcp]``)."""
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

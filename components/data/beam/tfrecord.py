"""TFRecord framing: records as length, masked CRC32C of the length, data, masked CRC32C of the data.

Why hand-written rather than ``tf.io.TFRecordWriter``/``tf_record_iterator``: the data workers do not import
TensorFlow, and framing whole shards in memory (then one GZIP stream through :func:`files.write_shard`) is
faster than TensorFlow's writer; see ``benchmarks/example_codec.py`` for both measured in one run.
"""
from __future__ import annotations

import gzip
import zlib
from typing import Iterable

from edgepipe.components.data.beam.files import read_file_bytes


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

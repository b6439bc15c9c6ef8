"""Decoding tf.train.Example protos: per record without TensorFlow (packed lists straight to NumPy), batches by TF.

What is measured (``benchmarks/example_codec.py``, TF's parsers on the same records in one run): on a *batch*
TensorFlow wins by far (``tf.io.parse_example``: 60-150x this parser), so :func:`decode_columns` uses it wherever
the spec allows. Per record, ``tf.train.Example.FromString`` is 2-4x this parser, but only with TensorFlow imported
in the worker (2-5 s a process; break-even 30k-140k records a worker, printed by the benchmark): the
main per-record user, ``decode_chunk``, reads few and large chunks (the per-record cost is NumPy's there), and
:func:`float_spans` (normalize rewrites floats in place) has no library equivalent.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from edgepipe.components.data.beam.tfrecord import read_records


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
    """Serialized Examples with a known feature spec -> stacked columns (fixed shapes) or lists (var-length); strings
    as lists of ``str``. A fixed-shape value that is missing or of another length becomes NaN (float) or 0 (int), a
    missing string None."""
    parsed = _parse_batch(records, spec)
    return parsed if parsed is not None else _decode_each(records, spec)


def _parse_batch(records: list, spec: dict[str, dict]) -> dict[str, Any] | None:
    """``tf.io.parse_example`` over the whole batch, or None where it does not apply.

    Why TensorFlow here: on a batch it decodes 60-150x faster than :func:`_decode_each` (``benchmarks/
    example_codec.py``: 0.9-2.1M vs 13-35k windows/s, 0.3-1.1M vs 3-10k table rows/s), which repays the 2-5 s its
    import adds to a worker after 20k-75k records. It applies to the common case, every feature of a fixed shape
    (strings scalar) present in every record with that shape and type; otherwise (var-length features, or a record
    TF refuses: a missing value, a wrong length or type) None, and the per-record decoder fills in NaN/0/None as
    documented above."""
    kinds = {"float32": "float32", "int64": "int64", "string": "string"}
    if not records or any(d.get("shape") is None or d.get("dtype") not in kinds
                          or (d["dtype"] == "string" and list(d["shape"])) for d in spec.values()):
        return None
    import tensorflow as tf

    features = {name: tf.io.FixedLenFeature(list(d["shape"]), tf.as_dtype(kinds[d["dtype"]]))
                for name, d in spec.items()}
    try:
        parsed = tf.io.parse_example(tf.constant([bytes(r) for r in records]), features)
    except (tf.errors.InvalidArgumentError, ValueError):
        return None
    return {name: [v.decode(errors="replace") for v in parsed[name].numpy().tolist()] if d["dtype"] == "string"
            else parsed[name].numpy() for name, d in spec.items()}


def _decode_each(records: list, spec: dict[str, dict]) -> dict[str, Any]:
    """:func:`decode_columns` one record at a time (the hand-written parser): any spec, any record."""
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


def iter_examples(examples, split: str) -> Iterator[dict[str, Any]]:
    """Decoded Examples of one split, outside Beam (tests, debugging, small artifacts)."""
    for path in examples.split_files(split):
        for record in read_records(path):
            yield decode_example(record)

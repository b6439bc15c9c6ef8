"""Shared Beam plumbing for the data components: pipeline construction, TFRecord I/O, Example coding, counters.

Every data component builds its pipeline through :func:`beam_pipeline` so the same ``beam_args`` list moves all of
them from the in-process DirectRunner to a cluster runner at once, and reads/writes splits through
:func:`read_split`/:func:`write_split` so the artifact layout (``Split-<name>/data-*.gz``, GZIP) lives in one place.
Counts are collected with Beam counters (namespace ``edgepipe``) because they survive any runner, unlike Python
side effects in DoFns.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Iterator

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

NAMESPACE = "edgepipe"


def beam_pipeline(beam_args: list[str] | None = None) -> beam.Pipeline:
    """A Beam pipeline from command-line style options; DirectRunner unless ``--runner`` says otherwise."""
    options = PipelineOptions(list(beam_args or []))
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    return beam.Pipeline(options=options)


def run_pipeline(pipeline: beam.Pipeline) -> dict[str, int]:
    """Run to completion and return the ``edgepipe`` counters summed over steps, by name."""
    result = pipeline.run()
    result.wait_until_finish()
    totals: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + int(value or 0)
    return totals


def count(name: str, value: int = 1) -> None:
    """Increment the ``edgepipe`` counter ``name`` (call inside a DoFn)."""
    Metrics.counter(NAMESPACE, name).inc(int(value))


def read_split(pipeline: beam.Pipeline, examples, split: str) -> beam.PCollection:
    """Serialized Examples of one split (an empty PCollection when the split has no files)."""
    files = examples.split_files(split)
    return (pipeline
            | f"Files[{split}]" >> beam.Create(files).with_output_types(str)
            | f"Read[{split}]" >> beam.io.ReadAllFromTFRecord(compression_type=CompressionTypes.GZIP))


def write_split(pcoll: beam.PCollection, examples, split: str) -> Any:
    """Write serialized Examples as GZIP TFRecord shards under the artifact's split prefix."""
    return pcoll | f"Write[{split}]" >> beam.io.WriteToTFRecord(
        examples.split_prefix(split), file_name_suffix=".gz", compression_type=CompressionTypes.GZIP)


@lru_cache(maxsize=1)
def example_proto():
    """Imported lazily: TensorFlow takes seconds to import and DAG definition should not pay for it."""
    from tensorflow.core.example import example_pb2

    return example_pb2


def encode_example(features: dict[str, Any]) -> bytes:
    """Serialize a ``tf.train.Example``; the list type follows the NumPy dtype (str/bytes, integer, float)."""
    example = example_proto().Example()
    fmap = example.features.feature
    for name, value in features.items():
        if isinstance(value, (str, bytes)):
            fmap[name].bytes_list.value.append(value.encode() if isinstance(value, str) else value)
            continue
        array = np.asarray(value).ravel()
        if array.dtype.kind in "iub":
            fmap[name].int64_list.value.extend(array.astype(np.int64).tolist())
        elif array.dtype.kind == "f":
            fmap[name].float_list.value.extend(array.astype(np.float32).tolist())
        else:
            fmap[name].bytes_list.value.extend(v.encode() if isinstance(v, str) else bytes(v) for v in array)
    return example.SerializeToString()


def decode_example(serialized: bytes) -> dict[str, Any]:
    """Parse a serialized Example into NumPy arrays (bytes features as ``str``/list of ``str``)."""
    example = example_proto().Example.FromString(serialized)
    out: dict[str, Any] = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind == "float_list":
            out[name] = np.asarray(feature.float_list.value, dtype=np.float32)
        elif kind == "int64_list":
            out[name] = np.asarray(feature.int64_list.value, dtype=np.int64)
        elif kind is None:  # an empty list leaves the oneof unset
            out[name] = np.zeros(0, np.float32)
        else:
            values = [v.decode() for v in feature.bytes_list.value]
            out[name] = values[0] if len(values) == 1 else values
    return out


def decode_chunk(serialized: bytes, num_channels: int) -> dict[str, Any]:
    """A time-series chunk with ``values`` reshaped to [steps, channels] and scalar ``start``."""
    chunk = decode_example(serialized)
    chunk["start"] = int(chunk["start"][0])
    chunk["values"] = chunk.get("values", np.zeros(0, np.float32)).reshape(-1, num_channels)
    chunk.setdefault("timestamp", np.zeros(0, np.int64))
    chunk.setdefault("label", np.zeros(len(chunk["values"]), np.int64))
    return chunk


def iter_examples(examples, split: str) -> Iterator[dict[str, Any]]:
    """Decoded Examples of one split, outside Beam (tests, debugging, small artifacts)."""
    import gzip

    for path in examples.split_files(split):
        with gzip.open(path, "rb") as handle:
            yield from (decode_example(record) for record in _tfrecords(handle))


def _tfrecords(handle) -> Iterable[bytes]:
    """Minimal TFRecord framing reader (length, crc, payload, crc); CRCs are trusted, not checked."""
    while True:
        header = handle.read(12)
        if len(header) < 12:
            return
        length = int.from_bytes(header[:8], "little")
        payload = handle.read(length)
        handle.read(4)
        yield payload

"""NumPy arrays -> the Examples contract (GZIP TFRecords, ``Split-<name>/``, feature spec) in one process.

Tests and benchmarks use it to make small Examples artifacts without a Beam job; pipelines ingest through the Beam
components of ``components/data``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.errors import DataError


def _feature(value: np.ndarray):
    import tensorflow as tf

    flat = np.asarray(value).reshape(-1)
    if flat.dtype.kind in "iub":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=flat.astype(np.int64).tolist()))
    if flat.dtype.kind in "SUO":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode() for v in flat]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=flat.astype(np.float32).tolist()))


def _dtype(array: np.ndarray) -> str:
    kind = np.asarray(array).dtype.kind
    return "int64" if kind in "iub" else ("string" if kind in "SUO" else "float32")


def write_examples(examples: Examples, splits: dict[str, dict[str, np.ndarray]], shards: int = 1,
                   **properties: Any) -> Examples:
    """Write ``{split: {feature: array [n, ...]}}`` as the Examples contract and finalize the artifact."""
    import tensorflow as tf

    feature_spec: dict[str, dict[str, Any]] = {}
    for split, columns in splits.items():
        n = len(next(iter(columns.values())))
        for name, array in columns.items():
            if len(array) != n:
                raise DataError(f"split '{split}': feature '{name}' has {len(array)} rows, expected {n}")
            feature_spec.setdefault(name, {"dtype": _dtype(array), "shape": list(np.asarray(array).shape[1:])})
        options = tf.io.TFRecordOptions(compression_type=examples.compression)
        for shard in range(shards):
            path = examples.split_dir(split) / f"data-{shard:05d}-of-{shards:05d}.gz"
            with tf.io.TFRecordWriter(str(path), options=options) as writer:
                for i in range(shard, n, shards):
                    feats = {name: _feature(array[i]) for name, array in columns.items()}
                    writer.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    examples.properties.update({"splits": list(splits), "feature_spec": feature_spec,
                                "counts": {s: int(len(next(iter(c.values())))) for s, c in splits.items()},
                                **properties})
    examples.finalize()
    return examples

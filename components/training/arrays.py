"""NumPy arrays <-> the Examples contract (GZIP TFRecords, ``Split-<name>/``, feature spec), plus interim
``ingest_npz`` / ``ingest_csv`` components.

The Beam ingest components for arrays and tables belong to ``components/data`` (issue 3). Until they land, the
family templates use these small in-process versions, which take the same parameters and write the same contract
(``x`` float32 with the per-example shape, ``label`` int64; one feature per CSV column). The templates import
``components.data``'s versions first, so these are dropped by deleting them once issue 3 is merged.
"""
from __future__ import annotations

import csv
from typing import Any

import numpy as np

from edgepipe.pipeline.artifacts import Examples, Rejects
from edgepipe.pipeline.component import InputPath, Output, component
from edgepipe.pipeline.errors import DataError

DEFAULT_SPLIT = {"train": 0.7, "eval": 0.15, "test": 0.15}


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


def split_rows(n: int, split: dict[str, float] | None, seed: int = 0, labels: np.ndarray | None = None
               ) -> dict[str, np.ndarray]:
    """Random (stratified by ``labels`` when given) row indices per split name."""
    split = dict(split or DEFAULT_SPLIT)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == v) for v in np.unique(labels)] if labels is not None else [np.arange(n)]
    out: dict[str, list[np.ndarray]] = {name: [] for name in split}
    names = list(split)
    for idx in groups:
        idx = rng.permutation(idx)
        bounds = np.round(np.cumsum([split[k] for k in names]) * len(idx)).astype(int)
        start = 0
        for name, end in zip(names, bounds):
            out[name].append(idx[start:end])
            start = end
    return {name: np.sort(np.concatenate(parts)) for name, parts in out.items()}


@component(version="0-interim")
def ingest_npz(examples: Output[Examples], source: InputPath, x_key: str = "x", y_key: str | None = "y",
               split: dict | None = None, seed: int = 0) -> dict:
    """Arrays from an ``.npz`` (``x_key`` [n, ...], ``y_key`` [n] or [n, ...]) -> Examples ``x`` / ``label``.

    Interim stand-in for ``components.data.ingest_npz`` (issue 3): same parameters, same output contract. Extra
    arrays with n rows in the file (e.g. ``mask``) become features of their own.
    """
    try:
        data = np.load(source, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read '{source}': {exc}") from None
    if x_key not in data:
        raise DataError(f"'{source}' has no array '{x_key}' (arrays: {', '.join(data.files)})")
    x = np.asarray(data[x_key], dtype=np.float32)
    columns = {"x": x}
    if y_key is not None:
        if y_key not in data:
            raise DataError(f"'{source}' has no array '{y_key}' (arrays: {', '.join(data.files)})")
        y = np.asarray(data[y_key])
        columns["label"] = y.astype(np.int64) if y.dtype.kind in "iub" else y.astype(np.float32)
    for name in data.files:
        if name not in (x_key, y_key) and data[name].ndim >= 1 and len(data[name]) == len(x):
            columns[name] = data[name]
    label = columns.get("label")
    strat = label if label is not None and label.ndim == 1 and label.dtype.kind == "i" else None
    rows = split_rows(len(x), split, seed, strat)
    props: dict[str, Any] = {"kind": "arrays", "source": str(source)}
    if "class_names" in data.files:
        props["class_names"] = [str(c) for c in data["class_names"]]
    write_examples(examples, {s: {k: v[idx] for k, v in columns.items()} for s, idx in rows.items()}, **props)
    return {f"{s}_examples": int(len(idx)) for s, idx in rows.items()}


@component(version="0-interim")
def ingest_csv(examples: Output[Examples], rejects: Output[Rejects], source: InputPath,
               label_column: str | None = None, feature_columns: list[str] | None = None,
               split: dict | None = None, seed: int = 0) -> dict:
    """A numeric CSV -> one tf.train.Example per row, one feature per column plus ``label`` (stratified split).

    Interim stand-in for ``components.data.ingest_csv`` (issue 3). Rows with a non-numeric or missing value go to
    ``rejects`` (file, line, reason).
    """
    with open(source, newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        features = feature_columns or [c for c in header if c != label_column]
        missing = [c for c in [*features, *([label_column] if label_column else [])] if c not in header]
        if missing:
            raise DataError(f"'{source}': no column(s) {missing} (columns: {', '.join(header)})")
        rows, bad = [], []
        for line, row in enumerate(reader, start=2):
            try:
                values = [float(row[c]) for c in features]
                label = float(row[label_column]) if label_column else None
                if not all(np.isfinite(values)):
                    raise ValueError("non-finite value")
                rows.append((values, label))
            except (TypeError, ValueError) as exc:
                bad.append({"file": str(source), "line": line, "reason": str(exc)})
    if not rows:
        raise DataError(f"'{source}' has no usable rows")
    x = np.array([r[0] for r in rows], dtype=np.float32)
    columns: dict[str, np.ndarray] = {name: x[:, i] for i, name in enumerate(features)}
    labels = None
    if label_column:
        labels = np.array([r[1] for r in rows])
        labels = labels.astype(np.int64) if np.all(labels == np.round(labels)) else labels.astype(np.float32)
        columns["label"] = labels
    strat = labels if labels is not None and labels.dtype.kind == "i" else None
    split_idx = split_rows(len(x), split, seed, strat)
    rejects.file("rejects.jsonl").write_text("".join(__import__("json").dumps(b) + "\n" for b in bad))
    write_examples(examples, {s: {k: v[idx] for k, v in columns.items()} for s, idx in split_idx.items()},
                   kind="table", source=str(source), feature_columns=features, label_column=label_column)
    return {"rows": len(rows), "rejected": len(bad), **{f"{s}_examples": int(len(i)) for s, i in split_idx.items()}}

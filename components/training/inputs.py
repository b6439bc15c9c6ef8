"""Reading the ``windows`` Examples contract for training, optimization and evaluation.

One place decides what "normal" means (``label == 0``) and how windows become ``(x, x)`` autoencoder pairs, so the
trainer, the pruning/QAT fine-tuning and the thresholds in evaluation all see the same data.

Windows are streamed (``iter_windows``, ``autoencoder_dataset``, ``fit_inputs``) rather than loaded whole
(``load_windows``, kept for small data and tests): a 200 MB CSV at stride 4 is ~1.2M windows, and one NumPy copy of
them plus Keras's own tensor copies made fine-tuning and evaluation peak at several GB (issue 12).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.errors import ConfigError, DataError

TRAIN_ON = ("normal", "all")


def window_shape(examples: Examples) -> tuple[int, int]:
    """``(window_size, channels)`` from the feature spec of the ``window`` feature."""
    spec = examples.feature_spec.get("window")
    if not spec or not spec.get("shape") or len(spec["shape"]) != 2:
        raise DataError(f"{examples.path}: Examples has no fixed-length 'window' feature of shape [size, channels]")
    size, channels = (int(v) for v in spec["shape"])
    return size, channels


def load_windows(examples: Examples, split: str, only_normal: bool = False) -> dict[str, Any]:
    """One split as NumPy (``window`` float32 [n, size, channels], ``label`` ...), optionally normal windows only."""
    if split not in examples.splits and not examples.split_files(split):
        raise DataError(f"{examples.path}: no split '{split}' (splits: {', '.join(examples.splits) or 'none'})")
    data = examples.read_numpy(split)
    size, channels = window_shape(examples)
    data["window"] = np.asarray(data["window"], dtype=np.float32).reshape(-1, size, channels)
    if "label" in data:
        data["label"] = np.asarray(data["label"], dtype=np.int64).reshape(-1)
    if only_normal:
        keep = data.get("label", np.zeros(len(data["window"]), dtype=np.int64)) == 0
        data = {name: np.asarray(values)[keep] for name, values in data.items()}
    return data


def check_train_on(train_on: str) -> bool:
    """True when training should keep only normal windows."""
    if train_on not in TRAIN_ON:
        raise ConfigError(f"train_on must be one of {', '.join(TRAIN_ON)}, got '{train_on}'")
    return train_on == "normal"


def autoencoder_dataset(examples: Examples, split: str, batch_size: int, only_normal: bool,
                        shuffle: bool = False, seed: int = 0, drop_remainder: bool = False):
    """A streamed ``tf.data`` of ``(window, window)`` batches, sharded by data for multi-worker training."""
    import tensorflow as tf

    ds = examples.dataset(split)
    if only_normal:
        ds = ds.filter(lambda ex: tf.equal(ex["label"], 0))
    ds = ds.map(lambda ex: (ex["window"], ex["window"]), num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def count_windows(examples: Examples, split: str, only_normal: bool) -> int:
    """Number of (normal) windows in a split, streamed; 0 when the split does not exist."""
    import tensorflow as tf

    if not examples.split_files(split):
        return 0
    ds = examples.dataset(split)
    if only_normal:
        ds = ds.filter(lambda ex: tf.equal(ex["label"], 0))
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def iter_windows(examples: Examples, split: str, only_normal: bool = False, batch_size: int = 256):
    """NumPy batches of one split, in the order :func:`load_windows` returns it (``window`` float32
    [b, size, channels], ``label`` int64 [b], the other features as stored). Every batch but the last has exactly
    ``batch_size`` windows, normal-only filtering included, so per-batch results equal whole-array ones computed in
    chunks of ``batch_size`` (Keras ``predict``, ``ModelRunner.run``)."""
    import tensorflow as tf

    if not examples.split_files(split):
        raise DataError(f"{examples.path}: no split '{split}' (splits: {', '.join(examples.splits) or 'none'})")
    size, channels = window_shape(examples)
    ds = examples.dataset(split, batch_size=4096).unbatch()
    if only_normal and "label" in examples.feature_spec:
        ds = ds.filter(lambda ex: tf.equal(ex["label"], 0))
    for batch in ds.batch(batch_size).prefetch(2):
        out = {}
        for name, value in batch.items():
            if hasattr(value, "values") and hasattr(value, "dense_shape"):  # SparseTensor (VarLen)
                value = tf.sparse.to_dense(value)
            out[name] = value.numpy()
        out["window"] = np.asarray(out["window"], dtype=np.float32).reshape(-1, size, channels)
        if "label" in out:
            out["label"] = np.asarray(out["label"], dtype=np.int64).reshape(-1)
        yield out


def fit_inputs(x: Any, y: Any, batch_size: int) -> dict[str, Any]:
    """``Model.fit`` keyword arguments for either in-memory arrays (``y`` None: reconstruct ``x``, shuffled by Keras)
    or a streamed ``tf.data`` of ``(x, y)`` batches (already batched and shuffled, e.g. :func:`autoencoder_dataset`)."""
    import tensorflow as tf

    if isinstance(x, tf.data.Dataset):
        return {"x": x}
    return {"x": x, "y": x if y is None else y, "batch_size": batch_size, "shuffle": True}

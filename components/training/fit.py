"""Distributed supervised training shared by the ``train_model`` component, benchmarks and the multi-worker test.

* the model is built inside ``strategy.scope()``; the global batch is ``batch_size`` (per replica) x replicas;
* input is a ``tf.data`` pipeline over the Examples' TFRecords: parallel reads, batched parsing, cache of the parsed
  tensors, shuffle, batch, prefetch; sharded by data for multi-worker training;
* callbacks: early stopping, an LR schedule (ReduceLROnPlateau or cosine decay), ``BackupAndRestore`` every epoch
  into a checkpoint directory that survives a failed run (see :func:`checkpoint_dir`), TensorBoard logs, and
  ``verbose=2`` progress lines;
* deterministic seeds and op determinism on CPU, mixed precision (``mixed_float16``) on GPU when asked.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgepipe.models.spec import DataSpec
from edgepipe.pipeline.artifacts import Artifact, Examples
from edgepipe.pipeline.errors import ConfigError, DataError

log = logging.getLogger(__name__)
LR_SCHEDULES = ("plateau", "cosine", "constant")
LABEL_KEYS = ("label", "mask", "y", "target")


# ---- reproducibility and precision ----------------------------------------------------------------------------------
def configure_run(seed: int, mixed_precision: bool = False, deterministic: bool = True) -> dict[str, Any]:
    """Seed Python/NumPy/TF; on CPU also make ops deterministic; enable ``mixed_float16`` only on a GPU."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(int(seed))
    gpus = tf.config.list_physical_devices("GPU")
    applied = {"seed": int(seed), "op_determinism": False, "mixed_precision": False}
    if deterministic and not gpus:
        tf.config.experimental.enable_op_determinism()
        applied["op_determinism"] = True
    policy = "mixed_float16" if (mixed_precision and gpus) else "float32"
    if mixed_precision and not gpus:
        log.warning("mixed_precision requested but no GPU is visible: training in float32")
    keras.mixed_precision.set_global_policy(policy)
    applied["mixed_precision"] = policy == "mixed_float16"
    return applied


# ---- data -----------------------------------------------------------------------------------------------------------
def _scalar_numeric(desc: dict[str, Any]) -> bool:
    return desc.get("shape") in ([], (), [1]) and desc.get("dtype") in ("float32", "float64", "int64")


def input_features(examples: Examples, x_key: str, y_key: str, feature_columns: Sequence[str] | None = None
                   ) -> list[str]:
    """The feature(s) that form the model input: ``x_key`` when present, else the scalar numeric columns (tabular
    examples with one feature per column), in ``feature_columns`` order when given."""
    spec = examples.feature_spec
    if feature_columns:
        missing = [c for c in feature_columns if c not in spec]
        if missing:
            raise DataError(f"{examples.path}: no feature(s) {missing} (features: {', '.join(spec)})")
        return list(feature_columns)
    if x_key in spec:
        return [x_key]
    columns = [n for n, d in spec.items() if n != y_key and n not in LABEL_KEYS and _scalar_numeric(d)]
    if not columns:
        raise DataError(f"{examples.path}: no '{x_key}' feature and no numeric columns to use as input "
                        f"(features: {', '.join(spec)})")
    return columns


def _label_values(examples: Examples, split: str, y_key: str) -> np.ndarray:
    import tensorflow as tf

    ds = examples.dataset(split, batch_size=4096)
    parts = [tf.reshape(b[y_key], [-1]).numpy() for b in ds]
    return np.concatenate(parts) if parts else np.zeros(0)


def data_spec(examples: Examples, task: str = "classification", x_key: str = "x", y_key: str = "label",
              feature_columns: Sequence[str] | None = None, num_classes: int | None = None) -> DataSpec:
    """A :class:`DataSpec` from an Examples artifact's feature spec and properties (classes counted if unknown)."""
    spec = examples.feature_spec
    features = input_features(examples, x_key, y_key, feature_columns)
    if len(features) == 1 and features[0] == x_key:
        shape = spec[x_key].get("shape")
        if not shape:
            raise DataError(f"{examples.path}: feature '{x_key}' has no fixed shape")
        input_shape = tuple(int(d) for d in shape)
    else:
        input_shape = (len(features),)
    if task != "generation" and y_key not in spec:
        raise DataError(f"{examples.path}: no label feature '{y_key}' (features: {', '.join(spec)})")
    output_dim = 1
    if task in ("regression", "forecasting") and spec[y_key].get("shape"):
        output_dim = int(np.prod(spec[y_key]["shape"]))
    class_names = examples.properties.get("class_names")
    if task in ("classification", "segmentation") or (task == "generation" and y_key in spec):
        if task != "segmentation":  # class names name image classes; mask classes add a background
            num_classes = num_classes or examples.properties.get("num_classes") or (
                len(class_names) if class_names else None)
        if num_classes is None:
            labels = _label_values(examples, "train", y_key)
            if not len(labels):
                raise DataError(f"{examples.path}: train split has no labels to count classes from")
            num_classes = int(labels.max()) + 1
    return DataSpec(input_shape=input_shape, task=task, num_classes=num_classes, output_dim=output_dim,
                    class_names=tuple(class_names) if class_names else None,
                    extra={"features": features, "x_key": x_key, "y_key": y_key})


def supervised_dataset(examples: Examples, split: str, spec: DataSpec, batch_size: int, shuffle: bool = False,
                       seed: int = 0, cache: bool = True, drop_remainder: bool = False, with_labels: bool = True,
                       repeat: bool = False):
    """``(x, y)`` batches from the split's TFRecords.

    Files are read in parallel and parsed a block at a time (``parse_example`` on 1024 records), the parsed tensors
    are cached in memory after the first epoch, then shuffled per epoch, batched and prefetched; after epoch one
    the pipeline costs what an in-memory ``from_tensor_slices`` pipeline does.
    """
    import tensorflow as tf

    files = examples.split_files(split)
    if not files:
        raise DataError(f"{examples.path}: split '{split}' has no files")
    features = spec.extra.get("features") or [spec.extra.get("x_key", "x")]
    y_key = spec.extra.get("y_key", "label")
    parse_spec = {name: desc for name, desc in examples.tf_feature_spec().items()
                  if name in features or (with_labels and name == y_key)}
    x_shape = list(spec.input_shape)
    stacked = not (len(features) == 1 and features[0] == spec.extra.get("x_key", "x"))
    label_int = spec.task in ("classification", "segmentation", "generation")

    def select(batch):
        if stacked:
            x = tf.stack([tf.cast(tf.reshape(batch[f], [-1]), tf.float32) for f in features], axis=-1)
        else:
            x = tf.reshape(tf.cast(batch[features[0]], tf.float32), [-1, *x_shape])
        if not with_labels:
            return x
        y = batch[y_key]
        y = tf.cast(y, tf.int32) if label_int else tf.cast(y, tf.float32)
        if spec.task in ("regression", "forecasting"):
            y = tf.reshape(y, [-1, spec.output_dim])
        elif spec.task == "classification":
            y = tf.reshape(y, [-1])
        return x, y

    ds = tf.data.TFRecordDataset(files, compression_type=examples.compression, num_parallel_reads=tf.data.AUTOTUNE)
    ds = ds.batch(1024).map(lambda b: select(tf.io.parse_example(b, parse_spec)),
                            num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(8192, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.with_options(options)


def count_examples(examples: Examples, split: str) -> int:
    import tensorflow as tf

    files = examples.split_files(split)
    if not files:
        return 0
    ds = tf.data.TFRecordDataset(files, compression_type=examples.compression)
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


# ---- checkpoints ----------------------------------------------------------------------------------------------------
def checkpoint_dir(checkpoint_root: str | Path | None, name: str, code_version: str, params: dict[str, Any],
                   inputs: dict[str, Artifact | None]) -> Path | None:
    """A checkpoint directory keyed like the execution's cache key, outside the runner's staging folder.

    The runner deletes a failed execution's staging folder, so checkpoints kept there could never resume anything.
    Keyed by the component's code version, its result-affecting parameters and its inputs' content fingerprints,
    the directory is the same for every retry of the same execution, and different for anything that would train
    a different model. ``None`` when no root is configured (no resume).
    """
    if checkpoint_root is None:
        return None
    digest = hashlib.sha256(json.dumps({
        "code": code_version, "params": params,
        "inputs": {k: (a.content_fingerprint() if a is not None else None) for k, a in sorted(inputs.items())},
    }, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return Path(checkpoint_root) / f"{name}-{digest}"


# ---- callbacks and fit ----------------------------------------------------------------------------------------------
def callbacks(monitor: str, epochs: int, learning_rate: float, patience: int, lr_schedule: str,
              backup_dir: Path | None, tensorboard_dir: Path | None, steps_per_epoch: int | None = None) -> list:
    import tf_keras as keras

    if lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got '{lr_schedule}'")
    cbs: list = []
    if backup_dir is not None:  # first: restores weights, optimizer state and epoch before the others start
        cbs.append(keras.callbacks.BackupAndRestore(str(backup_dir), save_freq="epoch", delete_checkpoint=True))
    if patience > 0:
        cbs.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True))
    if lr_schedule == "plateau":
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5,
                                                     patience=max(1, patience // 2 if patience else 2),
                                                     min_lr=learning_rate / 100))
    elif lr_schedule == "cosine":
        cbs.append(keras.callbacks.LearningRateScheduler(
            lambda epoch, lr: float(learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / max(1, epochs))))))
    if tensorboard_dir is not None:
        cbs.append(keras.callbacks.TensorBoard(str(tensorboard_dir), histogram_freq=0, write_graph=False,
                                               profile_batch=0))
    return cbs


def fit(model, train_ds, eval_ds, *, epochs: int, learning_rate: float, patience: int = 5,
        lr_schedule: str = "plateau", backup_dir: Path | None = None, tensorboard_dir: Path | None = None,
        verbose: int = 2, initial_epoch: int = 0) -> dict[str, list[float]]:
    monitor = "val_loss" if eval_ds is not None else "loss"
    cbs = callbacks(monitor, epochs, learning_rate, patience, lr_schedule, backup_dir, tensorboard_dir)
    history = model.fit(train_ds, validation_data=eval_ds, epochs=max(1, epochs), callbacks=cbs, verbose=verbose,
                        initial_epoch=initial_epoch)
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def remove_checkpoints(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)

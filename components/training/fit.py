"""Distributed training shared by every Keras trainer (``train_autoencoder``, ``train_model``, ``train_gan``),
benchmarks and the multi-worker test: the one fit loop that owns resume, progress and stopping.

* the model is built inside ``strategy.scope()``; the global batch is ``batch_size`` (per replica) x replicas;
* input is a ``tf.data`` pipeline over the Examples' TFRecords: parallel reads, batched parsing, cache of the parsed
  tensors, shuffle, batch, prefetch; sharded by data for multi-worker training. For training, :func:`per_epoch`
  seeds each epoch's shuffle with the epoch number, so a resumed fit sees the data in the same order;
* callbacks: early stopping, an LR schedule (ReduceLROnPlateau or cosine decay), a per-epoch checkpoint
  (``checkpoint.py``) in a directory keyed by the execution's cache key that survives a failed or interrupted run,
  progress events (epochs, batches) and stop checks between batches (``pipeline/progress.py``), TensorBoard logs;
* deterministic seeds and op determinism on CPU, mixed precision (``mixed_float16``) on GPU when asked.
"""
from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from edgepipe import tasks
from edgepipe.models.spec import DataSpec
from edgepipe.pipeline import progress
from edgepipe.pipeline.artifacts import Examples
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
    tf.random.set_global_generator(tf.random.Generator.from_seed(int(seed)))  # checkpointed: resumes continue it
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


def _origin(examples: Examples) -> str:
    """The data file the user named (the ingest's ``source``) when recorded: the column to fix is there."""
    return str(examples.properties.get("source") or examples.path)


def input_features(examples: Examples, x_key: str, y_key: str, feature_columns: Sequence[str] | None = None
                   ) -> list[str]:
    """The feature(s) that form the model input: ``x_key`` when present, else the scalar numeric columns (tabular
    examples with one feature per column), in ``feature_columns`` order when given."""
    spec = examples.feature_spec
    if feature_columns:
        missing = [c for c in feature_columns if c not in spec]
        if missing:
            raise DataError(f"{examples.path}: no feature(s) {missing} (features: {', '.join(spec)})")
        strings = [c for c in feature_columns if spec[c].get("dtype") == "string"]
        if strings:  # else TensorFlow fails mid-graph with a bare "Graph execution error"
            raise DataError(f"{_origin(examples)}: feature column '{strings[0]}' holds strings and a model takes "
                            f"numbers: leave it out of the feature columns, or encode it with transform_features "
                            f"(a vocabulary, as one-hot or index columns) and train on its output")
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
    declared = tasks.get(task)
    spec = examples.feature_spec
    features = input_features(examples, x_key, y_key, feature_columns)
    if len(features) == 1 and features[0] == x_key:
        shape = spec[x_key].get("shape")
        if not shape:
            raise DataError(f"{examples.path}: feature '{x_key}' has no fixed shape")
        input_shape = tuple(int(d) for d in shape)
    else:
        input_shape = (len(features),)
    if declared.label != "none" and declared.label_required and y_key not in spec:
        raise DataError(f"{examples.path}: no label feature '{y_key}' (features: {', '.join(spec)})")
    if declared.label != "none" and spec.get(y_key, {}).get("dtype") == "string":
        column = examples.properties.get("label_column") or y_key
        raise DataError(f"{_origin(examples)}: label column '{column}' holds strings: write its classes as integers "
                        f"0..k-1 (transform_features encodes features, not the label)")
    output_dim = 1
    if declared.label == "value" and spec[y_key].get("shape"):
        output_dim = int(np.prod(spec[y_key]["shape"]))
    info = examples.info()
    class_names = list(info.class_names) if info.class_names is not None else None
    if declared.integer_labels and (declared.label_required or y_key in spec):
        if declared.label != "mask":  # class names name image classes; mask classes add a background
            num_classes = num_classes or info.num_classes or (
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
    ds = _parsed(examples, split, spec, cache, with_labels)
    if shuffle:
        ds = ds.shuffle(8192, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return _finish(ds.batch(batch_size, drop_remainder=drop_remainder))


def supervised_epochs(examples: Examples, split: str, spec: DataSpec, batch_size: int, seed: int = 0,
                      drop_remainder: bool = False, with_labels: bool = True) -> Callable[[Any], Any]:
    """``epoch -> dataset`` for :func:`per_epoch`: the parsed split cached once, shuffled with a seed derived from
    ``seed`` and the epoch number, batched."""
    base = _parsed(examples, split, spec, True, with_labels)
    return lambda epoch: base.shuffle(8192, seed=epoch_seed(seed, epoch)).batch(batch_size,
                                                                                 drop_remainder=drop_remainder)


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch: same seed and epoch, same order, however many epochs ran before."""
    return int(seed) * 100_003 + int(epoch)


def per_epoch(make: Callable[[int], Any], first_epoch: int, epochs: int):
    """One dataset of the batches of epochs ``first_epoch``..``epochs - 1``, each built by ``make(epoch)``: the
    order of epoch k does not depend on how many epochs this process has already run, which is what lets a resumed
    fit match an uninterrupted one. Fit it with ``steps_per_epoch``.

    Epochs are built with Python seeds and concatenated in a chain (~10 ms an epoch to build, a few microseconds a
    batch to run; a tensor seed inside ``flat_map`` trips over TensorFlow's seed handling when the global seed is 0,
    and a balanced tree of concatenations builds ten times slower). ``make`` should only shuffle and batch a stream
    built once: building a whole input pipeline per epoch costs ~0.6 s an epoch."""
    epochs_left = range(first_epoch, epochs)
    ds = make(first_epoch) if epochs_left else make(first_epoch).take(0)
    for epoch in epochs_left[1:]:
        ds = ds.concatenate(make(epoch))
    return _finish(ds)


def _finish(ds):
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _parsed(examples: Examples, split: str, spec: DataSpec, cache: bool, with_labels: bool):
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
    task = tasks.get(spec.task)

    def select(batch):
        if stacked:
            x = tf.stack([tf.cast(tf.reshape(batch[f], [-1]), tf.float32) for f in features], axis=-1)
        else:
            x = tf.reshape(tf.cast(batch[features[0]], tf.float32), [-1, *x_shape])
        if not with_labels:
            return x
        y = batch[y_key]
        y = tf.cast(y, tf.int32) if task.integer_labels else tf.cast(y, tf.float32)
        if task.label == "value":
            y = tf.reshape(y, [-1, spec.output_dim])
        elif task.label == "class" and task.label_required:  # one class id per example (a cGAN's stays as read)
            y = tf.reshape(y, [-1])
        return x, y

    ds = tf.data.TFRecordDataset(files, compression_type=examples.compression, num_parallel_reads=tf.data.AUTOTUNE)
    ds = ds.batch(1024).map(lambda b: select(tf.io.parse_example(b, parse_spec)),
                            num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    return ds.cache() if cache else ds


def count_examples(examples: Examples, split: str) -> int:
    import tensorflow as tf

    files = examples.split_files(split)
    if not files:
        return 0
    ds = tf.data.TFRecordDataset(files, compression_type=examples.compression)
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


# ---- checkpoints ----------------------------------------------------------------------------------------------------
def checkpoint_dir(checkpoint_root: str | Path | None, name: str) -> Path | None:
    """``checkpoint_root/<name>-<cache key>``: the resumable state of the running execution, outside the runner's
    staging folder (which a failed execution loses).

    Keyed by the execution's cache key (:func:`edgepipe.pipeline.progress.cache_key`: code version, result-affecting
    parameters, input content), it is the same for every retry of the same execution and different for anything
    that would train a different model. ``None`` when checkpoints are off or nothing runs this as an execution.
    """
    if checkpoint_root is None:
        return None
    key = progress.cache_key()
    if key is None:
        log.warning("%s: not run by an executor, no cache key to name checkpoints by: training will not resume", name)
        return None
    return Path(checkpoint_root) / f"{name}-{key[:24]}"


# ---- callbacks and fit ----------------------------------------------------------------------------------------------
def callbacks(monitor: str, epochs: int, learning_rate: float, patience: int, lr_schedule: str,
              tensorboard_dir: Path | None) -> list:
    import tf_keras as keras

    if lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got '{lr_schedule}'")
    cbs: list = []
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


def progress_callback(epochs: int):
    """Epoch and (throttled) batch events for :mod:`edgepipe.pipeline.progress`, and the stop check: raising from
    ``on_train_batch_end`` stops within one batch (``model.stop_training`` would only stop after the epoch)."""
    import tf_keras as keras

    class Progress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._supports_tf_logs = True  # no per-batch NumPy conversion unless an event is actually sent
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):  # before the first step is traced (seconds under load),
            progress.check_stop()  # so a stop during the setup (data, model, pruning wrappers) ends here

        def on_train_batch_end(self, batch, logs=None):
            progress.check_stop()
            if progress.would_report("batch"):
                progress.report("batch", batch + 1, self.params.get("steps"), epoch=self.epoch + 1,
                                **{k: float(v) for k, v in (logs or {}).items()})

        def on_test_batch_end(self, batch, logs=None):
            progress.check_stop()

        def on_epoch_end(self, epoch, logs=None):
            progress.report("epoch", epoch + 1, epochs, **{k: float(v) for k, v in (logs or {}).items()})

    return Progress()


@dataclass
class Fitted:
    history: dict[str, list[float]]   # every epoch, those before a resume included
    resumed_at: int                   # epochs restored from a checkpoint (0: a fresh fit)
    best_epoch: int | None = None     # 1-based: the epoch whose weights the model keeps (see :func:`_kept_epoch`)


def fit(model, train, eval_ds, *, epochs: int, steps_per_epoch: int | None = None, learning_rate: float = 1e-3,
        patience: int = 5, lr_schedule: str = "plateau", checkpoint: Path | None = None,
        tensorboard_dir: Path | None = None, verbose: int = 0, non_finite: Callable[[], Exception] | None = None
        ) -> Fitted:
    """Fit ``model`` for ``epochs``, resuming from ``checkpoint`` if a previous attempt left one.

    ``train`` is ``epoch -> dataset`` (resumes see the same data order: :func:`per_epoch`, needs
    ``steps_per_epoch``) or a plain dataset (resumes restore weights and optimizer but reshuffle). Early stopping
    and LR reduction watch ``val_loss`` when there is ``eval_ds``, else ``loss``; ``patience`` 0 disables early
    stopping.
    A requested stop (Ctrl-C) raises :class:`~edgepipe.pipeline.progress.StopRequested` after the current batch.
    A non-finite loss raises at once (``nonfinite.py``): the error ``non_finite()`` returns names the cause.
    """
    from edgepipe.components.training.nonfinite import stop_on_non_finite

    monitor = "val_loss" if eval_ds is not None else "loss"
    epochs = max(1, int(epochs))
    cbs = [stop_on_non_finite(non_finite),  # first: no later callback sees (or checkpoints) a NaN epoch
           *callbacks(monitor, epochs, learning_rate, patience, lr_schedule, tensorboard_dir)]
    saver = None
    initial_epoch = 0
    if checkpoint is not None:
        from edgepipe.components.training.checkpoint import EpochCheckpoint

        Path(checkpoint).mkdir(parents=True, exist_ok=True)
        saver = EpochCheckpoint(Path(checkpoint), model, cbs)
        initial_epoch = saver.restore()
        if saver.finished:  # the fit completed before; a later step of the component failed
            saver.close()
            return Fitted(saver.history, initial_epoch, _kept_epoch(cbs, saver.history))
    cbs.append(progress_callback(epochs))
    if saver is not None:
        cbs.append(saver.callback())  # last: sees the other callbacks' end-of-epoch state
    if callable(train):
        if steps_per_epoch is None:
            raise ValueError("fit: a per-epoch train function needs steps_per_epoch")
        train = per_epoch(train, initial_epoch, epochs)
    try:
        history = model.fit(train, validation_data=eval_ds, epochs=epochs, initial_epoch=initial_epoch,
                            steps_per_epoch=steps_per_epoch, callbacks=cbs, verbose=verbose)
    finally:
        if saver is not None:
            saver.close()
    if saver is not None:
        return Fitted(saver.history, initial_epoch, _kept_epoch(cbs, saver.history))
    done = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    return Fitted(done, initial_epoch, _kept_epoch(cbs, done))


def _kept_epoch(cbs: list, history: dict[str, list[float]]) -> int | None:
    """The 1-based epoch whose weights the fitted model holds: EarlyStopping's best (``restore_best_weights``: tf_keras
    restores it at the end of training, stopped early or not), else the last epoch. The report's "best epoch" says
    which epoch's model was evaluated and shipped."""
    import tf_keras as keras

    last = len(next(iter(history.values()), []))
    stopper = next((cb for cb in cbs if isinstance(cb, keras.callbacks.EarlyStopping)), None)
    if stopper is not None and getattr(stopper, "best_weights", None) is not None:
        return int(stopper.best_epoch) + 1
    return last or None


def remove_checkpoints(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)

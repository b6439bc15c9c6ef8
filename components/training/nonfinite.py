"""Stop training at the first non-finite loss, with one line naming the likely cause.

Why: a loss that turns NaN never recovers. Keras would go on for every remaining epoch, the model would be saved
with NaN weights, and the failure would surface much later as something unrelated (a converter complaining that
ops were "left in float", a gate refusing the export). The callback raises between batches instead, and the cause
is looked up in the data the model was fed: an input feature or label holding NaN/inf (a table's blanks with
``transform.impute: none``, or data that was never transformed) is a data problem (exit 3) naming the feature and
how many values; finite data means the optimisation itself diverged (exit 2: lower the learning rate).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.errors import ConfigError, DataError


def non_finite_counts(examples: Examples, split: str, names: list[str]) -> dict[str, int]:
    """Non-finite values per feature in ``names`` over one split (features that are not numeric are skipped)."""
    import tensorflow as tf

    counts = {name: 0 for name in names}
    if not examples.split_files(split):
        return counts
    for batch in examples.dataset(split, batch_size=4096):
        for name in names:
            value = batch.get(name)
            if value is None or not (value.dtype.is_floating or value.dtype.is_integer):
                continue
            if hasattr(value, "dense_shape"):
                value = value.values
            counts[name] += int(tf.math.count_nonzero(~tf.math.is_finite(tf.cast(value, tf.float64))).numpy())
    return counts


def describe_cause(examples: Examples, features: list[str], label: str | None,
                   split: str = "train") -> Callable[[], DataError | ConfigError]:
    """``() -> error`` for the callback: looked up only when a loss is non-finite (reading the split costs a pass)."""

    def cause() -> DataError | ConfigError:
        names = [*features, *([label] if label and label in examples.feature_spec else [])]
        counts = {n: c for n, c in non_finite_counts(examples, split, names).items() if c}
        if not counts:
            return ConfigError("inputs and labels of the train split are finite, so the optimisation diverged: "
                               "lower the learning rate (model.hparams.learning_rate) or scale the inputs "
                               "(transform.numeric)")
        worst = max(counts, key=lambda n: (counts[n], n))
        impute = examples.info().impute
        how = ("and no imputation (transform.impute is none)" if impute == "none" else
               "and no imputation" if impute is None else f"after imputation ({impute})")
        what = "label" if worst == label else "feature"
        others = len(counts) - 1
        more = f"; {others} other column(s) too: {', '.join(sorted(set(counts) - {worst})[:5])}" if others else ""
        return DataError(f"{what} '{worst}' has {counts[worst]:,} missing or non-finite values in the {split} "
                         f"split {how}{more}")

    return cause


def stop_on_non_finite(cause: Callable[[], Exception] | None):
    """A Keras callback raising the error ``cause()`` returns (prefixed with where the loss went non-finite) at the
    first non-finite training loss, or validation loss at an epoch's end."""
    import tf_keras as keras

    def fail(value: Any, where: str):
        err = cause() if cause is not None else ConfigError(
            "the optimisation diverged: lower the learning rate (model.hparams.learning_rate)")
        raise type(err)(f"loss is {value} at {where}: {err}") from None

    class StopOnNonFinite(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._supports_tf_logs = True
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(np.asarray(loss))):
                fail(float(np.asarray(loss)), f"epoch {self.epoch + 1}, batch {batch + 1}")

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("val_loss")
            if loss is not None and not math.isfinite(float(np.asarray(loss))):
                fail(float(np.asarray(loss)), f"epoch {epoch + 1} (validation)")

    return StopOnNonFinite()

"""A task and a model family declared outside the package, exactly as README's "Add a task" / "Add a family" show.

``counting``: how many of an example's items are present -- a non-negative integer predicted as one float. Its
metric is the share of exact counts (the prediction rounded), and two models agree on an example when they round
to the same count. Its bundle is read by the runtime's ``regression`` decoder. ``tiny_dense``: one hidden layer.
"""
from __future__ import annotations

import numpy as np

from edgepipe.models.registry import register as register_family
from edgepipe.models.spec import DataSpec, compile_for_task, head, optimizer, require_rank
from edgepipe.tasks import Task, register
from edgepipe.tasks.metrics import TaskMetric


def _counts(y: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(y, np.float64).reshape(len(y), -1)[:, 0]).astype(np.int64)


def exact_count(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(_counts(y_true) == _counts(y_pred)))


COUNTING = register(Task(
    name="counting", description="how many items an example holds (a count, predicted as a float)",
    runtime="regression", metric=TaskMetric("exact_count", True, exact_count,
                                            lambda ref, pred: _counts(ref) == _counts(pred)),
    label="value", loss="mse", bundle_fields=lambda card, io: {"target_names": ["count"]}))


@register_family("tiny_dense", "one hidden Dense layer; the README's example family",
                 tasks=("classification", "counting"))
def build_tiny_dense(spec: DataSpec, units: int = 16, learning_rate: float = 0.01):
    import tf_keras as keras

    require_rank("tiny_dense", spec, (1,), "a feature vector")
    inputs = keras.Input(spec.input_shape, name="x")
    hidden = keras.layers.Dense(units, activation="relu")(inputs)
    model = keras.Model(inputs, head(spec, hidden))
    compile_for_task(model, spec, optimizer("adam", learning_rate, "tiny_dense"))
    return model

"""Multilayer perceptron for tabular classification or regression (one feature vector per example)."""
from __future__ import annotations

from typing import Literal, Sequence

from edgepipe.models.registry import register
from edgepipe.models.spec import (DataSpec, compile_for_task, head, in_range, optimizer, positive_ints,
                                  require_rank, require_task)


@register("mlp", "Dense layers (batch norm, dropout, L2) for tabular classification/regression",
          tasks=("classification", "regression"))
def build_mlp(spec: DataSpec, units: Sequence[int] = (64, 32), activation: str = "relu", dropout: float = 0.1,
              l2: float = 1e-4, batch_norm: bool = False, learning_rate: float = 1e-3,
              optimizer_name: Literal["adam", "sgd", "rmsprop", "adamw"] = "adam"):
    import tf_keras as keras

    require_rank("mlp", spec, (1,), "tabular examples (a vector of features per example)")
    require_task("mlp", spec, ("classification", "regression"))
    units = positive_ints("mlp", "units", units)
    in_range("mlp", "dropout", dropout, 0.0, 1.0)
    reg = keras.regularizers.l2(l2) if l2 > 0 else None
    inputs = keras.Input(shape=spec.input_shape, name="x")
    x = inputs
    for i, n in enumerate(units):
        x = keras.layers.Dense(n, kernel_regularizer=reg, name=f"dense{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.Activation(activation, name=f"act{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    model = keras.Model(inputs, head(spec, x), name="mlp")
    compile_for_task(model, spec, optimizer(optimizer_name, learning_rate, "mlp"))
    return model

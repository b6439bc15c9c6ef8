"""Sequence models: recurrent (LSTM/GRU) and 1-D convolutional, over ``[steps, features]`` examples.

``rnn`` does sequence classification, sequence regression and sequence-to-one forecasting (``forecasting``: predict
``output_dim`` values after the window); ``conv1d`` classifies time series windows.
"""
from __future__ import annotations

from typing import Literal, Sequence

from edgepipe.models.registry import register
from edgepipe.models.spec import (DataSpec, compile_for_task, head, in_range, optimizer, positive_ints, require,
                                  require_rank, require_task)

SEQUENCE = "sequences [steps, features] (or [steps] for one feature)"


def _sequence_input(keras, spec: DataSpec):
    inputs = keras.Input(shape=spec.input_shape, name="x")
    if spec.rank == 1:
        return inputs, keras.layers.Reshape((spec.input_shape[0], 1), name="add_feature")(inputs)
    return inputs, inputs


@register("rnn", "LSTM or GRU layers; sequence classification, regression and sequence-to-one forecasting",
          tasks=("classification", "regression", "forecasting"), variants=None,
          float_reason="LSTM/GRU layers have no tfmot QAT scheme and no full-integer TFLite kernel (TensorList "
                       "ops); the float32 model is shipped")
def build_rnn(spec: DataSpec, cell: Literal["lstm", "gru"] = "lstm", units: Sequence[int] = (64,),
              bidirectional: bool = False, dropout: float = 0.0, dense_units: int = 0, l2: float = 0.0,
              learning_rate: float = 1e-3, optimizer_name: Literal["adam", "sgd", "rmsprop", "adamw"] = "adam"):
    import tf_keras as keras

    require_rank("rnn", spec, (1, 2), SEQUENCE)
    require_task("rnn", spec, ("classification", "regression", "forecasting"))
    units = positive_ints("rnn", "units", units)
    in_range("rnn", "dropout", dropout, 0.0, 1.0)
    layer = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    reg = keras.regularizers.l2(l2) if l2 > 0 else None
    inputs, x = _sequence_input(keras, spec)
    for i, n in enumerate(units):
        rnn = layer(n, return_sequences=i < len(units) - 1, dropout=dropout, kernel_regularizer=reg,
                    name=f"{cell}{i}")
        x = keras.layers.Bidirectional(rnn, name=f"bi_{cell}{i}")(x) if bidirectional else rnn(x)
    if dense_units > 0:
        x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
    model = keras.Model(inputs, head(spec, x), name="rnn")
    compile_for_task(model, spec, optimizer(optimizer_name, learning_rate, "rnn"))
    return model


@register("conv1d", "Conv1D-BatchNorm-ReLU blocks + global pooling; time series classification",
          tasks=("classification", "regression"))
def build_conv1d(spec: DataSpec, filters: Sequence[int] = (32, 64), kernel_size: int = 5, pool_size: int = 2,
                 dropout: float = 0.2, l2: float = 1e-4, batch_norm: bool = True, dense_units: int = 0,
                 learning_rate: float = 1e-3, optimizer_name: Literal["adam", "sgd", "rmsprop", "adamw"] = "adam"):
    import tf_keras as keras

    require_rank("conv1d", spec, (1, 2), SEQUENCE)
    require_task("conv1d", spec, ("classification", "regression"))
    filters = positive_ints("conv1d", "filters", filters)
    in_range("conv1d", "dropout", dropout, 0.0, 1.0)
    require(kernel_size > 0 and pool_size > 0, "conv1d", "kernel_size and pool_size must be positive")
    steps = spec.input_shape[0]
    require(steps >= pool_size ** len(filters), "conv1d",
            f"{len(filters)} pooling blocks of size {pool_size} need at least {pool_size ** len(filters)} steps, "
            f"got {steps}")
    reg = keras.regularizers.l2(l2) if l2 > 0 else None
    inputs, x = _sequence_input(keras, spec)
    for b, n in enumerate(filters):
        x = keras.layers.Conv1D(n, kernel_size, padding="same", use_bias=not batch_norm, kernel_regularizer=reg,
                                name=f"block{b}_conv")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"block{b}_bn")(x)
        x = keras.layers.ReLU(name=f"block{b}_relu")(x)
        if pool_size > 1:
            x = keras.layers.MaxPooling1D(pool_size, name=f"block{b}_pool")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    if dense_units > 0:
        x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
    model = keras.Model(inputs, head(spec, x), name="conv1d")
    compile_for_task(model, spec, optimizer(optimizer_name, learning_rate, "conv1d"))
    return model

"""Small CNN for image classification: conv-(batch norm)-ReLU-pool blocks, dropout, L2, global pooling head."""
from __future__ import annotations

from typing import Literal, Sequence

from edgepipe.models.registry import register
from edgepipe.models.spec import (DataSpec, compile_for_task, head, in_range, optimizer, positive_ints, require,
                                  require_rank, require_task)


@register("cnn", "Conv2D-BatchNorm-ReLU-MaxPool blocks, dropout, L2; image classification")
def build_cnn(spec: DataSpec, filters: Sequence[int] = (32, 64), convs_per_block: int = 1, kernel_size: int = 3,
              dense_units: int = 64, dropout: float = 0.25, l2: float = 1e-4, batch_norm: bool = True,
              pooling: Literal["max", "average"] = "max", learning_rate: float = 1e-3,
              optimizer_name: Literal["adam", "sgd", "rmsprop", "adamw"] = "adam"):
    import tf_keras as keras

    require_rank("cnn", spec, (2, 3), "images [height, width, channels] (or [height, width])")
    require_task("cnn", spec, ("classification",))
    filters = positive_ints("cnn", "filters", filters)
    in_range("cnn", "dropout", dropout, 0.0, 1.0)
    require(kernel_size > 0 and convs_per_block > 0, "cnn", "kernel_size and convs_per_block must be positive")
    height, width = spec.input_shape[:2]
    require(min(height, width) >= 2 ** len(filters), "cnn",
            f"{len(filters)} pooling blocks need images of at least {2 ** len(filters)} pixels a side, "
            f"got {height}x{width}")
    reg = keras.regularizers.l2(l2) if l2 > 0 else None
    inputs = keras.Input(shape=spec.input_shape, name="x")
    x = keras.layers.Reshape((height, width, 1), name="add_channel")(inputs) if spec.rank == 2 else inputs
    pool = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
    for b, n in enumerate(filters):
        for c in range(convs_per_block):
            x = keras.layers.Conv2D(n, kernel_size, padding="same", use_bias=not batch_norm, kernel_regularizer=reg,
                                    name=f"block{b}_conv{c}")(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(momentum=0.9, name=f"block{b}_bn{c}")(x)
            x = keras.layers.ReLU(name=f"block{b}_relu{c}")(x)
        x = pool(2, name=f"block{b}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    if dense_units > 0:
        x = keras.layers.Dense(dense_units, activation="relu", kernel_regularizer=reg, name="dense")(x)
    model = keras.Model(inputs, head(spec, x), name="cnn")
    compile_for_task(model, spec, optimizer(optimizer_name, learning_rate, "cnn"))
    return model

"""Small U-Net: fully convolutional per-pixel classification (segmentation masks of ``num_classes`` classes)."""
from __future__ import annotations

from typing import Literal, Sequence

from edgepipe.models.registry import register
from edgepipe.models.spec import DataSpec, compile_for_task, in_range, optimizer, positive_ints, require, require_rank


@register("unet", "Small U-Net (conv encoder/decoder with skips); per-pixel class segmentation",
          tasks=("segmentation",))
def build_unet(spec: DataSpec, filters: Sequence[int] = (16, 32, 64), kernel_size: int = 3, dropout: float = 0.0,
               batch_norm: bool = True, learning_rate: float = 1e-3,
               optimizer_name: Literal["adam", "sgd", "rmsprop", "adamw"] = "adam"):
    import tf_keras as keras

    require_rank("unet", spec, (2, 3), "images [height, width, channels] with per-pixel labels")
    require(spec.task == "segmentation", "unet", f"does not do task '{spec.task}' (supported: segmentation)")
    filters = positive_ints("unet", "filters", filters)
    in_range("unet", "dropout", dropout, 0.0, 1.0)
    height, width = spec.input_shape[:2]
    factor = 2 ** (len(filters) - 1)
    require(height % factor == 0 and width % factor == 0, "unet",
            f"image size {height}x{width} must be divisible by 2**(len(filters)-1) = {factor}")

    def block(x, n, name):
        for i in range(2):
            x = keras.layers.Conv2D(n, kernel_size, padding="same", use_bias=not batch_norm, name=f"{name}_conv{i}")(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{i}")(x)
            x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
        return x

    inputs = keras.Input(shape=spec.input_shape, name="x")
    x = keras.layers.Reshape((height, width, 1), name="add_channel")(inputs) if spec.rank == 2 else inputs
    skips = []
    for level, n in enumerate(filters[:-1]):
        x = block(x, n, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = block(x, filters[-1], "bottom")
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    for level in reversed(range(len(filters) - 1)):
        x = keras.layers.Conv2DTranspose(filters[level], 2, strides=2, padding="same", name=f"up{level}_deconv")(x)
        x = keras.layers.Concatenate(name=f"up{level}_skip")([x, skips[level]])
        x = block(x, filters[level], f"up{level}")
    outputs = keras.layers.Conv2D(spec.num_classes, 1, activation="softmax", dtype="float32", name="mask")(x)
    model = keras.Model(inputs, outputs, name="unet")
    compile_for_task(model, spec, optimizer(optimizer_name, learning_rate, "unet"))
    return model

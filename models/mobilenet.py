"""MobileNetV2 transfer learning: a frozen base plus a new head, then fine-tuning of the top of the base.

Never downloads: ``weights`` is ``None`` (random init, works offline) or the path of a local weights file (the
Keras ``..._no_top.h5`` for the same ``alpha`` and input size). Images are resized inside the model to
``image_size`` (MobileNetV2 needs >= 32 pixels) and grey images are repeated to 3 channels, so 8x8 digits and
96x96 RGB photos both work. Phase 1 trains the head with the base frozen; :func:`unfreeze_for_fine_tuning` then
unfreezes the base from layer ``fine_tune_at`` on and recompiles with a lower learning rate (phase 2), which the
``train_model`` component does when ``fine_tune_epochs > 0``.
"""
from __future__ import annotations

import os
from typing import Literal

from edgepipe.models.registry import register
from edgepipe.models.spec import DataSpec, compile_for_task, in_range, optimizer, require, require_rank, require_task
from edgepipe.pipeline.errors import ConfigError

BASE_NAME = "mobilenetv2_base"


@register("mobilenet_v2", "MobileNetV2 base (frozen, then fine-tuned) + new head; weights=None offline or local file")
def build_mobilenet_v2(spec: DataSpec, weights: str | None = None, alpha: float = 0.35, image_size: int = 96,
                       dropout: float = 0.2, fine_tune_at: int = 100, fine_tune_learning_rate: float = 1e-4,
                       train_base: bool = False, learning_rate: float = 1e-3,
                       optimizer_name: Literal["adam", "sgd", "rmsprop", "adamw"] = "adam"):
    import tf_keras as keras

    require_rank("mobilenet_v2", spec, (2, 3), "images [height, width, channels]")
    require_task("mobilenet_v2", spec, ("classification",))
    channels = spec.input_shape[2] if spec.rank == 3 else 1
    require(channels in (1, 3), "mobilenet_v2", f"images need 1 or 3 channels, got {channels}")
    require(image_size >= 32, "mobilenet_v2", f"image_size must be >= 32, got {image_size}")
    require(alpha in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4), "mobilenet_v2",
            f"alpha must be one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4, got {alpha}")
    in_range("mobilenet_v2", "dropout", dropout, 0.0, 1.0)
    if weights is not None and not os.path.isfile(weights):
        raise ConfigError(f"model family 'mobilenet_v2': weights file '{weights}' does not exist (edgepipe never "
                          "downloads weights; use weights: null or a local .h5)")
    base = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), alpha=alpha, include_top=False,
                                          weights=None, pooling="avg")
    base._name = BASE_NAME
    if weights is not None:
        try:
            base.load_weights(weights)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"model family 'mobilenet_v2': cannot load weights '{weights}': "
                              f"{str(exc).splitlines()[0]}") from None
    else:  # Keras' BatchNorm momentum (0.999) needs thousands of steps to settle; small offline datasets have far fewer
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
    base.trainable = bool(train_base)
    inputs = keras.Input(shape=spec.input_shape, name="x")
    x = keras.layers.Reshape((*spec.input_shape[:2], 1), name="add_channel")(inputs) if spec.rank == 2 else inputs
    x = keras.layers.Resizing(image_size, image_size, name="resize")(x)
    if channels == 1:
        x = keras.layers.Concatenate(name="to_rgb")([x, x, x])
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(x)  # inputs are 0..1; MobileNetV2 wants -1..1
    # Pretrained base: BatchNorm stays in inference mode, also while fine-tuning (its statistics are part of what
    # transfers). Random base (weights=None): there are no statistics to keep, so BatchNorm trains normally.
    x = base(x, training=False) if weights is not None else base(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax", dtype="float32", name="output")(x)
    model = keras.Model(inputs, outputs, name="mobilenet_v2_transfer")
    compile_for_task(model, spec, optimizer(optimizer_name, learning_rate, "mobilenet_v2"))
    model._edgepipe_fine_tune = {"fine_tune_at": int(fine_tune_at), "learning_rate": float(fine_tune_learning_rate),
                                 "optimizer": optimizer_name}
    return model


def unfreeze_for_fine_tuning(model, spec: DataSpec, fine_tune_at: int, learning_rate: float,
                             optimizer_name: str = "adam") -> int:
    """Unfreeze the base from layer ``fine_tune_at`` on and recompile; returns the number of trainable base layers."""
    base = model.get_layer(BASE_NAME)
    base.trainable = True
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= fine_tune_at
    compile_for_task(model, spec, optimizer(optimizer_name, learning_rate, "mobilenet_v2"))
    return sum(layer.trainable for layer in base.layers)

"""Autoencoders: the reconstruction error is the anomaly score; the bottleneck is an exportable embedding.

``variant: conv`` (default) is the Conv1D autoencoder over fixed-size multichannel windows. Only layers that convert
to plain TFLite builtins (CONV_2D, TRANSPOSE_CONV) and that QAT can wrap are used: strided Conv1D to downsample and
Conv1DTranspose to upsample (no UpSampling1D or Reshape tricks), ReLU fused into the convolutions so each layer
quantizes as one op, and a linear Conv1D head because normalized inputs are signed.

``variant: dense`` flattens any example shape through Dense layers down to an ``embedding_dim`` bottleneck (layer
``embedding``) and back. :func:`encoder` cuts either variant at its bottleneck into a model of its own.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

from edgepipe.models.registry import register
from edgepipe.models.spec import DataSpec, positive_ints
from edgepipe.pipeline.errors import ConfigError


@register("autoencoder", "Conv1D (strided) or dense autoencoder; score = reconstruction MSE; encoder exportable",
          trainer="autoencoder", tasks=("anomaly", "reconstruction"))
def build_autoencoder(spec: DataSpec | None = None, window_size: int | None = None, channels: int | None = None,
                      variant: Literal["conv", "dense"] = "conv", filters: Sequence[int] = (32, 16),
                      kernel_size: int = 7, units: Sequence[int] = (64,), embedding_dim: int = 8,
                      learning_rate: float = 1e-3):
    """Build and compile (Adam, MSE) an autoencoder for examples of shape ``spec.input_shape`` (or
    ``[window_size, channels]``)."""
    if spec is not None:
        shape = spec.input_shape
        if variant == "conv":
            if len(shape) == 1:
                shape = (shape[0], 1)
            if len(shape) != 2:
                raise ConfigError(f"model family 'autoencoder' (variant conv) expects windows [steps, channels], but "
                                  f"the data has per-example shape {list(spec.input_shape)}; use variant: dense")
            window_size, channels = shape
    elif window_size is None or channels is None:
        raise ConfigError("model family 'autoencoder' needs a data spec or window_size and channels")
    else:
        shape = (int(window_size), int(channels))
    if variant == "dense":
        return _dense(tuple(shape), positive_ints("autoencoder", "units", units), int(embedding_dim), learning_rate)
    return build_conv1d_autoencoder(int(window_size), int(channels), filters, kernel_size, learning_rate)


def build_conv1d_autoencoder(window_size: int, channels: int, filters: Sequence[int] = (32, 16),
                             kernel_size: int = 7, learning_rate: float = 1e-3):
    """Build and compile (Adam, MSE) the autoencoder for windows of shape ``[window_size, channels]``."""
    import tf_keras as keras

    filters = [int(f) for f in filters]
    if not filters or any(f <= 0 for f in filters):
        raise ConfigError(f"autoencoder: filters must be a non-empty list of positive integers, got {filters}")
    if int(window_size) <= 0 or int(channels) <= 0 or int(kernel_size) <= 0:
        raise ConfigError(f"autoencoder: window_size ({window_size}), channels ({channels}) and kernel_size "
                          f"({kernel_size}) must be positive")
    factor = 2 ** len(filters)
    if window_size % factor:
        raise ConfigError(f"autoencoder: window_size {window_size} must be divisible by 2**len(filters) = {factor} "
                          f"(each of the {len(filters)} encoder layers halves the length); "
                          f"use a window size such as {max(factor, window_size // factor * factor)}")

    inputs = keras.Input(shape=(window_size, channels), name="window")
    x = inputs
    for i, n in enumerate(filters):
        x = keras.layers.Conv1D(n, kernel_size, strides=2, padding="same", activation="relu", name=f"enc_conv{i}")(x)
    for i, n in enumerate(reversed(filters)):
        x = keras.layers.Conv1DTranspose(n, kernel_size, strides=2, padding="same", activation="relu",
                                         name=f"dec_deconv{i}")(x)
    outputs = keras.layers.Conv1D(channels, kernel_size, padding="same", name="reconstruction")(x)
    model = keras.Model(inputs, outputs, name="conv1d_autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def _dense(shape: tuple[int, ...], units: list[int], embedding_dim: int, learning_rate: float):
    import tf_keras as keras

    if embedding_dim <= 0:
        raise ConfigError(f"model family 'autoencoder': embedding_dim must be positive, got {embedding_dim}")
    size = math.prod(shape)
    inputs = keras.Input(shape=shape, name="window")
    x = keras.layers.Flatten(name="flatten")(inputs) if len(shape) > 1 else inputs
    for i, n in enumerate(units):
        x = keras.layers.Dense(n, activation="relu", name=f"enc_dense{i}")(x)
    x = keras.layers.Dense(embedding_dim, name="embedding")(x)
    for i, n in enumerate(reversed(units)):
        x = keras.layers.Dense(n, activation="relu", name=f"dec_dense{i}")(x)
    x = keras.layers.Dense(size, name="reconstruction_flat")(x)
    outputs = keras.layers.Reshape(shape, name="reconstruction")(x) if len(shape) > 1 else x
    model = keras.Model(inputs, outputs, name="dense_autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def encoder(model):
    """The encoder half of an autoencoder as its own model (input -> bottleneck embedding), sharing weights."""
    import tf_keras as keras

    names = [layer.name for layer in model.layers]
    if "embedding" in names:
        bottleneck = model.get_layer("embedding").output
    else:  # conv variant: the last encoder convolution
        enc = [n for n in names if n.startswith("enc_conv")]
        if not enc:
            raise ConfigError(f"model '{model.name}' is not an edgepipe autoencoder (no embedding/enc_conv layer)")
        bottleneck = model.get_layer(enc[-1]).output
    return keras.Model(model.inputs, bottleneck, name=f"{model.name}_encoder")

"""Conv1D autoencoder over fixed-size multichannel windows: the reconstruction error is the anomaly score.

Only layers that convert to plain TFLite builtins (CONV_2D, TRANSPOSE_CONV) and that QAT can wrap are used: strided
Conv1D to downsample and Conv1DTranspose to upsample (no UpSampling1D or Reshape tricks), ReLU fused into the
convolutions so each layer quantizes as one op, and a linear Conv1D head because normalized inputs are signed.
"""
from __future__ import annotations

from typing import Sequence

from edgepipe.models.registry import register
from edgepipe.pipeline.errors import ConfigError


@register("autoencoder", "Conv1D encoder (stride 2) / Conv1DTranspose decoder; score = reconstruction MSE")
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

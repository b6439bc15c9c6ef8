"""The exported preprocessing, re-implemented in NumPy exactly as the pipeline applies it.

Why "exactly": the bundle's thresholds were calibrated on scores of windows the pipeline built, so the runtime
must build bit-identical windows. The pipeline stores parsed CSV values as float32 (TFRecord float lists), then
normalizes in float64 and rounds to float32 (``components/data/normalize.py``); windows start every ``stride``
steps at offset 0 and never pad (``components/data/windows.py``). :func:`normalize` and :func:`window_offsets`
follow those steps; :func:`check_matrix` turns raw input into a finite float64 array or a one-line InputError.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgepipe.runtime.errors import InputError


def normalize(values: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(x - center) / scale`` per channel (last axis): float32 storage, float64 arithmetic, float32 result."""
    stored = np.asarray(values, dtype=np.float32).astype(np.float64)
    return ((stored - center) / scale).astype(np.float32)


def window_offsets(length: int, size: int, stride: int) -> np.ndarray:
    """Start offsets of the windows of a series of ``length`` steps (empty when shorter than one window)."""
    if length < size:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, length - size + 1, stride, dtype=np.int64)


def windows(series: np.ndarray, size: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets [n], windows [n, size, channels])`` of a [T, channels] series, as ``make_windows`` cuts them."""
    offsets = window_offsets(len(series), size, stride)
    if len(offsets) == 0:
        return offsets, np.zeros((0, size, series.shape[1]), dtype=series.dtype)
    view = sliding_window_view(series, size, axis=0)[offsets]  # [n, channels, size]
    return offsets, np.ascontiguousarray(view.transpose(0, 2, 1))


def step_maximum(length: int, offsets: np.ndarray, size: int, scores: np.ndarray) -> np.ndarray:
    """Per step, the maximum score of the windows covering it; NaN for steps no window covers (the tail that
    does not fill a last window)."""
    out = np.full(length, -np.inf)
    if len(offsets):
        index = (offsets[:, None] + np.arange(size)[None, :]).ravel()
        np.maximum.at(out, index, np.repeat(np.asarray(scores, dtype=np.float64), size))
    out[np.isneginf(out)] = np.nan
    return out


def check_matrix(values: Any, channels: int, names: Sequence[str] | None, what: str = "series") -> np.ndarray:
    """A finite float64 array [T, channels] from an array-like (a 1-D input is one channel), or InputError."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what}: not a numeric array [steps, {channels}]") from None
    if array.ndim == 1 and channels == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise InputError(f"{what}: expected a 2-D array [steps, {channels}], got shape {list(array.shape)}")
    if array.shape[0] == 0:
        raise InputError(f"{what}: empty (no steps)")
    if array.shape[1] != channels:
        raise InputError(f"{what}: {array.shape[1]} channels, the bundle expects {channels}"
                         + (f" ({', '.join(names)})" if names else ""))
    _require_finite(array, names, what)
    return array


def _require_finite(array: np.ndarray, names: Sequence[str] | None, what: str) -> None:
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        step, channel = (int(v) for v in bad[0][-2:])
        label = names[channel] if names else str(channel)
        raise InputError(f"{what}: non-finite value {array[tuple(bad[0])]} at step {step}, channel '{label}' "
                         f"({len(bad)} in all)")


def check_windows(values: Any, size: int, channels: int, names: Sequence[str] | None) -> np.ndarray:
    """A finite float64 array [n, size, channels] of ready-cut raw windows, or InputError."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"windows: not a numeric array [n, {size}, {channels}]") from None
    if array.ndim == 2 and array.shape == (size, channels):
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (size, channels):
        raise InputError(f"windows: expected shape [n, {size}, {channels}], got {list(array.shape)}")
    if array.shape[0] == 0:
        raise InputError("windows: empty (no windows)")
    _require_finite(array, names, "windows")
    return array

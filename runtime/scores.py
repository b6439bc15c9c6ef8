"""Window scores of a reconstruction model: how a window's per-step errors become one anomaly score.

One owner for the training side (the evaluation fits thresholds and the likelihood prior on these scores) and the
device side (``runtime/tasks/anomaly.py`` scores streamed windows): ``bundle.json`` -> ``score`` names the kind and
its parameters, and both sides call :func:`window_scores` with them, so a threshold always meets the score it was
fitted on. Pure NumPy: the runtime imports nothing of the pipeline.

Kinds (declared in :data:`KINDS`, from which the config's choices and the schema's check are derived):

* ``reconstruction_mse``: mean over every step and channel of ``(x - y)^2``. Every step weighs ``1/size``, so a
  one-sample spike of size d adds about ``d^2/size`` to each window covering it and is averaged away.
* ``newest_mse``: mean over the newest ``steps`` steps (and every channel) only. A window's score is then about the
  samples that just arrived, with the older ``size - steps`` steps as the model's context: a spike raises the score
  of the windows that end on it by about ``d^2/steps``, and the alert fires when the sample arrives rather than
  when the window is mostly past it. On NAB (docs/anomaly_corpus.md) this is what moved detection past a rolling
  z-score's.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

DEFAULT_STEPS = 4  # newest_mse: the newest 4 steps (docs/anomaly_corpus.md: 1, 2, 4 and 8 measured)


def _mse(squared: np.ndarray, steps: int | None) -> np.ndarray:
    return squared.reshape(len(squared), -1).mean(axis=1)  # one mean over everything: the scores bundles had


def _newest(squared: np.ndarray, steps: int | None) -> np.ndarray:
    newest = squared[:, -int(steps or DEFAULT_STEPS):]
    return newest.reshape(len(newest), -1).mean(axis=1)


KINDS: dict[str, tuple[Callable[[np.ndarray, int | None], np.ndarray], str]] = {
    "reconstruction_mse": (_mse, "mean over steps and channels of (x - y)^2"),
    "newest_mse": (_newest, "mean over the newest `steps` steps and every channel of (x - y)^2"),
}
PARAMETRIZED = {"newest_mse"}  # kinds that read `steps`


def window_scores(x: np.ndarray, y: np.ndarray, kind: str = "reconstruction_mse",
                  steps: int | None = None) -> np.ndarray:
    """Per-window score (float64) of windows ``x`` [n, size, ...] and their reconstructions ``y`` (same shape)."""
    diff = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    if len(diff) == 0:
        return np.zeros(0)
    return KINDS[kind][0](diff ** 2, steps)


def describe(kind: str, steps: int | None, clipped: bool) -> dict[str, Any]:
    """``bundle.json`` -> ``score``: the kind, its parameter and the definition in words."""
    definition = (KINDS[kind][1] + ", x the normalized float window (before input quantization), y the model "
                  "output (dequantized for int8)"
                  + ("; the model is fed x clipped to [input_clip.min, input_clip.max]" if clipped else ""))
    return {"kind": kind, **({"steps": int(steps or DEFAULT_STEPS)} if kind in PARAMETRIZED else {}),
            "definition": definition, "anomaly_if": "score > threshold of the model file used"}


def from_doc(section: dict[str, Any] | None) -> tuple[str, int | None]:
    """``(kind, steps)`` of a validated ``score`` section; bundles without one score by ``reconstruction_mse``."""
    if not section:
        return "reconstruction_mse", None
    kind = section.get("kind", "reconstruction_mse")
    return kind, (int(section.get("steps") or DEFAULT_STEPS) if kind in PARAMETRIZED else None)

"""Anomaly detection: raw multichannel series -> per-window and per-step reconstruction scores and flags.

The score is the bundle's ``reconstruction_mse``: mean over steps and channels of ``(x - y)^2``, ``x`` the
normalized float32 window (before input quantization), ``y`` the dequantized model output; a window is anomalous
when its score exceeds the threshold of the model file in use. A time step's score is the **maximum** over the
windows covering it (so a step is flagged iff at least one window containing it is); steps in the tail that no
full window reaches have no score (NaN / null) and are not flagged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from edgepipe.runtime import preprocess
from edgepipe.runtime.errors import InputError
from edgepipe.runtime.litert import MAX_BATCH
from edgepipe.runtime.tasks.base import Task, register

SCORE_CHUNK = 16 * MAX_BATCH  # windows scored at once (a multiple of the runner batch: same invokes)


def _json_float(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


@dataclass
class AnomalyResult:
    """Scores of one series (``steps`` present) or of a batch of ready-cut windows (``steps`` None)."""

    model: str
    threshold: float
    window_size: int
    window_start: np.ndarray  # int64 [n]: offset of each window's first step in the series (windows input: index)
    window_score: np.ndarray  # float64 [n]
    window_anomaly: np.ndarray  # bool [n]
    step_score: np.ndarray | None = None  # float64 [T], NaN where no window covers the step
    step_anomaly: np.ndarray | None = None  # bool [T]

    @property
    def from_series(self) -> bool:
        """True when the input was a series (windows cut here); False for ready-cut windows."""
        return self.step_score is not None

    def window_records(self) -> Iterator[dict[str, Any]]:
        for start, score, flag in zip(self.window_start.tolist(), self.window_score.tolist(),
                                      self.window_anomaly.tolist()):
            where = {"start": start, "end": start + self.window_size} if self.from_series else {"window": start}
            yield {**where, "score": score, "anomaly": flag}

    def step_records(self) -> Iterator[dict[str, Any]]:
        if self.step_score is None:
            return
        for step, (score, flag) in enumerate(zip(self.step_score.tolist(), self.step_anomaly.tolist())):
            yield {"step": step, "score": _json_float(score), "anomaly": flag}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, columnar (compact for long series): windows, and steps when the input was a series."""
        out: dict[str, Any] = {
            "task": "anomaly_detection", "model": self.model, "threshold": self.threshold,
            "window_size": self.window_size, "anomalous_windows": int(self.window_anomaly.sum()),
            "windows": {("start" if self.from_series else "index"): self.window_start.tolist(),
                        "score": self.window_score.tolist(), "anomaly": self.window_anomaly.tolist()}}
        if self.step_score is not None:
            out["steps"] = {"score": [_json_float(v) for v in self.step_score.tolist()],
                            "anomaly": self.step_anomaly.tolist(), "aggregation": "max over covering windows"}
        return out


@dataclass(frozen=True)
class WindowScore:
    """A streamed window: steps ``[start, end)`` of everything pushed so far."""

    start: int
    end: int
    score: float
    anomaly: bool

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "score": self.score, "anomaly": self.anomaly}


@register
class AnomalyTask(Task):
    name = "anomaly_detection"
    input_kinds = ("series", "windows")

    def __init__(self, doc: dict[str, Any], model: dict[str, Any], runner):
        super().__init__(doc, model, runner)
        window, norm = doc["window"], doc["normalization"]
        self.size, self.stride, self.channels = int(window["size"]), int(window["stride"]), int(window["channels"])
        self.channel_names: list[str] | None = window.get("channel_names") or norm.get("channels")
        self.center = np.asarray(norm["center"], dtype=np.float64)
        self.scale = np.asarray(norm["scale"], dtype=np.float64)
        self.threshold = float(model["threshold"])
        clip = doc.get("input_clip")  # the model's input domain: it is fed the window clipped to [min, max]
        self.clip = (float(clip["min"]), float(clip["max"])) if clip else None

    def scores(self, normalized: np.ndarray) -> np.ndarray:
        """Reconstruction MSE per normalized float32 window (float64, as the evaluation computes it).

        ``SCORE_CHUNK`` windows at a time: a max-size request holds ~70k windows, and their reconstructions plus
        float64 differences at once were most of the server's per-request memory (issue 12). The chunk is a multiple
        of the runner's batch, so every invoke, and so every score, is the same as scoring all windows at once."""
        out = np.empty(len(normalized), dtype=np.float64)
        for lo in range(0, len(normalized), SCORE_CHUNK):
            part = normalized[lo:lo + SCORE_CHUNK]
            fed = part if self.clip is None else np.clip(part, *self.clip).astype(part.dtype)
            diff = part.astype(np.float64) - self.runner.run(fed).astype(np.float64)
            out[lo:lo + len(part)] = (diff ** 2).reshape(len(diff), -1).mean(axis=1)
        return out

    def predict(self, raw: Any, kind: str | None = None) -> AnomalyResult:
        """``kind`` "series" ([T, C] raw values) or "windows" ([n, size, C]); by default from the rank."""
        if kind is None:
            try:
                kind = "windows" if np.ndim(raw) == 3 else "series"
            except ValueError:  # ragged nested lists: let the series check describe the problem
                kind = "series"
        self.check_kind(kind)
        if kind == "windows":
            raw_windows = preprocess.check_windows(raw, self.size, self.channels, self.channel_names)
            scores = self.scores(preprocess.normalize(raw_windows, self.center, self.scale))
            return self._result(np.arange(len(scores), dtype=np.int64), scores)
        series = preprocess.check_matrix(raw, self.channels, self.channel_names)
        if len(series) < self.size:
            raise InputError(f"series: {len(series)} steps, fewer than one window ({self.size} steps)")
        offsets, cut = preprocess.windows(preprocess.normalize(series, self.center, self.scale), self.size,
                                          self.stride)
        scores = self.scores(cut)
        result = self._result(offsets, scores)
        result.step_score = preprocess.step_maximum(len(series), offsets, self.size, scores)
        with np.errstate(invalid="ignore"):
            result.step_anomaly = np.nan_to_num(result.step_score, nan=-np.inf) > self.threshold
        return result

    def _result(self, offsets: np.ndarray, scores: np.ndarray) -> AnomalyResult:
        return AnomalyResult(model=self.runner.name, threshold=self.threshold, window_size=self.size,
                             window_start=offsets, window_score=scores, window_anomaly=scores > self.threshold)

    def stream(self) -> "AnomalyStream":
        return AnomalyStream(self)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "window_size": self.size, "stride": self.stride, "channels": self.channels,
                "channel_names": self.channel_names, "threshold": self.threshold,
                "normalization": self.doc["normalization"], "score": self.doc.get("score"),
                "step_score": "max over the windows covering the step; null where none does"}


class AnomalyStream:
    """Feed raw samples one at a time, as a sensor loop would; a window is scored each time one completes.

    Windows complete at the same offsets as batch windowing (0, stride, 2*stride, ...), so the stream's scores
    equal ``predict`` on the whole series. Memory is one window of normalized samples (a ring buffer).
    """

    def __init__(self, task: AnomalyTask):
        self.task = task
        self._ring = np.zeros((task.size, task.channels), dtype=np.float32)
        self.steps = 0

    def push(self, sample: Any) -> WindowScore | None:
        """Add one sample (``channels`` raw values); return the window it completes, if any, else None."""
        task = self.task
        try:
            values = np.asarray(sample, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError(f"sample {self.steps}: not {task.channels} numbers") from None
        if values.shape != (task.channels,):
            raise InputError(f"sample {self.steps}: {values.size} values, the bundle expects {task.channels}")
        if not np.isfinite(values).all():
            raise InputError(f"sample {self.steps}: non-finite value {values.tolist()}")
        self._ring[self.steps % task.size] = preprocess.normalize(values[None], task.center, task.scale)[0]
        self.steps += 1
        start = self.steps - task.size
        if start < 0 or start % task.stride:
            return None
        window = self._ring[(start + np.arange(task.size)) % task.size]
        score = float(task.scores(window[None])[0])
        return WindowScore(start=start, end=self.steps, score=score, anomaly=score > task.threshold)

    def reset(self) -> None:
        """Forget every sample (e.g. after a gap in the sensor feed: no window may bridge it)."""
        self.steps = 0

"""Anomaly detection: raw multichannel series -> per-window and per-step reconstruction scores and flags.

The score is the bundle's ``reconstruction_mse``: mean over steps and channels of ``(x - y)^2``, ``x`` the
normalized float32 window (before input quantization), ``y`` the dequantized model output; a window is anomalous
when its score exceeds the threshold of the model file in use. A time step's score is the **maximum** over the
windows covering it (so a step is flagged iff at least one window containing it is); steps in the tail that no
full window reaches have no score (NaN / null) and are not flagged.

On a series, every window also gets a causal **anomaly likelihood** in [0, 1] and an **alert** flag (the onset of an
anomaly, de-duplicated by a refractory period; see :mod:`edgepipe.runtime.likelihood`), computed in time order from
the scores of the windows ending at or before each step, exactly as ``AnomalyStream`` computes them one sample at a
time. A step's likelihood is that of the last window ending at or before it (NaN before the first window); a step
is an alert when a window ending at it is. Ready-cut windows have no time order, so no likelihood.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from edgepipe.runtime import preprocess, scores as window_score
from edgepipe.runtime.errors import InputError, UsageError
from edgepipe.runtime.likelihood import LikelihoodConfig, LikelihoodState
from edgepipe.runtime.litert import MAX_BATCH
from edgepipe.runtime.skew import series_skew
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
    window_likelihood: np.ndarray | None = None  # float64 [n], causal (series input only)
    window_alert: np.ndarray | None = None  # bool [n]: alert onsets, at the window's last step
    step_likelihood: np.ndarray | None = None  # float64 [T]: the last window ending at or before the step
    step_alert: np.ndarray | None = None  # bool [T]
    likelihood: LikelihoodConfig | None = None  # the parameters used
    skew: dict[str, Any] | None = None  # a series far from what the model was trained on (runtime/skew.py)

    def alerts(self) -> list[dict[str, Any]]:
        """Alert events in time order: ``step`` (the window's last step), the window, its likelihood and score."""
        if self.window_alert is None:
            return []
        return [{"step": int(start) + self.window_size - 1, "start": int(start), "end": int(start) + self.window_size,
                 "likelihood": float(self.window_likelihood[i]), "score": _json_float(self.window_score[i])}
                for i, start in zip(np.flatnonzero(self.window_alert).tolist(),
                                    self.window_start[self.window_alert].tolist())]

    @property
    def from_series(self) -> bool:
        """True when the input was a series (windows cut here); False for ready-cut windows."""
        return self.step_score is not None

    def _window_base(self) -> Iterator[dict[str, Any]]:
        for start, score, flag in zip(self.window_start.tolist(), self.window_score.tolist(),
                                      self.window_anomaly.tolist()):
            where = {"start": start, "end": start + self.window_size} if self.from_series else {"window": start}
            yield {**where, "score": score, "anomaly": flag}

    def window_records(self) -> Iterator[dict[str, Any]]:
        likelihood, alert = self.window_likelihood, self.window_alert
        for i, record in enumerate(self._window_base()):
            if likelihood is not None:
                record.update(likelihood=float(likelihood[i]), alert=bool(alert[i]))
            yield record

    def step_records(self) -> Iterator[dict[str, Any]]:
        if self.step_score is None:
            return
        for step, (score, flag) in enumerate(zip(self.step_score.tolist(), self.step_anomaly.tolist())):
            record = {"step": step, "score": _json_float(score), "anomaly": flag}
            if self.step_likelihood is not None:
                record.update(likelihood=_json_float(self.step_likelihood[step]), alert=bool(self.step_alert[step]))
            yield record

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
        if self.window_likelihood is not None:
            out["windows"].update(likelihood=self.window_likelihood.tolist(), alert=self.window_alert.tolist())
            out["steps"].update(likelihood=[_json_float(v) for v in self.step_likelihood.tolist()],
                                alert=self.step_alert.tolist())
            out["alerts"] = self.alerts()
            out["likelihood"] = self.likelihood.to_dict()
        if self.skew is not None:
            out["skew"] = self.skew
        return out


@dataclass(frozen=True)
class WindowScore:
    """A streamed window: steps ``[start, end)`` of everything pushed so far."""

    start: int
    end: int
    score: float
    anomaly: bool
    likelihood: float = 0.5  # causal anomaly likelihood in [0, 1] (0.5 while learning)
    alert: bool = False  # an alert onset (likelihood >= threshold, outside the refractory period)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "score": self.score, "anomaly": self.anomaly,
                "likelihood": self.likelihood, "alert": self.alert}


def channel_names(doc: dict[str, Any]) -> list[str] | None:
    """The series' channel names, in the order the model reads them, as a bundle.json states them:
    ``window.channel_names``, else ``normalization.channels`` (a bundle may name them only there); None when it names
    none. The one rule for the runtime and for the pipeline's retrain check of a baseline bundle (blessing.py), which
    reads the raw document, so a missing section is no name rather than a KeyError."""
    return (doc.get("window") or {}).get("channel_names") or (doc.get("normalization") or {}).get("channels")


@register
class AnomalyTask(Task):
    name = "anomaly_detection"
    input_kinds = ("series", "windows")

    def __init__(self, doc: dict[str, Any], model: dict[str, Any], runner):
        super().__init__(doc, model, runner)
        window, norm = doc["window"], doc["normalization"]
        self.size, self.stride, self.channels = int(window["size"]), int(window["stride"]), int(window["channels"])
        self.channel_names = channel_names(doc)
        self.center = np.asarray(norm["center"], dtype=np.float64)
        self.scale = np.asarray(norm["scale"], dtype=np.float64)
        self.threshold = float(model["threshold"])
        clip = doc.get("input_clip")  # the model's input domain: it is fed the window clipped to [min, max]
        self.clip = (float(clip["min"]), float(clip["max"])) if clip else None
        self.likelihood = LikelihoodConfig.from_doc(doc.get("likelihood"), self.size)
        self.score_kind, self.score_steps = window_score.from_doc(doc.get("score"))

    def likelihood_config(self, overrides: dict[str, Any] | None) -> LikelihoodConfig:
        """The bundle's likelihood parameters with per-call ``overrides`` (e.g. threshold, refractory)."""
        unknown = sorted(set(overrides or ()) - set(LikelihoodConfig.__dataclass_fields__))
        if unknown:
            raise UsageError(f"anomaly likelihood: unknown parameter(s) {', '.join(unknown)} (known: "
                             f"{', '.join(LikelihoodConfig.__dataclass_fields__)})")
        if not overrides or all(v is None for v in overrides.values()):
            return self.likelihood
        try:
            return LikelihoodConfig.from_doc(self.likelihood.to_dict(), self.size, **overrides)
        except (TypeError, ValueError) as err:
            raise InputError(str(err)) from None

    def scores(self, normalized: np.ndarray) -> np.ndarray:
        """The bundle's window score (``bundle.json`` -> ``score``, ``runtime/scores.py``) per normalized float32
        window (float64, as the evaluation computes it).

        ``SCORE_CHUNK`` windows at a time: a max-size request holds ~70k windows, and their reconstructions plus
        float64 differences at once were most of the server's per-request memory (issue 12). The chunk is a multiple
        of the runner's batch, so every invoke, and so every score, is the same as scoring all windows at once."""
        out = np.empty(len(normalized), dtype=np.float64)
        for lo in range(0, len(normalized), SCORE_CHUNK):
            part = normalized[lo:lo + SCORE_CHUNK]
            fed = part if self.clip is None else np.clip(part, *self.clip).astype(part.dtype)
            out[lo:lo + len(part)] = window_score.window_scores(part, self.runner.run(fed), self.score_kind,
                                                                self.score_steps)
        return out

    def predict(self, raw: Any, kind: str | None = None, **likelihood: Any) -> AnomalyResult:
        """``kind`` "series" ([T, C] raw values) or "windows" ([n, size, C]); by default from the rank.
        ``likelihood``: overrides of the bundle's likelihood parameters (``threshold``, ``refractory``, ...)."""
        config = self.likelihood_config(likelihood)
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
        _add_likelihood(result, len(series), config)
        result.skew = series_skew(series, self.channel_names or [str(c) for c in range(self.channels)], self.center,
                                  self.scale, self.clip, self.doc["normalization"].get("method"))
        return result

    def _result(self, offsets: np.ndarray, scores: np.ndarray) -> AnomalyResult:
        return AnomalyResult(model=self.runner.name, threshold=self.threshold, window_size=self.size,
                             window_start=offsets, window_score=scores, window_anomaly=scores > self.threshold)

    def stream(self, **likelihood: Any) -> "AnomalyStream":
        """A sample-by-sample consumer; ``likelihood`` overrides the bundle's parameters for this stream only."""
        return AnomalyStream(self, self.likelihood_config(likelihood))

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "window_size": self.size, "stride": self.stride, "channels": self.channels,
                "channel_names": self.channel_names, "threshold": self.threshold,
                "normalization": self.doc["normalization"], "score": self.doc.get("score"),
                "step_score": "max over the windows covering the step; null where none does",
                "likelihood": self.likelihood.to_dict()}


class AnomalyStream:
    """Feed raw samples one at a time, as a sensor loop would; a window is scored each time one completes.

    Windows complete at the same offsets as batch windowing (0, stride, 2*stride, ...), so the stream's scores
    equal ``predict`` on the whole series. Memory is one window of normalized samples (a ring buffer).
    """

    def __init__(self, task: AnomalyTask, likelihood: LikelihoodConfig | None = None):
        self.task = task
        self.likelihood = LikelihoodState(likelihood or task.likelihood)
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
        likelihood, alert = self.likelihood.update(score, self.steps - 1)
        return WindowScore(start=start, end=self.steps, score=score, anomaly=score > task.threshold,
                           likelihood=likelihood, alert=alert)

    def reset(self) -> None:
        """Forget every sample and the likelihood's running model (e.g. after a gap in the sensor feed: no window
        may bridge it, and the scores after it are a new series)."""
        self.steps = 0
        self.likelihood.reset()


def _add_likelihood(result: AnomalyResult, length: int, config: LikelihoodConfig) -> None:
    """Causal likelihood and alerts of a series' windows, in time order, with the stream's own state machine (so
    batch and streaming agree exactly); then per step: the last window ending at or before it."""
    state = LikelihoodState(config)
    ends = result.window_start + result.window_size  # increasing: windows are cut in time order
    n = len(ends)
    likelihood, alert = np.empty(n, dtype=np.float64), np.zeros(n, dtype=bool)
    for i, (score, end) in enumerate(zip(result.window_score.tolist(), ends.tolist())):
        likelihood[i], alert[i] = state.update(score, end - 1)
    latest = np.searchsorted(ends - 1, np.arange(length), side="right") - 1  # last window ending <= step
    step_likelihood = np.where(latest >= 0, likelihood[np.maximum(latest, 0)], np.nan) if n else np.full(length,
                                                                                                         np.nan)
    step_alert = np.zeros(length, dtype=bool)
    step_alert[ends[alert] - 1] = True
    result.window_likelihood, result.window_alert = likelihood, alert
    result.step_likelihood, result.step_alert, result.likelihood = step_likelihood, step_alert, config

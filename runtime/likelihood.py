"""Anomaly likelihood and alert events: a calibrated, causal score in [0, 1] on top of raw reconstruction scores.

After Ahmad, Lavin, Purdy, Agha, "Unsupervised real-time anomaly detection for streaming data", Neurocomputing 262
(2017), and NAB's ``anomaly_likelihood``. Raw scores (reconstruction MSE) have a scale of their own per model and per
series, so one threshold cannot serve many series. The likelihood models the *recent* raw scores as a Gaussian
(mean ``mu``, std ``sigma`` over the last ``long_window`` scores) and asks how far out in its tail the short-term
average ``m`` of the last ``short_window`` scores lies::

    likelihood_t = 1 - Q((m_t - mu_t) / sigma_t),   Q(z) = erfc(z / sqrt(2)) / 2   (the Gaussian tail)

Why each choice (see docs/runtime.md for the defaults' reasoning):

* ``mu``/``sigma`` come from scores *before* step t (the paper includes s_t): one extreme score would otherwise
  inflate the very ``sigma`` it is tested against and hide itself (100 sigma over 864 scores -> sigma x3.5).
* O(1) time and memory per step: a ring buffer of ``long_window`` scores with running (shifted) sums, and a running
  sum of the short window, not a pass over history: this runs on the device, once per scored window.
* Drift: the statistics roll over the long window, so a level shift that persists becomes the new normal; it
  raises one alert at onset and stops alerting once enough shifted scores are inside the window.
* A prior (``initial_mean``/``initial_std``: raw scores of the normal training windows) stands in for the scores
  not yet seen: the window starts as ``long_window`` pseudo-scores of that mean and spread, replaced one by one by
  real ones, so alerts can fire from the first windows on a new device and the prior is gone after one long window.
  Without a prior the first ``learning_period`` scores only learn (likelihood 0.5, NAB's convention, no alert).
* Alerts are onsets: ``likelihood >= threshold`` and no alert in the previous ``refractory`` steps, so one anomaly
  (whose score stays high for every window covering it) raises one alert, not one per window.

The unit of the windows and of ``learning_period`` is one raw score (one scored window: one step at stride 1);
``refractory`` is in series steps. Everything here is pure Python + math: no NumPy needed per step.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from edgepipe.runtime.checker import FLOAT32_MAX  # scores beyond (an overflowed reconstruction) count as this

LONG_WINDOW = 864  # 3 days of 5-minute samples (the paper's 8640 / 10): see docs/runtime.md
SHORT_WINDOW = 10  # the paper's W'
LEARNING_NO_PRIOR = 288  # NAB's learning period: one day of 5-minute samples, a third of the long window
THRESHOLD = 1.0 - 1e-3  # a Gaussian tail beyond z = 3.09; the paper used 1e-5 (z = 4.26): see docs/anomaly_corpus.md
REFRACTORY_WINDOWS = 4  # default refractory: 4 x window.size steps (one anomalous sample raises `size` windows)
MIN_STD_RATIO = 0.05  # sigma >= 5% of mu: a flat stretch of near-equal scores must not make every wiggle a tail event


@dataclass(frozen=True)
class LikelihoodConfig:
    """The ``likelihood`` section of bundle.json, with every default resolved (see the module docstring)."""

    long_window: int = LONG_WINDOW
    short_window: int = SHORT_WINDOW
    learning_period: int = LEARNING_NO_PRIOR
    initial_mean: float | None = None
    initial_std: float | None = None
    threshold: float = THRESHOLD
    refractory: int = REFRACTORY_WINDOWS * 64
    min_std_ratio: float = MIN_STD_RATIO

    @classmethod
    def from_doc(cls, section: dict[str, Any] | None, window_size: int, **overrides: Any) -> "LikelihoodConfig":
        """From a validated (or absent) ``likelihood`` section; ``overrides`` (e.g. a per-stream threshold) win."""
        given = {k: v for k, v in {**(section or {}), **overrides}.items() if v is not None}
        prior = given.get("initial_mean") is not None and given.get("initial_std") is not None
        short = int(given.get("short_window", SHORT_WINDOW))
        defaults = {"long_window": LONG_WINDOW, "short_window": short,
                    "learning_period": short if prior else LEARNING_NO_PRIOR,
                    "threshold": THRESHOLD, "refractory": REFRACTORY_WINDOWS * window_size,
                    "min_std_ratio": MIN_STD_RATIO}
        values = {**defaults, **{k: v for k, v in given.items() if k in cls.__dataclass_fields__}}
        config = cls(**values)
        if config.short_window > config.long_window:
            raise ValueError(f"likelihood: short_window {config.short_window} exceeds long_window "
                             f"{config.long_window}")
        if not 0.0 < config.threshold <= 1.0:
            raise ValueError(f"likelihood: threshold must be in (0, 1], got {config.threshold}")
        if config.refractory < 0:
            raise ValueError(f"likelihood: refractory must be >= 0, got {config.refractory}")
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LikelihoodState:
    """The running model of one stream: ``update(score, step) -> (likelihood, alert)``, O(1) per call."""

    def __init__(self, config: LikelihoodConfig):
        self.config = config
        self._long = [0.0] * config.long_window  # ring of raw scores (the sums hold them shifted by _ref)
        self._short = [0.0] * config.short_window  # ring of raw scores
        self._prior = config.initial_mean is not None and config.initial_std is not None
        self.reset()

    def reset(self) -> None:
        """Forget every score and alert (the prior, if any, is back in full)."""
        self.count = 0  # scores seen
        self._sum = self._sumsq = 0.0  # over the real scores in the long window, shifted by _ref
        self.last_alert: int | None = None
        self._ref = float(self.config.initial_mean) if self._prior else None  # shift against cancellation

    def _model(self) -> tuple[float, float] | None:
        """(mu, sigma) of the scores before this one, the prior filling the long window's unseen part."""
        c = self.config
        n = min(self.count, c.long_window)
        pseudo = c.long_window - n if self._prior else 0
        total = n + pseudo
        if total < 2:
            return None
        s, ss = self._sum, self._sumsq
        if pseudo:  # the prior's pseudo-scores, shifted by _ref: mean d = initial_mean - _ref, spread initial_std
            d = float(c.initial_mean) - self._ref
            s += pseudo * d
            ss += pseudo * (float(c.initial_std) ** 2 + d * d)
        mean = s / total
        var = max(ss / total - mean * mean, 0.0)
        mu = mean + self._ref
        return mu, max(math.sqrt(var), c.min_std_ratio * abs(mu), 1e-12)

    def _rebase(self) -> None:
        """Once per long window (amortized O(log W): a sort per W scores): re-centre the sums on the ring's median and
        recompute them exactly, so rounding never accumulates and a drifting series keeps its precision."""
        filled = min(self.count, self.config.long_window)  # before the ring is full, slots [0, count) hold scores
        ref = self._ref = sorted(self._long[:filled])[filled // 2]  # the median: an outlier cannot pull it away
        self._sum = math.fsum(v - ref for v in self._long[:filled])
        self._sumsq = math.fsum((v - ref) ** 2 for v in self._long[:filled])

    def update(self, score: float, step: int | None = None) -> tuple[float, bool]:
        """Add one raw score (at series ``step``; default: its index); return its likelihood and whether it is an
        alert onset. Non-finite scores (an overflowed reconstruction) count as the largest finite score."""
        c = self.config
        step = self.count if step is None else step
        score = float(score)
        if not math.isfinite(score):
            score = FLOAT32_MAX if score > 0 or math.isnan(score) else 0.0
        score = min(max(score, -FLOAT32_MAX), FLOAT32_MAX)  # squares stay finite in float64
        model = self._model()
        # the short-term average includes this score; summed exactly each step (W' values: O(1), no drift)
        self._short[self.count % c.short_window] = score
        filled = min(self.count + 1, c.short_window)
        m = math.fsum(self._short[:filled]) / filled
        learning = self.count < c.learning_period or model is None
        if learning:
            likelihood = 0.5
        else:
            mu, sigma = model
            likelihood = 0.5 * math.erfc(-((m - mu) / sigma) / math.sqrt(2.0))  # = 1 - Q(z)
        if self._ref is None:
            self._ref = score
        j = self.count % c.long_window
        shifted = score - self._ref
        evicted = self._long[j] - self._ref if self.count >= c.long_window else 0.0
        self._long[j] = score
        self._sum += shifted - evicted
        self._sumsq += shifted * shifted - evicted * evicted
        self.count += 1
        # exact sums once per long window, and at once when the evicted score dominated them (an outlier leaving:
        # the subtraction would have cancelled most digits of what remains)
        if self.count % c.long_window == 0 or evicted * evicted > 1e3 * max(self._sumsq, 1e-300):
            self._rebase()
        quiet = self.last_alert is None or step - self.last_alert > c.refractory
        alert = not learning and likelihood >= c.threshold and quiet
        if alert:
            self.last_alert = step
        return likelihood, alert


def check_section(c: Any, doc: dict) -> None:
    """The optional ``likelihood`` section of an anomaly bundle (``c``: checker.Checker); every field optional."""
    value = c.get(doc, "likelihood", "", optional=True)
    if value is None:
        return
    section = c.obj(value, "likelihood")
    for key in ("long_window", "short_window"):
        if section.get(key) is not None:
            c.integer(section[key], f"likelihood.{key}", minimum=1)
    for key in ("learning_period", "refractory"):
        if section.get(key) is not None:
            c.integer(section[key], f"likelihood.{key}", minimum=0)
    if section.get("initial_mean") is not None:
        c.number(section["initial_mean"], "likelihood.initial_mean")
    if section.get("initial_std") is not None:
        c.number(section["initial_std"], "likelihood.initial_std", positive=True)
    if (section.get("initial_mean") is None) != (section.get("initial_std") is None):
        c.fail("likelihood", "needs both initial_mean and initial_std, or neither")
    if section.get("min_std_ratio") is not None and c.number(section["min_std_ratio"], "likelihood.min_std_ratio") < 0:
        c.fail("likelihood.min_std_ratio", f"must be >= 0, got {section['min_std_ratio']}")
    if section.get("threshold") is not None:
        t = c.number(section["threshold"], "likelihood.threshold")
        if not 0.0 < t <= 1.0:
            c.fail("likelihood.threshold", f"must be in (0, 1], got {t}")
    long_w, short_w = section.get("long_window", LONG_WINDOW), section.get("short_window", SHORT_WINDOW)
    if short_w > long_w:
        c.fail("likelihood.short_window", f"is {short_w}, more than long_window {long_w}")

"""Anomaly likelihood and alert onsets (runtime/likelihood.py) and how predict, stream and the outputs carry them.

The model is a stub with the runner's interface: a PCA reconstruction (the optimal linear autoencoder) fitted in
NumPy on the first 15% of a series, so these tests need no TensorFlow and no pipeline run, yet score real data the
way an exported autoencoder does (normalize, window, reconstruct, MSE).
"""
from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgepipe.runtime import BundleError, InputError, UsageError, outputs, schema
from edgepipe.runtime.bundle import Bundle
from edgepipe.runtime.likelihood import LikelihoodConfig, LikelihoodState
from edgepipe.runtime.tasks import TASKS

NAB = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "nab"
JUMPSUP = "artificialWithAnomaly/art_daily_jumpsup.csv"


class PCARunner:
    """Reconstructs a normalized window from its first ``k`` principal components (fitted on training windows)."""

    name = "pca.tflite"

    def __init__(self, train_windows: np.ndarray, k: int = 4):
        flat = train_windows.reshape(len(train_windows), -1).astype(np.float64)
        self.mean = flat.mean(axis=0)
        self.basis = np.linalg.svd(flat - self.mean, full_matrices=False)[2][:k].T
        self.input = SimpleNamespace(shape=(None, *train_windows.shape[1:]))

    def run(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float64) - self.mean
        return (flat @ self.basis @ self.basis.T + self.mean).reshape(x.shape).astype(np.float32)


def make_bundle(series: np.ndarray, size: int = 32, stride: int = 1, train: float = 0.15, prior: bool = True,
                **likelihood) -> Bundle:
    """An anomaly bundle (validated bundle.json + PCA stub) trained on the first ``train`` fraction of ``series``;
    ``prior``: write initial_mean/std from the training windows' raw scores, as the exporter would."""
    n_train = int(round(train * len(series)))
    center, scale = series[:n_train].mean(axis=0), series[:n_train].std(axis=0) + 1e-9
    normalized = ((series[:n_train] - center) / scale).astype(np.float32)
    windows = np.stack([normalized[i:i + size] for i in range(n_train - size + 1)])
    runner = PCARunner(windows)
    spec = {"name": "x", "shape": [None, size, series.shape[1]], "dtype": "float32", "quantization": None}
    model = {"file": "model.tflite", "sha256": "0" * 64, "threshold": 1.0, "input": spec, "output": spec}
    doc = {"schema_version": 1, "task": "anomaly_detection", "default_model": "model.tflite", "input": spec,
           "output": spec, "models": {"main": model},
           "window": {"size": size, "stride": stride, "channels": series.shape[1]},
           "normalization": {"method": "zscore", "center": center.tolist(), "scale": scale.tolist()}}
    section = dict(likelihood)
    if prior:
        scores = TASKS["anomaly_detection"](doc, model, runner).scores(windows)
        section.update(initial_mean=float(scores.mean()), initial_std=float(scores.std()))
    if section:
        doc["likelihood"] = section
    schema.validate(doc)
    return Bundle(Path("."), doc, "main", TASKS["anomaly_detection"](doc, model, runner))


def daily(steps: int, seed: int = 0) -> np.ndarray:
    """A noisy daily cycle (288 samples a day, as NAB's 5-minute series), one channel."""
    t = np.arange(steps)
    rng = np.random.default_rng(seed)
    return (20 + 10 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 0.5, steps))[:, None]


def run_scores(scores, **config) -> tuple[np.ndarray, np.ndarray]:
    state = LikelihoodState(LikelihoodConfig.from_doc(config, 32))
    out = [state.update(s, i) for i, s in enumerate(scores)]
    return np.array([o[0] for o in out]), np.array([o[1] for o in out])


def noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(4.0, 0.25, n)  # positive, skewed, like reconstruction MSEs


def test_likelihood_is_in_0_1_and_causal():
    scores = noise(3000)
    scores[1500:1520] += 8.0
    likelihood, alert = run_scores(scores)
    assert np.all((likelihood >= 0) & (likelihood <= 1))
    assert np.all(likelihood[:288] == 0.5) and not alert[:288].any()  # learning period without a prior
    _, learning_alert = run_scores(scores, threshold=0.5, refractory=0)
    assert not learning_alert[:288].any() and learning_alert[288:].any()  # learning never alerts
    for cut in (1000, 1505, 2200):
        changed = scores.copy()
        changed[cut:] = noise(3000 - cut, seed=cut) * 50  # a wildly different future
        again, again_alert = run_scores(changed)
        np.testing.assert_array_equal(again[:cut], likelihood[:cut])
        np.testing.assert_array_equal(again_alert[:cut], alert[:cut])


def test_series_predict_is_causal_and_equals_the_stream():
    series = daily(2000)
    series[1400:1420] += 15
    bundle = make_bundle(series)
    batch = bundle.predict(series)
    assert np.all((batch.window_likelihood >= 0) & (batch.window_likelihood <= 1))
    stream = bundle.stream()
    pushed = [stream.push(s) for s in series]
    emitted = [p for p in pushed if p is not None]
    assert [p.likelihood for p in emitted] == batch.window_likelihood.tolist()
    assert [p.alert for p in emitted] == batch.window_alert.tolist()
    steps = [i for i, p in enumerate(pushed) if p is not None and p.alert]
    assert steps == [a["step"] for a in batch.alerts()] and np.flatnonzero(batch.step_alert).tolist() == steps
    assert len(steps) == 1 and 1400 <= steps[0] < 1420 + 32  # the one injected anomaly, one alert
    cut = 1000  # a later future never changes an earlier step's likelihood or alert
    changed = series.copy()
    changed[cut:] = changed[cut:][::-1] * 3
    other = bundle.predict(changed)
    np.testing.assert_array_equal(other.step_likelihood[:cut], batch.step_likelihood[:cut])
    np.testing.assert_array_equal(other.step_alert[:cut], batch.step_alert[:cut])
    assert np.isnan(batch.step_likelihood[:31]).all() and not np.isnan(batch.step_likelihood[31:]).any()
    stream.reset()  # a gap: the running model starts again with the prior
    again = [stream.push(s) for s in series]
    assert [p.likelihood for p in again if p is not None] == batch.window_likelihood.tolist()


def test_stride_maps_each_step_to_the_last_window_ending_at_or_before_it():
    series = daily(700)
    bundle = make_bundle(series, stride=5, long_window=100, short_window=4)
    batch = bundle.predict(series)
    stream = bundle.stream()
    emitted = [p for p in (stream.push(s) for s in series) if p is not None]
    assert [p.likelihood for p in emitted] == batch.window_likelihood.tolist()
    ends = batch.window_start + 32
    for step in (31, 32, 36, 37, 699):
        latest = np.flatnonzero(ends - 1 <= step).max()
        assert batch.step_likelihood[step] == batch.window_likelihood[latest]


def test_alert_onsets_deduplicate_under_the_refractory_period():
    scores = noise(4000)
    scores[1000:1100] += 6.0  # one long anomaly: one alert
    scores[1200:1210] += 30.0  # a stronger relapse 200 steps later: inside the refractory period (256) -> no new alert
    scores[2500:2510] += 6.0  # a separate anomaly, long after: a second alert
    likelihood, alert = run_scores(scores, initial_mean=1.0, initial_std=0.5, refractory=256)
    assert (likelihood[1000:1100] >= 1 - 1e-5).sum() > 1  # above the threshold at several steps...
    onsets = np.flatnonzero(alert).tolist()
    assert len(onsets) == 2 and 1000 <= onsets[0] < 1010 and 2500 <= onsets[1] < 2510  # ...but one alert each
    _, short_refractory = run_scores(scores, initial_mean=1.0, initial_std=0.5, refractory=50)
    assert any(1200 <= s < 1210 for s in np.flatnonzero(short_refractory))


def test_a_persistent_level_shift_stops_alerting_once_the_long_window_adapts():
    long_window = 500
    scores = noise(4000)
    scores[1500:] += 5.0  # a drift that stays
    likelihood, alert = run_scores(scores, long_window=long_window, refractory=100)
    onsets = np.flatnonzero(alert)
    assert len(onsets) >= 1 and 1500 <= onsets[0] < 1510
    assert not alert[1500 + long_window:].any()
    assert likelihood[1500 + long_window:].max() < 1 - 1e-5
    assert np.median(likelihood[1500 + long_window:]) == pytest.approx(0.5, abs=0.25)  # the shift is the new normal


def test_a_flat_stretch_and_non_finite_scores_stay_in_range():
    scores = np.concatenate([np.full(1000, 0.2), [0.2000001, np.inf, np.nan, 0.2]])
    likelihood, alert = run_scores(scores)
    assert np.all((likelihood >= 0) & (likelihood <= 1)) and not alert[:1001].any()
    assert alert[1001]  # an overflowed score is the largest score, not a crash


def test_a_bundle_without_likelihood_loads_with_the_documented_defaults():
    series = daily(600)
    bundle = make_bundle(series, prior=False)
    assert "likelihood" not in bundle.doc
    config = bundle.impl.likelihood
    assert config == LikelihoodConfig(long_window=864, short_window=10, learning_period=288, initial_mean=None,
                                      initial_std=None, threshold=1 - 1e-3, refractory=4 * 32, min_std_ratio=0.05)
    result = bundle.predict(series)
    assert np.all(result.window_likelihood[:288] == 0.5)
    with_prior = make_bundle(series).impl.likelihood
    assert with_prior.learning_period == 10 and with_prior.initial_std > 0
    assert bundle.metadata()["likelihood"]["long_window"] == 864


@pytest.mark.parametrize("section, message", [
    ({"long_window": 0}, "key 'likelihood.long_window' must be >= 1, got 0"),
    ({"short_window": 20, "long_window": 10}, "key 'likelihood.short_window' is 20, more than long_window 10"),
    ({"threshold": 1.5}, "key 'likelihood.threshold' must be in (0, 1], got 1.5"),
    ({"initial_mean": 0.1}, "key 'likelihood' needs both initial_mean and initial_std, or neither"),
    ({"initial_mean": 0.1, "initial_std": 0}, "key 'likelihood.initial_std' must be > 0, got 0"),
    ({"refractory": -1}, "key 'likelihood.refractory' must be >= 0, got -1"),
    ([], "key 'likelihood' must be an object, got list"),
])
def test_a_bad_likelihood_section_is_refused_naming_the_key(section, message):
    doc = copy.deepcopy(make_bundle(daily(300), prior=False).doc)
    doc["likelihood"] = section
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        schema.validate(doc, source="b/bundle.json")


def test_per_call_overrides_and_bad_values():
    series = daily(1500)
    series[1000:1010] += 15
    bundle = make_bundle(series)
    default = bundle.predict(series)  # threshold 0.999: the jump, and maybe a noise peak
    assert any(1000 <= a["step"] < 1010 for a in default.alerts()) and default.likelihood.threshold == 1 - 1e-3
    strict = bundle.predict(series, threshold=1 - 1e-5)
    assert [a["step"] for a in strict.alerts()] == [a["step"] for a in default.alerts() if 1000 <= a["step"] < 1010]
    loose = bundle.predict(series, threshold=0.6, refractory=0)
    assert len(loose.alerts()) > 10 and loose.likelihood.threshold == 0.6 and loose.likelihood.refractory == 0
    np.testing.assert_array_equal(loose.window_likelihood, default.window_likelihood)  # only the alerting changes
    assert bundle.stream(threshold=0.6).likelihood.config.threshold == 0.6
    with pytest.raises(InputError, match=r"threshold must be in \(0, 1\], got 2"):
        bundle.predict(series, threshold=2)
    with pytest.raises(UsageError, match="unknown parameter\\(s\\) treshold"):
        bundle.stream(treshold=0.9)


def test_outputs_carry_likelihood_alert_columns_and_alert_rows():
    series = daily(1500)
    series[1000:1010] += 15
    result = make_bundle(series).predict(series, threshold=1 - 1e-5)  # only the jump alerts
    stamps = [f"t{i}" for i in range(len(series))]
    steps = list(outputs.rows("s", result, "step", stamps))
    assert list(steps[0]) == ["series", "timestamp", "step", "score", "anomaly", "likelihood", "alert"]
    assert steps[0]["likelihood"] is None and steps[40]["likelihood"] == result.step_likelihood[40]
    windows = list(outputs.rows("s", result, "window", stamps))
    assert list(windows[0]) == ["series", "start_time", "start", "end", "score", "anomaly", "likelihood", "alert"]
    alerts = list(outputs.rows("s", result, "alert", stamps))
    assert len(alerts) == 1 and alerts[0]["timestamp"] == f"t{alerts[0]['step']}"
    assert set(alerts[0]) == {"series", "timestamp", "step", "start", "end", "likelihood", "score"}
    buffer = io.StringIO()
    outputs.write(iter(alerts), buffer, "csv")
    assert next(csv.DictReader(io.StringIO(buffer.getvalue())))["step"] == str(alerts[0]["step"])
    body = json.loads(json.dumps(result.to_dict()))
    assert body["alerts"] == result.alerts() and body["steps"]["alert"] == result.step_alert.tolist()
    assert body["windows"]["likelihood"] == result.window_likelihood.tolist()
    assert body["likelihood"]["threshold"] == 1 - 1e-5
    windows_only = make_bundle(series).predict(np.stack([series[:32], series[5:37]]))
    assert windows_only.alerts() == [] and "alerts" not in windows_only.to_dict()


@pytest.mark.skipif(not (NAB / JUMPSUP).is_file(), reason="NAB corpus not in ../shared/datasets")
def test_nab_art_daily_jumpsup_alerts_inside_the_labelled_window():
    """Real data, unlabelled training on the first 15%, window 64, all defaults: one alert, in the labelled window."""
    with (NAB / JUMPSUP).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    stamps = [r["timestamp"] for r in rows]
    series = np.array([[float(r["value"])] for r in rows])
    labelled = json.loads((NAB / "labels" / "combined_windows.json").read_text())[JUMPSUP]
    (first, last), = [[stamps.index(t.split(".")[0]) for t in window] for window in labelled]
    bundle = make_bundle(series, size=64)
    stream = bundle.stream()
    alerts = [step for step, sample in enumerate(series) if (out := stream.push(sample)) is not None and out.alert]
    assert alerts == [a["step"] for a in bundle.predict(series).alerts()]
    assert len(alerts) == 1 and first <= alerts[0] <= last, (alerts, first, last)


def test_the_running_sums_stay_exact_over_long_runs_and_outliers():
    """The O(1) sums equal a direct computation over the window, after many windows and after a huge outlier left."""
    scores = noise(5000) + np.linspace(0, 50, 5000)  # drifting far from the first reference
    scores[100] = 1e30  # an outlier that dominates the sums, then leaves the window
    config = LikelihoodConfig.from_doc({"long_window": 300, "initial_mean": 1.0, "initial_std": 0.5}, 32)
    state = LikelihoodState(config)
    for i, s in enumerate(scores):
        state.update(s, i)
        if i in (150, 450, 2999, 4999):
            mu, sigma = state._model()
            window = scores[max(0, i + 1 - 300):i + 1]
            pseudo = 300 - len(window)
            values = np.concatenate([window, np.full(pseudo, 1.0)])
            var = (np.sum((window - values.mean()) ** 2) + pseudo * (0.25 + (1.0 - values.mean()) ** 2)) / 300
            assert mu == pytest.approx(values.mean(), rel=1e-9)
            assert sigma == pytest.approx(max(np.sqrt(var), 0.05 * values.mean()), rel=1e-6)

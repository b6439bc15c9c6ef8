"""The runtime on RAW sensor rows reproduces the pipeline's own evaluation of the very same TFLite files.

The pipeline scored normalized windows it built with Beam (``errors.npz`` of evaluate_anomaly, per window with its
series and start step); the runtime starts from the raw CSV values of one machine's split and must arrive at the
same windows and the same scores, for every model in the bundle. Streaming sample by sample must agree too.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgepipe.runtime import Bundle, InputError
from tests.runtime.fixtures import REPO, default_run, raw_series, split_bounds


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return default_run(tmp_path_factory)


@pytest.fixture(scope="module")
def errors(run):
    with np.load(run.artifact("evaluate", "evaluation") / "errors.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def evaluated_scores(errors, split: str, machine: str, model: str, offset: int) -> dict[int, float]:
    """{window start within the split: the pipeline's score} for one series of one split."""
    keep = errors[f"{split}__series"] == machine
    starts = errors[f"{split}__start"][keep] - offset
    return dict(zip(starts.tolist(), errors[f"{split}__{model}"][keep].tolist()))


@pytest.mark.parametrize("split", ["eval", "test"])
@pytest.mark.parametrize("machine", ["m1", "m2", "m3"])
def test_raw_rows_score_like_the_pipeline_evaluation_for_every_model(run, errors, machine, split):
    doc = json.loads((run.bundle / "bundle.json").read_text())
    series = raw_series(machine)
    lo, hi = split_bounds(len(series))[split]
    for key, entry in doc["models"].items():
        bundle = Bundle.load(run.bundle, model=key)
        result = bundle.predict(series[lo:hi])
        expected = evaluated_scores(errors, split, machine, entry.get("variant", key), lo)
        assert sorted(expected) == result.window_start.tolist(), f"{key}: windows differ from make_windows'"
        want = np.array([expected[s] for s in result.window_start.tolist()], dtype=np.float32)
        # errors.npz holds float32 scores; the runtime's float64 scores must round to them.
        np.testing.assert_allclose(result.window_score.astype(np.float32), want, rtol=2e-6, atol=0,
                                   err_msg=f"model {key} ({entry['file']})")


def test_flags_on_raw_rows_count_what_the_evaluation_reported(run):
    """Decisions, not just scores: per model and split, flagged windows summed over the machines equal the
    ``flagged`` count in evaluation.json (which used the same threshold the bundle carries)."""
    doc = json.loads((run.bundle / "bundle.json").read_text())
    evaluation = json.loads((run.artifact("evaluate", "evaluation") / "evaluation.json").read_text())
    series = {m: raw_series(m) for m in ("m1", "m2", "m3")}
    for key, entry in doc["models"].items():
        bundle = Bundle.load(run.bundle, model=key)
        variant = entry.get("variant", key)
        assert bundle.impl.threshold == evaluation["thresholds"][variant]
        for split in ("eval", "test"):
            flagged = 0
            for values in series.values():
                lo, hi = split_bounds(len(values))[split]
                flagged += int(bundle.predict(values[lo:hi]).window_anomaly.sum())
            assert flagged == evaluation["metrics"][variant][split]["flagged"], (key, split)


def test_default_model_is_the_int8_file_and_its_scores_are_bit_identical(run, errors):
    bundle = Bundle.load(run.bundle)
    assert bundle.model_file == "model.tflite" and bundle.impl.runner.input.dtype == np.int8
    series = raw_series("m2")
    lo, hi = split_bounds(len(series))["test"]
    result = bundle.predict(series[lo:hi])
    variant = bundle.doc["models"][bundle.model_key].get("variant", bundle.model_key)
    expected = evaluated_scores(errors, "test", "m2", variant, lo)
    assert [expected[s] for s in result.window_start.tolist()] == result.window_score.astype(np.float32).tolist()
    assert result.window_anomaly.any() and not result.window_anomaly.all()


def test_step_scores_are_the_max_over_covering_windows(run):
    bundle = Bundle.load(run.bundle)
    series = raw_series("m3")[:203]  # (203 - 32) % 4 != 0: a tail no window covers
    result = bundle.predict(series)
    size = bundle.impl.size
    for step in range(len(series)):
        covering = [s for s in range(len(result.window_start))
                    if result.window_start[s] <= step < result.window_start[s] + size]
        if covering:
            assert result.step_score[step] == max(result.window_score[covering])
            assert result.step_anomaly[step] == any(result.window_anomaly[covering])
        else:
            assert np.isnan(result.step_score[step]) and not result.step_anomaly[step]
    assert np.isnan(result.step_score[-1]) and not np.isnan(result.step_score[-4])


def test_stream_emits_the_batch_windows_at_the_same_steps(run):
    bundle = Bundle.load(run.bundle)
    series = raw_series("m1")[:300]
    batch = bundle.predict(series)
    stream = bundle.stream()
    emitted = [(step, out) for step, sample in enumerate(series) if (out := stream.push(sample)) is not None]
    assert [out.start for _, out in emitted] == batch.window_start.tolist()
    assert all(step + 1 == out.end == out.start + bundle.impl.size for step, out in emitted)
    assert [out.score for _, out in emitted] == batch.window_score.tolist()
    assert [out.anomaly for _, out in emitted] == batch.window_anomaly.tolist()
    with pytest.raises(InputError, match="2 values, the bundle expects 3"):
        stream.push([1.0, 2.0])
    stream.reset()
    assert all(stream.push(s) is None for s in series[:bundle.impl.size - 1])


def test_ready_cut_windows_score_like_the_series_they_come_from(run):
    bundle = Bundle.load(run.bundle)
    series = raw_series("m2")[:120]
    whole = bundle.predict(series)
    cut = np.stack([series[s:s + 32] for s in whole.window_start.tolist()])
    windows = bundle.predict(cut)
    assert windows.step_score is None
    assert windows.window_score.tolist() == whole.window_score.tolist()


@pytest.mark.parametrize("raw, message", [
    (np.zeros((31, 3)), "31 steps, fewer than one window"),
    (np.zeros((40, 2)), "2 channels, the bundle expects 3 (vibration, temperature, current)"),
    (np.zeros((0, 3)), "empty"),
    (np.where(np.eye(40, 3) > 0, np.nan, 1.0), "non-finite value nan at step 0, channel 'vibration'"),
    ([["a", "b", "c"]] * 40, "not a numeric array"),
])
def test_unusable_input_is_refused_with_one_line(run, raw, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Bundle.load(run.bundle).predict(raw)


def test_runtime_never_imports_tensorflow_beam_or_the_pipeline(run):
    script = textwrap.dedent(f"""
        import sys, numpy as np
        from edgepipe.runtime import Bundle
        bundle = Bundle.load({str(run.bundle)!r})
        result = bundle.predict(np.random.default_rng(0).normal(size=(100, 3)) + [2, 46, 9])
        stream = bundle.stream()
        outs = [stream.push(s) for s in np.ones((40, 3))]
        assert len(result.window_score) == 18 and sum(o is not None for o in outs) == 3
        banned = ("tensorflow", "tf_keras", "apache_beam", "pydantic", "tensorflow_model_optimization",
                  "edgepipe.pipeline", "edgepipe.components", "edgepipe.models", "fastapi")
        loaded = sorted(m for m in sys.modules if m.startswith(banned))
        print("LOADED", loaded)
        assert not loaded, loaded
        print("OK")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr

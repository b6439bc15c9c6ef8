"""Window scores (runtime/scores.py): the reductions, the bundle's ``score`` section, and the runtime scoring a
bundle the way its ``score`` says (on a real NAB series, through the PCA stand-in autoencoder of test_likelihood)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from edgepipe.runtime import BundleError, preprocess, schema
from edgepipe.runtime.bundle import Bundle
from edgepipe.runtime.scores import KINDS, describe, from_doc, window_scores
from edgepipe.runtime.tasks import TASKS
from tests.runtime.test_likelihood import daily, make_bundle


def test_reductions_weigh_the_steps_they_declare():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 16, 2))
    y = x + rng.normal(scale=0.1, size=x.shape)
    squared = (x - y) ** 2
    np.testing.assert_allclose(window_scores(x, y), squared.mean(axis=(1, 2)))
    np.testing.assert_allclose(window_scores(x, y, "newest_mse", 4), squared[:, -4:].mean(axis=(1, 2)))
    np.testing.assert_allclose(window_scores(x, y, "newest_mse", 16), window_scores(x, y))
    assert window_scores(np.zeros((0, 16, 2)), np.zeros((0, 16, 2)), "newest_mse", 4).shape == (0,)


def test_a_spike_on_the_newest_sample_stands_out_size_over_steps_times_more():
    x, y = np.zeros((1, 64, 1)), np.zeros((1, 64, 1))
    x[0, -1, 0] = 3.0  # a one-sample spike of 3 the model cannot reconstruct
    assert window_scores(x, y)[0] == pytest.approx(9 / 64)
    assert window_scores(x, y, "newest_mse", 4)[0] == pytest.approx(9 / 4)


def test_describe_and_from_doc_round_trip():
    assert from_doc(None) == ("reconstruction_mse", None)  # bundles written before the score section
    for kind in KINDS:
        section = describe(kind, 8, clipped=True)
        assert from_doc(section) == (kind, 8 if kind == "newest_mse" else None)
        assert "clipped" in section["definition"]


def _with_score(bundle: Bundle, score: dict) -> Bundle:
    doc = copy.deepcopy(bundle.doc)
    doc["score"] = score
    schema.validate(doc)
    runner = bundle.impl.runner
    return Bundle(bundle.path, doc, "main", TASKS["anomaly_detection"](doc, doc["models"]["main"], runner))


def test_the_runtime_scores_as_the_bundle_says_in_predict_and_stream():
    series = daily(900)
    series[700] += 8.0  # one spike
    base = make_bundle(series)
    newest = _with_score(base, describe("newest_mse", 4, clipped=False))
    result = newest.predict(series)
    task = newest.impl
    _, windows = preprocess.windows(preprocess.normalize(series, task.center, task.scale), 32, 1)
    expected = window_scores(windows, task.runner.run(windows), "newest_mse", 4)
    np.testing.assert_allclose(result.window_score, expected)
    stream = newest.stream()
    streamed = [w.score for w in (stream.push(v) for v in series) if w is not None]
    np.testing.assert_allclose(streamed, expected)
    # the spike's window (ending at step 700) stands out more against the normal windows with newest_mse
    old = base.predict(series).window_score
    spike = 700 - 31
    assert expected[spike] / np.median(expected) > 2 * old[spike] / np.median(old)


@pytest.mark.parametrize("score, message", [
    ({"kind": "max_error"}, "score.kind"),
    ({"kind": "newest_mse"}, "missing key 'score.steps'"),
    ({"kind": "newest_mse", "steps": 33}, r"score.steps' must be an integer in \[1, window.size 32\], got 33"),
    ({"kind": "newest_mse", "steps": True}, "score.steps"),
])
def test_a_bad_score_section_is_refused_naming_the_key(score, message):
    doc = copy.deepcopy(make_bundle(daily(300), prior=False).doc)
    doc["score"] = score
    with pytest.raises(BundleError, match=message):
        schema.validate(doc, source="b/bundle.json")

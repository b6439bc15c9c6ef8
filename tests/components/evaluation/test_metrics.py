"""NumPy scoring helpers: AUC, detection counts, undefined ratios as None, agreement."""
import numpy as np
import pytest

from edgepipe.runtime.scores import window_scores
from edgepipe.components.evaluation.metrics import (agreement, decisive_agreement, detection_metrics,
                                                    rank_correlation, roc_auc, threshold)


def test_roc_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=60).astype(float)
    labels = rng.integers(0, 2, size=60)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert roc_auc(scores, labels) == pytest.approx(pairwise)
    assert roc_auc(scores, np.zeros(60)) is None


def test_detection_metrics_counts_and_undefined_values():
    errors = np.array([0.1, 0.2, 0.9, 0.8, 0.05])
    labels = np.array([0, 0, 1, 0, 1])
    m = detection_metrics(errors, labels, 0.5)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (1, 1, 1, 2)
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == pytest.approx(0.5)
    nothing_flagged = detection_metrics(errors, labels, 10.0)
    assert nothing_flagged["precision"] is None and nothing_flagged["recall"] == 0.0 and nothing_flagged["f1"] == 0.0
    no_anomalies = detection_metrics(errors, np.zeros(5), 10.0)
    assert no_anomalies["recall"] is None and no_anomalies["f1"] is None and no_anomalies["auc"] is None
    # unlabelled data with windows flagged: every flag is unconfirmed, F1 undefined (was 0.0, so the metric gate
    # compared 0.0 with 0.0 instead of saying it could not apply)
    flagged_unlabelled = detection_metrics(errors, np.zeros(5), 0.5)
    assert flagged_unlabelled["precision"] == 0.0 and flagged_unlabelled["recall"] is None
    assert flagged_unlabelled["f1"] is None
    assert detection_metrics(errors, labels, None)["f1"] is None


def test_threshold_error_and_agreement():
    assert threshold(np.arange(101.0), 0.99, 2.0) == pytest.approx(198.0)
    assert threshold(np.zeros(0), 0.99) is None
    x = np.ones((2, 4, 3))
    assert window_scores(x, np.zeros_like(x)).tolist() == [1.0, 1.0]
    assert agreement(np.array([1.0, 3.0]), 2.0, np.array([10.0, 10.0]), 5.0) == 0.5
    assert agreement(np.array([1.0]), None, np.array([1.0]), 1.0) is None


def test_decisive_agreement_leaves_out_only_the_band_around_the_reference_threshold():
    reference = np.array([0.5, 0.95, 1.05, 2.0, 3.0])  # threshold 1.0: 0.95 and 1.05 are within 10%
    flipped_near = np.array([0.5, 1.2, 0.9, 2.0, 3.0])  # int8 flips both near-threshold windows
    assert agreement(flipped_near, 1.0, reference, 1.0) == pytest.approx(0.6)
    assert decisive_agreement(flipped_near, 1.0, reference, 1.0, band=0.1) == (1.0, 2)
    flipped_clear = np.array([1.5, 0.95, 1.05, 2.0, 3.0])  # a clear 'normal' (half the threshold) flagged
    assert decisive_agreement(flipped_clear, 1.0, reference, 1.0, band=0.1) == (pytest.approx(2 / 3), 2)
    assert decisive_agreement(flipped_near, 1.0, reference, 1.0, band=0.0)[0] == pytest.approx(0.6)
    assert decisive_agreement(reference, None, reference, 1.0, 0.1) == (None, 0)
    assert decisive_agreement(reference, 1.0, reference, 1.0, 0.1)[0] == 1.0
    flat = np.zeros(4)  # a flat series: every score 0, threshold 0, no window clear of it: all windows judged
    assert decisive_agreement(flat, 0.0, flat, 0.0, 0.1) == (1.0, 4)
    assert decisive_agreement(np.array([1.2, 0.0]), 1.0, np.array([1.05, 1.01]), 1.0, 0.1) == (0.5, 2)


def test_rank_correlation_is_spearman_and_undefined_for_constants():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert rank_correlation(a, a ** 3) == pytest.approx(1.0)  # monotone: same order
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    b = np.array([1.0, 3.0, 2.0, 5.0, 4.0])  # two swapped pairs: 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 0.8
    assert rank_correlation(a, b) == pytest.approx(0.8)
    assert rank_correlation(a, np.ones(5)) is None and rank_correlation(a[:1], a[:1]) is None


def _row(variant, metric, drop, agreement=1.0):
    return {"variant": variant, "metric_name": "f1", "metric": metric, "metric_drop": drop, "agreement": agreement}


def test_metric_bound_is_skipped_only_when_the_reference_metric_is_undefined():
    """Unlabelled training data (or no labelled anomaly in eval+test): F1 has no positives for any model, and
    'f1 drop n/a > 0.1' refused every export. The agreement bound still applies."""
    from edgepipe.components.evaluation.variants import gate, metric_gate_skipped

    unlabelled = [_row("keras", None, 0.0), _row("pqat", None, None), _row("int8_qat", None, None, agreement=0.9)]
    assert "undefined for the Keras model" in metric_gate_skipped(unlabelled, 0.1)
    rows = {r.variant: r for r in gate(unlabelled, 0.98, 0.1)}
    assert rows["pqat"].exported is True
    assert rows["int8_qat"].exported is False and rows["int8_qat"].reason == "agreement 0.9 < 0.98"
    # a defined reference metric: a variant whose own metric is missing or dropped too far is still refused
    labelled = [_row("keras", 0.8, 0.0), _row("pqat", None, None), _row("int8_qat", 0.6, 0.2)]
    assert metric_gate_skipped(labelled, 0.1) is None and metric_gate_skipped(unlabelled, None) is None
    rows = {r.variant: r for r in gate(labelled, 0.98, 0.1)}
    assert rows["pqat"].reason == "f1 drop n/a > 0.1" and rows["int8_qat"].reason == "f1 drop 0.2 > 0.1"

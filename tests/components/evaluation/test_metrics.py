"""NumPy scoring helpers: AUC, detection counts, undefined ratios as None, agreement."""
import numpy as np
import pytest

from edgepipe.components.evaluation.metrics import (agreement, detection_metrics, reconstruction_error, roc_auc,
                                                    threshold)


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
    assert detection_metrics(errors, labels, None)["f1"] is None


def test_threshold_error_and_agreement():
    assert threshold(np.arange(101.0), 0.99, 2.0) == pytest.approx(198.0)
    assert threshold(np.zeros(0), 0.99) is None
    x = np.ones((2, 4, 3))
    assert reconstruction_error(x, np.zeros_like(x)).tolist() == [1.0, 1.0]
    assert agreement(np.array([1.0, 3.0]), 2.0, np.array([10.0, 10.0]), 5.0) == 0.5
    assert agreement(np.array([1.0]), None, np.array([1.0]), 1.0) is None

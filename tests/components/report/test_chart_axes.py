"""The report's charts name their axes with units, and epoch axes tick whole epochs (one epoch: the tick 1, not
0.945 ... 1.050)."""
from __future__ import annotations

import numpy as np
import pytest

from edgepipe.components.report import figures, plots


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions draw, instead of their PNGs."""
    figs = []

    def keep(fig):
        figs.append(fig)
        return "png"

    monkeypatch.setattr(plots, "_png", keep)
    monkeypatch.setattr(figures, "_png", keep)
    return figs


def _ticks(ax) -> list[float]:
    lo, hi = ax.get_xlim()
    return [t for t in ax.get_xticks() if lo <= t <= hi]


@pytest.mark.parametrize("epochs", [1, 3])
def test_epoch_axes_have_whole_epochs_and_a_loss_label(drawn, epochs):
    losses = list(np.linspace(1.0, 0.1, epochs))
    plots.training_curves({"train": {"loss": losses, "val_loss": losses}})
    figures.curves({"train loss": (np.arange(1, epochs + 1), {"loss": losses}, "epoch")})
    for fig in drawn:
        ax = fig.axes[0]
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel().startswith("loss")
        ticks = _ticks(ax)
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_score_timeline_histograms_and_activations_are_labelled(drawn):
    n = 20
    plots.score_timelines([{"series": "m1", "splits": ["eval"], "x": np.arange(n), "score": np.ones(n),
                            "label": np.zeros(n)}], 0.5, "pqat")
    plots.channel_histograms({"channels": ["vibration"], "splits": {"train": {"channels": {"vibration": {
        "histogram": {"counts": [1, 2, 1], "edges": [0.0, 1.0, 2.0, 3.0]}}}}}})
    figures.activations(np.zeros((2, 32, 3)), np.ones((2, 16, 4)), "enc_conv0")
    timeline, histogram, acts = drawn
    assert "score" in timeline.axes[0].get_ylabel() and timeline.axes[-1].get_xlabel()
    assert histogram.axes[0].get_ylabel().startswith("density") and "vibration" in histogram.axes[0].get_xlabel()
    inputs = acts.axes[0]
    assert inputs.get_ylabel() and [t.get_text() for t in inputs.get_legend().get_texts()] == [
        "channel 0", "channel 1", "channel 2"]
    assert acts.axes[-2].get_xlabel() == "time step"

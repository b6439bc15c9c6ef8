"""The report's plots, drawn with matplotlib's object API (no pyplot state, safe in worker threads) and returned
as base64 PNG so the HTML stays one file that opens offline."""
from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

COLORS = {"train": "#4c72b0", "eval": "#dd8452", "test": "#55a868"}
NORMAL, ANOMALOUS, THRESHOLD = "#4c72b0", "#c44e52", "#222222"


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float, rows: int = 1, cols: int = 1, **kwargs):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, **kwargs)
    return fig, axes


def channel_histograms(stats: dict[str, Any]) -> str | None:
    """Per channel, the value distribution of each split (density, so splits of different sizes compare)."""
    channels = list(stats.get("channels") or [])
    splits = stats.get("splits") or {}
    if not channels or not splits:
        return None
    fig, axes = _figure(3.8 * len(channels), 2.6, 1, len(channels))
    for ax, channel in zip(axes[0], channels):
        for split, data in splits.items():
            hist = (data.get("channels", {}).get(channel) or {}).get("histogram")
            if not hist or not sum(hist["counts"]):
                continue
            counts, edges = np.asarray(hist["counts"], float), np.asarray(hist["edges"], float)
            density = counts / (counts.sum() * np.maximum(np.diff(edges), 1e-12))
            ax.stairs(density, edges, label=split, color=COLORS.get(split), linewidth=1.6)
        ax.set_title(channel, fontsize=10)
        ax.set_xlabel(f"{channel} (units as ingested)", fontsize=8)
        ax.set_ylabel("density (fraction per unit)", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0][0].legend(fontsize=8)
    return _png(fig)


def epoch_axis(ax, epochs: int) -> None:
    """An x axis of whole epochs 1..``epochs``: integer ticks only (one epoch: the tick 1, not 0.95 ... 1.05)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch", fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if epochs <= 1:
        ax.set_xlim(0.5, 1.5)


def training_curves(curves: dict[str, dict[str, list[float]]]) -> str | None:
    """Loss per epoch of each training stage (train, prune, QAT...), one panel per stage."""
    curves = {k: v for k, v in curves.items() if any(v.values())}
    if not curves:
        return None
    fig, axes = _figure(4.2 * len(curves), 2.8, 1, len(curves))
    for ax, (stage, series) in zip(axes[0], curves.items()):
        for name, values in series.items():
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=name)
        ax.set_title(stage, fontsize=10)
        epoch_axis(ax, max(len(v) for v in series.values()))
        ax.set_ylabel("loss (log scale)", fontsize=9)
        ax.set_yscale("log")
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8)
    return _png(fig)


def score_timelines(rows: list[dict[str, Any]], threshold: float | None, model: str) -> str | None:
    """One panel per series: window score over time (eval then test), threshold, labelled windows shaded,
    split boundaries dashed. ``rows``: [{"series", "split", "x" (datetime64 or index), "score", "label"}]."""
    if not rows:
        return None
    fig, axes = _figure(11, 2.3 * len(rows), len(rows), 1)
    for ax, row in zip(axes[:, 0], rows):
        x, score, label = row["x"], np.maximum(row["score"], 1e-6), row["label"].astype(bool)
        ax.plot(x, score, color=NORMAL, linewidth=0.8, label=f"{model} score")
        if threshold is not None:
            ax.axhline(threshold, color=THRESHOLD, linestyle="--", linewidth=1, label="threshold")
            flagged = score > threshold
            ax.scatter(x[flagged], score[flagged], s=6, color=ANOMALOUS, zorder=3, label="flagged")
        ax.fill_between(x, 0, 1, where=label, step="mid", color=ANOMALOUS, alpha=0.15,
                        transform=ax.get_xaxis_transform(), label="labelled anomalous")
        for boundary in row.get("boundaries", []):
            ax.axvline(boundary, color="#888888", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set_title(f"series {row['series']}  ({' | '.join(row['splits'])})", fontsize=10, loc="left")
        ax.set_ylabel("window score\n(reconstruction MSE, log)", fontsize=8)
        ax.tick_params(labelsize=8)
    timed = np.issubdtype(np.asarray(rows[-1]["x"]).dtype, np.datetime64)
    axes[-1, 0].set_xlabel("window start time" if timed else "window start (step)", fontsize=9)
    axes[0, 0].legend(fontsize=8, loc="upper left", ncols=4)
    return _png(fig)


def score_histogram(normal: np.ndarray, anomalous: np.ndarray, threshold: float | None, model: str) -> str | None:
    """Distribution of window scores, normal vs labelled anomalous windows (log-spaced bins), with threshold."""
    pooled = np.concatenate([normal, anomalous])
    pooled = pooled[pooled > 0]
    if len(pooled) == 0:
        return None
    fig, axes = _figure(7, 3)
    ax = axes[0, 0]
    bins = np.geomspace(pooled.min(), pooled.max() * 1.0001, 50)
    if len(normal):
        ax.hist(normal, bins=bins, color=NORMAL, alpha=0.6, label=f"normal ({len(normal)})")
    if len(anomalous):
        ax.hist(anomalous, bins=bins, color=ANOMALOUS, alpha=0.6, label=f"anomalous ({len(anomalous)})")
    if threshold is not None:
        ax.axvline(threshold, color=THRESHOLD, linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_xscale("log")
    ax.set_xlabel(f"{model} window score (reconstruction MSE)", fontsize=9)
    ax.set_ylabel("windows", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8)
    return _png(fig)

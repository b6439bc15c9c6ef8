"""Plots for the per-task sections (confusion matrix, example grids, masks, scatter, embeddings, activations),
drawn like :mod:`plots` (matplotlib object API, no pyplot state; base64 PNG so the page stays one file).

Why a generic :func:`draw_input`: the same section (lowest-confidence examples, activations, reconstructions) sees
images, multichannel series or feature vectors depending on the family, and each is drawn the way a person reads it
(image, lines, bars) rather than forcing one shape.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgepipe.components.report.plots import _figure, _png, epoch_axis

MASK_CMAP = "tab10"


def is_image(x: np.ndarray) -> bool:
    """[H, W] with both sides >= 8 (a series has few channels), or [H, W, 3|4]."""
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    return (x.ndim == 2 and min(x.shape) >= 8) or (x.ndim == 3 and x.shape[-1] in (3, 4))


def draw_input(ax, x: np.ndarray, title: str | None = None, color: str | None = None) -> None:
    """One example on ``ax``: an image ([H, W] or [H, W, 1|3|4]), a series ([T, C]: one line per channel) or a
    vector ([D]: bars)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if is_image(x):
        ax.imshow(np.clip(x, 0, 1) if x.ndim == 3 else x, cmap="gray" if x.ndim == 2 else None,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    elif x.ndim == 2:
        lines = ax.plot(x, linewidth=0.9, color=color)
        for i, line in enumerate(lines):
            line.set_label(f"channel {i}")
        ax.tick_params(labelsize=6)
    elif x.ndim == 3:  # [H, W, C] with C > 4: the channel mean
        ax.imshow(x.mean(-1), cmap="gray", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        x = x.reshape(-1)
        ax.bar(np.arange(len(x)), x, color=color or "#4c72b0")
        ax.tick_params(labelsize=6)
    if title:
        ax.set_title(title, fontsize=8)


def example_grid(xs: Sequence[np.ndarray], titles: Sequence[str], cols: int = 5,
                 colors: Sequence[str | None] | None = None) -> str | None:
    """Examples in a grid, each with its caption (e.g. ``true a / pred b 0.41``)."""
    if len(xs) == 0:
        return None
    cols = min(cols, len(xs))
    rows = -(-len(xs) // cols)
    fig, axes = _figure(2.3 * cols, 2.2 * rows, rows, cols)
    for i, ax in enumerate(axes.flat):
        if i >= len(xs):
            ax.axis("off")
            continue
        draw_input(ax, xs[i], titles[i])
        if colors and colors[i]:
            ax.title.set_color(colors[i])
    return _png(fig)


def confusion_matrix(cm: Sequence[Sequence[int]], names: Sequence[str], title: str = "") -> str | None:
    """Counts ``[true, predicted]`` as a heatmap, each cell labelled with its count; colour is the row share (per
    true class), so a small class's confusions are as visible as a large one's."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.size == 0:
        return None
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(cm)
    side = min(2.0 + 0.55 * k, 12)
    fig, axes = _figure(side + 1, side)
    ax = axes[0, 0]
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    tilt = k > 6 and max(len(str(n)) for n in names) > 2  # long names side by side overlap
    ax.set_xticks(range(k), names, rotation=45 if tilt else 0, ha="right" if tilt else "center", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted", fontsize=9)
    ax.set_ylabel("true", fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    return _png(fig)


def mask_overlays(xs: np.ndarray, true: np.ndarray, pred: np.ndarray, ious: Sequence[float | None],
                  names: Sequence[str] | None = None) -> str | None:
    """Per example one row: the input, the true mask over it, the predicted mask over it (class colours, class 0
    transparent), with a legend of the class colours."""
    if len(xs) == 0:
        return None
    from matplotlib import colormaps
    from matplotlib.patches import Patch

    cmap = colormaps[MASK_CMAP]
    fig, axes = _figure(7, 2.3 * len(xs), len(xs), 3)
    for row, (x, t, p, iou) in enumerate(zip(xs, true, pred, ious)):
        for col, (mask, name) in enumerate(((None, "input"), (t, "true mask"), (p, "predicted mask"))):
            ax = axes[row, col]
            draw_input(ax, x)
            if mask is not None:
                rgba = cmap(np.asarray(mask, int) % cmap.N)  # integer index: one colour per class
                rgba[..., 3] = np.where(np.asarray(mask) > 0, 0.55, 0.0)
                ax.imshow(rgba, interpolation="nearest")
            label = name if col < 2 or iou is None else f"{name} (IoU {iou:.2f})"
            ax.set_title(label, fontsize=8)
    present = sorted((set(np.unique(true).tolist()) | set(np.unique(pred).tolist())) - {0})
    if present:
        fig.legend(handles=[Patch(color=cmap(int(c) % cmap.N), label=str(names[c]) if names and c < len(names)
                                  else f"class {c}") for c in present],
                   loc="outside lower center", ncols=min(len(present), 6), fontsize=8)
    return _png(fig)


def true_vs_predicted(true: np.ndarray, pred: np.ndarray, names: Sequence[str]) -> str | None:
    """Per output (up to 4): predicted against true with the identity line, and the residual histogram."""
    true = np.asarray(true, dtype=np.float64).reshape(len(true), -1)
    pred = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)
    if len(true) == 0:
        return None
    outputs = min(true.shape[1], 4)
    fig, axes = _figure(7.5, 3 * outputs, outputs, 2)
    for i in range(outputs):
        t, p = true[:, i], pred[:, i]
        ax = axes[i, 0]
        ax.scatter(t, p, s=7, alpha=0.6, color="#4c72b0")
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], color="#222222", linestyle="--", linewidth=1)
        ax.set_xlabel(f"true {names[i]}", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
        ax.tick_params(labelsize=7)
        ax = axes[i, 1]
        ax.hist(p - t, bins=30, color="#dd8452")
        ax.axvline(0, color="#222222", linewidth=1)
        ax.set_xlabel(f"residual (predicted - true) {names[i]}", fontsize=8)
        ax.tick_params(labelsize=7)
    return _png(fig)


def embedding(points: np.ndarray, color: np.ndarray, color_label: str, categorical: bool,
              explained: Sequence[float]) -> str | None:
    """2-D projection of the bottleneck embeddings, coloured by label (categorical) or by score."""
    if len(points) == 0:
        return None
    fig, axes = _figure(6.5, 5)
    ax = axes[0, 0]
    if categorical:
        for value in np.unique(color):
            keep = color == value
            ax.scatter(points[keep, 0], points[keep, 1], s=9, alpha=0.7, label=f"{color_label} {value}")
        ax.legend(fontsize=8)
    else:
        sc = ax.scatter(points[:, 0], points[:, 1], c=color, s=9, alpha=0.8, cmap="viridis")
        fig.colorbar(sc, ax=ax, label=color_label)
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)", fontsize=9)
    ax.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)", fontsize=9)
    ax.tick_params(labelsize=8)
    return _png(fig)


def input_vs_output(xs: np.ndarray, outs: np.ndarray, errors: Sequence[float]) -> str | None:
    """Per example: input and reconstruction side by side (images) or overlaid (series, vectors)."""
    if len(xs) == 0:
        return None
    if is_image(xs[0]):
        fig, axes = _figure(2.2 * len(xs), 4.4, 2, len(xs))
        for i, (x, o, e) in enumerate(zip(xs, outs, errors)):
            draw_input(axes[0, i], x, "input")
            draw_input(axes[1, i], o, f"reconstruction (MSE {e:.3g})")
        return _png(fig)
    fig, axes = _figure(3.2 * len(xs), 2.6, 1, len(xs))
    for ax, x, o, e in zip(axes[0], xs, outs, errors):
        x, o = np.asarray(x).reshape(len(x), -1), np.asarray(o).reshape(len(o), -1)
        ax.plot(x, color="#4c72b0", linewidth=1)
        ax.plot(o, color="#c44e52", linewidth=1, linestyle="--")
        ax.set_title(f"input (solid) vs reconstruction (dashed), MSE {e:.3g}", fontsize=7)
        ax.tick_params(labelsize=7)
    return _png(fig)


def png_file(data: bytes, scale: float = 0.05, max_width: float = 11) -> str | None:
    """A PNG written by a component (e.g. evaluate_gan's sample grids), redrawn large with nearest-neighbour
    pixels so a grid of 28x28 samples is readable."""
    import io

    from matplotlib import image as mimage

    pixels = mimage.imread(io.BytesIO(data), format="png")
    h, w = pixels.shape[:2]
    width = min(max_width, max(3.0, w * scale))
    fig, axes = _figure(width, width * h / w)
    ax = axes[0, 0]
    ax.imshow(pixels if pixels.ndim == 3 and pixels.shape[-1] > 1 else pixels.reshape(h, w), cmap="gray",
              interpolation="nearest")
    ax.axis("off")
    return _png(fig)


def bars(values: dict[str, float], xlabel: str, reference: float | None = None) -> str | None:
    """Horizontal bars, one per key (class shares), with an optional reference line (the uniform share)."""
    if not values:
        return None
    fig, axes = _figure(6, 0.6 + 0.28 * len(values))
    ax = axes[0, 0]
    names = list(values)
    ax.barh(range(len(names)), [values[n] for n in names], color="#4c72b0")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    if reference is not None:
        ax.axvline(reference, color="#222222", linestyle="--", linewidth=1, label=f"uniform {reference:.3g}")
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(labelsize=8)
    return _png(fig)


def curves(panels: dict[str, tuple[Sequence[float], dict[str, Sequence[float]], str]]) -> str | None:
    """Panels ``{title: (x, {series: values}, xlabel)}``; a loss panel whose positive values span more than a
    decade is drawn on a log scale, others linearly (accuracy, returns, a loss that barely moved)."""
    panels = {k: v for k, v in panels.items() if any(len(s) for s in v[1].values())}
    if not panels:
        return None
    fig, axes = _figure(4.4 * len(panels), 2.9, 1, len(panels))
    for ax, (title, (x, series, xlabel)) in zip(axes[0], panels.items()):
        values = [v for s in series.values() for v in s if v is not None]
        for name, ys in series.items():
            if len(ys):
                xs = x[:len(ys)] if len(x) >= len(ys) else np.arange(1, len(ys) + 1)
                ax.plot(xs, ys, marker="o" if len(ys) < 60 else None, markersize=3, label=name)
        if values and min(values) > 0 and max(values) / min(values) > 10 and "loss" in title:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        if xlabel == "epoch":
            epoch_axis(ax, max(len(s) for s in series.values()))
        else:
            from matplotlib.ticker import MaxNLocator

            ax.set_xlabel(xlabel, fontsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_ylabel(("loss" if "loss" in title else "value") + (" (log scale)" if ax.get_yscale() == "log"
                                                                   else ""), fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8)
    return _png(fig)


def activations(xs: np.ndarray, acts: np.ndarray, layer: str, channels: int = 8) -> str | None:
    """Per input one row: the input, then the layer's activation. Maps ``[H, W, C]``: the ``channels`` most active
    channels as heatmaps; sequences ``[T, C]``: one time x channel heatmap; vectors ``[D]``: one heatmap row."""
    acts = np.asarray(acts, dtype=np.float64)
    if len(xs) == 0 or acts.size == 0:
        return None
    if acts.ndim == 4:
        order = np.argsort(-np.abs(acts).mean(axis=(0, 1, 2)))[:channels]
        fig, axes = _figure(1.7 * (len(order) + 1), 1.8 * len(xs), len(xs), len(order) + 1)
        for r, (x, a) in enumerate(zip(xs, acts)):
            draw_input(axes[r, 0], x, "input" if r == 0 else None)
            for c, ch in enumerate(order):
                axes[r, c + 1].imshow(a[..., ch], cmap="magma", interpolation="nearest")
                axes[r, c + 1].set_xticks([])
                axes[r, c + 1].set_yticks([])
                if r == 0:
                    axes[r, c + 1].set_title(f"{layer}[{ch}]", fontsize=7)
        return _png(fig)
    fig, axes = _figure(8, 1.9 * len(xs), len(xs), 2, gridspec_kw={"width_ratios": [1, 2.4]})
    flat = acts.reshape(len(acts), -1) if acts.ndim == 2 else None
    for r, (x, a) in enumerate(zip(xs, acts)):
        draw_input(axes[r, 0], x, "input" if r == 0 else None)
        ax = axes[r, 1]
        grid = a.T if a.ndim == 2 else a.reshape(1, -1)
        vmax = np.abs(flat).max() if flat is not None else None
        ax.imshow(grid, aspect="auto", cmap="magma", interpolation="nearest", vmin=0 if vmax else None, vmax=vmax)
        ax.set_yticks([])
        ax.set_ylabel("channel" if a.ndim == 2 else "", fontsize=6)
        ax.tick_params(labelsize=6)
        ax.set_title(f"{layer} {list(a.shape)}" + (" (time x channel)" if a.ndim == 2 else ""), fontsize=7)
    series = np.asarray(xs[0]).ndim == 2 and not is_image(np.asarray(xs[0], dtype=np.float64))
    if series:  # the input panels: which line is which channel, in what units
        axes[0, 0].legend(fontsize=5, loc="upper right")
        for r in range(len(xs)):
            axes[r, 0].set_ylabel("normalized value", fontsize=6)
        axes[-1, 0].set_xlabel("time step", fontsize=6)
    axes[-1, 1].set_xlabel("time step" if acts.ndim == 3 else "unit", fontsize=6)
    return _png(fig)


def summary_returns(values: dict[str, Any]) -> str | None:
    """Per-episode returns of the evaluation (histogram and the episodes in order)."""
    returns = np.asarray(values.get("returns") or [], dtype=np.float64)
    if len(returns) == 0:
        return None
    fig, axes = _figure(9, 2.8, 1, 2)
    axes[0, 0].plot(np.arange(1, len(returns) + 1), returns, marker="o", markersize=3, color="#4c72b0")
    axes[0, 0].axhline(returns.mean(), color="#222222", linestyle="--", linewidth=1, label=f"mean {returns.mean():.4g}")
    axes[0, 0].set_xlabel("episode", fontsize=9)
    axes[0, 0].set_ylabel("return", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    axes[0, 1].hist(returns, bins=min(30, max(5, len(returns) // 3)), color="#55a868")
    axes[0, 1].set_xlabel("return", fontsize=9)
    for ax in axes[0]:
        ax.tick_params(labelsize=8)
    return _png(fig)

"""SVG drawn on the server: the run's DAG, line charts (training curves, anomaly scores), bars and histograms.

Drawing here rather than in a JavaScript charting library keeps the UI free of a Node build and of third-party
assets, and lets the API tests check what a page shows (node ids, classes, point counts) without a browser.
"""
from __future__ import annotations

import math
from html import escape
from typing import Any, Sequence

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 210, 44, 24, 30, 10
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def _layers(names: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest path from a source, so every edge points down (a DAG; a cycle cannot occur in a store's run)."""
    layer = {name: 0 for name in names}
    for _ in range(len(names)):
        changed = False
        for src, dst in edges:
            if src in layer and dst in layer and layer[dst] < layer[src] + 1:
                layer[dst] = layer[src] + 1
                changed = True
        if not changed:
            break
    return layer


def dag(nodes: list[dict[str, Any]], edges: list[tuple[str, str]], planned: Sequence[str] = ()) -> str:
    """Nodes top to bottom by layer: class ``state-<status>`` colours them (CSS), cached ones carry a marker,
    each shows its time; ``planned`` nodes (expected, not started) are drawn dashed."""
    items = [dict(n) for n in nodes] + [{"name": p, "state": "pending", "seconds": None, "cached": False}
                                         for p in planned]
    names = [n["name"] for n in items]
    layer = _layers(names, edges)
    rows: dict[int, list[str]] = {}
    for name in names:
        rows.setdefault(layer[name], []).append(name)
    width = max(len(r) for r in rows.values()) if rows else 1
    pos = {}
    for depth, members in rows.items():
        offset = (width - len(members)) * (NODE_W + GAP_X) / 2
        for i, name in enumerate(members):
            pos[name] = (PAD + offset + i * (NODE_W + GAP_X), PAD + depth * (NODE_H + GAP_Y))
    total_w = PAD * 2 + width * NODE_W + (width - 1) * GAP_X
    total_h = PAD * 2 + (max(rows) + 1 if rows else 1) * (NODE_H + GAP_Y) - GAP_Y
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{total_w:.0f}" height="{total_h:.0f}" '
             f'viewBox="0 0 {total_w:.0f} {total_h:.0f}" role="img" aria-label="pipeline graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>']
    for src, dst in edges:
        if src in pos and dst in pos:
            (x1, y1), (x2, y2) = pos[src], pos[dst]
            ax, ay, bx, by = x1 + NODE_W / 2, y1 + NODE_H, x2 + NODE_W / 2, y2
            mid = (ay + by) / 2
            parts.append(f'<path class="edge" data-from="{escape(src)}" data-to="{escape(dst)}" '
                         f'd="M{ax:.0f},{ay:.0f} C{ax:.0f},{mid:.0f} {bx:.0f},{mid:.0f} {bx:.0f},{by - 2:.0f}" '
                         'fill="none" stroke="#888" marker-end="url(#arrow)"/>')
    for item in items:
        x, y = pos[item["name"]]
        name = escape(item["name"])
        seconds = item.get("seconds")
        timing = "" if seconds is None else f"{seconds:.1f}s"
        label = item["state"] + (" (cache hit)" if item.get("cached") else "")
        parts.append(f'<g class="node state-{escape(item["state"])}" id="node-{name}" data-node="{name}" '
                     f'data-state="{escape(item["state"])}" tabindex="0"><title>{name}: {escape(label)}</title>'
                     f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
                     f'<text x="{x + 10:.0f}" y="{y + 18:.0f}" class="name">{name}</text>'
                     f'<text x="{x + 10:.0f}" y="{y + 35:.0f}" class="sub">{escape(item["state"])} {timing}</text>')
        if item.get("cached"):
            parts.append(f'<text x="{x + NODE_W - 10:.0f}" y="{y + 18:.0f}" class="cached-mark" '
                         'text-anchor="end">&#x21bb; cached</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def flat_range(lo: float, hi: float, nonnegative: bool) -> tuple[float, float]:
    """A value axis that shows a flat series mid-height (padded by half its size, else 0.5), and never goes
    below zero for values that cannot (a loss of 0.05 drawn on -0.45..0.55 reads as a negative loss)."""
    if hi - lo < 1e-12:
        pad = abs(lo) * 0.5 or 0.5
        lo, hi = lo - pad, hi + pad
    if nonnegative and lo < 0:
        lo = 0.0
    return lo, hi


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    return [lo + (hi - lo) * i / n for i in range(n + 1)]


def line_chart(series: dict[str, Sequence[float | None]], width: int = 520, height: int = 220,
               x_label: str = "epoch", hlines: dict[str, float] | None = None,
               marks: Sequence[int] = (), log: bool = False, css_class: str = "chart", legend_width: int = 0,
               x_span: tuple[int, int] | None = None) -> str:
    """One polyline per named series (x = index + 1 for epochs, index otherwise), optional horizontal lines
    (thresholds) and marked x positions (alerts). ``None``/non-finite points break a line. ``legend_width``: the
    legend in a column of that width right of the plot (many series: inside it would cover the lines); series
    beyond the palette's colours are dashed so that no two look the same. ``x_span``: the x range the label states
    when the points are a reduction of a longer series (default: the points' own indices)."""
    left, right, top, bottom = 56, 12 + legend_width, 12, 34
    values = [float(v) for s in series.values() for v in s if v is not None and math.isfinite(v)]
    values += list((hlines or {}).values())
    if log:
        values = [v for v in values if v > 0]
    if not values:
        return f'<svg class="{css_class} empty" width="{width}" height="{height}"><text x="10" y="20">no data yet' \
               '</text></svg>'
    tf = (lambda v: math.log10(v)) if log else (lambda v: v)
    lo, hi = flat_range(min(map(tf, values)), max(map(tf, values)), nonnegative=not log and min(values) >= 0)
    count = max((len(s) for s in series.values()), default=1)
    start = 1 if x_label == "epoch" else 0
    span = max(1, count - 1)

    def sx(i: float) -> float:
        return left + (width - left - right) * ((i - start) / span if count > 1 else 0.5)

    def sy(v: float) -> float:
        return top + (height - top - bottom) * (1 - (tf(v) - lo) / (hi - lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">',
           f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
           'fill="#fafafa" stroke="#ddd"/>']
    for t in _ticks(lo, hi):
        y = top + (height - top - bottom) * (1 - (t - lo) / (hi - lo))
        shown = 10 ** t if log else t
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">{shown:.3g}</text>')
    out.append(f'<text x="{(left + width) / 2:.0f}" y="{height - 6}" text-anchor="middle" class="tick">'
               f'{escape(x_label)} ({x_span[0] if x_span else start}..{x_span[1] if x_span else count - 1 + start})'
               '</text>')
    for i in marks:
        out.append(f'<line class="alert" x1="{sx(i + start):.1f}" x2="{sx(i + start):.1f}" y1="{top}" '
                   f'y2="{height - bottom}" stroke="#d62728" stroke-opacity="0.25"/>')
    for name, value in (hlines or {}).items():
        out.append(f'<line class="hline" x1="{left}" x2="{width - right}" y1="{sy(value):.1f}" y2="{sy(value):.1f}" '
                   f'stroke="#d62728" stroke-dasharray="5,3"><title>{escape(name)} {value:.4g}</title></line>')
    for k, (name, points) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        runs, current = [], []
        for i, v in enumerate(points):
            if v is None or not math.isfinite(v) or (log and v <= 0):
                if current:
                    runs.append(current)
                current = []
                continue
            current.append(f"{sx(i + start):.1f},{sy(v):.1f}")
        if current:
            runs.append(current)
        dash = f' stroke-dasharray="{2 + 3 * (k // len(PALETTE))},2"' if k >= len(PALETTE) else ""
        for pts in runs:
            out.append(f'<polyline class="series" data-series="{escape(name)}" points="{" ".join(pts)}" '
                       f'fill="none" stroke="{color}" stroke-width="1.6"{dash}/>')
            if len(pts) == 1:  # a one-point line draws nothing: mark the point itself (one epoch, say)
                cx, cy = pts[0].split(",")
                out.append(f'<circle class="point" data-series="{escape(name)}" cx="{cx}" cy="{cy}" r="3.5" '
                           f'fill="{color}"/>')
        if legend_width:
            y = top + 8 + 14 * k
            out.append(f'<line class="legend-key" x1="{width - right + 8}" x2="{width - right + 30}" y1="{y - 4}" '
                       f'y2="{y - 4}" stroke="{color}" stroke-width="2"{dash}/>'
                       f'<text x="{width - right + 34}" y="{y}" fill="{color}" class="legend">{escape(name)}</text>')
        else:
            out.append(f'<text x="{width - right - 8}" y="{top + 14 + 13 * k}" fill="{color}" class="legend" '
                       f'text-anchor="end">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def bars(labels: Sequence[str], values: Sequence[float], width: int = 420, highlight: int | None = None) -> str:
    """Horizontal bars in 0..1 (class probabilities), the chosen class highlighted."""
    row = 20
    height = row * len(labels) + 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="bars" width="{width}" height="{height}">']
    for i, (label, value) in enumerate(zip(labels, values)):
        w = max(0.0, min(1.0, float(value))) * (width - 160)
        color = "#d62728" if i == highlight else "#1f77b4"
        out.append(f'<text x="0" y="{i * row + 15}" class="tick">{escape(str(label))[:18]}</text>'
                   f'<rect class="bar" x="120" y="{i * row + 4}" width="{w:.1f}" height="{row - 6}" fill="{color}"/>'
                   f'<text x="{124 + w:.1f}" y="{i * row + 15}" class="tick">{float(value):.3f}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(counts: Sequence[float], edges: Sequence[float], width: int = 220, height: int = 60) -> str:
    top = max(counts) if counts else 0
    if not counts or top <= 0:
        return ""
    w = width / len(counts)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="hist" width="{width}" height="{height + 14}">']
    for i, c in enumerate(counts):
        h = height * c / top
        out.append(f'<rect x="{i * w:.1f}" y="{height - h:.1f}" width="{max(1, w - 1):.1f}" height="{h:.1f}" '
                   f'fill="#1f77b4"><title>{c}</title></rect>')
    if edges:
        out.append(f'<text x="0" y="{height + 12}" class="tick">{edges[0]:.3g}</text>'
                   f'<text x="{width}" y="{height + 12}" text-anchor="end" class="tick">{edges[-1]:.3g}</text>')
    out.append("</svg>")
    return "".join(out)

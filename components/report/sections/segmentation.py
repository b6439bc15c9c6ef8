"""Segmentation: IoU per class, the pixel confusion matrix, and the hardest examples with their true and predicted
masks laid over the input.

Why the hardest (lowest mean IoU) examples: a mean IoU is dominated by easy background pixels; the examples the
model gets most wrong show whether it misses small objects, confuses classes or bleeds over edges. Metrics come
from evaluation.json (``family_metrics.segmentation_report``), masks from ``predictions.npz`` (``y``, ``keras``).
"""
from __future__ import annotations

import numpy as np

from edgepipe.components.report import figures, html
from edgepipe.components.report.context import ReportContext
from edgepipe.components.report.sections import section
from edgepipe.components.report.sections.classification import variant_kpis


def example_iou(true: np.ndarray, pred: np.ndarray) -> float | None:
    """Mean IoU over the classes present in either mask of one example."""
    ious = []
    for c in np.union1d(np.unique(true), np.unique(pred)):
        t, p = true == c, pred == c
        union = np.logical_or(t, p).sum()
        if union:
            ious.append(np.logical_and(t, p).sum() / union)
    return float(np.mean(ious)) if ious else None


@section("segmentation", order=30, name="evaluation")
def evaluation(ctx: ReportContext) -> str:
    m = ctx.metrics
    if ctx.doc is None or "iou" not in m:
        return html.section("Segmentation", '<p class="note">Not available (no segmentation evaluation).</p>',
                            "evaluation")
    names = list(m["iou"])
    body = [html.kpis([("mean IoU", m.get("mean_iou")), ("pixel accuracy", m.get("pixel_accuracy")),
                       (f"{ctx.doc.split or '?'} examples", m.get("examples")), *variant_kpis(ctx)]),
            "<h3>IoU per class</h3>", html.table(["class", "IoU"], [[n, m["iou"][n]] for n in names], left=1),
            "<h3>Pixel confusion matrix</h3>",
            html.figure(figures.confusion_matrix(m.get("confusion_matrix") or [], names), "pixel confusion matrix")]
    return html.section("Segmentation", "".join(body), "evaluation")


@section("segmentation", order=40, name="masks")
def masks(ctx: ReportContext) -> str | None:
    p = ctx.predictions
    if p is None or "y" not in p or "keras" not in p:
        return None
    true = p["y"].astype(np.int64).reshape(p["keras"].shape[:-1])
    pred = p["keras"].argmax(-1)
    ious = [example_iou(t, q) for t, q in zip(true, pred)]
    order = sorted(range(len(ious)), key=lambda i: (ious[i] is None, ious[i] if ious[i] is not None else 0))
    shown = order[:min(int(ctx.param("max_examples", 10)), 6)]
    picture = figures.mask_overlays(p["x"][shown], true[shown], pred[shown], [ious[i] for i in shown],
                                    list(ctx.metrics.get("iou") or []))
    note = (f"<p class=note>The {len(shown)} examples with the lowest mean IoU (of {len(ious)}): input, true mask, "
            "predicted mask (Keras model; class 0 transparent).</p>")
    return html.section("Masks", note + html.figure(picture, "true and predicted masks"), "masks")

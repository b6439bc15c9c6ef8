"""Autoencoders (the reconstruction task, and the anomaly detector): reconstruction error, a few inputs against
their reconstructions, and the bottleneck embedding projected to 2-D with PCA, coloured by label or by score.

Why the embedding: an autoencoder's bottleneck is what the device can export as features (``encoder.h5``); if
labelled anomalies or high-error examples sit apart from the rest in it, the representation separates them, if
they overlap the error alone does the work. PCA (an SVD in NumPy) is deterministic and cheap, unlike t-SNE/UMAP.
"""
from __future__ import annotations

import numpy as np

from edgepipe.components.report import figures, html
from edgepipe.components.report.context import ANOMALY, ReportContext
from edgepipe.components.report.sections import section
from edgepipe.runtime.scores import window_scores  # the score the runtime gives a reconstruction


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """``(points [n, 2], explained variance ratio of each axis)`` by SVD of the centred features."""
    z = features.reshape(len(features), -1).astype(np.float64)
    z = z - z.mean(axis=0)
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    var = s ** 2
    total = var.sum() or 1.0
    k = min(2, vt.shape[0])
    points = z @ vt[:k].T
    if k < 2:
        points = np.pad(points, ((0, 0), (0, 2 - k)))
    ratio = [float(v / total) for v in var[:2]] + [0.0] * (2 - min(2, len(var)))
    return points, ratio


@section("reconstruction", order=30, name="evaluation")
def evaluation(ctx: ReportContext) -> str:
    m = ctx.metrics
    if ctx.doc is None or "mean_error" not in m:
        return html.section("Reconstruction", '<p class="note">Not available (no reconstruction evaluation).</p>',
                            "evaluation")
    q = m.get("quantiles") or {}
    body = [html.kpis([("mean error (MSE)", m.get("mean_error")), ("median", q.get("0.5")), ("p90", q.get("0.9")),
                       ("p99", q.get("0.99")), (f"{ctx.doc.split or '?'} examples", m.get("examples"))])]
    p = ctx.predictions
    if p is not None and "x" in p and "keras" in p and len(p["x"]):
        errors = window_scores(p["x"], p["keras"])
        n = min(int(ctx.param("max_examples", 10)), 6, len(errors))
        ranked = np.argsort(errors, kind="stable")
        shown = ranked[np.linspace(0, len(ranked) - 1, n).round().astype(int)]
        body += ["<h3>Inputs and reconstructions</h3>",
                 f"<p class=note>{n} examples from the lowest to the highest reconstruction error.</p>",
                 html.figure(figures.input_vs_output(p["x"][shown], p["keras"][shown], errors[shown]),
                             "inputs vs reconstructions")]
    return html.section("Reconstruction", "".join(body), "evaluation")


@section("reconstruction", ANOMALY, order=50, name="embedding")
def embedding(ctx: ReportContext) -> str | None:
    if ctx.model is None:
        return None
    limit = int(ctx.param("embedding_points", 1000))
    if ctx.predictions is None and ctx.examples is None:
        return html.section("Embedding", '<p class="note">Not drawn: it needs inputs; give the report the '
                                         "examples input (the windows).</p>", "embedding")
    from edgepipe.models.autoencoder import encoder
    from edgepipe.pipeline.errors import ConfigError

    x, y, source = ctx.inputs(limit)
    if x is None or len(x) < 3:
        return html.section("Embedding", f'<p class="note">Not drawn: too few inputs ({html.esc(source)}).</p>',
                            "embedding")
    try:
        enc = encoder(ctx.keras)
    except ConfigError as exc:
        return html.section("Embedding", f'<p class="note">Not drawn: {html.esc(exc)}.</p>', "embedding")
    codes = np.asarray(enc.predict(x, batch_size=256, verbose=0))
    points, explained = pca_2d(codes)
    labelled = y is not None and len(np.unique(y)) <= 20 and np.asarray(y).ndim == 1
    if labelled:
        color, what = np.asarray(y).astype(int), "label"
    else:
        out = ctx.predictions.get("keras") if ctx.predictions is not None else None
        out = out[:len(x)] if out is not None and out.shape == ctx.predictions["x"].shape else \
            ctx.keras.predict(x, batch_size=256, verbose=0)
        color, what = np.log10(np.maximum(window_scores(x, out), 1e-12)), "log10 reconstruction MSE"
    picture = figures.embedding(points, color, what, labelled, explained)
    note = (f"<p class=note>Bottleneck <b>{html.esc(enc.output.name.split('/')[0])}</b> "
            f"({int(np.prod(codes.shape[1:]))} values per example) of {len(x)} inputs ({html.esc(source)}), "
            f"projected on its first two principal components; colour: {what}.</p>")
    return html.section("Embedding", note + html.figure(picture, "bottleneck embedding (PCA)"), "embedding")

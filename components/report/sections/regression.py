"""Regression and forecasting: MAE/RMSE/R², predicted against true with the residuals, and for forecasting a few
input windows continued by the true and the predicted next values.

Why a scatter and residuals rather than one error number: a bias (residuals off zero), a range the model
compresses (points flatter than the diagonal) or a few large misses each mean something different for the device.
Numbers from evaluation.json (``family_metrics.regression_report``), points from ``predictions.npz``.
"""
from __future__ import annotations

import numpy as np

from edgepipe.components.report import html
from edgepipe.components.report.context import ReportContext
from edgepipe.components.report.plots import _figure, _png
from edgepipe.components.report.sections import section
from edgepipe.components.report.sections.classification import variant_kpis

TASKS = ("regression", "forecasting")


@section(*TASKS, order=30, name="evaluation")
def evaluation(ctx: ReportContext) -> str:
    from edgepipe.components.report import figures

    m = ctx.metrics
    if ctx.doc is None or "mae" not in m:
        return html.section(ctx.task.capitalize(), f'<p class="note">Not available (no {ctx.task} evaluation).</p>',
                            "evaluation")
    body = [html.kpis([("MAE", m.get("mae")), ("RMSE", m.get("rmse")), ("R²", m.get("r2")),
                       ("max |error|", m.get("max_abs_error")), (f"{ctx.doc.split or '?'} examples",
                                                                m.get("examples")), *variant_kpis(ctx)])]
    p = ctx.predictions
    if p is not None and "y" in p and "keras" in p:
        width = int(np.prod(p["y"].shape[1:])) if p["y"].ndim > 1 else 1
        names = [f"output {i}" for i in range(width)] if width > 1 else ["value"]
        body += ["<h3>Predicted vs true (Keras model)</h3>",
                 "<p class=note>Left: each example, dashed line = perfect prediction; right: residuals."
                 + (f" First 4 of {width} outputs." if width > 4 else "") + "</p>",
                 html.figure(figures.true_vs_predicted(p["y"], p["keras"], names), "predicted vs true")]
    return html.section(ctx.task.capitalize(), "".join(body), "evaluation")


@section("forecasting", order=40, name="forecasts")
def forecasts(ctx: ReportContext) -> str | None:
    p = ctx.predictions
    if p is None or not {"x", "y", "keras"} <= set(p) or p["x"].ndim not in (2, 3):
        return None
    n = min(int(ctx.param("max_examples", 10)), 6, len(p["x"]))
    idx = np.linspace(0, len(p["x"]) - 1, n).round().astype(int) if n else np.zeros(0, int)
    fig, axes = _figure(3.4 * n, 2.6, 1, n)
    for ax, i in zip(axes[0], idx):
        x = p["x"][i].reshape(len(p["x"][i]), -1)
        steps = np.arange(len(x))
        ax.plot(steps, x, color="#4c72b0", linewidth=0.9)
        ahead = np.arange(len(x), len(x) + np.asarray(p["y"][i]).size)
        ax.plot(ahead, np.ravel(p["y"][i]), "o-", color="#55a868", markersize=4, label="true")
        ax.plot(ahead, np.ravel(p["keras"][i]), "x--", color="#c44e52", markersize=5, label="predicted")
        ax.set_title(f"example {i}", fontsize=8)
        ax.tick_params(labelsize=7)
    if n:
        axes[0, 0].legend(fontsize=7)
    note = "<p class=note>Input window (blue), then the true (green) and predicted (red) next values.</p>"
    return html.section("Forecasts", note + html.figure(_png(fig) if n else None, "forecasts"), "forecasts")

"""Reinforcement learning (DQN): the greedy policy's average return per training iteration, the TD loss, and the
evaluation's returns.

Why it replaces the common training section: train_dqn records no epochs but evaluations every
``eval_interval`` iterations (``history.json`` ``evaluations``, ``loss_every_100``); the return curve is what says
whether training converged and which iteration's weights were kept (the best evaluated one).
"""
from __future__ import annotations

import numpy as np

from edgepipe.components.report import figures, html
from edgepipe.components.report.context import ReportContext
from edgepipe.components.report.plots import _figure, _png
from edgepipe.components.report.sections import section
from edgepipe.components.report.sections.classification import variant_kpis


def return_curve(evaluations: list[dict], losses: list[float], best: dict) -> str | None:
    """Average return (± std over the evaluation episodes) per iteration, best marked; TD loss every 100."""
    if not evaluations:
        return None
    it = np.array([e["iteration"] for e in evaluations], dtype=np.float64)
    mean = np.array([e["average_return"] for e in evaluations], dtype=np.float64)
    std = np.array([e.get("std_return") or 0.0 for e in evaluations], dtype=np.float64)
    fig, axes = _figure(10, 3, 1, 2 if losses else 1)
    ax = axes[0, 0]
    ax.plot(it, mean, marker="o", markersize=3, color="#4c72b0", label="average return")
    ax.fill_between(it, mean - std, mean + std, color="#4c72b0", alpha=0.2, label="± std")
    if best.get("iteration") is not None:
        ax.scatter([best["iteration"]], [best["average_return"]], color="#c44e52", zorder=3, label="kept (best)")
    ax.set_xlabel("training iteration", fontsize=9)
    ax.set_ylabel("return", fontsize=9)
    ax.legend(fontsize=8)
    ax.tick_params(labelsize=8)
    if losses:
        ax = axes[0, 1]
        ax.plot(np.arange(len(losses)) * 100, losses, color="#dd8452", linewidth=0.9)
        if min(losses) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("training iteration", fontsize=9)
        ax.set_title("TD loss", fontsize=10)
        ax.tick_params(labelsize=8)
    return _png(fig)


@section("control", order=20, name="training")
def training(ctx: ReportContext) -> str:
    info = ctx.history
    if info is None or not info.get("evaluations"):
        return html.section("Training", '<p class="note">Not available (no return history recorded).</p>',
                            "training")
    best = info.get("best") or {}
    body = [html.kpis([("environment", info.get("env_name")), ("iterations", info.get("iterations")),
                       ("best average return", best.get("average_return")), ("at iteration", best.get("iteration")),
                       ("stopped by", info.get("stopped")), ("seconds", info.get("seconds"))]),
            "<p class=note>The greedy policy evaluated during training; the best evaluated weights are the model.</p>",
            html.figure(return_curve(info["evaluations"], info.get("loss_every_100") or [], best),
                        "return per training iteration")]
    return html.section("Training", "".join(body), "training")


@section("control", order=30, name="evaluation")
def evaluation(ctx: ReportContext) -> str:
    m = ctx.metrics
    if ctx.doc is None or "average_return" not in m:
        return html.section("Policy evaluation", '<p class="note">Not available (no policy evaluation).</p>',
                            "evaluation")
    body = [html.kpis([("episodes", m.get("episodes")), ("average return", m.get("average_return")),
                       ("std", m.get("std_return")), ("min", m.get("min_return")), ("max", m.get("max_return")),
                       ("average length", m.get("average_length")), *variant_kpis(ctx)])]
    picture = figures.summary_returns(m)
    body.append(html.figure(picture, "return per evaluation episode") if picture else
                "<p class=note>Per-episode returns are not recorded by this evaluation (only their summary).</p>")
    return html.section("Policy evaluation", "".join(body), "evaluation")

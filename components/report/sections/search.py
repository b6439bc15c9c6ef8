"""The budget search (``pipeline/search.py``): every trial's metric against flash, arena, latency and energy, the
Pareto front joined, the device budget drawn as a line, and the trial that was exported marked.

Why four panels and not one: the front is over five objectives, and a trial that is dominated on flash may be on
the front for energy; each panel puts the metric against one cost, so a reader sees what each gram of budget buys.
"""
from __future__ import annotations

from typing import Any

from edgepipe.components.report import html
from edgepipe.components.report.context import ReportContext
from edgepipe.components.report.sections import section

# (trial key, axis label, scale to the unit shown, the target's budget key in that unit)
PANELS = (("flash_bytes", "flash (KB)", 1 / 1024, "flash_kb"), ("arena_bytes", "arena (KB)", 1 / 1024, "ram_kb"),
          ("latency_ms", "latency estimate (ms)", 1.0, "latency_ms"),
          ("energy_uj", "energy estimate (uJ)", 1.0, "energy_uj"))


def pareto_chart(record: dict[str, Any]) -> str | None:
    """Metric (y) against each cost (x): feasible trials (fit the target, pass the export gate) filled, the others
    hollow, the Pareto front joined in cost order, the exported trial starred, the budget a dashed vertical line."""
    from edgepipe.components.report.plots import _figure, _png

    trials = [t for t in record.get("trials") or [] if t.get("metric") is not None]
    if not trials:
        return None
    target = record.get("target") or {}
    fig, axes = _figure(4.2 * len(PANELS), 3.2, 1, len(PANELS), sharey=True)
    for ax, (key, label, scale, budget) in zip(axes[0], PANELS):
        points = [t for t in trials if t.get(key) is not None]
        styles = ((True, {"color": "#4c72b0"}), (False, {"facecolors": "none", "edgecolors": "#c44e52"}))
        for feasible, style in styles:
            chosen = [t for t in points if bool(t.get("feasible")) == feasible]
            if chosen:
                ax.scatter([t[key] * scale for t in chosen], [t["metric"] for t in chosen], s=24,
                           label="feasible" if feasible else "over budget or refused by the gate", **style)
        front = sorted((t for t in points if t.get("pareto")), key=lambda t: t[key])
        if front:
            ax.plot([t[key] * scale for t in front], [t["metric"] for t in front], color="#55a868", lw=1,
                    label="Pareto front")
        for t in points:
            if t.get("best"):
                ax.scatter([t[key] * scale], [t["metric"]], marker="*", s=140, color="#dd8452", zorder=3,
                           label=f"exported (trial {t['number']})")
        if target.get(budget) is not None:
            ax.axvline(target[budget], color="#222222", ls="--", lw=1, label="budget")
        ax.set_xlabel(label)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(trials[0].get("metric_name") or "metric")
    axes[0][0].legend(fontsize=7)
    return _png(fig)


@section(order=94, name="search")
def search(ctx: ReportContext) -> str | None:
    """The trials table and the Pareto charts of a budget search; nothing when the run was no search."""
    if ctx.search is None:
        return None
    record = ctx.search.read_json(ctx.search.properties.get("file") or "search.json")
    trials = record.get("trials") or []
    target = record.get("target") or {}
    budget = ", ".join(f"{k} {target[k]:g}" for k in ("flash_kb", "ram_kb", "latency_ms", "energy_uj")
                       if target.get(k) is not None) or "none"
    note = (f"<p class=note>{len(trials)} trials ({html.esc(record.get('sampler'))}), each the pipeline with the "
            f"trial's settings; device target {html.esc(target.get('name') or 'none')} (budget: {html.esc(budget)})."
            " The metric is the trial's int8 variant's; the exported model is the best trial that fits and passes "
            "the export gate.</p>")
    names = list(record.get("space") or {})
    rows = [[t["number"], *[t.get("params", {}).get(n) for n in names], t.get("metric"),
             None if t.get("flash_bytes") is None else t["flash_bytes"] / 1024,
             None if t.get("arena_bytes") is None else t["arena_bytes"] / 1024, t.get("latency_ms"),
             t.get("energy_uj"), t.get("feasible"), t.get("pareto"),
             "; ".join(t.get("reasons") or []) or t.get("error") or "",
             "" if t.get("repeat_of") is None else f"trial {t['repeat_of']}"] for t in trials]
    headers = ["trial", *names, "metric", "flash KB", "arena KB", "latency ms", "energy uJ", "feasible", "Pareto",
               "why not", "repeat of"]
    best = {i for i, t in enumerate(trials) if t.get("best")}
    body = (note + html.figure(pareto_chart(record), "metric against flash, arena, latency and energy")
            + html.table(headers, rows, left=1, highlight=best))
    return html.section("Budget search", body, "search")

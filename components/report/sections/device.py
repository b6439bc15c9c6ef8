"""Where one inference's energy goes on the device: per op of the shipped int8 model, compute vs memory traffic.

Read from the ``.tflite`` itself with the cost model (``components/optimization/cost.py``), under the device
target's energy table and memory when the run has one (``convert_tflite`` records it), else the default (Han et
al. 45 nm, weights in DRAM). Drawn for the primary variant; with energy-aware pruning the uniform baseline is drawn
beside it, so the layers the policy moved sparsity between are visible.
"""
from __future__ import annotations

from typing import Any

from edgepipe.components.report import html
from edgepipe.components.report.context import ReportContext
from edgepipe.components.report.sections import section

PAIR = ("pruned_int8", "pruned_uniform_int8")  # energy-aware and its uniform baseline, when both are produced


def energy_chart(per_model: dict[str, list[dict[str, Any]]]) -> str | None:
    """Horizontal stacked bars (nJ): compute and memory per op, one panel per model."""
    from edgepipe.components.report.plots import _figure, _png

    if not per_model:
        return None
    height = max(2.5, 0.28 * max(len(rows) for rows in per_model.values()) + 1)
    fig, axes = _figure(5.5 * len(per_model), height, 1, len(per_model), sharex=True)
    for ax, (name, rows) in zip(axes[0], per_model.items()):
        labels = [f"{i} {r['op']}" for i, r in enumerate(rows)]
        compute = [r["compute_pj"] / 1e3 for r in rows]
        memory = [r["memory_pj"] / 1e3 for r in rows]
        ax.barh(labels, compute, color="#4c72b0", label="compute")
        ax.barh(labels, memory, left=compute, color="#dd8452", label="memory")
        ax.invert_yaxis()
        ax.set_xlabel("nJ per inference")
        ax.set_title(f"{name}: {sum(compute) + sum(memory):.0f} nJ", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    return _png(fig)


@section(order=92, name="device_energy")
def device_energy(ctx: ReportContext) -> str | None:
    """The per-op energy chart of the primary (and of the uniform baseline under energy-aware pruning)."""
    from edgepipe.components.optimization.cost import op_costs

    if ctx.tflite is None:
        return None
    produced = {r.variant for r in ctx.variant_rows}
    primary = ctx.param("primary")
    primary = primary if primary in produced else next(
        (n for n in ("int8_ptq", "float32") if n in produced), None)
    names = [primary] if primary else []
    names += [n for n in PAIR if n in produced and n not in names and all(p in produced for p in PAIR)]
    target = ctx.tflite.properties.get("target") or {}
    per_model = {}
    for name in names:
        path = ctx.tflite.variant_path(name)
        if path.exists():
            try:
                per_model[name] = op_costs(path.read_bytes(), target.get("energy_table") or None, target.get("memory"))
            except Exception:  # noqa: BLE001 -- an estimate; the variant table already says when a cost is missing
                continue
    if not per_model:
        return None
    where = (f"device target {html.esc(target.get('name'))} (weights in {html.esc(target['memory']['weights'])})"
             if target else "default table (Han et al. 2015, 45 nm; weights in DRAM)")
    note = (f"<p class=note>Estimated energy per inference by op, {where}; zero weights are stored compressed and "
            "their MACs skipped (docs/device.md). An estimate to compare layers and variants, not a measurement.</p>")
    return html.section("Where the energy goes", note + html.figure(energy_chart(per_model), "energy per op"),
                        "device_energy")

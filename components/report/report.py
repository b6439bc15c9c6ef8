"""render_report: one self-contained ``report.html`` per run, for every task, from the artifacts the run wrote.

Why a component, and why before export: the report is a product of the run like any artifact (cached, in the
metadata store, reachable with ``edgepipe show RUN --open``), and a run whose export is refused by the
verification gate is exactly the run someone needs to look at, so the report must exist before the gate.
Every input is optional; a missing one becomes a short "not available" note.

Why a section registry (``sections/``): each task adds its own sections (``@section(task, order=...)``) and the
common ones (data, training curves, the variant table, a look inside the network) apply to every task, so a new
task adds a module instead of a branch here. The task is read from the evaluation (``evaluation.json`` ``task``;
the anomaly detector's reconstruction-MSE evaluation has none and is task ``anomaly``), else from the Model's
card (``models.card.ModelCard``), unless the ``task`` parameter names it.
"""
from __future__ import annotations

from edgepipe.components.report import html
from edgepipe.components.report.context import ReportContext, resolve_task
from edgepipe.components.report.sections import known_tasks, sections_for
from edgepipe.pipeline.artifacts import (ExampleStatistics, Examples, Model, ModelBlessing, ModelEvaluation,
                                         Rejects, Report, SearchResults, TFLiteModels, ValidationReport)
from edgepipe.pipeline.component import Input, Output, component


@component(version="3")
def render_report(report: Output[Report], statistics: Input[ExampleStatistics] | None = None,
                  rejects: Input[Rejects] | None = None, model: Input[Model] | None = None,
                  evaluation: Input[ModelEvaluation] | None = None, tflite: Input[TFLiteModels] | None = None,
                  examples: Input[Examples] | None = None, blessing: Input[ModelBlessing] | None = None,
                  search: Input[SearchResults] | None = None, validation: Input[ValidationReport] | None = None,
                  title: str = "edgepipe run report",
                  task: str | None = None, max_series: int = 12, max_rejects: int = 20, max_examples: int = 10,
                  inspect_layer: str | None = None, inspect_inputs: int = 4, embedding_points: int = 1000,
                  primary: str | None = None, min_agreement: float = 0.98,
                  max_metric_drop: float | None = None) -> dict:
    """Write ``report.html`` (inline CSS, base64 PNG plots) with the sections registered for the run's task.

    ``examples`` (the pipeline's Examples; windows for the anomaly detector) supplies inputs to draw where the
    evaluation kept none (``predictions.npz`` is preferred). ``inspect_layer`` names the layer whose activations
    the network section draws for ``inspect_inputs`` inputs (default: the last convolution, else the layer before
    the head); ``max_examples`` bounds the example pictures (lowest confidence, masks, reconstructions);
    ``embedding_points`` the autoencoder embedding scatter. ``primary`` names the variant the export ships; for
    ``auto`` the report applies the export gate (``min_agreement``, ``max_metric_drop``) to the variant table the
    way the export will, so the plots show the model that ships."""
    resolved = resolve_task(task, evaluation, model, known_tasks())
    rows = evaluation.variant_rows() if evaluation is not None else None
    if primary == "auto" and rows is not None:
        from edgepipe.components.evaluation.variants import gate
        from edgepipe.tasks.variants import gated_primary

        from edgepipe.pipeline.errors import VerificationError

        try:
            primary, _ = gated_primary(primary, gate(rows, min_agreement, max_metric_drop))
        except VerificationError:  # no variant fits the device target: the export refuses, the report still shows
            primary = None
    ctx = ReportContext(task=resolved, statistics=statistics, rejects=rejects, model=model, evaluation=evaluation,
                        tflite=tflite, examples=examples, blessing=blessing, search=search, validation=validation,
                        params={"max_series": max_series, "max_rejects": max_rejects, "max_examples": max_examples,
                                "inspect_layer": inspect_layer, "inspect_inputs": inspect_inputs,
                                "embedding_points": embedding_points, "primary": primary,
                                "min_agreement": min_agreement, "max_metric_drop": max_metric_drop})
    chosen = sections_for(resolved)
    rendered = [s.render(ctx) for s in chosen]
    page = html.page(title, _subtitle(ctx), [r for r in rendered if r])
    target = report.file(Report.filename)
    target.write_text(page, encoding="utf-8")
    report.properties.update(file=Report.filename, plots=page.count("data:image/png;base64,"), task=resolved,
                             sections=[s.name for s, r in zip(chosen, rendered) if r],
                             inputs=sorted(k for k, v in {"statistics": statistics, "rejects": rejects,
                                                          "model": model, "evaluation": evaluation, "tflite": tflite,
                                                          "examples": examples, "blessing": blessing,
                                                          "search": search, "validation": validation}.items()
                                    if v))
    return {"report_bytes": len(page.encode("utf-8")), "plots": report.properties["plots"]}


def _subtitle(ctx: ReportContext) -> str:
    """The anomaly report's channels (as before), else the task and family."""
    if ctx.statistics is not None:
        channels = ctx.statistics.read_json("statistics.json").get("channels") or []
        if channels:
            return f"channels: {', '.join(channels)}"
    family = (ctx.card.family if ctx.card is not None else None) or (ctx.doc.family if ctx.doc else None)
    return " · ".join(x for x in (f"task: {ctx.task}" if ctx.task else None,
                                   f"family: {family}" if family else None) if x)

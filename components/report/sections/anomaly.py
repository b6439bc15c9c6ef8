"""The anomaly detector's sections: score timeline per series with threshold and labelled windows, score histogram
normal vs anomalous, detection metrics, and the comparison of the Keras model with every TFLite variant.

Why its own comparison table (replacing the common one): evaluate_anomaly gives each model its own threshold and
reports F1/AUC per split and score drift, which the family variant table has no columns for. Everything is read
from ``evaluation.json`` and ``errors.npz`` (the scores evaluate_anomaly already computed), nothing is re-scored.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgepipe.components.evaluation.metrics import shown_precision
from edgepipe.components.report import html, plots
from edgepipe.components.report.context import ANOMALY, ReportContext
from edgepipe.components.report.sections import section
from edgepipe.pipeline.artifacts import ModelEvaluation, TFLiteModels
from edgepipe.pipeline.contracts import EvaluationReport


@section(ANOMALY, order=20, name="training")
def training(ctx: ReportContext) -> str:
    """The autoencoder's losses, drawn as the anomaly report always has (one log-scale panel)."""
    from edgepipe.components.report.sections.common import training_section

    return training_section(ctx, "train_autoencoder", metrics_panels=False)


@section(ANOMALY, order=30, name="evaluation")
def evaluation(ctx: ReportContext) -> str:
    return _evaluation_section(ctx.evaluation, ctx.doc, ctx.param("max_series", 12), ctx.param("primary"))


@section(ANOMALY, order=90, name="models")
def models(ctx: ReportContext) -> str:
    return _models_section(ctx.doc, ctx.tflite, ctx.evaluation, ctx.param("primary"),
                           (float(ctx.param("min_agreement", 0.98)), ctx.params.get("max_metric_drop")))


# ---- evaluation ------------------------------------------------------------------------------------------------------
def _deployed(doc: EvaluationReport, primary: str | None) -> str:
    """The model the plots show: the shipped variant if evaluated, else any int8-input TFLite model, else
    another TFLite variant, else the reference (Keras)."""
    models = doc.models
    int8 = [m for m, e in models.items() if (e or {}).get("input_dtype") == "int8"]
    others = [m for m in models if m != doc.reference]
    for name in (primary, *int8, *others, doc.reference):
        if name in models:
            return name
    return next(iter(models), "keras")


def _evaluation_section(evaluation: ModelEvaluation | None, doc: EvaluationReport | None, max_series: int,
                        primary: str | None) -> str:
    if evaluation is None or doc is None:
        return html.section("Evaluation", '<p class="note">Not available (no evaluation).</p>', "evaluation")
    chosen = _deployed(doc, primary)
    threshold = (doc.thresholds or {}).get(chosen)
    splits = list(doc.splits or [])
    errors_file = evaluation.path / (doc.errors_file or "errors.npz")
    timelines, histogram, note = None, None, ""
    if errors_file.exists():
        with np.load(errors_file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        rows, omitted = _timeline_rows(arrays, splits, chosen, max_series)
        timelines = plots.score_timelines(rows, threshold, chosen)
        note = f"<p class=note>{omitted} more series not drawn.</p>" if omitted else ""
        scores = [(arrays[f"{s}__{chosen}"], arrays[f"{s}__label"].astype(bool)) for s in splits
                  if f"{s}__{chosen}" in arrays and f"{s}__label" in arrays]
        if scores:
            pooled = np.concatenate([s for s, _ in scores])
            labels = np.concatenate([lab for _, lab in scores])
            histogram = plots.score_histogram(pooled[~labels], pooled[labels], threshold, chosen)
    metric_rows = []
    for name, per_split in doc.metrics.items():
        m = per_split.get("all") or {}
        metric_rows.append([name, m.get("windows"), m.get("anomalous"), m.get("flagged"), shown_precision(m),
                            m.get("recall"), m.get("f1"), m.get("auc"),
                            *((per_split.get(split) or {}).get("f1") for split in splits)])
    warnings = "".join(f'<p class="warn">warning: {html.esc(w)}</p>' for w in doc.warnings)
    reference = doc.reference or "keras"
    shown = doc.model_metrics(chosen).get("all") or {}
    body = [html.kpis([(f"{chosen} threshold", threshold),
                       (f"{chosen} agreement with {reference}", doc.agreement_all(chosen)),
                       (f"{chosen} F1", shown.get("f1")), (f"{chosen} AUC", shown.get("auc")),
                       (f"{reference} threshold", (doc.thresholds or {}).get(reference))]),
            warnings,
            f"<h3>Window scores over time ({html.esc(chosen)} model, {' + '.join(splits)} splits)</h3>",
            "<p class=note>Dashed line: threshold; shaded: windows labelled anomalous; red points: windows the "
            "model flags; dotted verticals: split boundaries.</p>",
            html.figure(timelines, "anomaly score timeline per series"), note,
            "<h3>Score distribution</h3>", html.figure(histogram, "score histogram normal vs anomalous"),
            "<h3>Detection metrics</h3>",
            f"<p class=note>Over all {' + '.join(splits)} windows, plus F1 per split.</p>",
            html.table(["model", "windows", "anomalous", "flagged", "precision", "recall", "F1", "AUC",
                        *(f"F1 {split}" for split in splits)], metric_rows, left=1)]
    return html.section("Anomaly evaluation", "".join(body), "evaluation")


def _timeline_rows(arrays: dict[str, np.ndarray], splits: list[str], model: str, max_series: int):
    """Per series, the eval/test windows in time order, with split boundaries; plus how many series were cut."""
    parts: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]] = {}
    for split in splits:
        if f"{split}__{model}" not in arrays or f"{split}__series" not in arrays:
            continue
        series = arrays[f"{split}__series"]
        start = arrays.get(f"{split}__start", np.arange(len(series)))
        when = arrays.get(f"{split}__start_time")
        x = when.astype("datetime64[s]") if when is not None else start
        for sid in dict.fromkeys(series.tolist()):
            keep = series == sid
            order = np.argsort(start[keep], kind="stable")
            parts.setdefault(sid, []).append((split, x[keep][order], arrays[f"{split}__{model}"][keep][order],
                                              arrays[f"{split}__label"][keep][order]))
    rows = []
    for sid, pieces in list(parts.items())[:max_series]:
        pieces.sort(key=lambda p: p[1][0])
        rows.append({"series": sid, "splits": [p[0] for p in pieces], "x": np.concatenate([p[1] for p in pieces]),
                     "score": np.concatenate([p[2] for p in pieces]).astype(np.float64),
                     "label": np.concatenate([p[3] for p in pieces]), "boundaries": [p[1][0] for p in pieces[1:]]})
    return rows, max(0, len(parts) - max_series)


# ---- models ----------------------------------------------------------------------------------------------------------
def _models_section(doc: EvaluationReport | None, tflite: TFLiteModels | None,
                    evaluation: ModelEvaluation | None = None, primary: str | None = None,
                    bounds: tuple[float, float | None] | None = None) -> str:
    """Size, detection quality and agreement per model; TFLite details from ``variants.json`` when present (the
    TFLite artifact's for sizes/modes, the evaluation's for latency), the device cost and target fit the variant
    table has (its own formatter), and the agreement the export gate judges (clear windows; ``bounds``: the gate's
    ``min_agreement``, ``max_metric_drop``) beside the all-windows one, so the shipped model's verdict is visible."""
    from edgepipe.components.evaluation.variants import device_cells, device_header, gate
    variants: dict[str, Any] = {}
    if tflite is not None:
        index = tflite.path / "variants.json"
        if index.exists():
            variants = {k: dict(v) for k, v in json.loads(index.read_text()).items() if isinstance(v, dict)}
        for name in tflite.variants():
            entry = variants.setdefault(name, {})
            entry.setdefault("size_bytes", tflite.variant_path(name).stat().st_size)
            entry.setdefault("file", f"{name}.tflite")
    rows_table = (evaluation.variant_rows() if evaluation is not None else None) or []
    if bounds is not None and rows_table:
        rows_table = gate(rows_table, *bounds)
    by_variant = {r.variant: r for r in rows_table}
    latency = {r.variant: r.latency_us for r in rows_table}
    doc = doc or EvaluationReport()
    evaluated = doc.models
    reference = [doc.reference] if doc.reference in evaluated else []
    names = list(dict.fromkeys([*reference, *evaluated, *variants]))
    if not names:
        return html.section("Model comparison", '<p class="note">Not available (no models evaluated or '
                                                 'converted).</p>', "models")
    deployed = _deployed(doc, primary) if evaluated else None
    rows = []
    for name in names:
        v, e = variants.get(name) or {}, evaluated.get(name) or {}
        overall = doc.model_metrics(name).get("all") or {}
        agreement = doc.agreement_all(name)
        kib = [b / 1024 if b else None for b in (v.get("size_bytes"), v.get("gzip_bytes"))]
        io = "/".join(d for d in (v.get("input_dtype"), v.get("output_dtype")) if d) or None
        row = by_variant.get(name)
        near = (doc.agreement.get(name) or {}).get("near_threshold")
        gated = None if name == doc.reference else doc.gated_agreement(name)
        verdict = None if row is None or row.exported is None else ("passes" if row.exported else row.reason)
        rows.append([name, v.get("mode") or e.get("kind"), v.get("source"), io, *kib, v.get("sparsity"),
                     latency.get(name), *device_cells(row), (doc.thresholds or {}).get(name), overall.get("f1"),
                     overall.get("auc"), 1.0 if name == doc.reference else agreement,
                     None if gated is None else f"{html.fmt(gated)}" + (f" ({near} near)" if near else ""),
                     verdict, e.get("score_relative_difference")])
    highlight = {i for i, n in enumerate(names) if n == deployed}
    scope = doc.agreement_gate.on if doc.agreement_gate is not None else "all"
    note = ("<p class=note>Highlighted: the model the plots show (the int8 variant the bundle ships). Agreement: "
            f"fraction of {html.esc(doc.pooled)} windows where the model's decision "
            f"equals the reference ({html.esc(doc.reference or 'keras')}) model's; gated agreement: the one the "
            f"export gate judges ({html.esc(scope)}: {html.esc(doc.gate_scope)}; near: windows left out as too "
            f"close to the threshold)" + (f", against min agreement {html.fmt(bounds[0])}" if bounds else "")
            + "; score drift: median relative score difference to it; latency: per window, measured by the "
            "evaluation; MACs, arena and energy: estimated from the graph (variants.md).</p>")
    source = "<p class=note>TFLite details from variants.json.</p>" if tflite and (
        tflite.path / "variants.json").exists() else ""
    return html.section("Model comparison", note + html.table(
        ["model", "mode", "source", "I/O dtype", "size KiB", "gzip KiB", "sparsity", "latency µs",
         *device_header(rows_table), "threshold", "F1", "AUC", "agreement (all)", "gated agreement", "export gate",
         "score drift"], rows, left=4, highlight=highlight) + source, "models")

"""Sections every task's report has: data (statistics when given, else the examples' features), training curves
from the model's ``history.json`` (every trainer's layout), an evaluation placeholder a task replaces, and the
variant table from the evaluation's ``variants.json``.

Why generic: the trainers write three history layouts (``history``; ``phases`` for train_model's frozen base then
fine-tune; DQN's ``evaluations``, drawn by ``control.py``) and the family evaluations one variant table
(``evaluation/variants.py`` ``build_rows``), so one reader each covers every family.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgepipe.components.report import figures, html, plots
from edgepipe.components.report.context import ReportContext
from edgepipe.components.report.sections import section

QUANTILES = (("p1", "0.01"), ("median", "0.5"), ("p99", "0.99"))


# ---- data ------------------------------------------------------------------------------------------------------------
def _ordered(splits: dict[str, Any]) -> dict[str, Any]:
    """train, eval, test first (time order), then any other split by name."""
    known = [s for s in ("train", "eval", "test") if s in splits]
    return {s: splits[s] for s in [*known, *sorted(set(splits) - set(known))]}


@section(order=10, name="data")
def data(ctx: ReportContext) -> str:
    if ctx.statistics is not None:
        return _statistics_section(ctx.statistics.read_json("statistics.json"), ctx)
    if ctx.examples is not None:
        return _examples_section(ctx)
    body = '<p class="note">Not available (no statistics or examples input).</p>'
    if ctx.rejects is not None:
        body += _rejects_detail(ctx.rejects, ctx.param("max_rejects", 20))
    return html.section("Data", body, "data")


def _statistics_section(stats: dict[str, Any], ctx: ReportContext) -> str:
    splits = _ordered(stats.get("splits") or {})
    stats = {**stats, "splits": splits}
    rows = []
    for split, data in splits.items():
        for channel in stats.get("channels") or []:
            c = data.get("channels", {}).get(channel) or {}
            q = c.get("quantiles") or {}
            rows.append([split, channel, c.get("count"), c.get("missing"), c.get("mean"), c.get("std"), c.get("min"),
                         *(q.get(key) for _, key in QUANTILES), c.get("max")])
    split_rows = [[s, d.get("num_steps"), d.get("num_examples"), d.get("label_positive"),
                   (d.get("label_positive") or 0) / d["label_count"] if d.get("label_count") else None]
                  for s, d in splits.items()]
    body = [_rejects_kpis(ctx.rejects, splits),
            "<h3>Splits</h3>", html.table(["split", "steps", "chunks", "labelled anomalous steps", "fraction"],
                                          split_rows),
            "<h3>Channels</h3>",
            html.table(["split", "channel", "count", "missing", "mean", "std", "min",
                        *(name for name, _ in QUANTILES), "max"], rows, left=2),
            html.figure(plots.channel_histograms(stats), "value distribution per channel and split"),
            _rejects_detail(ctx.rejects, ctx.param("max_rejects", 20))]
    return html.section("Data", "".join(body), "data")


def _examples_section(ctx: ReportContext) -> str:
    """Without statistics (the family pipelines): the splits' sizes and the features, as the Examples record them."""
    examples = ctx.examples
    info = examples.info()
    counts = info.counts or {}
    rows = [[name, desc.get("dtype"), "x".join(map(str, desc.get("shape") or [])) or "scalar"]
            for name, desc in examples.feature_spec.items()]
    names = ctx.class_names or (list(info.class_names) if info.class_names else None)
    body = [html.kpis([*((f"{s} examples", counts.get(s)) for s in _ordered(dict.fromkeys(examples.splits))),
                       ("classes", len(names) if names else None)]),
            "<h3>Features</h3>", html.table(["feature", "dtype", "shape"], rows, left=1),
            f"<p class=note>Classes: {html.esc(', '.join(map(str, names)))}</p>" if names else "",
            _rejects_detail(ctx.rejects, ctx.param("max_rejects", 20)) if ctx.rejects is not None else ""]
    return html.section("Data", "".join(body), "data")


def _rejects_kpis(rejects, splits: dict[str, Any]) -> str:
    items = [(f"{s} steps", d.get("num_steps")) for s, d in splits.items()]
    if rejects is not None:
        read, count = rejects.properties.get("rows_read"), rejects.properties.get("count")
        items = [("rows read", read), ("rows rejected", count),
                 ("rejected fraction", (count or 0) / read if read else None), *items]
    return html.kpis(items)


def _rejects_detail(rejects, limit: int) -> str:
    if rejects is None:
        return '<p class="note">Rejects: not available (no Rejects input).</p>'
    path = rejects.path / "rejects.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []
    if not records:
        return "<h3>Rejected rows</h3><p class=note>None: every row was usable.</p>"
    kinds = Counter(_reason_kind(r["reason"]) for r in records)
    return ("<h3>Rejected rows</h3>"
            + html.table(["reason", "rows"], kinds.most_common())
            + f"<p class=note>First {min(limit, len(records))} of {len(records)}:</p>"
            + html.table(["file", "line", "reason"],
                         [[Path(r["file"]).name, r["line"], r["reason"]] for r in records[:limit]], left=3))


def _reason_kind(reason: str) -> str:
    """A reject reason without its specifics (values, timestamps, line numbers): what the summary table counts."""
    return re.match(r"[^:\d(]*", reason).group(0).strip() or reason[:40]


# ---- training --------------------------------------------------------------------------------------------------------
def stages(info: dict[str, Any], default: str) -> dict[str, dict[str, list[float]]]:
    """``{stage: {series: values}}`` from a history.json: ``phases`` (train_model) or one ``history``."""
    if isinstance(info.get("phases"), dict):
        return {k: v for k, v in info["phases"].items() if isinstance(v, dict)}
    return {default: info.get("history") or {}}


@section(order=20, name="training")
def training(ctx: ReportContext) -> str:
    stage = (ctx.card.family if ctx.card is not None else None) or "training"
    return training_section(ctx, stage, metrics_panels=True)


def training_section(ctx: ReportContext, stage_name: str, metrics_panels: bool) -> str:
    """KPIs and curves per training stage; ``metrics_panels``: accuracy/MAE next to the loss (the anomaly report
    draws its losses only, with ``plots.training_curves`` as it always has)."""
    info = ctx.history
    if info is None:
        return html.section("Training", '<p class="note">Not available (no training history).</p>', "training")
    per_stage = stages(info, stage_name)
    strategy = info.get("strategy") or {}
    final = list(per_stage.values())[-1] if per_stage else {}
    monitor = info.get("monitor") or ("val_loss" if "val_loss" in final else "loss")
    epochs = sum(len(next(iter(h.values()), [])) for h in per_stage.values())
    body = [html.kpis([("epochs run", info.get("epochs_run", epochs)), ("best epoch", info.get("best_epoch")),
                       ("training examples", info.get("train_windows", info.get("train_examples"))),
                       ("batch size", info.get("global_batch_size")),
                       ("strategy", f"{strategy.get('name', '?')} x{strategy.get('replicas', 1)}"),
                       (f"final {monitor}", (final.get(monitor) or [None])[-1])])]
    losses = {stage: {k: v for k, v in h.items() if "loss" in k} for stage, h in per_stage.items()}
    if not metrics_panels:
        body.append(html.figure(plots.training_curves(losses), "training loss per epoch"))
    else:
        panels: dict[str, Any] = {}
        for stage, h in per_stage.items():
            x = np.arange(1, max((len(v) for v in h.values()), default=0) + 1)
            panels[f"{stage} loss"] = (x, losses[stage], "epoch")
            others = {k: v for k, v in h.items() if "loss" not in k and k != "lr"}
            if others:
                panels[f"{stage} metrics"] = (x, others, "epoch")
        body.append(html.figure(figures.curves(panels), "training curves per epoch"))
    return html.section("Training", "".join(body), "training")


# ---- evaluation placeholder ------------------------------------------------------------------------------------------
@section(order=30, name="evaluation")
def evaluation(ctx: ReportContext) -> str:
    """Replaced by each task's own evaluation section; shown for a task without one, or without an evaluation."""
    if ctx.doc is None:
        return html.section("Evaluation", '<p class="note">Not available (no evaluation).</p>', "evaluation")
    items = [(k, v) for k, v in ctx.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return html.section(f"Evaluation ({html.esc(ctx.task or 'task unknown')})", html.kpis(items), "evaluation")


# ---- variant table ---------------------------------------------------------------------------------------------------
@section(order=90, name="models")
def models(ctx: ReportContext) -> str:
    """The evaluations' variant table: size, latency, the task metric, its drop and agreement with Keras, and what
    the export gate (``min_agreement``, ``max_metric_drop``) says of each variant, so a refused or replaced int8
    model is explained where it is compared."""
    from edgepipe.components.evaluation.variants import device_cells, device_header, gate

    rows = ctx.variant_rows
    if not rows:
        return html.section("Model comparison", '<p class="note">Not available (no TFLite variants evaluated).</p>',
                            "models")
    rows = gate(rows, float(ctx.param("min_agreement", 0.98)), ctx.params.get("max_metric_drop"))
    metric = next((r.metric_name for r in rows if r.metric_name), "metric")
    primary = ctx.param("primary")
    table = [[r.variant, r.mode or r.source, r.input_dtype,
              r.size_bytes / 1024 if r.size_bytes else None, r.sparsity, r.latency_us, *device_cells(r),
              r.metric, r.metric_drop, r.agreement,
              "reference" if r.exported is None else ("passes" if r.exported else r.reason)]
             for r in rows]
    highlight = {i for i, r in enumerate(rows) if r.variant == primary}
    bounds = f"min agreement {html.fmt(ctx.param('min_agreement', 0.98))}, max metric drop " \
             f"{html.fmt(ctx.params.get('max_metric_drop'))}"
    note = (f"<p class=note>Metric: {html.esc(metric)} on the evaluated data; drop and agreement are against the "
            f"Keras model; latency per example, measured by the evaluation; export gate: {bounds}."
            + (" Highlighted: the primary variant." if highlight else "") + "</p>")
    return html.section("Model comparison", note + html.table(
        ["model", "mode", "input dtype", "size KiB", "sparsity", "latency µs", *device_header(rows), metric, "drop", "agreement", "export gate"], table, left=3,
        highlight=highlight), "models")

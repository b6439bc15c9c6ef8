"""render_report: one self-contained ``report.html`` per run, from the artifacts the pipeline already wrote.

Why a component, and why before export: the report is a product of the run like any artifact (cached, in the
metadata store, reachable with ``edgepipe show RUN --open``), and a run whose export is refused by the
verification gate is exactly the run someone needs to look at, so the report must exist before the gate.
Every input except the statistics is optional; a missing one becomes a short "not available" note.
Sections: data (statistics, splits, rejects), training curves, anomaly evaluation (score timeline per series with
threshold and labelled windows, score histogram normal vs anomalous, metrics), and a model comparison table.
Bump ``version`` when ``html.py`` or ``plots.py`` change what is drawn (only this file's source is hashed).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgepipe.components.report import html, plots
from edgepipe.pipeline.artifacts import (ExampleStatistics, Model, ModelEvaluation, Rejects, Report,
                                         TFLiteModels)
from edgepipe.pipeline.component import Input, Output, component

QUANTILES = (("p1", "0.01"), ("median", "0.5"), ("p99", "0.99"))


@component(version="2")
def render_report(statistics: Input[ExampleStatistics], report: Output[Report],
                  rejects: Input[Rejects] | None = None, model: Input[Model] | None = None,
                  evaluation: Input[ModelEvaluation] | None = None, tflite: Input[TFLiteModels] | None = None,
                  title: str = "edgepipe run report", max_series: int = 12, max_rejects: int = 20,
                  primary: str | None = None, min_agreement: float = 0.98,
                  max_metric_drop: float | None = None) -> dict:
    """Write ``report.html`` (inline CSS, base64 PNG plots): data, training, evaluation, model comparison.

    ``primary`` names the variant the export ships as ``model.tflite``; for ``auto`` the report applies the export
    gate (``min_agreement``, ``max_metric_drop``) to the variant table the way the export will, so the plots show
    the model that ships."""
    stats = statistics.read_json("statistics.json")
    eval_doc = evaluation.read_json("evaluation.json") if evaluation is not None else None
    if primary == "auto" and evaluation is not None and (evaluation.path / "variants.json").exists():
        from edgepipe.components.evaluation.variants import gate
        from edgepipe.components.optimization.variants import gated_primary

        primary, _ = gated_primary(primary, gate(evaluation.read_json("variants.json"), min_agreement,
                                                 max_metric_drop))
    sections = [
        _data_section(stats, rejects, max_rejects),
        _training_section(model),
        _evaluation_section(evaluation, eval_doc, max_series, primary),
        _models_section(eval_doc, tflite, evaluation, primary),
    ]
    channels = ", ".join(stats.get("channels") or [])
    page = html.page(title, f"channels: {channels}", sections)
    target = report.file(Report.filename)
    target.write_text(page, encoding="utf-8")
    report.properties.update(file=Report.filename, plots=page.count("data:image/png;base64,"),
                             inputs=sorted(k for k, v in {"rejects": rejects, "model": model,
                                                          "evaluation": evaluation, "tflite": tflite}.items() if v))
    return {"report_bytes": len(page.encode("utf-8")), "plots": report.properties["plots"]}


# ---- data ------------------------------------------------------------------------------------------------------------
def _ordered(splits: dict[str, Any]) -> dict[str, Any]:
    """train, eval, test first (time order), then any other split by name."""
    known = [s for s in ("train", "eval", "test") if s in splits]
    return {s: splits[s] for s in [*known, *sorted(set(splits) - set(known))]}


def _data_section(stats: dict[str, Any], rejects: Rejects | None, max_rejects: int) -> str:
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
    body = [_rejects_kpis(rejects, splits),
            "<h3>Splits</h3>", html.table(["split", "steps", "chunks", "labelled anomalous steps", "fraction"],
                                          split_rows),
            "<h3>Channels</h3>",
            html.table(["split", "channel", "count", "missing", "mean", "std", "min",
                        *(name for name, _ in QUANTILES), "max"], rows, left=2),
            html.figure(plots.channel_histograms(stats), "value distribution per channel and split"),
            _rejects_detail(rejects, max_rejects)]
    return html.section("Data", "".join(body), "data")


def _rejects_kpis(rejects: Rejects | None, splits: dict[str, Any]) -> str:
    items = [(f"{s} steps", d.get("num_steps")) for s, d in splits.items()]
    if rejects is not None:
        read, count = rejects.properties.get("rows_read"), rejects.properties.get("count")
        items = [("rows read", read), ("rows rejected", count),
                 ("rejected fraction", (count or 0) / read if read else None), *items]
    return html.kpis(items)


def _rejects_detail(rejects: Rejects | None, limit: int) -> str:
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
def _training_section(model: Model | None) -> str:
    path = model.path / "history.json" if model is not None else None
    if path is None or not path.exists():
        return html.section("Training", '<p class="note">Not available (no training history).</p>', "training")
    info = json.loads(path.read_text())
    history = info.get("history") or {}
    strategy = info.get("strategy") or {}
    body = [html.kpis([("epochs run", info.get("epochs_run")), ("best epoch", info.get("best_epoch")),
                       ("training windows", info.get("train_windows")), ("batch size", info.get("global_batch_size")),
                       ("strategy", f"{strategy.get('name', '?')} x{strategy.get('replicas', 1)}"),
                       ("final val_loss", (history.get("val_loss") or [None])[-1])]),
            html.figure(plots.training_curves({"train_autoencoder": history}), "training loss per epoch")]
    return html.section("Training", "".join(body), "training")


# ---- evaluation ------------------------------------------------------------------------------------------------------
def _deployed(doc: dict[str, Any], primary: str | None) -> str:
    """The model the plots show: the shipped variant if evaluated, else any int8-input TFLite model, else
    another TFLite variant, else the reference (Keras)."""
    models = doc.get("models") or {}
    int8 = [m for m, e in models.items() if (e or {}).get("input_dtype") == "int8"]
    others = [m for m in models if m != doc.get("reference")]
    for name in (primary, *int8, *others, doc.get("reference")):
        if name in models:
            return name
    return next(iter(models), "keras")


def _evaluation_section(evaluation: ModelEvaluation | None, doc: dict[str, Any] | None, max_series: int,
                        primary: str | None) -> str:
    if evaluation is None or doc is None:
        return html.section("Evaluation", '<p class="note">Not available (no evaluation).</p>', "evaluation")
    chosen = _deployed(doc, primary)
    threshold = (doc.get("thresholds") or {}).get(chosen)
    splits = list(doc.get("splits") or [])
    errors_file = evaluation.path / doc.get("errors_file", "errors.npz")
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
    for name, per_split in (doc.get("metrics") or {}).items():
        m = per_split.get("all") or {}
        metric_rows.append([name, m.get("windows"), m.get("anomalous"), m.get("flagged"), m.get("precision"),
                            m.get("recall"), m.get("f1"), m.get("auc"),
                            *((per_split.get(split) or {}).get("f1") for split in splits)])
    warnings = "".join(f'<p class="warn">warning: {html.esc(w)}</p>' for w in doc.get("warnings") or [])
    reference = doc.get("reference", "keras")
    shown = ((doc.get("metrics") or {}).get(chosen) or {}).get("all") or {}
    body = [html.kpis([(f"{chosen} threshold", threshold),
                       (f"{chosen} agreement with {reference}", ((doc.get("agreement") or {}).get(chosen) or {})
                        .get("all")),
                       (f"{chosen} F1", shown.get("f1")), (f"{chosen} AUC", shown.get("auc")),
                       (f"{reference} threshold", (doc.get("thresholds") or {}).get(reference))]),
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
def _models_section(doc: dict[str, Any] | None, tflite: TFLiteModels | None,
                    evaluation: ModelEvaluation | None = None, primary: str | None = None) -> str:
    """Size, detection quality and agreement per model; TFLite details from ``variants.json`` when present (the
    TFLite artifact's for sizes/modes, the evaluation's for latency)."""
    variants: dict[str, Any] = {}
    if tflite is not None:
        index = tflite.path / "variants.json"
        if index.exists():
            variants = {k: dict(v) for k, v in json.loads(index.read_text()).items() if isinstance(v, dict)}
        for name in tflite.variants():
            entry = variants.setdefault(name, {})
            entry.setdefault("size_bytes", tflite.variant_path(name).stat().st_size)
            entry.setdefault("file", f"{name}.tflite")
    latency = {}
    if evaluation is not None and (evaluation.path / "variants.json").exists():
        table = json.loads((evaluation.path / "variants.json").read_text())
        latency = {r.get("variant"): r.get("latency_us") for r in table if isinstance(r, dict)} \
            if isinstance(table, list) else {}
    doc = doc or {}
    evaluated = doc.get("models") or {}
    reference = [doc["reference"]] if doc.get("reference") in evaluated else []
    names = list(dict.fromkeys([*reference, *evaluated, *variants]))
    if not names:
        return html.section("Model comparison", '<p class="note">Not available (no models evaluated or '
                                                 'converted).</p>', "models")
    deployed = _deployed(doc, primary) if evaluated else None
    rows = []
    for name in names:
        v, e = variants.get(name) or {}, evaluated.get(name) or {}
        overall = ((doc.get("metrics") or {}).get(name) or {}).get("all") or {}
        agreement = ((doc.get("agreement") or {}).get(name) or {}).get("all")
        kib = [b / 1024 if b else None for b in (v.get("size_bytes"), v.get("gzip_bytes"))]
        io = "/".join(d for d in (v.get("input_dtype"), v.get("output_dtype")) if d) or None
        rows.append([name, v.get("mode") or e.get("kind"), v.get("source"), io, *kib, v.get("sparsity"),
                     latency.get(name), (doc.get("thresholds") or {}).get(name), overall.get("f1"),
                     overall.get("auc"), 1.0 if name == doc.get("reference") else agreement,
                     e.get("score_relative_difference")])
    highlight = {i for i, n in enumerate(names) if n == deployed}
    note = ("<p class=note>Highlighted: the model the plots show (the int8 variant the bundle ships). Agreement: "
            "fraction of eval+test windows where the model's decision equals the reference "
            f"({html.esc(doc.get('reference', 'keras'))}) model's; score drift: median relative score "
            "difference to it; latency: per window, measured by the evaluation.</p>")
    source = "<p class=note>TFLite details from variants.json.</p>" if tflite and (
        tflite.path / "variants.json").exists() else ""
    return html.section("Model comparison", note + html.table(
        ["model", "mode", "source", "I/O dtype", "size KiB", "gzip KiB", "sparsity", "latency µs", "threshold",
         "F1", "AUC", "agreement", "score drift"], rows, left=4, highlight=highlight) + source, "models")

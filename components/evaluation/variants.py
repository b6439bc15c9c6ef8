"""The variant comparison table: one row per model variant, every number measured on the artifact itself.

Rows carry what a deployment decision needs side by side -- the task metric and the agreement of decisions with the
Keras float model (the quality cost), raw and gzip size (storage and OTA cost; gzip is where pruning and clustering
show, since TFLite stores zeros and shared values densely), parameters and sparsity, and batch-1 single-thread
XNNPACK latency (the CPU cost), and the device cost read from the graph (MACs, TFLM arena, estimated energy per
inference; ``components/optimization/cost.py``). :func:`gate` then marks each row exported or not against the
configured bounds; evaluation builds rows, export gates them, and both write the same JSON / Markdown / HTML renderings.
"""
from __future__ import annotations

import html
import time
from typing import Any, Callable, Mapping, Sequence

from edgepipe.pipeline import progress
from edgepipe.pipeline.contracts import VariantRow, rows_to_json

LABELS = {"keras": "Keras float", "float32": "TFLite float32", "float16": "TFLite float16",
          "dynamic": "dynamic-range int8", "int8_ptq": "int8 PTQ", "int8_qat": "int8 QAT",
          "pruned_int8": "pruned + int8 PTQ", "pqat": "pruned + PQAT int8", "clustered": "clustered + int8 PTQ",
          "cqat": "clustered + CQAT int8",
          "pruned_uniform_int8": "uniform-pruned + int8 PTQ"}
COLUMNS = ("variant", "label", "size_bytes", "gzip_bytes", "params", "sparsity", "latency_us", "macs", "arena_bytes",
           "energy_uj", "fits", "metric", "metric_drop", "agreement", "exported", "source", "reason")


def build_rows(index: dict[str, dict[str, Any]], metric_name: str, metrics: dict[str, float | None],
               agreements: dict[str, float | None], drops: dict[str, float | None], latencies: dict[str, float],
               reference: dict[str, Any]) -> list[VariantRow]:
    """Rows in catalogue order: the Keras reference first (``reference`` = its size/params/sparsity), then each
    TFLite variant of ``index`` (convert_tflite's ``variants.json``). The keys are assembled in the order the
    file has always had them, then typed (:class:`VariantRow` keeps that order)."""
    rows = [{"variant": "keras", "label": LABELS["keras"], "source": "float", "metric_name": metric_name,
             "metric": metrics.get("keras"), "metric_drop": 0.0, "agreement": 1.0, "latency_us": None,
             "exported": None, **reference}]
    order = list(LABELS)
    for name, entry in sorted(index.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
        rows.append({
            "variant": name, "label": LABELS.get(name, name), "source": entry.get("source"), "mode": entry.get("mode"),
            "file": entry.get("file"), "size_bytes": entry["size_bytes"], "gzip_bytes": entry["gzip_bytes"],
            "params": entry.get("params"), "sparsity": entry.get("sparsity"), "latency_us": latencies.get(name),
            "metric_name": metric_name, "metric": metrics.get(name), "metric_drop": drops.get(name),
            "agreement": agreements.get(name), "input_dtype": entry.get("input_dtype"),
            "float_ops": entry.get("float_ops"), "exported": None,
            # the device cost read from the graph (components/optimization/cost.py), None for older indexes
            **{k: (entry.get("cost") or {}).get(k) for k in ("macs", "arena_bytes", "energy_uj")},
            # a device target's judgement (components/optimization/targets.py), None without a target
            "target": (entry.get("target") or {}).get("target"), "fits": (entry.get("target") or {}).get("fits"),
            "fit_reasons": (entry.get("target") or {}).get("reasons")})
    typed = [VariantRow.from_dict(row, f"variant row '{row['variant']}'") for row in rows]
    float32 = next((r for r in typed if r.variant == "float32"), None)

    def ratio(row: VariantRow, key: str) -> float | None:
        base, value = (getattr(float32, key) if float32 else None), getattr(row, key)
        return round(value / base, 4) if base and value is not None else None

    # ratios against the float32 TFLite model: what the size/latency targets are stated in
    return [row.updated(size_vs_float32=ratio(row, "size_bytes"), gzip_vs_float32=ratio(row, "gzip_bytes"),
                        latency_vs_float32=ratio(row, "latency_us")) for row in typed]


def run_progress(model: str) -> Callable[[int, int], None]:
    """``each`` for ``ModelRunner.run`` while a variant is evaluated (that takes minutes): a stop request is honoured
    between chunks, and once the model has been busy a second the examples it has predicted so far are reported."""
    state: dict[str, Any] = {"done": 0, "busy_s": 0.0, "chunk": None}

    def each(done: int, total: int) -> None:
        if state["chunk"] is not None:  # a chunk has just run
            first, started = state["chunk"]
            state["done"] += done - first
            state["busy_s"] += time.perf_counter() - started
            state["chunk"] = None
            if state["busy_s"] >= 1.0 and progress.would_report("evaluate"):
                progress.report("evaluate", state["done"], None, model=model)
        if done < total:
            progress.check_stop()
            state["chunk"] = (done, time.perf_counter())

    return each


def metric_gate_skipped(rows: Sequence[VariantRow | Mapping[str, Any]], max_metric_drop: float | None) -> str | None:
    """Why the metric bound cannot apply, or None when it does: the Keras reference's own metric is undefined
    (no labels, or no labelled anomaly in eval+test: F1 has no positives), so no variant's drop can be measured.
    Unlabelled normal data is how most detectors are trained; the agreement bound still guards the conversion."""
    keras = next((r for r in map(VariantRow.of, rows) if r.reference), None)
    if max_metric_drop is None or keras is None or keras.metric is not None:
        return None
    return (f"{keras.metric_name or 'metric'} is undefined for the Keras model (no labels, or no labelled "
            "positives in the evaluated splits): max_metric_drop not applied, agreement still gated")


def gate(rows: Sequence[VariantRow | Mapping[str, Any]], min_agreement: float,
         max_metric_drop: float | None) -> list[VariantRow]:
    """Mark each TFLite row ``exported`` (True/False) with a ``reason`` when refused; the Keras row stays None.
    The metric bound is skipped for every row when :func:`metric_gate_skipped` says it cannot apply. Rows may be
    given as JSON objects (a ``variants.json`` as read)."""
    rows = [VariantRow.of(r) for r in rows]
    if metric_gate_skipped(rows, max_metric_drop):
        max_metric_drop = None
    out = []
    for row in rows:
        if not row.reference:
            reasons = []
            if row.agreement is None or row.agreement < min_agreement:
                reasons.append(f"agreement {_fmt(row.agreement)} < {min_agreement}")
            if max_metric_drop is not None and (row.metric_drop is None or row.metric_drop > max_metric_drop):
                reasons.append(f"{row.metric_name} drop {_fmt(row.metric_drop)} > {max_metric_drop}")
            row = row.updated(exported=not reasons, reason="; ".join(reasons) or None)
        out.append(row)
    return out


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def device_header(rows: Sequence[VariantRow]) -> list[str]:
    """The device-cost columns' headings, shared by the variant table and the reports' model comparisons."""
    return ["MACs", "arena (B)", "energy (uJ)", "fits " + next((r.target for r in rows if r.target), "target")]


def device_cells(row: VariantRow | None) -> list[str]:
    """A row's device cost (MACs, arena, estimated energy) and its fit to the target with the reasons."""
    if row is None:
        return ["n/a"] * 3 + ["-"]
    return [_fmt(row.macs), _fmt(row.arena_bytes), _fmt(row.energy_uj, 3),
            "-" if row.fits is None else ("yes" if row.fits else "no: " + "; ".join(row.fit_reasons or []))]


def _cells(row: VariantRow) -> list[str]:
    return [row.variant, row.label or "", _fmt(row.size_bytes), _fmt(row.gzip_bytes),
            _fmt(row.params), _fmt(row.sparsity, 3), _fmt(row.latency_us, 3), *device_cells(row),
            _fmt(row.metric), _fmt(row.metric_drop, 3), _fmt(row.agreement),
            "-" if row.exported is None else _fmt(row.exported), row.source or "", row.reason or ""]


def _header(rows: list[VariantRow]) -> list[str]:
    metric = (rows[0].metric_name if rows else None) or "metric"
    return ["variant", "model", "size (B)", "gzip (B)", "params", "sparsity", "latency (us)", *device_header(rows),
            metric, f"{metric} drop", "agreement", "exported", "source", "note"]


def to_markdown(rows: list[VariantRow]) -> str:
    head = _header(rows)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in _cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_html(rows: list[VariantRow]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _header(rows))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r)) + "</tr>" for r in rows)
    return ("<!doctype html><meta charset=\"utf-8\"><title>edgepipe variants</title>"
            "<style>table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;"
            "text-align:right}</style>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n")


def write_table(artifact, rows: list[VariantRow]) -> None:
    """``variants.json`` (list of rows), ``variants.md`` and ``variants.html`` into ``artifact``."""
    artifact.write_json("variants.json", rows_to_json(rows))
    artifact.file("variants.md").write_text(to_markdown(rows))
    artifact.file("variants.html").write_text(to_html(rows))

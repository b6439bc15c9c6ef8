"""Anomaly detection on sensor series: an autoencoder scores windows by reconstruction error against a threshold.

The evaluation computes its own metric (F1 of each model with its own threshold, agreement of decisions on the
eval and test windows), so the metric here carries only its name and direction for the variant table and the gate.
Its bundle part (:func:`series_bundle`) is the device contract for a stream: how to build a window (size, stride,
channel order, normalization), the score, and which threshold goes with which model file.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt

from edgepipe.tasks.base import Task, register
from edgepipe.pipeline.contracts import EvaluationReport
from edgepipe.tasks.bundle import fmt
from edgepipe.tasks.metrics import TaskMetric
from edgepipe.runtime.scores import describe
from edgepipe.runtime.scores import KINDS as SCORE_KINDS
from edgepipe.tasks.sections import EvaluateSection

EVAL_SPLITS = ("eval", "test")  # the windows thresholds are judged on (fitted on the normal train windows)


class AnomalyEvaluate(EvaluateSection):
    """``evaluate`` of the anomaly detector: each model's threshold, its input domain, the gated agreement."""

    threshold_quantile: float = Field(0.995, gt=0.0, le=1.0)
    threshold_margin: float = Field(1.0, gt=0.0)
    # the model input domain. "train_range": every model (Keras reference, float and int8 files) sees the normalized
    # window clipped to the train windows' [min, max] (what int8 input saturation does anyway); the score still
    # compares the unclipped window, so values outside the trained range count as error
    input_clip: Literal["none", "train_range"] = "train_range"
    # windows whose Keras score is within this relative band of its threshold are left out of the agreement the
    # export gate judges (a near-threshold window is a coin toss int8 rounding may flip)
    agreement_band: float = Field(0.1, ge=0.0)
    # how a window's per-step errors become its score (runtime/scores.py: the device scores the same way, from
    # bundle.json -> score); newest_mse scores the newest `score_steps` steps, the rest is context
    score: Literal[tuple(SCORE_KINDS)] = "reconstruction_mse"  # the runtime's score registry; nab.yaml: newest_mse
    score_steps: PositiveInt = 4

    def splits(self) -> tuple[str, ...] | None:
        return EVAL_SPLITS


def series_bundle(ctx):
    """Windows, normalization, input clip, score definition and per-model thresholds, the detection metrics the
    models were gated on, and SUMMARY.md."""
    from edgepipe.tasks.bundle import BundleParts

    report, keys = ctx.evaluation, ctx.keys
    w = ctx.windows or {}
    names = w.get("channel_names")
    clip = report.input_clip
    fields = {
        "window": {"size": w.get("size"), "stride": w.get("stride"), "channels": w.get("channels"),
                   "channel_names": list(names) if isinstance(names, (list, tuple)) else None,
                   "layout": "[batch, window_size, channels], channels in channel_names order"},
        "normalization": ctx.transform,
        **({"input_clip": clip} if clip else {}),
        "score": report.score if isinstance(report.score, dict) else describe(  # before: a name only
            "reconstruction_mse", None, bool(clip)),
        "thresholds": {ctx.files[v]: report.thresholds[v] for v in ctx.files},
        "metrics": {"threshold_quantile": report.threshold_quantile,
                    "threshold_margin": report.threshold_margin,
                    "per_model": {"keras": report.metrics["keras"],
                                  **{keys.get(v, v): report.metrics[v] for v in ctx.files if v in report.metrics}},
                    "agreement_with_keras": {keys.get(v, v): a for v, a in report.agreement.items()},
                    **({"agreement_gate": report.agreement_gate.to_dict()} if report.agreement_gate else {}),
                    "min_agreement": ctx.gate["min_agreement"], "max_metric_drop": ctx.gate["max_metric_drop"],
                    "counts": report.counts,
                    **({"metric_gate": f"skipped: {ctx.gate['metric_gate']}"} if ctx.gate.get("metric_gate") else {})}}
    model_fields = {keys[v]: {"threshold": report.thresholds[v]} for v in ctx.files}
    prior = _likelihood_prior(ctx)
    if prior:
        fields["likelihood"] = prior
    return BundleParts(fields=fields, model_fields=model_fields)


def _likelihood_prior(ctx) -> dict[str, float] | None:
    """The runtime's anomaly likelihood (``runtime/likelihood.py``) starts from the shipped model's raw scores on
    the normal training windows (mean and population std), so a stream can alert from its first windows instead of
    learning for a day first; None without such scores."""
    import numpy as np

    path = ctx.evaluation_dir / "errors.npz"
    if not path.exists():
        return None
    with np.load(path) as saved:
        key = f"train__{ctx.chosen}"
        scores = saved[key].astype(np.float64) if key in saved.files else np.zeros(0)
    if len(scores) < 2 or not np.isfinite(scores).all() or scores.std() <= 0:
        return None
    return {"initial_mean": float(scores.mean()), "initial_std": float(scores.std())}


def series_summary(doc: dict[str, Any], report: EvaluationReport | dict[str, Any], table: str) -> str:
    """SUMMARY.md of an anomaly bundle: the models, their thresholds and detection metrics, the gate."""
    report = EvaluationReport.of(report, "evaluation.json")
    q = doc["input"]["quantization"] or {}
    lines = [
        "# Anomaly detector bundle", "",
        f"Windows of {doc['window']['size']} steps x {doc['window']['channels']} channels "
        f"(stride {doc['window']['stride']}), normalized as in `bundle.json` -> `normalization`.",
        f"Score: {doc['score']['definition'] if doc.get('score') else 'reconstruction MSE'}; a window is anomalous "
        "when the score exceeds the model file's threshold.", "",
        f"| file | variant | size | threshold | F1 ({report.pooled}) | AUC | decisions agree: all | clear decisions "
        "(gated) | score rank correlation |",
        "|---|---|---|---|---|---|---|---|---|"]
    for entry in doc["models"].values():
        variant = entry["variant"]
        m = report.model_metrics(variant).get("all", {})
        a = report.agreement.get(variant, {})
        lines.append(f"| `{entry['file']}` | {variant} | {entry['size_bytes'] / 1024:.1f} KiB | "
                     f"{fmt(entry['threshold'])} | {fmt(m.get('f1'))} | {fmt(m.get('auc'))} | {fmt(a.get('all'))} | "
                     f"{fmt(a.get('decisive'))} | {fmt(a.get('score_correlation'))} |")
    gate = report.agreement_gate
    if gate:
        lines += ["", f"Agreement with Keras: decisions on all {report.pooled} windows, and (what the export gate "
                      f"judges) {gate.definition}: windows within {gate.band:.0%} of the threshold are a coin toss "
                      "that int8 rounding may flip. Rank correlation: the order of the scores, which the streaming "
                      "likelihood uses."]
    k = report.model_metrics("keras").get("all", {})
    metrics = doc["metrics"]
    lines += ["", f"Keras reference: F1 {fmt(k.get('f1'))}, AUC {fmt(k.get('auc'))}; "
                  f"export gate: agreement >= {metrics['min_agreement']}"
                  + (f", F1 drop <= {metrics['max_metric_drop']}" if metrics["max_metric_drop"] is not None
                     and "metric_gate" not in metrics else "")
                  + (f" (F1 bound {metrics['metric_gate']})" if "metric_gate" in metrics else "")
                  + f"; `model.tflite` is variant `{doc['primary_variant']}`."
              + (f" Why: {doc['primary_reason']}." if doc.get("primary_reason") else ""),
              f"int8 input: scale {fmt(q.get('scale'))}, zero point {fmt(q.get('zero_point'))} "
              f"(q = round(x / scale) + zero_point).", "",
              "## All variants (`variants.json`)", "", table,
              "Built with " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".", ""]
    return "\n".join(lines)


ANOMALY = register(Task(
    name="anomaly", description="windows of a sensor series scored by reconstruction error; alarms above a "
    "threshold fitted on normal training windows", runtime="anomaly_detection",
    metric=TaskMetric("f1", True), label="none", loss="mse", data="windows", calibration="windows",
    template="anomaly_detection", evaluation="anomaly", configurable=False, bundle=series_bundle,
    verification=lambda ctx: {}, summary=series_summary, evaluate=AnomalyEvaluate))

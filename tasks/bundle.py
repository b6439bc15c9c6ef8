"""What a task adds to its bundle: the contract between the one exporter (``components/export``) and each task.

The exporter gates the variants, reads every model's tensors and writes the files; a task turns the same facts
(:class:`BundleContext`) into its part of ``bundle.json`` (:class:`BundleParts`): how a device prepares input
(preprocessing), reads the output (labels, thresholds, latent sampler ...), the metrics it was shipped on, the
inputs and outputs a device can check itself against (``verification.npz``), extra files and a human summary.
:func:`standard_bundle` serves every task fed Examples or an environment; the anomaly task writes its own (windows,
normalization and per-model thresholds).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgepipe.pipeline.contracts import EvaluationReport

if TYPE_CHECKING:  # models.spec imports this package: the card is only an annotation here
    from edgepipe.models.card import ModelCard


@dataclass
class BundleContext:
    """What the exporter knows once the gate has chosen: the shipped variants and everything evaluated about them."""

    task: Any  # the Task
    card: ModelCard  # the trained model's card (family, data spec, environment ...)
    model_dir: Path  # the trained model artifact (an autoencoder's encoder.h5 lives there)
    report: dict[str, Any]  # evaluation.json as written (the bundle's copy); typed: :attr:`evaluation`
    evaluation_dir: Path  # the evaluation artifact (predictions.npz, errors.npz)
    chosen: str  # the variant shipped as model.tflite
    files: dict[str, str]  # variant -> file name
    keys: dict[str, str]  # variant -> key in bundle.json models
    io: dict[str, dict[str, Any]]  # variant -> tensors (runtime.litert.io_spec)
    content: dict[str, bytes]  # variant -> .tflite bytes
    gate: dict[str, Any]  # min_agreement, max_metric_drop, metric_gate (None when not gated: float32 verified)
    seed: int = 0
    tolerance: float = 1e-3
    verify_samples: int = 16
    transform: dict[str, Any] | None = None  # the fitted normalization (series) or table transform (+ schema)
    windows: dict[str, Any] | None = None  # window size, stride, channels, channel names (series)

    @property
    def evaluation(self) -> EvaluationReport:
        """``report`` as the typed :class:`EvaluationReport` (fields instead of dict keys)."""
        return EvaluationReport.of(self.report, "evaluation.json")


@dataclass
class BundleParts:
    fields: dict[str, Any] = field(default_factory=dict)  # top-level bundle.json keys
    model_fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # models key -> extra entries
    files: dict[str, bytes] = field(default_factory=dict)  # extra files (encoder.tflite)
    verification: dict[str, np.ndarray] = field(default_factory=dict)


def preprocessing(ctx: BundleContext) -> dict[str, Any]:
    """What the pipeline did to raw data before the model, for tasks fed Examples: a transformed table gives the
    raw CSV ``columns`` it reads, the fitted ``transform`` (``components/data/transform.py``: imputation, scaling,
    vocabularies) that turns them into the model's ``features`` and the train ``schema`` the runtime reports skew
    against; otherwise values unchanged (tables: the columns in ``features`` order; images: pixel values as in
    the data, 0..1, so an 8-bit image file is scaled by 1/255 after a bilinear resize)."""
    spec = ctx.card.data_spec
    shape = list(spec.input_shape) if spec else []
    extra = (spec.extra if spec else None) or {}
    features = extra.get("features") or []
    x_key = extra.get("x_key", "x")
    if features and features != [x_key]:
        table = ctx.transform if ctx.transform and "outputs" in ctx.transform else None
        if table is None:
            return {"kind": "table", "features": list(features), "transform": "none"}
        rules = {k: v for k, v in table.items() if k != "schema"}
        return {"kind": "table", "features": list(features), "columns": list(table["features"]),
                "transform": rules, **({"schema": table["schema"]} if table.get("schema") else {})}
    if len(shape) == 3:
        return {"kind": "image", "transform": "none",
                "image": {"height": shape[0], "width": shape[1], "channels": shape[2], "resize": "bilinear",
                          "scale": 1 / 255, "offset": 0.0, "applies_to": "8-bit image files"}}
    return {"kind": "sequence" if len(shape) == 2 else "features", "transform": "none"}


def evaluated_examples(ctx: BundleContext) -> dict[str, np.ndarray]:
    """The evaluation's own inputs and the shipped model's outputs on them (``predictions.npz``); with no variant
    stage (float32 shipped) the evaluation ran Keras only, so the shipped file is run here on those inputs."""
    from edgepipe.runtime.litert import ModelRunner

    path = ctx.evaluation_dir / "predictions.npz"
    if not path.exists():
        return {}
    with np.load(path) as saved:
        x = saved["x"][:64]
        if ctx.chosen in saved.files:
            return {"x": x, "output": saved[ctx.chosen][:64]}
    io = ctx.io[ctx.chosen]
    if len(io.get("inputs") or [io["input"]]) != 1 or not len(x):
        return {}
    runner = ModelRunner(ctx.content[ctx.chosen], max_batch=1)
    return {"x": x, "output": runner.run_named(runner.by_name([np.asarray(x)]))}


def shipped_metrics(ctx: BundleContext) -> dict[str, Any]:
    """The variant metric and agreement each shipped model was gated on, and the evaluation's own metrics."""
    report, keys = ctx.evaluation, ctx.keys
    name = report.metric_name
    per_model = report.variant_metrics or {}
    gated = ctx.gate.get("min_agreement") is not None
    return {"split": report.split, "metric_name": name,
            "per_model": {keys.get(v, v): {"all": {name: m}} for v, m in per_model.items()
                          if v == "keras" or v in keys},
            "agreement_with_keras": {keys.get(v, v): report.agreement_all(v) for v in report.agreement},
            "min_agreement": ctx.gate.get("min_agreement") if gated else None,
            "max_metric_drop": ctx.gate.get("max_metric_drop") if gated else None,
            **({"metric_gate": f"skipped: {ctx.gate['metric_gate']}"} if ctx.gate.get("metric_gate") else {}),
            "evaluation": report.metrics if "metrics" in report.recorded else None}


def standard_bundle(ctx: BundleContext) -> BundleParts:
    """The bundle part of a task fed Examples or an environment: its preprocessing, output fields, metrics and
    verification examples, each from the task's declaration."""
    task = ctx.task
    fields = {"preprocessing": task.preprocessing(ctx), "metrics": shipped_metrics(ctx),
              **task.bundle_fields(ctx.card, ctx.io[ctx.chosen])}
    return BundleParts(fields=fields, verification=task.verification(ctx))


def fmt(value: Any) -> str:
    """A number for a summary line: 4 significant digits, n/a for None."""
    if value is None:
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def standard_summary(doc: dict[str, Any], report: dict[str, Any], table: str) -> str:
    """SUMMARY.md: what the bundle does, the shipped model and why, the metric it was gated on, every variant."""
    metrics = doc.get("metrics") or {}
    name = metrics.get("metric_name")
    keras = ((metrics.get("per_model") or {}).get("keras") or {}).get("all", {}).get(name) if name else None
    lines = [f"# {doc.get('family') or 'model'} bundle: {doc['task']}", "",
             f"`model.tflite` is variant `{doc['primary_variant']}` ({doc['input']['dtype']} input "
             f"{doc['input']['shape']}, {doc['output']['dtype']} output {doc['output']['shape']}); preprocessing: "
             f"{(doc.get('preprocessing') or {}).get('kind', 'n/a')}.",
             f"Why this model: {(doc.get('quantization') or {}).get('reason') or doc.get('primary_reason') or 'the first int8 variant that passes the export bounds'}.",
             ""]
    if name:
        lines.append(f"Keras reference {name}: {fmt(keras)}; export gate: agreement >= "
                     f"{fmt(metrics.get('min_agreement'))}, {name} drop <= {fmt(metrics.get('max_metric_drop'))}.")
    if table:
        lines += ["", "## All variants (`variants.json`)", "", table]
    lines += ["Built with " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".", ""]
    return "\n".join(lines)

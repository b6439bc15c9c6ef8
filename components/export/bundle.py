"""Export the verified on-device bundle: int8 model, float fallback, and everything a device needs to use them.

The gate comes first: if the primary int8 variant's anomaly decisions agree with the Keras float model's on fewer
than ``min_agreement`` of the eval+test windows (or its F1 drops by more than ``max_metric_drop``), nothing is written
and the pipeline stops with a VerificationError (exit 4). Every other variant is gated the same way but only marked
``exported: false`` in the variant table when it fails. ``bundle.json`` is the device-side contract: how to build a
window (size, stride, channel order, normalization), how to (de)quantize the int8 tensors, and which threshold goes
with which model file; ``variants.json/.md/.html`` compare all variants.
"""
from __future__ import annotations

import hashlib
import platform
import shutil
from importlib import metadata
from typing import Any

import numpy as np

from edgepipe.pipeline.artifacts import Bundle, Examples, ModelEvaluation, Report, TFLiteModels, TransformParams
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import VerificationError
from edgepipe.runtime.litert import io_spec

SCHEMA_VERSION = 1
FILES = {"int8": "model.tflite", "float32": "model_float32.tflite"}  # bundle.json keys -> file names
PACKAGES = {"tensorflow": "tensorflow", "tf_keras": "tf-keras", "tfmot": "tensorflow-model-optimization",
            "ai_edge_litert": "ai-edge-litert", "apache_beam": "apache-beam", "edgepipe": "edgepipe"}


@component(version="3")
def export_bundle(tflite: Input[TFLiteModels], evaluation: Input[ModelEvaluation], transform: Input[TransformParams],
                  windows: Input[Examples], bundle: Output[Bundle], report: Input[Report] | None = None,
                  min_agreement: float = 0.98, max_metric_drop: float | None = None, primary: str = "auto") -> dict:
    """Refuse (VerificationError) when the ``primary`` variant fails the bounds; else write the passing models,
    bundle.json, SUMMARY.md and the gated variant table. ``primary="auto"``: see optimization/variants.py."""
    from edgepipe.components.evaluation.variants import gate, metric_gate_skipped, write_table
    from edgepipe.components.optimization.variants import gated_primary

    report_html = report  # optional Report input (copied into the bundle); below, `report` is evaluation.json
    report = evaluation.read_json("evaluation.json")
    table = _table(evaluation, report)
    skipped = metric_gate_skipped(table, max_metric_drop)
    rows = gate(table, min_agreement, max_metric_drop)
    chosen, choice = gated_primary(primary, rows)
    passed = {r["variant"] for r in rows if r.get("exported")}
    files = {chosen: FILES["int8"], **({"float32": FILES["float32"]} if "float32" in passed else {}),
             **{v: f"model_{v}.tflite" for v in sorted(passed - {chosen, "float32"})}}
    content = _verified_models(tflite, report, min_agreement, chosen, rows, files)
    for row in rows:
        row["file"] = files.get(row["variant"]) if row.get("exported") else None
        row["primary"] = row["variant"] == chosen
    io = {variant: io_spec(data) for variant, data in content.items()}
    normalization = transform.read_json("transform.json")
    window_size, num_channels = (int(v) for v in windows.feature_spec["window"]["shape"])
    channel_names = windows.properties.get("channels")
    keys = {chosen: "int8", "float32": "float32"}  # the device contract's names for the two main files
    models = {keys.get(variant, variant): {
        "file": name, "variant": variant, "threshold": report["thresholds"][variant], "size_bytes": len(content[variant]),
        "sha256": hashlib.sha256(content[variant]).hexdigest(), **io[variant]} for variant, name in files.items()}
    per_model = {"keras": report["metrics"]["keras"],
                 **{keys.get(v, v): report["metrics"][v] for v in files if v in report["metrics"]}}
    agreement = {keys.get(v, v): a for v, a in report["agreement"].items()}
    doc = {
        "schema_version": SCHEMA_VERSION, "task": "anomaly_detection", "default_model": FILES["int8"],
        "primary_variant": chosen, **({"primary_reason": choice} if choice else {}),
        "input": io[chosen]["input"], "output": io[chosen]["output"],
        "window": {"size": window_size, "stride": windows.properties.get("stride"),
                   "channels": num_channels,
                   "channel_names": list(channel_names) if isinstance(channel_names, (list, tuple)) else None,
                   "layout": "[batch, window_size, channels], channels in channel_names order"},
        "normalization": normalization,
        **({"input_clip": report["input_clip"]} if report.get("input_clip") else {}),
        "score": {"kind": "reconstruction_mse",
                  "definition": "mean over steps and channels of (x - y)^2, x the normalized float window (before "
                                "input quantization), y the model output (dequantized for int8)"
                                + ("; the model is fed x clipped to [input_clip.min, input_clip.max]"
                                   if report.get("input_clip") else ""),
                  "anomaly_if": "score > threshold of the model file used"},
        "models": models,
        "thresholds": {name: report["thresholds"][v] for v, name in files.items()},
        "metrics": {"threshold_quantile": report["threshold_quantile"], "threshold_margin": report["threshold_margin"],
                    "per_model": per_model, "agreement_with_keras": agreement, "min_agreement": min_agreement,
                    "max_metric_drop": max_metric_drop, "counts": report["counts"],
                    **({"metric_gate": f"skipped: {skipped}"} if skipped else {})},
        "variants_file": "variants.json",
        "versions": _versions()}
    # Everything is computed and verified; only now does anything land in the bundle.
    for variant, data in content.items():
        bundle.file(files[variant]).write_bytes(data)
    bundle.write_json("bundle.json", doc)
    write_table(bundle, rows)
    bundle.file("SUMMARY.md").write_text(_summary(doc, report, rows))
    bundle.properties.update({"schema_version": SCHEMA_VERSION, "task": "anomaly_detection", "primary": chosen,
                              "files": sorted([*files.values(), "bundle.json", "SUMMARY.md", "variants.json",
                                               "variants.md", "variants.html"])})
    if report_html is not None and (report_html.path / Report.filename).is_file():  # the run's report.html
        shutil.copyfile(report_html.path / Report.filename, bundle.file(Report.filename))
        bundle.properties["files"] = sorted([*bundle.properties["files"], Report.filename])
    return {"int8_agreement": report["agreement"][chosen]["all"], "int8_bytes": len(content[chosen]),
            "float32_bytes": len(content["float32"]) if "float32" in content else None,
            "variants_exported": len(content), "variants_refused": sum(r.get("exported") is False for r in rows)}


def _table(evaluation: ModelEvaluation, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The evaluation's variant table, agreement re-read from evaluation.json (the numbers the gate trusts)."""
    rows = evaluation.read_json("variants.json") if (evaluation.path / "variants.json").exists() else [
        {"variant": v, "label": v, "metric_name": "f1", "metric": None, "metric_drop": None}
        for v in ("keras", *[m for m in report.get("models", {}) if m != "keras"])]
    for row in rows:
        if row["variant"] != "keras":
            row["agreement"] = (report.get("agreement", {}).get(row["variant"]) or {}).get("all")
    return rows


def _verified_models(tflite: TFLiteModels, report: dict[str, Any], min_agreement: float, primary: str,
                     rows: list[dict[str, Any]], files: dict[str, str]) -> dict[str, bytes]:
    """The exported variants' bytes, after checking the primary's gate and that each is the file evaluated."""
    measured = (report.get("agreement", {}).get(primary) or {}).get("all")
    if measured is None or not np.isfinite(measured):
        raise VerificationError(f"agreement of the primary variant '{primary}' with the Keras model was not measured "
                                "(no such variant, or no eval/test windows or thresholds); nothing exported")
    if measured < min_agreement:
        raise VerificationError(f"primary int8 variant '{primary}' agrees with the Keras model on {measured:.4f} of "
                                f"eval+test windows, below min_agreement {min_agreement:.4f}; nothing exported")
    row = next((r for r in rows if r["variant"] == primary), None)
    if row is not None and not row["exported"]:
        raise VerificationError(f"primary int8 variant '{primary}' fails the export bounds ({row['reason']}); "
                                "nothing exported")
    content = {}
    for variant in files:
        path = tflite.variant_path(variant)
        if not path.exists():
            raise VerificationError(f"TFLite variant '{variant}' is missing from {tflite.path}; nothing exported")
        data = path.read_bytes()
        evaluated = report.get("models", {}).get(variant, {}).get("sha256")
        if evaluated != hashlib.sha256(data).hexdigest():
            raise VerificationError(f"{path.name} differs from the model that was evaluated (sha256 mismatch); "
                                    "nothing exported")
        content[variant] = data
    return content


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for key, dist in PACKAGES.items():
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[key] = None
    found["python"] = platform.python_version()
    return found


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _summary(doc: dict[str, Any], report: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    from edgepipe.components.evaluation.variants import to_markdown

    q = doc["input"]["quantization"] or {}
    lines = [
        "# Anomaly detector bundle", "",
        f"Windows of {doc['window']['size']} steps x {doc['window']['channels']} channels "
        f"(stride {doc['window']['stride']}), normalized as in `bundle.json` -> `normalization`.",
        f"Score: reconstruction MSE; a window is anomalous when the score exceeds the model file's threshold.", "",
        "| file | variant | size | threshold | F1 (eval+test) | AUC | agreement with Keras |",
        "|---|---|---|---|---|---|---|"]
    for entry in doc["models"].values():
        variant = entry["variant"]
        m = report["metrics"].get(variant, {}).get("all", {})
        lines.append(f"| `{entry['file']}` | {variant} | {entry['size_bytes'] / 1024:.1f} KiB | "
                     f"{_fmt(entry['threshold'])} | {_fmt(m.get('f1'))} | {_fmt(m.get('auc'))} | "
                     f"{_fmt(report['agreement'].get(variant, {}).get('all'))} |")
    k = report["metrics"].get("keras", {}).get("all", {})
    lines += ["", f"Keras reference: F1 {_fmt(k.get('f1'))}, AUC {_fmt(k.get('auc'))}; "
                  f"export gate: agreement >= {doc['metrics']['min_agreement']}"
                  + (f", F1 drop <= {doc['metrics']['max_metric_drop']}" if doc["metrics"]["max_metric_drop"]
                     is not None and "metric_gate" not in doc["metrics"] else "")
                  + (f" (F1 bound {doc['metrics']['metric_gate']})" if "metric_gate" in doc["metrics"] else "")
                  + f"; `model.tflite` is variant `{doc['primary_variant']}`."
              + (f" Why: {doc['primary_reason']}." if doc.get("primary_reason") else ""),
              f"int8 input: scale {q.get('scale')}, zero point {q.get('zero_point')} "
              f"(q = round(x / scale) + zero_point).", "",
              "## All variants (`variants.json`)", "", to_markdown(rows),
              "Built with " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".", ""]
    return "\n".join(lines)

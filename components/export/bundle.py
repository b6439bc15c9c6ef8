"""Export the verified on-device bundle: int8 model, float fallback, and everything a device needs to use them.

The gate comes first: if the int8 model's anomaly decisions agree with the Keras model's on fewer than
``min_agreement`` of the eval+test windows, nothing is written and the pipeline stops with a VerificationError
(exit 4). ``bundle.json`` is the device-side contract: how to build a window (size, stride, channel order,
normalization), how to (de)quantize the int8 tensors, and which threshold goes with which model file.
"""
from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from typing import Any

import numpy as np

from edgepipe.pipeline.artifacts import Bundle, Examples, ModelEvaluation, TFLiteModels, TransformParams
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import VerificationError

SCHEMA_VERSION = 1
FILES = {"int8": "model.tflite", "float32": "model_float32.tflite"}
PACKAGES = {"tensorflow": "tensorflow", "tf_keras": "tf-keras", "tfmot": "tensorflow-model-optimization",
            "ai_edge_litert": "ai-edge-litert", "apache_beam": "apache-beam", "edgepipe": "edgepipe"}


@component
def export_bundle(tflite: Input[TFLiteModels], evaluation: Input[ModelEvaluation], transform: Input[TransformParams],
                  windows: Input[Examples], bundle: Output[Bundle], min_agreement: float = 0.98) -> dict:
    """Refuse (VerificationError) below ``min_agreement``; else write the models, bundle.json and SUMMARY.md."""
    report = evaluation.read_json("evaluation.json")
    content = _verified_models(tflite, report, min_agreement)
    io = {variant: _io_spec(data) for variant, data in content.items()}
    normalization = transform.read_json("transform.json")
    window_size, num_channels = (int(v) for v in windows.feature_spec["window"]["shape"])
    channel_names = windows.properties.get("channels")
    models = {variant: {"file": name, "threshold": report["thresholds"][variant], "size_bytes": len(content[variant]),
                        "sha256": hashlib.sha256(content[variant]).hexdigest(), **io[variant]}
              for variant, name in FILES.items()}
    doc = {
        "schema_version": SCHEMA_VERSION, "task": "anomaly_detection", "default_model": FILES["int8"],
        "input": io["int8"]["input"], "output": io["int8"]["output"],
        "window": {"size": window_size, "stride": windows.properties.get("stride"),
                   "channels": num_channels,
                   "channel_names": list(channel_names) if isinstance(channel_names, (list, tuple)) else None,
                   "layout": "[batch, window_size, channels], channels in channel_names order"},
        "normalization": normalization,
        "score": {"kind": "reconstruction_mse",
                  "definition": "mean over steps and channels of (x - y)^2, x the normalized float window (before "
                                "input quantization), y the model output (dequantized for int8)",
                  "anomaly_if": "score > threshold of the model file used"},
        "models": models,
        "thresholds": {FILES[v]: report["thresholds"][v] for v in FILES},
        "metrics": {"threshold_quantile": report["threshold_quantile"], "threshold_margin": report["threshold_margin"],
                    "per_model": {k: report["metrics"][k] for k in ("keras", *FILES) if k in report["metrics"]},
                    "agreement_with_keras": report["agreement"], "min_agreement": min_agreement,
                    "counts": report["counts"]},
        "versions": _versions()}
    # Everything is computed and verified; only now does anything land in the bundle.
    for variant, data in content.items():
        bundle.file(FILES[variant]).write_bytes(data)
    bundle.write_json("bundle.json", doc)
    bundle.file("SUMMARY.md").write_text(_summary(doc, report))
    bundle.properties.update({"schema_version": SCHEMA_VERSION, "task": "anomaly_detection",
                              "files": sorted([*FILES.values(), "bundle.json", "SUMMARY.md"])})
    return {"int8_agreement": report["agreement"]["int8"]["all"], "int8_bytes": len(content["int8"]),
            "float32_bytes": len(content["float32"])}


def _verified_models(tflite: TFLiteModels, report: dict[str, Any], min_agreement: float) -> dict[str, bytes]:
    """The variants' bytes, after checking the int8 gate and that they are the very files that were evaluated."""
    measured = (report.get("agreement", {}).get("int8") or {}).get("all")
    if measured is None or not np.isfinite(measured):
        raise VerificationError("int8 agreement with the Keras model was not measured (no int8 variant, or no "
                                "eval/test windows or thresholds); nothing exported")
    if measured < min_agreement:
        raise VerificationError(f"int8 model agrees with the Keras model on {measured:.4f} of eval+test windows, "
                                f"below min_agreement {min_agreement:.4f}; nothing exported")
    content = {}
    for variant in FILES:
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


def _io_spec(model: bytes) -> dict[str, Any]:
    """Input/output name, shape, dtype and quantization read from the model itself (the device's source of truth).

    One batch-1 invoke materializes shapes the converter left dynamic (Conv1DTranspose output length); only the
    batch dimension is reported as ``null``.
    """
    from edgepipe.components.optimization.tflite import TFLiteRunner

    runner = TFLiteRunner(model)
    runner.predict(np.zeros((1, *runner.input_details["shape"][1:]), dtype=np.float32))

    def describe(details: dict[str, Any]) -> dict[str, Any]:
        scale, zero_point = details["quantization"]
        shape = [None, *(int(v) for v in details["shape"][1:])]
        return {"name": details["name"], "shape": shape, "dtype": np.dtype(details["dtype"]).name,
                "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if scale else None}

    return {"input": describe(runner.input_details), "output": describe(runner.output_details)}


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


def _summary(doc: dict[str, Any], report: dict[str, Any]) -> str:
    q = doc["input"]["quantization"] or {}
    lines = [
        "# Anomaly detector bundle", "",
        f"Windows of {doc['window']['size']} steps x {doc['window']['channels']} channels "
        f"(stride {doc['window']['stride']}), normalized as in `bundle.json` -> `normalization`.",
        f"Score: reconstruction MSE; a window is anomalous when the score exceeds the model file's threshold.", "",
        "| file | size | threshold | F1 (eval+test) | AUC | agreement with Keras |",
        "|---|---|---|---|---|---|"]
    for variant, entry in doc["models"].items():
        m = report["metrics"].get(variant, {}).get("all", {})
        lines.append(f"| `{entry['file']}` | {entry['size_bytes'] / 1024:.1f} KiB | {_fmt(entry['threshold'])} | "
                     f"{_fmt(m.get('f1'))} | {_fmt(m.get('auc'))} | "
                     f"{_fmt(report['agreement'].get(variant, {}).get('all'))} |")
    k = report["metrics"].get("keras", {}).get("all", {})
    lines += ["", f"Keras reference: F1 {_fmt(k.get('f1'))}, AUC {_fmt(k.get('auc'))}; "
                  f"export gate: int8 agreement >= {doc['metrics']['min_agreement']}.",
              f"int8 input: scale {q.get('scale')}, zero point {q.get('zero_point')} "
              f"(q = round(x / scale) + zero_point).", "",
              "Built with " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".", ""]
    return "\n".join(lines)

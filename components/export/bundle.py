"""export_bundle: the one exporter. Gate, verify, then write the on-device bundle of any task.

With ``tflite`` (a variant stage ran) the evaluation's rows go through the gate (``gate.py``); without, the float32
model is converted and checked against Keras here (``float32.py``) and ``quantization.reason`` says why it is not
int8. The task (``edgepipe.tasks``) then adds its part of ``bundle.json`` -- preprocessing, how to read the output,
thresholds, the metrics it was shipped on, verification examples -- and the document is validated with the
runtime's own validator before anything is written: a bundle a device would refuse is an exporter bug, never
shipped. ``bundle.json`` carries every model's tensors read from the file itself (name, shape, dtype, scale, zero
point), so a device never guesses; SUMMARY.md, the gated variant table and the run's report.html go beside it.
"""
from __future__ import annotations

import hashlib
import platform
import shutil
from importlib import metadata
from typing import Any

import numpy as np

from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import (Bundle, Examples, Model, ModelBlessing, ModelEvaluation, Report,
                                         TFLiteModels, TransformParams)
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import VerificationError
from edgepipe.runtime.litert import io_spec

SCHEMA_VERSION = 1
PACKAGES = {"tensorflow": "tensorflow", "tf_keras": "tf-keras", "tfmot": "tensorflow-model-optimization",
            "ai_edge_litert": "ai-edge-litert", "apache_beam": "apache-beam", "edgepipe": "edgepipe"}


@component(version="5")
def export_bundle(model: Input[Model], evaluation: Input[ModelEvaluation], bundle: Output[Bundle],
                  tflite: Input[TFLiteModels] | None = None, report: Input[Report] | None = None,
                  transform: Input[TransformParams] | None = None, windows: Input[Examples] | None = None,
                  blessing: Input[ModelBlessing] | None = None,
                  task: str | None = None, min_agreement: float = 0.98, max_metric_drop: float | None = None,
                  primary: str = "auto", float_fallback: bool = False, float_reason: str | None = None,
                  tolerance: float = 1e-3, verify_samples: int = 16, seed: int = 0) -> dict:
    """Refuse (VerificationError, exit 4, nothing written) when the primary fails the bounds; else write the
    passing models, ``bundle.json``, ``SUMMARY.md``, ``evaluation.json``, ``verification.npz`` (when the task has
    examples to check), the gated variant table and report.html. ``task``: the model card's unless given.
    ``blessing`` (a retrain): the shipped variant must be blessed against the last exported bundle, else refused."""
    from edgepipe import tasks
    from edgepipe.components.evaluation.variants import to_markdown, write_table
    from edgepipe.tasks.bundle import BundleContext

    card = ModelCard.of(model)
    declared = tasks.get(task or card.task or "")
    doc_eval = evaluation.report()
    if doc_eval is None:
        raise VerificationError(f"{evaluation.path}: no evaluation.json to export from; nothing exported")
    diff = None
    if tflite is not None:
        from edgepipe.components.export.gate import gate_variants

        gated = gate_variants(tflite, evaluation, doc_eval, min_agreement, max_metric_drop, primary, float_fallback)
        chosen, reason, rows, content = gated.chosen, gated.reason, gated.rows, gated.content
        gate = {"min_agreement": min_agreement, "max_metric_drop": max_metric_drop, "metric_gate": gated.skipped}
    else:
        from edgepipe.components.export.float32 import verified_float32

        int_high = int(card.classes or 2)
        data, diff = verified_float32(model.load_keras(), tolerance, verify_samples, int_high=int_high)
        chosen, rows, content = "float32", None, {"float32": data}
        reason = float_reason or "no variant stage for this model: the float32 model is shipped"
        gate = {"min_agreement": None, "max_metric_drop": None, "metric_gate": None}
    from edgepipe.components.export.gate import check_blessing

    blessed = check_blessing(blessing, chosen)
    if blessed is not None:
        doc_eval = doc_eval.updated(blessing=blessed)
    files = {chosen: "model.tflite", **{v: f"model_{v}.tflite" for v in sorted(content) if v != chosen}}
    keys = {v: ("int8" if v == chosen and v != "float32" else v) for v in content}
    io = {v: io_spec(data) for v, data in content.items()}
    doc_eval = doc_eval.checked(str(evaluation.path / "evaluation.json"))  # the bundle's copy is written from it
    ctx = BundleContext(task=declared, card=card, model_dir=model.path, report=doc_eval.to_dict(),
                        evaluation_dir=evaluation.path, chosen=chosen, files=files, keys=keys, io=io, content=content,
                        gate=gate, seed=seed, tolerance=tolerance, verify_samples=verify_samples,
                        transform=transform.read_json("transform.json") if transform is not None else None,
                        windows=_window_contract(windows))
    parts = declared.bundle(ctx)
    models = {keys[v]: {"file": files[v], "variant": v, **parts.model_fields.get(keys[v], {}),
                        "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), **io[v]}
              for v, data in content.items()}
    if diff is not None:
        models["float32"]["max_abs_diff_vs_keras"] = diff
    inputs = io[chosen].get("inputs") or [io[chosen]["input"]]
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "task": declared.runtime,
        **({"family": card.family} if card.family else {}),
        "default_model": "model.tflite", "primary_variant": chosen, **({"primary_reason": reason} if reason and rows
                                                                       and not float_fallback else {}),
        "input": io[chosen]["input"], "output": io[chosen]["output"], "models": models,
        "quantization": {"primary": chosen, "reason": reason,  # int8: any int8 input (a cGAN's label stays int32)
                         "int8": any(d["dtype"] in ("int8", "uint8") for d in inputs)},
        **parts.fields, **({"variants_file": "variants.json"} if rows is not None else {}),
        **({"blessing": blessed} if blessed is not None else {}), "versions": _versions()}
    _name_primary_metrics(doc, chosen, keys[chosen])
    micro_files = {}
    if doc["quantization"]["int8"]:
        doc["micro"], micro_files = _micro(content[chosen], parts.verification, doc, seed, windows)
    _validate(doc)
    if rows is not None:
        rows = [row.updated(file=files.get(row.variant) if row.exported else None, primary=row.variant == chosen)
                for row in rows]
    summary = declared.summary(doc, ctx.report, to_markdown(rows) if rows is not None else "")
    # Everything is computed and verified; only now does anything land in the bundle.
    written = [*files.values(), "bundle.json", "evaluation.json", "SUMMARY.md"]
    for variant, data in content.items():
        bundle.file(files[variant]).write_bytes(data)
    for name, data in {**parts.files, **micro_files}.items():
        bundle.file(name).write_bytes(data if isinstance(data, bytes) else data.encode())
        written.append(name)
    bundle.write_json("bundle.json", doc)
    bundle.write_json("evaluation.json", doc_eval.to_dict())
    bundle.file("SUMMARY.md").write_text(summary)
    if parts.verification:
        np.savez_compressed(bundle.file("verification.npz"), **parts.verification)
        written.append("verification.npz")
    if rows is not None:
        write_table(bundle, rows)
        written += ["variants.json", "variants.md", "variants.html"]
    if report is not None and (report.path / Report.filename).is_file():  # the run's report.html
        shutil.copyfile(report.path / Report.filename, bundle.file(Report.filename))
        written.append(Report.filename)
    bundle.properties.update({"schema_version": SCHEMA_VERSION, "task": declared.runtime,
                              "family": card.family, "primary": chosen, "files": sorted(written)})
    agreement = doc_eval.agreement_all(chosen)
    return {"primary_variant": chosen, "primary_agreement": agreement, "tflite_bytes": len(content[chosen]),
            "float32_bytes": len(content["float32"]) if "float32" in content else None,
            "variants_exported": len(content),
            "variants_refused": sum(r.exported is False for r in rows) if rows else 0,
            "max_abs_diff_vs_keras": diff, **({"blessed": True} if blessed is not None else {})}



def _name_primary_metrics(doc: dict[str, Any], variant: str, key: str) -> None:
    """The shipped model's metrics under its variant name too, as ``variants.json`` and ``evaluation.json`` name
    it (``metrics.per_model[primary_variant]`` works). The model key ``int8`` stays: it is how the runtime
    (``--model int8``, ``models``) and ``edgepipe run``'s summary (pipeline/display.py) find the shipped int8
    model, so renaming it would break bundles' readers; the metrics carry both names, same values."""
    metrics = doc.get("metrics")
    if key == variant or not isinstance(metrics, dict):
        return
    for section in ("per_model", "agreement_with_keras"):
        values = metrics.get(section)
        if isinstance(values, dict) and key in values and variant not in values:
            values[variant] = values[key]

def _micro(content: bytes, verification: dict[str, np.ndarray], doc: dict[str, Any],
           seed: int, windows: Examples | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The int8 model as C source for TensorFlow Lite Micro (``model_data.cc``/``.h``, the arena to allocate) and
    the check of it under TFLM's own interpreter against LiteRT (``components/export/micro.py``), every input fed
    from the task's verification arrays as ``doc`` names them (``micro.verification_inputs``: a cGAN generator its
    latents and labels; an anomaly detector, which has none, the eval windows evaluation scored, clipped as it fed
    them: ``micro.evaluated_windows``), and every output compared. ``inputs`` records which array fed which tensor.
    Recorded, never a refusal: a device that is not a microcontroller does not need it, and the reason is kept."""
    from edgepipe.components.export.micro import c_source, evaluated_windows, micro_check, verification_inputs

    fed: dict[str, str] = {}
    try:
        feed = verification or evaluated_windows(windows, doc.get("input_clip"))
        xs, fed = verification_inputs(content, feed, doc, seed)
        check = micro_check(content, xs)
        cc, header = c_source(content, "g_model", check.get("arena_bytes"))
    except Exception as err:  # the microcontroller path is optional: say why it is missing, ship the rest
        from edgepipe.pipeline.errors import describe

        return {"error": f"{type(err).__name__}: {describe(err)}", **({"inputs": fed} if fed else {})}, {}
    keys = ("ok", "error", "missing_ops", "examples", "outputs", "max_abs_diff_lsb", "reference_max_abs_diff_lsb",
            "first_divergence", "arena_bytes", "arena_estimate_bytes")  # first_divergence: where TFLM rounds apart
    return ({"c_source": ["model_data.cc", "model_data.h"], "interpreter": "tflite_micro.runtime.Interpreter",
             "inputs": fed, **{k: check.get(k) for k in keys}}, {"model_data.cc": cc, "model_data.h": header})


def _window_contract(windows: Examples | None) -> dict[str, Any] | None:
    """A series bundle's window: size and channels from the windows' feature spec, stride and names as made."""
    if windows is None:
        return None
    size, channels = (int(v) for v in windows.feature_spec["window"]["shape"])
    info = windows.info()
    return {"size": size, "stride": info.stride, "channels": channels,
            "channel_names": None if info.channels is None else info.channel_names}


def _validate(doc: dict[str, Any]) -> None:
    from edgepipe.runtime.errors import BundleError
    from edgepipe.runtime.schema import validate

    try:
        validate(doc, source="bundle.json (export)")
    except BundleError as err:  # an exporter bug, not a data problem: refuse rather than ship a bad bundle
        raise VerificationError(f"the bundle would not load on a device: {err}; nothing exported") from None


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for key, dist in PACKAGES.items():
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[key] = None
    found["python"] = platform.python_version()
    return found

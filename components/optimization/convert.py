"""convert_tflite: the one conversion component. Every variant of a model as a ``.tflite``, and their index.

Variants (``tasks/variants.py``) come from the float model or the fine-tuned ones the variant stage connected
(QAT, pruned, PQAT, clustered, CQAT). Int8 variants are full-integer with ``inference_type`` input/output,
calibrated on inputs from the source the task declares (``calibration.py``: windows, examples, latents,
observations), gathered only when a requested variant needs them (``Variant.calibrated``: float32/float16/dynamic
alone read no data); ``int8_qat`` without a trained QAT model is distilled from the float model on that source's
inputs (generators, Q-networks). An op with no int8 kernel fails the conversion naming the op unless
``allow_float_fallback``. ``variants.json`` records per variant its file, size, gzip size, SHA-256, sparsity,
tensor dtypes, ops, any op left in float and the device cost of one inference (``cost.py``: MACs, weight bytes,
arena, energy): what evaluation, the export gate and the reports read.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from edgepipe.models.card import ModelCard
from edgepipe.pipeline import progress
from edgepipe.pipeline.artifacts import Examples, Model, TFLiteModels
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import ConfigError


@component(version="2")
def convert_tflite(model: Input[Model], tflite: Output[TFLiteModels], examples: Input[Examples] | None = None,
                   qat_model: Input[Model] | None = None, pruned_model: Input[Model] | None = None,
                   pqat_model: Input[Model] | None = None, clustered_model: Input[Model] | None = None,
                   cqat_model: Input[Model] | None = None, task: str | None = None, variants: list[str] | None = None,
                   inference_type: str = "int8", allow_float_fallback: bool = False,
                   representative_samples: int = 200, seed: int = 0, qat_epochs: int = 2, qat_samples: int = 2048,
                   qat_learning_rate: float = 1e-4, batch_size: int = 64, pruned_uniform_model: Input[Model] | None = None,
                   target: dict | None = None) -> dict:
    """Write one ``<variant>.tflite`` per variant and ``variants.json``; ``variants`` defaults to every variant
    whose source model is connected (or distillable). ``task``: the model card's unless given. ``target``: a
    device target (``targets.resolve``): costs use its energy table and memory, and each variant is judged against
    it (``"target"``: fits, reasons, numbers)."""
    from edgepipe import tasks
    from edgepipe.components.optimization.calibration import SOURCES
    from edgepipe.tasks.variants import VARIANTS, check_names

    declared = tasks.get(task or ModelCard.of(model).task or "")
    net = model.load_keras()
    source = SOURCES[declared.calibration]
    sources = {"float": model, "qat": qat_model, "pruned": pruned_model, "pqat": pqat_model,
               "clustered": clustered_model, "cqat": cqat_model,
               "pruned_uniform": pruned_uniform_model}
    distillable = source.distills and qat_model is None
    names = check_names(list(variants) if variants else [n for n, v in VARIANTS.items() if sources[v.source] or (
        v.source == "qat" and distillable)])
    missing = [n for n in names if sources[VARIANTS[n].source] is None
               and not (VARIANTS[n].source == "qat" and distillable)]
    if missing:
        raise ConfigError(f"convert_tflite: variant(s) {', '.join(missing)} need the "
                          f"{', '.join(sorted({VARIANTS[n].source for n in missing}))} model input(s)"
                          + ("" if not source.distills else " (a model without a training loss gets only "
                             "float32, int8_ptq and a distilled int8_qat)"))
    calibration = (source(examples, model, net, samples=representative_samples, seed=seed, qat_samples=qat_samples)
                   if any(VARIANTS[n].calibrated for n in names) else None)
    if calibration is not None:  # NaN here fails later as "no int8 kernel": say why now
        from edgepipe.components.optimization.nonfinite import check_finite

        spec = ModelCard.of(model).data_spec
        check_finite(net, calibration.representative, ((spec.extra or {}).get("features") if spec else None))
    loaded: dict[str, Any] = {"float": net}
    report = None
    if distillable and any(VARIANTS[n].source == "qat" for n in names):
        from edgepipe.components.optimization.distill import distill_qat

        loaded["qat"], report = distill_qat(net, calibration.distill, qat_epochs, qat_learning_rate, batch_size, seed)
        tflite.write_json("quantization.json", report)
    index = _write_variants(tflite, names, sources, loaded, calibration, inference_type, allow_float_fallback,
                            input_names=[t.name.split(":")[0] for t in net.inputs] if source.name_inputs else None,
                            target=target)
    tflite.write_json("variants.json", index)
    tflite.properties.update({"variants": names, "inference_type": inference_type, "task": declared.name,
                              "calibration": declared.calibration if calibration else None,
                              **(calibration.properties if calibration else {}),
                              **({"target": target} if target is not None else {})})
    int8 = [n for n in names if VARIANTS[n].mode == "int8"]
    return {"variants": len(names), "float32_bytes": index["float32"]["size_bytes"] if "float32" in index else None,
            "smallest_int8_gzip": min((index[n]["gzip_bytes"] for n in int8), default=None),
            "representative_samples": calibration.count if calibration else 0,
            **({"not_quantized": len(report["not_quantized"])} if report else {})}


def _write_variants(tflite: TFLiteModels, names: list[str], sources: dict, loaded: dict, calibration,
                    inference_type: str, allow_float_fallback: bool, input_names: list[str] | None,
                    target: dict | None = None) -> dict[str, Any]:
    """``calibration``: None when no variant is full-integer; ``input_names``: rename the inputs after them."""
    from edgepipe.components.optimization.distill import name_inputs
    from edgepipe.components.optimization.pruning import measured_sparsity
    from edgepipe.components.optimization.tflite import convert, float_ops, gzip_size
    from edgepipe.runtime.litert import ModelRunner
    from edgepipe.tasks.variants import VARIANTS

    params = int(loaded["float"].count_params())  # same architecture for every variant; sparsity says what is zero
    index = {}
    for done, name in enumerate(names):
        progress.check_stop()
        variant = VARIANTS[name]
        if variant.source not in loaded:
            loaded[variant.source] = sources[variant.source].load_keras()
        net = loaded[variant.source]
        content = convert(net, variant.mode, representative=calibration.representative if variant.calibrated
                          else None, inference_type=inference_type, allow_float_fallback=allow_float_fallback)
        if input_names:
            content = name_inputs(content, input_names)
        path = tflite.write_variant(name, content)
        runner = ModelRunner(content)
        # the data input: the first float or quantized one (a cGAN's int32 label input is neither)
        data_in = next((t for t in runner.inputs if np.issubdtype(t.dtype, np.floating) or t.scale), runner.input)
        index[name] = {
            "file": path.name, "mode": variant.mode, "source": variant.source, "description": variant.description,
            "size_bytes": len(content), "gzip_bytes": gzip_size(content),
            "sha256": hashlib.sha256(content).hexdigest(), "params": params, "sparsity": measured_sparsity(net),
            "input_dtype": data_in.dtype.name, "output_dtype": runner.output.dtype.name, "ops": runner.op_names(),
            "float_ops": sorted({op for op, _ in float_ops(content)}) if variant.mode == "int8" else None,
            "cost": _cost(content, target)}
        if target is not None:
            from edgepipe.components.optimization.targets import fit

            index[name]["target"] = fit(index[name], target, content)
        progress.report("convert", done + 1, len(names), variant=name, bytes=len(content))
    return index


def _cost(content: bytes, target: dict | None = None) -> dict[str, Any] | None:
    """The device cost of one inference read from the graph (``cost.py``): MACs, weight bytes, arena, energy
    (zero weights skipped and stored compressed; the target's energy table and memory when one is set)."""
    from edgepipe.components.optimization.cost import model_cost

    try:
        cost = model_cost(content, table=(target or {}).get("energy_table") or None,
                          memory=(target or {}).get("memory"))
    except Exception as err:  # noqa: BLE001 -- an estimate: a graph it cannot read gets no cost, never no variant
        return {"error": str(err).strip().splitlines()[0] if str(err).strip() else repr(err)}
    return {k: cost[k] for k in ("macs", "effective_macs", "elementwise_ops", "weight_bytes", "stored_weight_bytes",
                                 "activation_peak_bytes", "arena_bytes", "energy_uj", "compute_uj", "memory_uj",
                                 "memory", "energy_table")}

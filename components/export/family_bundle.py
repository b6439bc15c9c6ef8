"""Export any model family as a verified bundle in the runtime's schema (``runtime/schema.py``).

Two ways in:

* with ``tflite`` (the variant stage ran): the evaluation's variant rows are gated like the anomaly bundle's
  (``min_agreement`` of the task's decisions with the Keras model, ``max_metric_drop`` of its metric); a failing
  primary int8 variant refuses the export (VerificationError, exit 4, nothing written), others are only marked
  ``exported: false``. ``model.tflite`` is the primary int8 variant, ``model_float32.tflite`` the float fallback.
* without (a family with no int8 path: LSTM, GAN generator, DQN Q-network): the float32 TFLite model is converted
  here, checked against Keras on ``verify_samples`` inputs (max |diff| <= ``tolerance``) and shipped as
  ``model.tflite``; ``quantization.reason`` says why it is not int8.

``bundle.json`` always carries what a device needs and nothing it must guess: the task, every model's tensors (name,
shape, dtype, quantization, read from the model itself), the preprocessing the pipeline applied (input feature
order for tables, image scaling, latent sampling for generators), labels, metrics and versions. It is validated
with the runtime's own validator before anything is written. ``verification.npz`` holds inputs and the shipped
model's outputs as the pipeline computed them, so a device can check itself against the pipeline.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from edgepipe.pipeline.artifacts import Bundle, Model, ModelEvaluation, TFLiteModels
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import VerificationError
from edgepipe.runtime.litert import LATENT_SAMPLER, ModelRunner, io_spec, sample_latent

# The pipeline's task names -> the runtime's (forecasting is regression on a window; control is a greedy policy).
RUNTIME_TASKS = {"classification": "classification", "regression": "regression", "forecasting": "regression",
                 "segmentation": "segmentation", "generation": "generation", "control": "policy",
                 "reconstruction": "reconstruction"}


def _inputs(net, n: int, rng: np.random.Generator, int_high: int) -> list[np.ndarray]:
    arrays = []
    for tensor in net.inputs:
        shape = (n, *[int(d) for d in tensor.shape[1:]])
        if tensor.dtype.is_integer:
            arrays.append(rng.integers(0, max(1, int_high), size=shape).astype(tensor.dtype.as_numpy_dtype))
        else:
            arrays.append(rng.uniform(0, 1, size=shape).astype(np.float32))
    return arrays


def _run_one_by_one(content: bytes, arrays: list[np.ndarray], names: list[str] | None = None) -> np.ndarray:
    """Outputs of a TFLite model fed one example at a time, inputs matched to Keras's by name, then position."""
    runner = ModelRunner(content, max_batch=1)
    return runner.run_named(runner.by_name(arrays, names))


def verify_tflite(net, content: bytes, samples: int = 16, seed: int = 0, int_high: int = 2,
                  arrays: list[np.ndarray] | None = None) -> float:
    """Max |keras - tflite| over ``samples`` inputs (random 0..1 floats, valid integer labels unless given)."""
    arrays = arrays if arrays is not None else _inputs(net, samples, np.random.default_rng(seed), int_high)
    expected = np.asarray(net.predict(arrays if len(arrays) > 1 else arrays[0], verbose=0))
    got = _run_one_by_one(content, arrays, [t.name.split(":")[0] for t in net.inputs])
    return float(np.abs(got.reshape(len(got), -1) - expected.reshape(len(expected), -1)).max())


def _convert_float32(net) -> bytes:
    """float32 TFLite; models whose graph the converter cannot lower with a dynamic batch (tf_keras LSTM/GRU:
    TensorList ops need static shapes) are converted from a batch-1 concrete function instead."""
    import tensorflow as tf

    from edgepipe.components.optimization.tflite import convert

    try:
        return convert(net, "float32")
    except Exception as exc:  # ConverterError is not exported under a stable name
        if "static" not in str(exc) and "TensorList" not in str(exc):
            raise
    specs = [tf.TensorSpec([1, *t.shape[1:]], t.dtype, name=t.name.split(":")[0]) for t in net.inputs]
    fn = tf.function(lambda *xs: net(list(xs) if len(xs) > 1 else xs[0], training=False))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(*specs)])
    return converter.convert()


@component(version="4")
def export_model(model: Input[Model], evaluation: Input[ModelEvaluation], bundle: Output[Bundle],
                 tflite: Input[TFLiteModels] | None = None, tolerance: float = 1e-3, verify_samples: int = 16,
                 min_agreement: float = 0.98, max_metric_drop: float | None = None, primary: str = "auto",
                 float_reason: str | None = None, seed: int = 0, float_fallback: bool = False) -> dict:
    """Gate (variants) or verify (float32), then write the model files, ``bundle.json``, ``verification.npz``,
    ``evaluation.json`` and, after a variant stage, ``variants.json/.md/.html``.

    ``float_fallback`` (generators, Q-networks): when the primary int8 variant fails the bounds, the next int8
    variant that passes ships instead, else the float32 model, ``quantization.reason`` saying why -- not a refusal."""
    from edgepipe.components.export.bundle import SCHEMA_VERSION, _versions

    props = model.properties
    report = evaluation.read_json("evaluation.json")
    task = RUNTIME_TASKS.get(props.get("task"), props.get("task"))
    if tflite is not None:
        content, keys, chosen, rows, reason = _gated_variants(tflite, evaluation, report, min_agreement,
                                                              max_metric_drop, primary, float_fallback)
    else:
        content, diff = _verified_float(model, tolerance, verify_samples)
        keys, chosen, rows = {"float32": "float32"}, "float32", None
        reason = float_reason or "no variant stage for this family: the float32 model is shipped"
    files = {v: ("model.tflite" if v == chosen else f"model_{v}.tflite") for v in content}
    io = {v: io_spec(data) for v, data in content.items()}
    models = {keys[v]: {"file": files[v], "variant": v, "size_bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(), **io[v]} for v, data in content.items()}
    if tflite is None:
        models["float32"]["max_abs_diff_vs_keras"] = diff
    per_model = report.get("variant_metrics") or {}
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "task": task, "family": props.get("family"),
        "default_model": "model.tflite", "primary_variant": chosen, "input": io[chosen]["input"],
        "output": io[chosen]["output"], "models": models,
        "quantization": {"primary": chosen, "reason": reason,  # int8: any int8 input (a cGAN's label stays int32)
                         "int8": any(d["dtype"] in ("int8", "uint8")
                                     for d in io[chosen].get("inputs") or [io[chosen]["input"]])},
        "preprocessing": _preprocessing(props, task),
        "metrics": {"split": report.get("split"), "metric_name": report.get("metric_name"),
                    "per_model": {keys.get(v, v): {"all": {report.get("metric_name"): m}}
                                  for v, m in per_model.items() if v == "keras" or v in keys},
                    "agreement_with_keras": {keys.get(v, v): a.get("all")
                                             for v, a in (report.get("agreement") or {}).items()},
                    "min_agreement": min_agreement if rows else None,
                    "max_metric_drop": max_metric_drop if rows else None,
                    "evaluation": report.get("metrics")},
        "versions": _versions()}
    doc.update(_task_fields(props, task, io[chosen]))
    if rows is not None:
        doc["variants_file"] = "variants.json"
    verification = _verification(props, task, report, evaluation, chosen, content[chosen], seed)
    encoder = _encoder(model, tolerance, verify_samples) if task == "reconstruction" else None
    if encoder is not None:  # the bottleneck embedding, shipped beside the autoencoder (runtime: bundle.json only)
        doc["encoder"] = {"file": "encoder.tflite", "size_bytes": len(encoder[0]),
                          "sha256": hashlib.sha256(encoder[0]).hexdigest(), "max_abs_diff_vs_keras": encoder[1],
                          **io_spec(encoder[0])}
    if task in RUNTIME_TASKS.values():
        from edgepipe.runtime.errors import BundleError
        from edgepipe.runtime.schema import validate

        try:
            validate(doc, source="bundle.json (export)")
        except BundleError as err:  # an exporter bug, not a data problem: refuse rather than ship a bad bundle
            raise VerificationError(f"the bundle would not load on a device: {err}; nothing exported") from None
    # Everything is computed and verified; only now does anything land in the bundle.
    for variant, data in content.items():
        bundle.file(files[variant]).write_bytes(data)
    bundle.write_json("bundle.json", doc)
    bundle.write_json("evaluation.json", report)
    if verification:
        np.savez_compressed(bundle.file("verification.npz"), **verification)
    written = [*files.values(), "bundle.json", "evaluation.json", *(["verification.npz"] if verification else [])]
    if encoder is not None:
        bundle.file("encoder.tflite").write_bytes(encoder[0])
        written.append("encoder.tflite")
    if rows is not None:
        from edgepipe.components.evaluation.variants import write_table

        for row in rows:
            row["file"] = files.get(row["variant"]) if row.get("exported") else None
            row["primary"] = row["variant"] == chosen
        write_table(bundle, rows)
        written += ["variants.json", "variants.md", "variants.html"]
    bundle.properties.update({"schema_version": SCHEMA_VERSION, "task": task, "family": props.get("family"),
                              "primary": chosen, "files": sorted(written)})
    return {"primary_variant": chosen, "tflite_bytes": len(content[chosen]), "variants_exported": len(content),
            "max_abs_diff_vs_keras": models[keys[chosen]].get("max_abs_diff_vs_keras")}


def _gated_variants(tflite, evaluation, report, min_agreement, max_metric_drop, primary, float_fallback=False):
    """The exported variants' bytes after the gate (primary refused -> VerificationError, or with ``float_fallback``
    the next passing int8 variant / float32 and the reason), keyed like the anomaly bundle: the primary is
    ``int8``, ``float32`` the fallback, the others by variant name."""
    from edgepipe.components.evaluation.variants import gate
    from edgepipe.components.optimization.variants import AUTO_PRIMARY, gated_primary

    rows = evaluation.read_json("variants.json")
    for row in rows:
        if row["variant"] != "keras":
            row["agreement"] = (report.get("agreement", {}).get(row["variant"]) or {}).get("all")
    rows = gate(rows, min_agreement, max_metric_drop)
    chosen, reason = gated_primary(primary, rows)
    row = next((r for r in rows if r["variant"] == chosen), None)
    if (row is None or not row["exported"]) and float_fallback:
        why = row["reason"] if row else "not evaluated"
        passing = [r["variant"] for r in rows if r.get("exported") and r["variant"] in AUTO_PRIMARY]
        fallback = sorted(passing, key=AUTO_PRIMARY.index)[0] if passing else "float32"
        reason = (f"int8 variant '{chosen}' fails the export bounds ({why}); "
                  + (f"'{fallback}' ships instead" if passing else "the float32 model is shipped"))
        chosen = fallback
        row = next((r for r in rows if r["variant"] == chosen), None)
    if row is None or not row["exported"]:
        why = row["reason"] if row else "not evaluated"
        kind = "" if chosen == "float32" else "int8 "
        raise VerificationError(f"primary {kind}variant '{chosen}' fails the export bounds ({why}); nothing exported")
    content = {}
    for r in rows:
        variant = r["variant"]
        if variant == "keras" or not r["exported"]:
            continue
        data = tflite.variant_path(variant).read_bytes()
        if report["models"].get(variant, {}).get("sha256") != hashlib.sha256(data).hexdigest():
            raise VerificationError(f"{variant}.tflite differs from the model that was evaluated (sha256 mismatch); "
                                    "nothing exported")
        content[variant] = data
    keys = {v: ("int8" if v == chosen and v != "float32" else v) for v in content}
    return content, keys, chosen, rows, reason


def _verified_float(model: Model, tolerance: float, samples: int) -> tuple[dict[str, bytes], float]:
    net = model.load_keras()
    props = model.properties
    int_high = int(props.get("num_classes") or (props.get("data_spec") or {}).get("num_classes") or 2)
    content = _convert_float32(net)
    diff = verify_tflite(net, content, samples, int_high=int_high)
    if not diff <= tolerance:
        raise VerificationError(f"model.tflite: TFLite output differs from Keras by {diff:.3g} (> tolerance "
                                f"{tolerance}); nothing exported")
    return {"float32": content}, diff


def _encoder(model: Model, tolerance: float, samples: int) -> tuple[bytes, float] | None:
    """An autoencoder's encoder (``encoder.h5``, saved by train_model) as float32 TFLite, checked like the model."""
    import tf_keras as keras

    path = model.path / (model.properties.get("encoder") or "encoder.h5")
    if not path.is_file():
        return None
    net = keras.models.load_model(str(path), compile=False)
    content = _convert_float32(net)
    diff = verify_tflite(net, content, samples)
    if not diff <= tolerance:
        raise VerificationError(f"encoder.tflite: TFLite output differs from Keras by {diff:.3g} (> tolerance "
                                f"{tolerance}); nothing exported")
    return content, diff


def _preprocessing(props: dict[str, Any], task: str) -> dict[str, Any]:
    """What the pipeline did to raw data before the model: supervised families feed ingested values unchanged
    (tables: the columns in ``features`` order; images: pixel values as in the data, 0..1, so an 8-bit image file
    is scaled by 1/255 after a bilinear resize); generators take latents; policies raw observations."""
    spec = props.get("data_spec") or {}
    shape = list(spec.get("input_shape") or [])
    if task == "generation":
        return {"kind": "latent", "transform": "none"}
    if task == "policy":
        return {"kind": "observation", "transform": "none"}
    features = (spec.get("extra") or {}).get("features") or []
    x_key = (spec.get("extra") or {}).get("x_key", "x")
    if features and features != [x_key]:
        return {"kind": "table", "features": list(features), "transform": "none"}
    if len(shape) == 3:
        return {"kind": "image", "transform": "none",
                "image": {"height": shape[0], "width": shape[1], "channels": shape[2], "resize": "bilinear",
                          "scale": 1 / 255, "offset": 0.0, "applies_to": "8-bit image files"}}
    return {"kind": "sequence" if len(shape) == 2 else "features", "transform": "none"}


def _task_fields(props: dict[str, Any], task: str, io: dict[str, Any]) -> dict[str, Any]:
    spec = props.get("data_spec") or {}
    names = spec.get("class_names") or props.get("class_names")
    out: dict[str, Any] = {}
    if task == "classification":
        k = io["output"]["shape"][-1]
        out["labels"] = list(names) if names and len(names) == k else [str(i) for i in range(k)]
        out["output_kind"] = "probabilities"
    elif task == "segmentation":
        k = io["output"]["shape"][-1]
        labels = ["background", *names] if names and len(names) + 1 == k else names
        out["labels"] = list(labels) if labels and len(labels) == k else [str(i) for i in range(k)]
    elif task == "reconstruction":
        out["score"] = {"kind": "reconstruction_mse", "definition": "mean over all non-batch axes of (x - y)^2, "
                        "x the model input, y the model output"}
    elif task == "regression":
        out["target_names"] = [f"y{i}" for i in range(io["output"]["shape"][-1])]
    elif task == "generation":
        inputs = io.get("inputs") or [io["input"]]
        # the latent is the float (or quantized int8) input; a label is a plain integer input (no quantization)
        latent = next(d for d in inputs if d["dtype"].startswith("float") or d.get("quantization"))
        label = next((d for d in inputs if d is not latent and not d["dtype"].startswith("float")
                      and not d.get("quantization")), None)
        k = int(props.get("num_classes") or spec.get("num_classes") or 0)
        out["generation"] = {"latent_dim": int(latent["shape"][-1]), "latent_input": latent["name"],
                             "label_input": label["name"] if label else None, "num_classes": k if label else None,
                             "sampler": LATENT_SAMPLER, "output_range": [0.0, 1.0]}
        if label and names and len(names) == k:
            out["labels"] = list(names)
    elif task == "policy":
        out["policy"] = {"env_name": props.get("env_name"), "num_actions": int(io["output"]["shape"][-1]),
                         "frame_stack": int(props.get("frame_stack", 1)), "action": "argmax of Q-values"}
    return out


def _verification(props, task, report, evaluation, chosen, content, seed) -> dict[str, np.ndarray]:
    """Inputs and the shipped model's outputs as the pipeline computed them: the evaluation's own per-example
    predictions (supervised) or, for generators and policies, the exported file run here on latents drawn with
    the documented sampler (``seed``) / observations."""
    path = evaluation.path / "predictions.npz"
    if path.exists():
        with np.load(path) as saved:
            x = saved["x"][:64]
            if chosen in saved.files:
                return {"x": x, "output": saved[chosen][:64]}
    io = io_spec(content)
    inputs = io.get("inputs") or [io["input"]]
    if path.exists():  # no variant stage (rnn: float32 shipped): the evaluation ran Keras only, so the shipped
        # file is run here on the evaluation's own inputs (as for generators and policies below)
        if len(inputs) != 1 or not len(x):
            return {}
        return {"x": x, "output": _run_one_by_one(content, [np.asarray(x)])}
    if task == "generation":
        fields = _task_fields(props, task, io)["generation"]
        z = sample_latent(16, fields["latent_dim"], seed)
        arrays = {fields["latent_input"]: z}
        out = {"latent": z, "seed": np.array(seed)}
        if fields["label_input"]:
            labels = (np.arange(16) % max(1, fields["num_classes"])).astype(np.int32).reshape(-1, 1)
            arrays[fields["label_input"]] = labels
            out["label"] = labels.reshape(-1)
        out["output"] = ModelRunner(content, max_batch=1).run_named(arrays)
        return out
    if task == "policy":
        obs = np.random.default_rng(seed).normal(0, 0.5, size=(32, *inputs[0]["shape"][1:])).astype(np.float32)
        return {"x": obs, "output": _run_one_by_one(content, [obs])}
    return {}

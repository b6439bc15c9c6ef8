"""Pipeline components for pruning, quantization-aware training and TFLite conversion.

Each fine-tunes on the same data the model was trained on (the train split's normal windows unless the upstream
model was trained on all windows), so an optimization never shifts what "normal" means. Heavy imports happen inside
the functions: declaring the pipeline must not load TensorFlow.
"""
from __future__ import annotations

import hashlib

import numpy as np

from edgepipe.pipeline.artifacts import Examples, Model, TFLiteModels
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import DataError


def _train_windows(windows: Examples, model: Model) -> np.ndarray:
    from edgepipe.components.training.inputs import check_train_on, load_windows

    only_normal = check_train_on(model.properties.get("train_on", "normal"))
    x = load_windows(windows, "train", only_normal=only_normal)["window"]
    if len(x) == 0:
        raise DataError(f"train split of {windows.path} has no windows to fine-tune on")
    return x


def _inherit(source: Model, target: Model, **extra) -> None:
    """Carry the upstream model's descriptive properties (window size, train_on ...) to the derived model."""
    target.properties.update({k: v for k, v in source.properties.items() if k not in ("pruning", "quantization")})
    target.properties.update(extra)


@component
def prune_model(windows: Input[Examples], model: Input[Model], pruned: Output[Model], target_sparsity: float = 0.5,
                epochs: int = 2, schedule: str = "polynomial", batch_size: int = 64, learning_rate: float = 5e-4,
                seed: int = 0) -> dict:
    """Magnitude-prune the model to ``target_sparsity`` while fine-tuning, strip the wrappers, save it."""
    from edgepipe.components.optimization.pruning import layer_sparsity, measured_sparsity, prune_with_report

    x = _train_windows(windows, model)
    net, report = prune_with_report(model.load_keras(), x, target_sparsity=target_sparsity, epochs=epochs,
                                    schedule=schedule, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    sparsity = measured_sparsity(net)
    pruned.save_keras(net)
    pruned.write_json("pruning.json", {**report, "target_sparsity": target_sparsity, "schedule": schedule,
                                       "measured_sparsity": sparsity, "layer_sparsity": layer_sparsity(net)})
    _inherit(model, pruned, pruning={"target_sparsity": target_sparsity, "measured_sparsity": sparsity})
    return {"measured_sparsity": sparsity, "final_loss": report["loss"][-1], "not_pruned": len(report["not_pruned"])}


@component
def quantize_model(windows: Input[Examples], model: Input[Model], qat_model: Output[Model], epochs: int = 2,
                   batch_size: int = 64, learning_rate: float = 1e-4, seed: int = 0) -> dict:
    """Quantization-aware fine-tuning; records which layers stayed float in ``quantization.json``.

    Weights that are exactly zero on input (a pruned model) are kept at zero throughout, so QAT does not undo
    pruning.
    """
    import tf_keras as keras

    from edgepipe.components.optimization.pruning import measured_sparsity
    from edgepipe.components.optimization.qat import KeepSparsity, quantize_aware

    x = _train_windows(windows, model)
    keras.utils.set_random_seed(seed)
    qat, report = quantize_aware(model.load_keras())
    keep = KeepSparsity(qat)
    qat.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    history = qat.fit(x, x, batch_size=batch_size, epochs=max(1, epochs), shuffle=True, verbose=0,
                      callbacks=[keep] if keep.active else [])
    sparsity = measured_sparsity(qat)
    qat_model.save_keras(qat)
    losses = [float(v) for v in history.history["loss"]]
    qat_model.write_json("quantization.json", {**report, "loss": losses, "kernel_sparsity": sparsity,
                                               "sparsity_preserved": keep.active})
    _inherit(model, qat_model, quantization={"scheme": "qat_int8", "not_quantized": report["not_quantized"]})
    return {"final_loss": losses[-1], "not_quantized": len(report["not_quantized"]), "kernel_sparsity": sparsity}


@component
def convert_tflite(windows: Input[Examples], float_model: Input[Model], qat_model: Input[Model],
                   tflite: Output[TFLiteModels], representative_samples: int = 200, seed: int = 0) -> dict:
    """Write ``float32.tflite`` (from float_model) and full-integer ``int8.tflite`` (from qat_model).

    ``qat_model`` may also be a plain float model (QAT disabled): it is then post-training quantized, calibrated on
    ``representative_samples`` train windows drawn with ``seed``.
    """
    from edgepipe.components.optimization.tflite import TFLiteRunner, convert, is_qat_model

    x = _train_windows(windows, qat_model)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x), size=min(len(x), max(1, representative_samples)), replace=False)
    keras_qat = qat_model.load_keras()
    sources = {"float32": (float_model.load_keras(), "float32"), "int8": (keras_qat, "int8")}
    index = {}
    for name, (net, mode) in sources.items():
        content = convert(net, mode, representative=x[np.sort(pick)] if mode == "int8" else None)
        path = tflite.write_variant(name, content)
        runner = TFLiteRunner(content)
        index[name] = {
            "file": path.name, "mode": mode, "size_bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "source": "qat" if name == "int8" and is_qat_model(net) else ("ptq" if name == "int8" else "float"),
            "input_dtype": np.dtype(runner.input_details["dtype"]).name,
            "output_dtype": np.dtype(runner.output_details["dtype"]).name,
            "ops": runner.op_names()}
    tflite.write_json("variants.json", index)
    tflite.properties.update({"variants": sorted(index), "window_size": float_model.properties.get("window_size"),
                              "channels": float_model.properties.get("channels")})
    return {"float32_bytes": index["float32"]["size_bytes"], "int8_bytes": index["int8"]["size_bytes"],
            "int8_compression": index["float32"]["size_bytes"] / index["int8"]["size_bytes"],
            "representative_samples": int(len(pick))}

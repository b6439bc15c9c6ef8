"""Export any model family as a verified bundle: ``model.tflite`` (float32), the Keras model, the evaluation.

Before anything is written the TFLite model is run with LiteRT on ``verify_samples`` inputs and compared with the
Keras model; a maximum absolute difference above ``tolerance`` raises VerificationError (exit 4, nothing written).
The exported model is what the family deploys: the classifier/regressor/segmenter itself, a GAN's generator, a
DQN's Q-network (greedy policy = argmax), an autoencoder's full model plus its encoder (``encoder.tflite``).
Int8 variants of these families are the optimization components' job; this bundle is the float reference.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from edgepipe.pipeline.artifacts import Bundle, Model, ModelEvaluation
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import VerificationError


def _inputs(net, n: int, rng: np.random.Generator, int_high: int) -> list[np.ndarray]:
    arrays = []
    for tensor in net.inputs:
        shape = (n, *[int(d) for d in tensor.shape[1:]])
        if tensor.dtype.is_integer:
            arrays.append(rng.integers(0, max(1, int_high), size=shape).astype(tensor.dtype.as_numpy_dtype))
        else:
            arrays.append(rng.uniform(0, 1, size=shape).astype(np.float32))
    return arrays


def verify_tflite(net, content: bytes, samples: int = 16, seed: int = 0, int_high: int = 2) -> float:
    """Max |keras - tflite| over ``samples`` random inputs (0..1 floats, valid integer labels), one at a time."""
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(seed)
    arrays = _inputs(net, samples, rng, int_high)
    expected = net.predict(arrays if len(arrays) > 1 else arrays[0], verbose=0)
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    names = [t.name.split(":")[0] for t in net.inputs]
    order = []
    for d in details:  # TFLite input order need not follow Keras's: match by name, then by position
        match = [i for i, name in enumerate(names) if name in d["name"]]
        order.append(match[0] if match else len(order))
    worst = 0.0
    for i in range(samples):
        for d, k in zip(details, order):
            interpreter.set_tensor(d["index"], arrays[k][i:i + 1].astype(d["dtype"]))
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        worst = max(worst, float(np.abs(got.reshape(-1) - np.asarray(expected[i]).reshape(-1)).max()))
    return worst


def _convert_float32(net, convert) -> bytes:
    """float32 TFLite; models whose graph the converter cannot lower with a dynamic batch (tf_keras LSTM/GRU:
    TensorList ops need static shapes) are converted from a batch-1 concrete function instead."""
    import tensorflow as tf

    try:
        return convert(net, "float32")
    except Exception as exc:  # ConverterError is not exported under a stable name
        if "static" not in str(exc) and "TensorList" not in str(exc):
            raise
    specs = [tf.TensorSpec([1, *t.shape[1:]], t.dtype, name=t.name.split(":")[0]) for t in net.inputs]
    fn = tf.function(lambda *xs: net(list(xs) if len(xs) > 1 else xs[0], training=False))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(*specs)])
    return converter.convert()


@component(version="1")
def export_model(model: Input[Model], evaluation: Input[ModelEvaluation], bundle: Output[Bundle],
                 tolerance: float = 1e-3, verify_samples: int = 16) -> dict:
    """Verify (TFLite vs Keras) then write ``model.tflite``, ``model.h5``, ``bundle.json``, ``evaluation.json``."""
    import tf_keras as keras

    from edgepipe.components.optimization.tflite import convert

    net = model.load_keras()
    props = model.properties
    int_high = int(props.get("num_classes") or (props.get("data_spec") or {}).get("num_classes") or 2)
    files: dict[str, Any] = {}
    to_write: dict[str, bytes] = {}
    targets = {"model.tflite": net}
    if (model.path / "encoder.h5").exists():
        targets["encoder.tflite"] = keras.models.load_model(str(model.path / "encoder.h5"), compile=False)
    for name, keras_model in targets.items():
        content = _convert_float32(keras_model, convert)
        diff = verify_tflite(keras_model, content, verify_samples, int_high=int_high)
        if not diff <= tolerance:
            raise VerificationError(f"{name}: TFLite output differs from Keras by {diff:.3g} (> tolerance "
                                    f"{tolerance}); nothing exported")
        to_write[name] = content
        files[name] = {"size_bytes": len(content), "sha256": hashlib.sha256(content).hexdigest(),
                       "max_abs_diff_vs_keras": diff,
                       "inputs": [{"name": t.name.split(":")[0], "shape": [None, *map(int, t.shape[1:])],
                                   "dtype": t.dtype.name} for t in keras_model.inputs],
                       "output_shape": [None, *map(int, keras_model.output_shape[1:])]}
    report = evaluation.read_json("evaluation.json")
    for name, content in to_write.items():
        bundle.file(name).write_bytes(content)
    net.save(str(bundle.file("model.h5")), include_optimizer=False)
    bundle.write_json("evaluation.json", report)
    doc = {"schema_version": 1, "task": props.get("task"), "family": props.get("family"),
           "exported": props.get("exported", "model"), "default_model": "model.tflite", "models": files,
           "data_spec": props.get("data_spec"), "hparams": props.get("hparams"),
           "class_names": (props.get("data_spec") or {}).get("class_names") or props.get("class_names"),
           "env_name": props.get("env_name"), "policy": props.get("policy"), "metrics": report.get("metrics")}
    bundle.write_json("bundle.json", doc)
    bundle.properties.update({"task": props.get("task"), "family": props.get("family"),
                              "files": sorted([*to_write, "model.h5", "bundle.json", "evaluation.json"])})
    return {"tflite_bytes": len(to_write["model.tflite"]),
            "max_abs_diff_vs_keras": files["model.tflite"]["max_abs_diff_vs_keras"]}

"""Keras -> TFLite conversion in the four standard modes.

``convert`` returns bytes so callers decide where models live (an artifact, a test's tmp dir). Running a converted
model (float32 in/out, batches, latency, op names) is :class:`edgepipe.runtime.litert.ModelRunner`'s job.

Full-integer conversion is checked, not trusted: the MLIR quantizer quietly leaves an op without an int8 kernel in
float (wrapped in DEQUANTIZE/QUANTIZE) even when only ``TFLITE_BUILTINS_INT8`` is allowed, so the converted graph is
inspected and such an op is an error naming it, unless float fallback was asked for.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgepipe.pipeline.errors import ConfigError, VerificationError

MODES = ("float32", "float16", "dynamic", "int8")
INFERENCE_TYPES = ("int8", "uint8")
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}


class FullIntegerError(VerificationError):
    """A model meant to be full-integer has ops left in float and float fallback is not allowed (exit 4)."""


def representative_dataset(samples: np.ndarray) -> Callable[[], Iterable[list[np.ndarray]]]:
    """A converter ``representative_dataset`` yielding each sample as a batch of one float32 input."""
    samples = np.asarray(samples, dtype=np.float32)

    def generate():
        for sample in samples:
            yield [sample[None, ...]]

    return generate


def is_qat_model(model) -> bool:
    return any(type(layer).__name__.startswith("Quantize") for layer in model.layers)


def convert(model, mode: str, representative: np.ndarray | Callable | None = None, inference_type: str = "int8",
            allow_float_fallback: bool = False) -> bytes:
    """Convert a Keras model to a ``.tflite`` flatbuffer.

    * ``float32``: no optimization.
    * ``float16``: float16 weights, float32 compute/IO.
    * ``dynamic``: int8 weights, activations quantized on the fly; float32 IO.
    * ``int8``: full integer with ``inference_type`` (int8 or uint8) input and output. Needs ``representative`` (an
      array of samples or a generator function) unless the model is QAT, whose ranges were learned in training. An
      op left in float raises :class:`FullIntegerError` naming it, unless ``allow_float_fallback`` (then
      TFLITE_BUILTINS are allowed beside TFLITE_BUILTINS_INT8 and such ops run in float).
    """
    if mode not in MODES:
        raise ConfigError(f"unknown TFLite conversion mode '{mode}' (allowed: {', '.join(MODES)})")
    if inference_type not in INFERENCE_TYPES:
        raise ConfigError(f"unknown inference_type '{inference_type}' (allowed: {', '.join(INFERENCE_TYPES)})")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        if representative is None and not is_qat_model(model):
            raise ConfigError("int8 conversion of a non-QAT model needs representative samples to calibrate ranges")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative is not None:
            converter.representative_dataset = (representative if callable(representative)
                                                 else representative_dataset(representative))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + (
            [tf.lite.OpsSet.TFLITE_BUILTINS] if allow_float_fallback else [])
        io_type = tf.as_dtype(inference_type)
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    content = converter.convert()
    if mode == "int8" and not allow_float_fallback:
        left = float_ops(content)
        if left:
            shown = ", ".join(f"{op} (output '{name}')" for op, name in left[:5])
            raise FullIntegerError(f"full-integer conversion of model '{model.name}' left {len(left)} op(s) in float: "
                                   f"{shown}; no int8 kernel -- replace the layer or set "
                                   "convert.allow_float_fallback=true")
    return content


def float_ops(content: bytes) -> list[tuple[str, str]]:
    """``(op name, first output tensor name)`` of every op that computes in float (QUANTIZE/DEQUANTIZE excluded)."""
    interpreter = Interpreter(model_content=bytes(content),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():
        if op["op_name"] in _BOUNDARY_OPS:
            continue
        tensors = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
        if any(np.issubdtype(dtypes[i], np.floating) for i in tensors if i in dtypes):
            found.append((op["op_name"], names.get(op["outputs"][0], "?") if len(op["outputs"]) else "?"))
    return found


def gzip_size(content: bytes) -> int:
    """Size after ``gzip -9``: what over-the-air delivery pays, and where pruning and clustering show."""
    import gzip

    return len(gzip.compress(bytes(content), 9))

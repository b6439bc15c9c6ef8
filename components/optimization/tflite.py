"""Keras -> TFLite conversion in the four standard modes, and a runner that hides int8 (de)quantization.

``convert`` returns bytes so callers decide where models live (an artifact, a test's tmp dir). ``TFLiteRunner``
lets evaluation treat every variant alike: it takes and returns float32 arrays, quantizing inputs and dequantizing
outputs with the scale/zero point stored in the model, and runs whole batches by resizing the batch dimension
(falling back to one example at a time for models whose batch dimension is fixed).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgepipe.pipeline.errors import ConfigError

MODES = ("float32", "float16", "dynamic", "int8")


def representative_dataset(samples: np.ndarray) -> Callable[[], Iterable[list[np.ndarray]]]:
    """A converter ``representative_dataset`` yielding each sample as a batch of one float32 input."""
    samples = np.asarray(samples, dtype=np.float32)

    def generate():
        for sample in samples:
            yield [sample[None, ...]]

    return generate


def is_qat_model(model) -> bool:
    return any(type(layer).__name__.startswith("Quantize") for layer in model.layers)


def convert(model, mode: str, representative: np.ndarray | Callable | None = None) -> bytes:
    """Convert a Keras model to a ``.tflite`` flatbuffer.

    * ``float32``: no optimization.
    * ``float16``: float16 weights, float32 compute/IO.
    * ``dynamic``: int8 weights, activations quantized on the fly; float32 IO.
    * ``int8``: full integer (TFLITE_BUILTINS_INT8 only, int8 input and output). Needs ``representative`` (an
      array of samples or a generator function) unless the model is QAT, whose ranges were learned in training.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown TFLite conversion mode '{mode}' (allowed: {', '.join(MODES)})")
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
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


class TFLiteRunner:
    """Run a ``.tflite`` model on float32 batches with ai_edge_litert, whatever its input/output types."""

    def __init__(self, model: bytes | str, num_threads: int | None = None, max_batch: int = 256):
        kwargs: dict[str, Any] = {"num_threads": num_threads} if num_threads else {}
        self._source = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else {
            "model_path": str(model)}
        self.interpreter = Interpreter(**self._source, **kwargs)
        self.interpreter.allocate_tensors()
        self.max_batch = max_batch
        self._batch = 1
        signature = self.input_details["shape_signature"]
        self.dynamic_batch = len(signature) > 0 and int(signature[0]) == -1

    @property
    def input_details(self) -> dict[str, Any]:
        return self.interpreter.get_input_details()[0]

    @property
    def output_details(self) -> dict[str, Any]:
        return self.interpreter.get_output_details()[0]

    @staticmethod
    def _qparams(details: dict[str, Any]) -> tuple[float, int]:
        scale, zero_point = details["quantization"]
        return float(scale), int(zero_point)

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """float32 -> the model's input dtype (round, shift by zero point, saturate), identity for float models."""
        details = self.input_details
        dtype = np.dtype(details["dtype"])
        scale, zero_point = self._qparams(details)
        if not np.issubdtype(dtype, np.integer) or scale == 0:
            return np.asarray(x, dtype=dtype)
        info = np.iinfo(dtype)
        q = np.round(np.asarray(x, dtype=np.float32) / scale) + zero_point
        return np.clip(q, info.min, info.max).astype(dtype)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        """The model's output dtype -> float32, identity for float models."""
        details = self.output_details
        scale, zero_point = self._qparams(details)
        if not np.issubdtype(np.dtype(details["dtype"]), np.integer) or scale == 0:
            return np.asarray(y, dtype=np.float32)
        return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        index = self.input_details["index"]
        if x.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(index, list(x.shape), strict=False)
            self.interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self.interpreter.set_tensor(index, self.quantize_input(x))
        self.interpreter.invoke()
        return self.dequantize_output(self.interpreter.get_tensor(self.output_details["index"]))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """float32 outputs for a float32 batch ``x`` (any length, including 0)."""
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, *self.output_details["shape"][1:]), dtype=np.float32)
        step = self.max_batch if self.dynamic_batch else 1
        return np.concatenate([self._run(x[i:i + step]) for i in range(0, len(x), step)])

    def op_names(self) -> list[str]:
        """Sorted distinct builtin op names of the graph itself (no delegate), to check what conversion produced."""
        plain = Interpreter(**self._source,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        plain.allocate_tensors()
        return sorted({op["op_name"] for op in plain._get_ops_details()})

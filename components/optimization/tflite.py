"""Keras -> TFLite conversion in the four standard modes, and a runner that hides int8 (de)quantization.

``convert`` returns bytes so callers decide where models live (an artifact, a test's tmp dir). ``TFLiteRunner``
lets evaluation treat every variant alike: it takes and returns float32 arrays, quantizing inputs and dequantizing
outputs with the scale/zero point stored in the model, and runs whole batches by resizing the batch dimension
(falling back to one example at a time for models whose batch dimension is fixed).

Full-integer conversion is checked, not trusted: the MLIR quantizer quietly leaves an op without an int8 kernel in
float (wrapped in DEQUANTIZE/QUANTIZE) even when only ``TFLITE_BUILTINS_INT8`` is allowed, so the converted graph is
inspected and such an op is an error naming it, unless float fallback was asked for.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgepipe.pipeline import progress
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


def latency_us(content: bytes | str, runs: int = 100, warmup: int = 10) -> float:
    """Median wall time of one batch-1 invoke, single thread, default delegate (XNNPACK), warm-up excluded."""
    import time

    runner = TFLiteRunner(content, num_threads=1)
    details = runner.input_details
    shape = [1, *(int(v) for v in details["shape"][1:])]
    interpreter = runner.interpreter
    if list(details["shape"]) != shape:
        interpreter.resize_tensor_input(details["index"], shape, strict=False)
        interpreter.allocate_tensors()
    sample = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    interpreter.set_tensor(details["index"], runner.quantize_input(sample))
    for _ in range(max(0, warmup)):
        interpreter.invoke()
    times = []
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e6)


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
        self.name = None if isinstance(model, (bytes, bytearray)) else Path(model).stem
        self._done, self._busy_s = 0, 0.0  # windows predicted, seconds spent: for progress reports
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
        outputs = []
        for i in range(0, len(x), step):  # evaluations take minutes: say how far (once it takes a while), stop if asked
            progress.check_stop()
            started = time.perf_counter()
            outputs.append(self._run(x[i:i + step]))
            self._done += len(outputs[-1])
            self._busy_s += time.perf_counter() - started
            if self._busy_s >= 1.0 and progress.would_report("evaluate"):
                progress.report("evaluate", self._done, None, model=self.name)
        return np.concatenate(outputs)

    def op_names(self) -> list[str]:
        """Sorted distinct builtin op names of the graph itself (no delegate), to check what conversion produced."""
        plain = Interpreter(**self._source,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        plain.allocate_tensors()
        return sorted({op["op_name"] for op in plain._get_ops_details()})

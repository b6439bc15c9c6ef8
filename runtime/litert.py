"""One ``.tflite`` model behind LiteRT: float32 in, float32 out, checked against what ``bundle.json`` claims.

Why the checks: ``bundle.json`` tells a device how to quantize its input and read the output; if it disagrees with
the model file (a swapped file, an edited scale), every score would be silently wrong. So the model's own tensor
details (dtype, shape signature, scale, zero point, read from the interpreter) must match the bundle's, and the
file's SHA-256 must match the recorded one.

Quantization is bit-for-bit the pipeline's (``components/optimization/tflite.py``): ``q = clip(round(x / scale)
+ zero_point)`` in float32 and ``y = (q - zero_point) * scale``, so runtime scores equal the evaluation's.

An interpreter is not thread-safe, so concurrent callers (the HTTP server) draw interpreters from a small pool;
LiteRT releases the GIL while invoking, so a pool of N uses up to N cores.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from edgepipe.runtime.errors import BundleError

MAX_BATCH = 256


@dataclass(frozen=True)
class TensorSpec:
    """What the interpreter says about the model's input or output tensor."""

    name: str
    shape: tuple[int | None, ...]  # None: dynamic (batch)
    dtype: np.dtype
    scale: float | None
    zero_point: int | None

    @classmethod
    def from_details(cls, details: dict[str, Any], shape: Any = None) -> "TensorSpec":
        scale, zero_point = details["quantization"]
        signature = details.get("shape_signature")
        dims = [int(v) for v in (shape if shape is not None else details["shape"])]
        if signature is not None and len(signature) and int(signature[0]) == -1:
            dims[0] = -1
        return cls(name=str(details["name"]), shape=tuple(None if d == -1 else d for d in dims),
                   dtype=np.dtype(details["dtype"]), scale=float(scale) if scale else None,
                   zero_point=int(zero_point) if scale else None)

    @property
    def quantized(self) -> bool:
        return self.scale is not None and np.issubdtype(self.dtype, np.integer)


class _Slot:
    """One interpreter and the batch size its tensors are currently allocated for."""

    def __init__(self, content: bytes, num_threads: int | None, quiet: bool = False):
        kwargs = {"num_threads": num_threads} if num_threads else {}
        with _quiet_native_stderr() if quiet else contextlib.nullcontext():
            self.interpreter = Interpreter(model_content=content, **kwargs)
            self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.input = self.inputs[0]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.batch = int(self.input["shape"][0])

    def invoke(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], list(x.shape), strict=False)
            self.interpreter.allocate_tensors()
            self.batch = x.shape[0]
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)

    def invoke_many(self, xs: list[np.ndarray]) -> np.ndarray:
        """One invoke of a multi-input model, ``xs`` in the interpreter's input order."""
        n = xs[0].shape[0]
        if n != self.batch:
            for d, x in zip(self.inputs, xs):
                self.interpreter.resize_tensor_input(d["index"], list(x.shape), strict=False)
            self.interpreter.allocate_tensors()
            self.batch = n
        for d, x in zip(self.inputs, xs):
            self.interpreter.set_tensor(d["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Hide LiteRT's 'Created TensorFlow Lite XNNPACK delegate' line, which the C++ side writes to fd 2 (once per
    process), so ``edgepipe predict`` output stays clean. Errors still surface as Python exceptions. Only used
    while a bundle loads (single-threaded), never while a pool grows under concurrent requests.
    EDGEPIPE_RUNTIME_VERBOSE=1 keeps the line."""
    if os.environ.get("EDGEPIPE_RUNTIME_VERBOSE"):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class ModelRunner:
    """Float32 batches in, float32 batches out, whatever the model's I/O dtypes; safe for concurrent callers."""

    def __init__(self, content: bytes, name: str = "model.tflite", num_threads: int | None = None,
                 pool_size: int = 1):
        self.name = name
        self._content = bytes(content)
        self._num_threads = num_threads
        self._pool: queue.LifoQueue[_Slot] = queue.LifoQueue()
        self._created, self._max = 0, max(1, int(pool_size))
        self._lock = threading.Lock()
        try:
            first = _Slot(self._content, num_threads, quiet=True)
        except (ValueError, RuntimeError) as err:
            raise BundleError(f"{name}: LiteRT cannot load this model: {str(err).strip().splitlines()[0]}") from None
        self._created = 1
        self.inputs = [TensorSpec.from_details(d) for d in first.inputs]
        self.input = self.inputs[0]
        # One batch-1 invoke materializes output shapes the converter left dynamic (Conv1DTranspose length).
        out = first.invoke_many([np.zeros((1, *(d for d in spec.shape[1:])), dtype=spec.dtype)
                                 for spec in self.inputs])
        details = first.interpreter.get_output_details()[0]
        self.output = TensorSpec.from_details(details, shape=(-1 if self.dynamic_batch else 1, *out.shape[1:]))
        self._pool.put(first)

    @property
    def dynamic_batch(self) -> bool:
        return self.input.shape[0] is None

    @contextlib.contextmanager
    def _slot(self) -> Iterator[_Slot]:
        try:
            slot = self._pool.get_nowait()
        except queue.Empty:
            with self._lock:
                grow = self._created < self._max
                if grow:
                    self._created += 1
            slot = _Slot(self._content, self._num_threads) if grow else self._pool.get()
        try:
            yield slot
        finally:
            self._pool.put(slot)

    def quantize(self, x: np.ndarray, spec: TensorSpec | None = None) -> np.ndarray:
        """float32 -> the input dtype: round(x / scale) + zero_point, saturated (identity for float models)."""
        spec = spec or self.input
        if not spec.quantized:
            return np.asarray(x, dtype=spec.dtype)
        info = np.iinfo(spec.dtype)
        q = np.round(np.asarray(x, dtype=np.float32) / spec.scale) + spec.zero_point
        return np.clip(q, info.min, info.max).astype(spec.dtype)

    def dequantize(self, y: np.ndarray) -> np.ndarray:
        spec = self.output
        if not spec.quantized:
            return np.asarray(y, dtype=np.float32)
        return ((y.astype(np.float32) - spec.zero_point) * spec.scale).astype(np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Model outputs (float32) for a float32 batch of any length, in chunks of at most MAX_BATCH."""
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, *self.output.shape[1:]), dtype=np.float32)
        step = MAX_BATCH if self.dynamic_batch else 1
        q = self.quantize(x)
        with self._slot() as slot:
            parts = [slot.invoke(q[i:i + step]).copy() for i in range(0, len(q), step)]
        return self.dequantize(np.concatenate(parts))

    def run_named(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Outputs of a multi-input model for ``{input tensor name: batch}`` (each quantized to its own dtype)."""
        missing = [spec.name for spec in self.inputs if spec.name not in arrays]
        if missing:
            raise ValueError(f"{self.name}: no value for input(s) {', '.join(missing)}")
        qs = [self.quantize(np.asarray(arrays[spec.name]), spec) for spec in self.inputs]
        n = len(qs[0])
        step = MAX_BATCH if self.dynamic_batch else 1
        with self._slot() as slot:
            parts = [slot.invoke_many([q[i:i + step] for q in qs]).copy() for i in range(0, n, step)]
        return self.dequantize(np.concatenate(parts))

    def check_against(self, entry: dict[str, Any], key: str) -> None:
        """Refuse a bundle whose description of this model (``models.<name>``) disagrees with the model itself."""
        sha = entry.get("sha256")
        if sha is None:  # schema.validate requires it too; a caller that skipped validation still gets no pass
            raise BundleError(f"{self.name}: missing key '{key}.sha256' (the model's digest is required)")
        if hashlib.sha256(self._content).hexdigest() != sha:
            raise BundleError(f"{self.name}: file content does not match {key}.sha256 (modified or swapped model)")
        sides = [("input", entry["input"], self.input), ("output", entry["output"], self.output)]
        claimed_inputs = entry.get("inputs") or [entry["input"]]
        if len(claimed_inputs) != len(self.inputs):
            raise BundleError(f"{self.name}: {key} describes {len(claimed_inputs)} input(s), the model has "
                              f"{len(self.inputs)}")
        if len(self.inputs) > 1:
            actual_by_name = {spec.name: spec for spec in self.inputs}
            for i, claimed in enumerate(claimed_inputs):
                if claimed["name"] not in actual_by_name:
                    raise BundleError(f"{self.name}: {key}.inputs[{i}].name '{claimed['name']}' is not an input "
                                      f"of the model ({', '.join(actual_by_name)})")
                sides.append((f"inputs[{i}]", claimed, actual_by_name[claimed["name"]]))
        for side, claimed, actual in sides:
            where = f"{key}.{side}"
            if np.dtype(claimed["dtype"]) != actual.dtype:
                raise BundleError(f"{self.name}: {where}.dtype is {claimed['dtype']}, the model's {side} is "
                                  f"{actual.dtype.name}")
            if list(claimed["shape"][1:]) != list(actual.shape[1:]):
                raise BundleError(f"{self.name}: {where}.shape is {claimed['shape']}, the model's {side} is "
                                  f"{[None if d is None else d for d in actual.shape]}")
            if claimed["shape"][0] is not None and actual.shape[0] is not None and claimed["shape"][0] != actual.shape[0]:
                raise BundleError(f"{self.name}: {where}.shape[0] is {claimed['shape'][0]}, the model's batch "
                                  f"dimension is {actual.shape[0]}")
            quant = claimed.get("quantization")
            if (quant is None) != (actual.scale is None):
                raise BundleError(f"{self.name}: {where}.quantization is {quant}, the model's {side} is "
                                  f"{'quantized' if actual.scale else 'not quantized'}")
            if quant is not None and (not np.isclose(quant["scale"], actual.scale, rtol=1e-6, atol=0)
                                      or quant["zero_point"] != actual.zero_point):
                raise BundleError(f"{self.name}: {where}.quantization (scale {quant['scale']}, zero point "
                                  f"{quant['zero_point']}) differs from the model's (scale {actual.scale}, zero "
                                  f"point {actual.zero_point})")

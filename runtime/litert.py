"""The one wrapper of a ``.tflite`` model behind LiteRT, for the runtime and the pipeline alike: float32 in, float32
out, whatever the model's I/O dtypes; and the one quantization rule, ``io_spec`` and latent sampler.

Why the checks: ``bundle.json`` tells a device how to quantize its input and read the output; if it disagrees with
the model file (a swapped file, an edited scale), every score would be silently wrong. So the model's own tensor
details (dtype, shape signature, scale, zero point, read from the interpreter) must match the bundle's, and the
file's SHA-256 must match the recorded one.

Quantization (:func:`quantize`, :func:`dequantize`) is the one rule the pipeline evaluates with and a device runs:
``q = clip(round(x / scale) + zero_point)`` in float32 and ``y = (q - zero_point) * scale``, so runtime scores equal
the evaluation's. :func:`io_spec` is what every bundle writes about a model's tensors; :func:`sample_latent` is the
generator bundles' documented sampler (``LATENT_SAMPLER``).

Batches run whole (the batch dimension resized, in chunks of at most ``max_batch``), or one example at a time for a
model whose batch dimension is fixed. An interpreter is not thread-safe, so concurrent callers (the HTTP server)
draw interpreters from a small pool; LiteRT releases the GIL while invoking, so a pool of N uses up to N cores.

TensorFlow-free: only numpy, ai_edge_litert and ``edgepipe.runtime``.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgepipe.runtime.errors import BundleError

MAX_BATCH = 256
LATENT_SAMPLER = "numpy.random.default_rng(seed).normal(size=(n, latent_dim)).astype(float32)"


def sample_latent(n: int, latent_dim: int, seed: int) -> np.ndarray:
    """The generator bundles' documented latent sampler (``LATENT_SAMPLER``): seeds reproduce the exporter's latents."""
    return np.random.default_rng(seed).normal(size=(n, latent_dim)).astype(np.float32)


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

    def describe(self) -> dict[str, Any]:
        """The tensor as ``bundle.json`` describes it (``runtime/schema.py``: only the batch dimension may be null)."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype.name,
                "quantization": {"scale": self.scale, "zero_point": self.zero_point} if self.scale else None}


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """float32 -> the tensor's dtype: round(x / scale) + zero_point, saturated (a plain cast for unquantized ones)."""
    if not spec.quantized:
        return np.asarray(x, dtype=spec.dtype)
    info = np.iinfo(spec.dtype)
    q = np.round(np.asarray(x, dtype=np.float32) / spec.scale) + spec.zero_point
    return np.clip(q, info.min, info.max).astype(spec.dtype)


def dequantize(y: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """The tensor's dtype -> float32: (q - zero_point) * scale (a plain cast for unquantized ones)."""
    if not spec.quantized:
        return np.asarray(y, dtype=np.float32)
    return ((y.astype(np.float32) - spec.zero_point) * spec.scale).astype(np.float32)


class _Slot:
    """One interpreter and the input shapes its tensors are currently allocated for."""

    def __init__(self, content: bytes, num_threads: int | None, quiet: bool = False):
        kwargs = {"num_threads": num_threads} if num_threads else {}
        with _quiet_native_stderr() if quiet else contextlib.nullcontext():
            self.interpreter = Interpreter(model_content=content, **kwargs)
            self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.shapes = [tuple(int(v) for v in d["shape"]) for d in self.inputs]

    def feed(self, xs: list[np.ndarray]) -> None:
        """Set the inputs to ``xs`` (already in the tensors' dtypes, in the interpreter's order), resizing if needed."""
        shapes = [tuple(x.shape) for x in xs]
        if shapes != self.shapes:
            for d, shape in zip(self.inputs, shapes):
                self.interpreter.resize_tensor_input(d["index"], list(shape), strict=False)
            self.interpreter.allocate_tensors()
            self.shapes = shapes
        for d, x in zip(self.inputs, xs):
            self.interpreter.set_tensor(d["index"], x)

    def invoke(self, xs: list[np.ndarray]) -> np.ndarray:
        """The (raw) output of one invoke on ``xs``."""
        self.feed(xs)
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
    """Float32 batches in, float32 batches out, whatever the model's I/O dtypes; safe for concurrent callers.

    ``model``: the ``.tflite`` bytes or a path. ``max_batch``: the largest chunk one invoke runs (1: one example at
    a time, as a fixed-batch model always runs). ``inputs``/``input``/``output``: the tensors' :class:`TensorSpec`
    (name, shape, dtype, scale, zero point), output shapes materialized by one batch-1 invoke."""

    def __init__(self, model: bytes | str | os.PathLike, name: str | None = None, num_threads: int | None = None,
                 pool_size: int = 1, max_batch: int = MAX_BATCH):
        if isinstance(model, (bytes, bytearray, memoryview)):
            self._content = bytes(model)
            self.name = name or "model.tflite"
        else:
            self._content = Path(model).read_bytes()
            self.name = name or Path(model).name
        self._num_threads = num_threads
        self.max_batch = max(1, int(max_batch))
        self._pool: queue.LifoQueue[_Slot] = queue.LifoQueue()
        self._created, self._max = 0, max(1, int(pool_size))
        self._lock = threading.Lock()
        try:
            first = _Slot(self._content, num_threads, quiet=True)
        except (ValueError, RuntimeError) as err:
            raise BundleError(f"{self.name}: LiteRT cannot load this model: {str(err).strip().splitlines()[0]}") \
                from None
        self._created = 1
        self.inputs = [TensorSpec.from_details(d) for d in first.inputs]
        self.input = self.inputs[0]
        # One batch-1 invoke materializes output shapes the converter left dynamic (Conv1DTranspose length).
        out = first.invoke([np.zeros((1, *spec.shape[1:]), dtype=spec.dtype) for spec in self.inputs])
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
        """float32 -> the (first) input's dtype with :func:`quantize`."""
        return quantize(x, spec or self.input)

    def dequantize(self, y: np.ndarray) -> np.ndarray:
        """The output's dtype -> float32 with :func:`dequantize`."""
        return dequantize(y, self.output)

    def _chunks(self, qs: list[np.ndarray], each: Callable[[int, int], None] | None) -> np.ndarray:
        n = len(qs[0])
        if n == 0:
            return np.zeros((0, *self.output.shape[1:]), dtype=np.float32)
        step = self.max_batch if self.dynamic_batch else 1
        parts = []
        with self._slot() as slot:
            for i in range(0, n, step):
                if each is not None:
                    each(i, n)
                parts.append(slot.invoke([q[i:i + step] for q in qs]).copy())
        if each is not None:
            each(n, n)
        return self.dequantize(np.concatenate(parts))

    def run(self, x: np.ndarray, each: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Model outputs (float32) for a float32 batch of any length (0 too), in chunks of at most ``max_batch``.

        ``each(done, total)``, if given, is called before every chunk and once after the last (``done == total``):
        where a pipeline checks for a stop request and reports progress."""
        return self._chunks([self.quantize(np.asarray(x, dtype=np.float32))], each)

    def run_named(self, arrays: dict[str, np.ndarray], each: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Outputs of a (multi-input) model for ``{input tensor name: batch}`` (each quantized to its own dtype)."""
        missing = [spec.name for spec in self.inputs if spec.name not in arrays]
        if missing:
            raise ValueError(f"{self.name}: no value for input(s) {', '.join(missing)}")
        return self._chunks([quantize(np.asarray(arrays[spec.name]), spec) for spec in self.inputs], each)

    def by_name(self, arrays: list[np.ndarray], names: list[str] | None = None) -> dict[str, np.ndarray]:
        """``arrays`` (in Keras's input order, named ``names``) keyed by input tensor for :meth:`run_named`: each
        tensor takes the array whose name its own contains (the converter writes ``serving_default_<name>:0``),
        else the one at its own position."""
        keyed = {}
        for j, spec in enumerate(self.inputs):
            k = next((i for i, name in enumerate(names or []) if name in spec.name), j)
            keyed[spec.name] = arrays[k]
        return keyed

    def latency_us(self, runs: int = 100, warmup: int = 10) -> float:
        """Median wall time of one batch-1 invoke on a fresh single-thread interpreter (default delegate: XNNPACK),
        ``warmup`` invokes excluded. The first input holds a standard normal sample (seed 0), any other zeros."""
        slot = _Slot(self._content, num_threads=1)
        sample = np.random.default_rng(0).normal(size=[1, *self.input.shape[1:]]).astype(np.float32)
        xs = [quantize(sample, self.input), *(np.zeros((1, *spec.shape[1:]), dtype=spec.dtype)
                                              for spec in self.inputs[1:])]
        slot.feed(xs)
        for _ in range(max(0, warmup)):
            slot.interpreter.invoke()
        times = []
        for _ in range(max(1, runs)):
            started = time.perf_counter()
            slot.interpreter.invoke()
            times.append(time.perf_counter() - started)
        return float(np.median(times) * 1e6)

    def op_names(self) -> list[str]:
        """Sorted distinct builtin op names of the graph itself (no delegate): what conversion produced."""
        plain = Interpreter(model_content=self._content,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        plain.allocate_tensors()
        return sorted({op["op_name"] for op in plain._get_ops_details()})

    def io_spec(self) -> dict[str, Any]:
        """See :func:`io_spec`."""
        spec = {"input": self.input.describe(), "output": self.output.describe()}
        if len(self.inputs) > 1:
            spec["inputs"] = [t.describe() for t in self.inputs]
        return spec

    def check_against(self, entry: dict[str, Any], key: str) -> None:
        """Refuse a bundle whose description of this model (``models.<name>``) disagrees with the model itself."""
        check_digest(self._content, entry, key, self.name)
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


def check_digest(content: bytes, entry: dict[str, Any], key: str, name: str) -> None:
    """Refuse model bytes whose SHA-256 is not ``entry['sha256']`` (the digest ``bundle.json`` records)."""
    sha = entry.get("sha256")
    if sha is None:  # schema.validate requires it too; a caller that skipped validation still gets no pass
        raise BundleError(f"{name}: missing key '{key}.sha256' (the model's digest is required)")
    if hashlib.sha256(content).hexdigest() != sha:
        raise BundleError(f"{name}: file content does not match {key}.sha256 (modified or swapped model)")


def io_spec(content: bytes) -> dict[str, Any]:
    """Every input and the output (name, shape, dtype, quantization) as the interpreter reports them, for
    ``bundle.json``; ``inputs`` only for a multi-input model. Only the batch dimension may be ``null``."""
    return ModelRunner(content).io_spec()

"""A Keras model as float32 TFLite, checked against Keras before it may ship.

Used when no variant stage ran (a family or task that ships float32, or convert.variants with no int8 variant it
can have) and for an autoencoder's encoder: the conversion is verified on ``samples`` inputs (random 0..1 floats,
valid integer labels) to max |TFLite - Keras| <= ``tolerance``, else nothing is exported.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgepipe.pipeline.errors import VerificationError
from edgepipe.runtime.litert import ModelRunner


def _inputs(net, n: int, rng: np.random.Generator, int_high: int) -> list[np.ndarray]:
    arrays = []
    for tensor in net.inputs:
        shape = (n, *[int(d) for d in tensor.shape[1:]])
        if tensor.dtype.is_integer:
            arrays.append(rng.integers(0, max(1, int_high), size=shape).astype(tensor.dtype.as_numpy_dtype))
        else:
            arrays.append(rng.uniform(0, 1, size=shape).astype(np.float32))
    return arrays


def verify_tflite(net, content: bytes, samples: int = 16, seed: int = 0, int_high: int = 2,
                  arrays: list[np.ndarray] | None = None) -> float:
    """Max |keras - tflite| over ``samples`` inputs fed one example at a time, inputs matched by name."""
    arrays = arrays if arrays is not None else _inputs(net, samples, np.random.default_rng(seed), int_high)
    expected = np.asarray(net.predict(arrays if len(arrays) > 1 else arrays[0], verbose=0))
    runner = ModelRunner(content, max_batch=1)
    got = runner.run_named(runner.by_name(arrays, [t.name.split(":")[0] for t in net.inputs]))
    return float(np.abs(got.reshape(len(got), -1) - expected.reshape(len(expected), -1)).max())


def convert_float32(net) -> bytes:
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


def verified_float32(source, tolerance: float, samples: int, name: str = "model.tflite",
                     int_high: int = 2) -> tuple[bytes, float]:
    """``(content, max |diff|)`` of ``source`` (a Keras model or an .h5 path) converted and checked."""
    if isinstance(source, (str, Path)):
        import tf_keras as keras

        from edgepipe.models.custom_objects import custom_object_scope

        with custom_object_scope():
            source = keras.models.load_model(str(source), compile=False)
    content = convert_float32(source)
    diff = verify_tflite(source, content, samples, int_high=int_high)
    if not diff <= tolerance:
        raise VerificationError(f"{name}: TFLite output differs from Keras by {diff:.3g} (> tolerance "
                                f"{tolerance}); nothing exported")
    return content, diff

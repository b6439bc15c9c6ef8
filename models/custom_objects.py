"""Everything needed to deserialize edgepipe's saved Keras models, in one context manager.

A plain model needs nothing, a QAT model needs tfmot's wrappers/quantizers plus edgepipe's QuantizeConfigs, a
model saved mid-pruning (not stripped) needs the pruning wrapper, and a GAN's discriminator its MinibatchStddev. ``Model.load_keras`` wraps every load in this
scope, so one call site works for all three.
"""
from __future__ import annotations

import contextlib
from typing import Iterator


def custom_objects() -> dict[str, object]:
    """Name -> class mapping of edgepipe's own serializable objects plus tfmot's pruning wrapper."""
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

    from edgepipe.models.gan import minibatch_stddev
    from edgepipe.models.quantize_configs import CUSTOM_OBJECTS

    return {**CUSTOM_OBJECTS, "PruneLowMagnitude": pruning_wrapper.PruneLowMagnitude,
            "MinibatchStddev": minibatch_stddev()}


@contextlib.contextmanager
def custom_object_scope() -> Iterator[None]:
    """``with custom_object_scope(): keras.models.load_model(...)`` for plain, pruned and QAT models."""
    import tensorflow_model_optimization as tfmot

    with tfmot.quantization.keras.quantize_scope(custom_objects()):
        yield

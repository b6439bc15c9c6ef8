"""Quantization-aware training setup that covers Conv1D models and says which layers it could not cover.

``tfmot.quantization.keras.quantize_model`` refuses the whole model as soon as one layer is outside its default
8-bit registry, and Conv1D/Conv1DTranspose are outside it. So each layer is annotated individually: edgepipe's
QuantizeConfig for Conv1D-family layers, tfmot's default for registry layers, and anything else is left in float and
*reported by name* -- a float layer in the middle of an int8 graph makes full-integer conversion fail or fall back,
and the user must hear about it here rather than from the converter.
"""
from __future__ import annotations

import logging
from typing import Any

import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantize_registry

from edgepipe.components.optimization.pruning import kernel_weights
from edgepipe.models.quantize_configs import CUSTOM_OBJECTS, quantize_config_for

log = logging.getLogger(__name__)
_qk = tfmot.quantization.keras


def quantize_aware(model) -> tuple[Any, dict[str, Any]]:
    """Return ``(qat_model, report)``: an uncompiled QAT copy of ``model`` (same weights) and what was quantized.

    ``report`` = ``{"custom": [layer names], "default": [layer names], "not_quantized": [{"layer", "class",
    "reason"}]}``; ``not_quantized`` lists every layer left in float (never skipped silently).
    """
    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    report: dict[str, Any] = {"custom": [], "default": [], "not_quantized": []}

    def annotate(layer):
        clone = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, keras.layers.InputLayer):
            return clone
        config = quantize_config_for(layer)
        if config is not None:
            report["custom"].append(layer.name)
            return _qk.quantize_annotate_layer(clone, quantize_config=config)
        if isinstance(layer, keras.Model):
            reason = "nested model: flatten it into the outer model to quantize its layers"
        elif registry.supports(layer):
            report["default"].append(layer.name)
            return _qk.quantize_annotate_layer(clone)
        else:
            reason = "not in tfmot's default 8-bit registry and edgepipe has no QuantizeConfig for it"
        report["not_quantized"].append({"layer": layer.name, "class": type(layer).__name__, "reason": reason})
        return clone

    if isinstance(model, keras.Sequential) or _is_functional(model):
        annotated = keras.models.clone_model(model, clone_function=annotate)
    else:
        raise TypeError(f"quantize_aware needs a Sequential or functional model, got subclassed {type(model).__name__}")
    annotated.set_weights(model.get_weights())
    for item in report["not_quantized"]:
        log.warning("QAT: layer '%s' (%s) stays float: %s", item["layer"], item["class"], item["reason"])
    with _qk.quantize_scope(CUSTOM_OBJECTS):
        qat_model = _qk.quantize_apply(annotated)
    return qat_model, report


def _is_functional(model) -> bool:
    return getattr(model, "_is_graph_network", False)


class KeepSparsity(keras.callbacks.Callback):
    """Re-zero the weights that were exactly zero before fine-tuning, after every batch.

    QAT fine-tuning of a pruned model would otherwise regrow the pruned weights and silently undo the pruning; kernels
    without zeros (an unpruned model) are left alone, so the callback is a no-op there.
    """

    def __init__(self, model, min_zero_fraction: float = 0.01):
        super().__init__()
        self._masked = []
        for weight in kernel_weights(model):
            mask = (weight.numpy() != 0).astype(weight.dtype.as_numpy_dtype)
            if 1.0 - mask.mean() >= min_zero_fraction:
                self._masked.append((weight, mask))

    @property
    def active(self) -> bool:
        return bool(self._masked)

    def apply(self) -> None:
        for weight, mask in self._masked:
            weight.assign(weight * mask)

    def on_train_batch_end(self, batch, logs=None):
        self.apply()

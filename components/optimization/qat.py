"""Quantization-aware training setup that covers Conv1D models and says which layers it could not cover.

``tfmot.quantization.keras.quantize_model`` refuses the whole model as soon as one layer is outside its default
8-bit registry, and Conv1D/Conv1DTranspose are outside it. So each layer is annotated individually: edgepipe's
QuantizeConfig for Conv1D-family layers, tfmot's default for registry layers, and anything else is left in float and
*reported by name* -- a float layer in the middle of an int8 graph makes full-integer conversion fail or fall back,
and the user must hear about it here rather than from the converter. The same annotation runs under tfmot's
collaborative schemes (PQAT keeps pruning's zeros, CQAT keeps clustering's shared values) with the gaps of those
schemes covered explicitly (see :func:`quantize_aware`).
"""
from __future__ import annotations

import logging
from typing import Any

import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_registry, default_8bit_quantize_scheme)

from edgepipe.components.optimization.pruning import kernel_weights
from edgepipe.models.quantize_configs import CUSTOM_OBJECTS, quantize_config_for
from edgepipe.pipeline.errors import ConfigError

log = logging.getLogger(__name__)
_qk = tfmot.quantization.keras


SCHEMES = ("default", "pqat", "cqat")


def _scheme(name: str):
    """The tfmot QuantizeScheme for ``name``: plain 8-bit, prune-preserving (PQAT) or cluster-preserving (CQAT)."""
    combine = tfmot.experimental.combine
    if name == "pqat":
        return combine.Default8BitPrunePreserveQuantizeScheme()
    if name == "cqat":
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    if name == "default":
        return default_8bit_quantize_scheme.Default8BitQuantizeScheme()
    raise ConfigError(f"QAT: unknown scheme '{name}' (allowed: {', '.join(SCHEMES)})")


def quantize_aware(model, scheme: str = "default") -> tuple[Any, dict[str, Any]]:
    """Return ``(qat_model, report)``: an uncompiled QAT copy of ``model`` (same weights) and what was quantized.

    ``report`` = ``{"scheme", "custom": [layer names], "default": [layer names], "not_quantized": [{"layer", "class",
    "reason"}], "preserved_by": {layer: "scheme" | "edgepipe_config" | "callback"}}``; ``not_quantized`` lists every
    layer left in float (never skipped silently). Under ``pqat``/``cqat``, layers the collaborative registry does not
    cover (Conv1D family, Conv2DTranspose ...) get an explicit config and their sparsity/clusters are kept by a
    callback (:class:`KeepSparsity`, :class:`KeepClusters`) during fine-tuning -- ``preserved_by`` says which.
    Call inside ``strategy.scope()`` to train the wrappers under a distribution strategy.
    """
    from edgepipe.components.optimization.flatten import flatten_nested

    model = flatten_nested(model)  # nested functional models (MobileNetV2's base) are annotated layer by layer
    quant_scheme = _scheme(scheme)
    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    collab = quant_scheme.get_quantize_registry() if scheme != "default" else None
    report: dict[str, Any] = {"scheme": scheme, "custom": [], "default": [], "not_quantized": [],
                              "preserved_by": {}}
    foldable = _batch_norms_after_linear(model)

    def annotate(layer):
        clone = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, keras.layers.InputLayer):
            return clone
        config = quantize_config_for(layer, preserve_sparsity=scheme == "pqat")
        if config is not None:
            report["custom"].append(layer.name)
            if collab is not None and layer.weights:
                report["preserved_by"][layer.name] = "edgepipe_config" if scheme == "pqat" else "callback"
            return _qk.quantize_annotate_layer(clone, quantize_config=config)
        if isinstance(layer, keras.Model):
            reason = "nested model: flatten it into the outer model to quantize its layers"
        elif isinstance(layer, _OUTPUT_ONLY):
            # Elementwise rescaling / resizing: nothing to learn, only the output range (tfmot's registry has no
            # entry, and the collaborative schemes fail on such a layer when it feeds a quantized one).
            report["default"].append(layer.name)
            return _qk.quantize_annotate_layer(clone, quantize_config=_output_only_config())
        elif isinstance(layer, keras.layers.BatchNormalization) and layer.name in foldable:
            report["default"].append(layer.name)  # the scheme's layout transform folds it into the conv/dense
            return _qk.quantize_annotate_layer(clone)
        elif registry.supports(layer):
            report["default"].append(layer.name)
            if collab is None or collab.supports(layer):
                if collab is not None and layer.weights:
                    report["preserved_by"][layer.name] = "scheme"
                return _qk.quantize_annotate_layer(clone)
            # The collaborative registry raises on layers it does not know; the default config quantizes them and
            # the callback keeps their zeros / clusters.
            report["preserved_by"][layer.name] = "callback"
            return _qk.quantize_annotate_layer(clone, quantize_config=registry.get_quantize_config(layer))
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
        qat_model = _qk.quantize_apply(annotated, quant_scheme)
    return qat_model, report


_OUTPUT_ONLY = (keras.layers.Rescaling, keras.layers.Resizing)


def _output_only_config():
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs)

    return default_8bit_quantize_configs.Default8BitOutputQuantizeConfig()


def strip_cqat(model):
    """Remove CQAT's clustering variables (keeping the QAT wrappers the converter reads ranges from)."""
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
        cluster_utils)

    with _qk.quantize_scope(CUSTOM_OBJECTS):
        return cluster_utils.strip_clustering_cqat(model)


def _batch_norms_after_linear(model) -> set[str]:
    """Names of BatchNormalization layers fed only by a Conv2D/DepthwiseConv2D/Dense: tfmot folds those pairs."""
    linear = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    found = set()
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and len(layer._inbound_nodes) == 1:
            inbound = layer._inbound_nodes[0].inbound_layers
            inbound = inbound if isinstance(inbound, list) else [inbound]
            if len(inbound) == 1 and type(inbound[0]) in linear and type(inbound[0]) is not keras.layers.Conv1D:
                found.add(layer.name)
    return found


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


class KeepClusters(keras.callbacks.Callback):
    """Snap each clustered kernel back onto its original centroids after every batch (CQAT for uncovered layers).

    tfmot's CQAT trains shared centroids only for Dense/Conv2D; a kernel under an explicit config (Conv1D family)
    would drift off its clusters during QAT. A kernel counts as clustered when it has at most ``max_clusters``
    distinct values; snapping keeps that count (and zeros stay zeros when zero is a centroid).
    """

    def __init__(self, model, layers: list[str] | None = None, max_clusters: int = 256):
        super().__init__()
        import numpy as np

        self._np = np
        self._snapped = []
        chosen = [layer for layer in model.layers if layers is None or getattr(layer, "layer", layer).name in layers]
        for weight in [w for layer in chosen for w in kernel_weights(layer)]:
            values = weight.numpy()
            centroids = np.unique(values)
            if len(centroids) <= max_clusters and len(centroids) < values.size / 2:
                self._snapped.append((weight, centroids.astype(values.dtype)))

    @property
    def active(self) -> bool:
        return bool(self._snapped)

    def apply(self) -> None:
        np = self._np
        for weight, centroids in self._snapped:
            values = weight.numpy()
            nearest = np.abs(values[..., None] - centroids).argmin(axis=-1)
            weight.assign(centroids[nearest])

    def on_train_batch_end(self, batch, logs=None):
        self.apply()

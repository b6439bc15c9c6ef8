"""QuantizeConfigs for layers tfmot's default 8-bit registry leaves out (Conv1D, Conv1DTranspose, MaxPooling1D).

tfmot's registry has Conv1D commented out, yet TFLite runs a Conv1D as CONV_2D (and Conv1DTranspose as
TRANSPOSE_CONV) with int8 kernels. Quantizing the kernel per-tensor, symmetric (zero point 0, as the int8 conv
kernels require) and the fused activation's output with a moving-average range gives the same fake-quant graph the
converter expects, so the full-int8 model matches the QAT Keras model. The config has no state, so saving it in an
HDF5 model needs only its class name and ``preserve_sparsity`` (see :mod:`edgepipe.models.custom_objects`).

tfmot's collaborative schemes (PQAT/CQAT) only rewrite the weight quantizers of layers *they* configure; a layer
annotated with an explicit config keeps it untouched, so under PQAT a Conv1D would silently regrow its pruned weights.
``Conv1DQuantizeConfig(preserve_sparsity=True)`` uses the same masking quantizer PQAT uses (weights multiplied by the
mask of their non-zeros, so zeros get no gradient), with the per-tensor symmetric int8 range the conv kernels need.
"""
from __future__ import annotations

import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
    prune_preserve_quantize_registry as _prune_preserve)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_configs import (
    NoOpQuantizeConfig)

_quantizers = tfmot.quantization.keras.quantizers


class SparsityPreservingConvWeightsQuantizer(_prune_preserve.PrunePreserveDefaultWeightsQuantizer):
    """PQAT's masking weight quantizer with Conv1D's range: per-tensor, symmetric, full [-128, 127]."""

    def __init__(self):
        super().__init__(num_bits=8, per_axis=False, symmetric=True, narrow_range=False)


class Conv1DQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """8-bit QAT for a Conv1D / Conv1DTranspose: per-tensor symmetric kernel, asymmetric post-activation output."""

    def __init__(self, preserve_sparsity: bool = False):
        self.preserve_sparsity = bool(preserve_sparsity)
        self.weight_quantizer = (SparsityPreservingConvWeightsQuantizer() if self.preserve_sparsity else
                                 _quantizers.LastValueQuantizer(num_bits=8, symmetric=True, narrow_range=False,
                                                                per_axis=False))
        self.activation_quantizer = _quantizers.MovingAverageQuantizer(num_bits=8, symmetric=False,
                                                                       narrow_range=False, per_axis=False)

    def get_weights_and_quantizers(self, layer):
        return [(layer.kernel, self.weight_quantizer)]

    def get_activations_and_quantizers(self, layer):
        return [(layer.activation, self.activation_quantizer)]

    def set_quantize_weights(self, layer, quantize_weights):
        (layer.kernel,) = quantize_weights

    def set_quantize_activations(self, layer, quantize_activations):
        (layer.activation,) = quantize_activations

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {"preserve_sparsity": self.preserve_sparsity}

    def __eq__(self, other):
        return type(other) is type(self) and other.preserve_sparsity == self.preserve_sparsity

    def __ne__(self, other):
        return not self == other


def quantize_config_for(layer, preserve_sparsity: bool = False):
    """The edgepipe QuantizeConfig for ``layer``, or None when tfmot's default registry should handle it.

    Exact class match on purpose: a user subclass of Conv1D may compute something else with the same weights.
    """
    import tf_keras as keras

    if type(layer) in (keras.layers.Conv1D, keras.layers.Conv1DTranspose):
        return Conv1DQuantizeConfig(preserve_sparsity=preserve_sparsity)
    if type(layer) is keras.layers.MaxPooling1D:
        # tfmot lists MaxPooling2D as "no quantize" (a max keeps its input's scale) but comments MaxPooling1D out;
        # left unannotated it stays float under QAT and breaks PQAT/CQAT, whose registries claim to support it.
        return NoOpQuantizeConfig()
    return None


CUSTOM_OBJECTS = {"Conv1DQuantizeConfig": Conv1DQuantizeConfig, "NoOpQuantizeConfig": NoOpQuantizeConfig}

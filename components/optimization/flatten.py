"""Inline nested functional models into their outer model, so per-layer optimizations reach their layers.

tfmot wraps layers one by one (``quantize_annotate_layer``, ``prune_low_magnitude``, ``cluster_weights``); a nested
``keras.Model`` used as a layer (MobileNetV2's base in the transfer-learning builder) is one opaque layer to them, so
QAT would leave the whole base in float and only the converter's calibration would quantize it. :func:`flatten_nested`
rebuilds the outer graph calling the nested model's own layers directly (same layer config, same weights), so every
Conv2D/DepthwiseConv2D + BatchNormalization + ReLU6 of the base is visible -- and foldable -- to those schemes.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


def is_functional(layer) -> bool:
    return isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", False)


def has_nested_models(model) -> bool:
    return any(is_functional(layer) for layer in model.layers)


def flatten_nested(model):
    """``model`` unchanged when no layer is a functional model; else a standalone functional copy (fresh layers,
    same weights) where every nested functional model is inlined. A nested model called with ``training=False``
    (a frozen pretrained base) passes that to each inner layer that takes ``training``."""
    if not is_functional(model) or not has_nested_models(model):
        return model
    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=name)
              for t, name in zip(model.inputs, model.input_names)]
    outputs = _call(model, inputs, None)
    flat = keras.Model(inputs, outputs, name=model.name)
    # Fresh layers: the inlined ones now also carry nodes of the original graph (one inbound node each is what
    # tfmot's layout transforms, e.g. BatchNormalization folding, expect).
    clean = keras.models.clone_model(flat)
    clean.set_weights(flat.get_weights())
    return clean


def _call(net, inputs: list, training):
    counts = net._tensor_usage_count
    tensors = {}
    for reference, value in zip(net.inputs, inputs):
        key = str(id(reference))
        tensors[key] = [value] * counts[key]
    for depth in sorted(net._nodes_by_depth, reverse=True):
        for node in net._nodes_by_depth[depth]:
            if node.is_input or any(key not in tensors for key in node.flat_input_ids):
                continue
            args, kwargs = node.map_arguments(tensors)
            layer = node.layer
            if is_functional(layer):
                inner_training = kwargs.pop("training", training)
                outputs = _call(layer, tf.nest.flatten(args[0] if len(args) == 1 else args), inner_training)
            else:
                if training is not None and "training" not in kwargs and getattr(layer, "_expects_training_arg",
                                                                                  False):
                    kwargs["training"] = training
                outputs = layer(*args, **kwargs)
            for key, value in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                tensors[key] = [value] * counts[key]
    outputs = [tensors[str(id(reference))].pop() for reference in net.outputs]
    return tf.nest.pack_sequence_as(net._nested_outputs, outputs)


def clone_layerwise(model, what: str, skip_layers, transform):
    """Flatten ``model``, then clone it layer by layer with the trained weights copied, so the caller's model stays
    untouched by fine-tuning. ``transform(layer, clone)`` returns what replaces each layer that has weights and is
    not named in ``skip_layers`` (e.g. the clone wrapped for pruning). An unknown name in ``skip_layers`` is an error,
    not a silent no-op. Returns ``(new_model, skipped_layer_names)``; ``what`` names the optimization in errors."""
    from edgepipe.pipeline.errors import ConfigError

    model = flatten_nested(model)  # a nested base model's layers are handled one by one, like the others
    names = {layer.name for layer in model.layers}
    unknown = sorted(set(skip_layers) - names)
    if unknown:
        raise ConfigError(f"{what}: skip_layers names unknown layer(s) {', '.join(unknown)} "
                          f"(layers: {', '.join(sorted(names))})")
    skipped: list[str] = []
    pairs = []

    def wrap(layer):
        clone = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, clone))
        if isinstance(layer, keras.layers.InputLayer) or not layer.weights:
            return clone
        if layer.name in skip_layers:
            skipped.append(layer.name)
            return clone
        return transform(layer, clone)

    new_model = keras.models.clone_model(model, clone_function=wrap)
    for source, clone in pairs:
        clone.set_weights(source.get_weights())
    return new_model, skipped

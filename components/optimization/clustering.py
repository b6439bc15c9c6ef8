"""Weight clustering: each kernel keeps at most ``number_of_clusters`` distinct values, then the wrappers go.

Clustering does not shrink the raw ``.tflite`` (weights are still stored one per element) but a kernel made of N
shared values compresses far better (gzip/OTA size), and int8 quantization maps N floats to at most N int8 codes,
so a post-training-quantized clustered model keeps the property. Layers tfmot cannot cluster (and layers named in
``skip_layers``) stay as they are and are listed in the report, never dropped silently.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.clustering.keras import clustering_registry

from edgepipe.components.optimization.pruning import kernel_weights
from edgepipe.pipeline.errors import ConfigError

log = logging.getLogger(__name__)
_cluster = tfmot.clustering.keras


def wrap_for_clustering(model, number_of_clusters: int, skip_layers: list[str] | tuple[str, ...] = (),
                        preserve_sparsity: bool = False) -> tuple[Any, dict[str, Any]]:
    """Clone ``model`` with every clusterable layer wrapped (k-means++ centroids); returns ``(model, report)``."""
    if number_of_clusters < 2:
        raise ConfigError(f"clustering: number_of_clusters must be >= 2, got {number_of_clusters}")
    from edgepipe.components.optimization.flatten import clone_layerwise

    report: dict[str, Any] = {"clustered": [], "not_clustered": [], "skipped": []}
    params = {"number_of_clusters": int(number_of_clusters),
              "cluster_centroids_init": _cluster.CentroidInitialization.KMEANS_PLUS_PLUS,
              "preserve_sparsity": bool(preserve_sparsity)}

    def mark(layer, clone):
        sizes = [int(np.prod(w.shape)) for w in layer.weights if _is_kernel(w)]
        if clustering_registry.ClusteringRegistry.supports(layer) and sizes and min(sizes) < number_of_clusters:
            # tfmot fails (k-means++ needs a weight per centroid); such a kernel already has few enough values
            report["not_clustered"].append({"layer": layer.name, "class": type(layer).__name__,
                                            "reason": f"{min(sizes)} kernel weights, fewer than number_of_clusters "
                                                      f"{number_of_clusters}: already at most that many values"})
            return clone
        if clustering_registry.ClusteringRegistry.supports(layer):  # the built layer: an unbuilt one has no weights
            report["clustered"].append(layer.name)
            return clone  # wrapped after the weights are copied (k-means needs the trained weights)
        report["not_clustered"].append({"layer": layer.name, "class": type(layer).__name__,
                                        "reason": "not in tfmot's clustering registry"})
        log.warning("clustering: layer '%s' (%s) is not clusterable and keeps its weights", layer.name,
                    type(layer).__name__)
        return clone

    clone, report["skipped"] = clone_layerwise(model, "clustering", skip_layers, mark)
    chosen = set(report["clustered"])

    def cluster(layer):
        if layer.name in chosen:
            return _cluster.cluster_weights(layer, **params)
        return layer

    return keras.models.clone_model(clone, clone_function=cluster), report


def _is_kernel(weight) -> bool:
    """A variable tfmot clusters: a layer's ``kernel`` (``depthwise_kernel`` too), not its bias."""
    return weight.name.rsplit("/", 1)[-1].split(":")[0].endswith("kernel")


def cluster_with_report(model, x_train: np.ndarray, number_of_clusters: int = 16, epochs: int = 1,
                        batch_size: int = 64, learning_rate: float = 1e-4, y_train: np.ndarray | None = None,
                        seed: int = 0, skip_layers: list[str] | None = None, preserve_sparsity: bool = False,
                        strategy=None, loss: Any = "mse") -> tuple[Any, dict[str, Any]]:
    """Cluster a copy of ``model``, fine-tune the centroids, strip the wrappers; return ``(model, report)``.
    ``x_train``: an array, or a streamed ``tf.data`` of ``(x, y)`` batches (components/training/inputs.fit_inputs)."""
    import tensorflow as tf

    from edgepipe.components.training.fit import progress_callback
    from edgepipe.components.training.inputs import fit_inputs

    if not isinstance(x_train, tf.data.Dataset) and len(x_train) == 0:
        raise ValueError("clustering needs at least one training example")
    keras.utils.set_random_seed(seed)
    with (strategy or tf.distribute.get_strategy()).scope():
        wrapped, report = wrap_for_clustering(model, number_of_clusters, skip_layers or (), preserve_sparsity)
        wrapped.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    history = wrapped.fit(**fit_inputs(x_train, y_train, batch_size), epochs=max(1, epochs), verbose=0,
                          callbacks=[progress_callback(max(1, epochs))])
    stripped = _cluster.strip_clustering(wrapped)
    stripped.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    report["loss"] = [float(v) for v in history.history["loss"]]
    report["unique_values"] = unique_kernel_values(stripped)
    return stripped, report


def unique_kernel_values(model) -> dict[str, int]:
    """Distinct values per kernel, read from the weights (what clustering promises to bound)."""
    return {layer.name: int(len(np.unique(np.concatenate([w.numpy().ravel() for w in kernel_weights(layer)]))))
            for layer in model.layers if kernel_weights(layer)}

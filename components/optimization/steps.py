"""Pipeline components for pruning, clustering, quantization-aware training (plain, PQAT, CQAT) and conversion.

Each fine-tunes on the same data and loss the model was trained on (the anomaly autoencoder: the train split's
normal windows unless it was trained on all windows; a supervised family: its train split's examples and labels,
``windows`` then being that family's Examples), so an optimization never shifts what "normal" means. Heavy imports happen inside
the functions: declaring the pipeline must not load TensorFlow. Fine-tuning wrappers are built inside the scope
of the same ``tf.distribute`` strategy name training uses (an execution parameter, not part of the cache key).
"""
from __future__ import annotations

import numpy as np

from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Examples, Model
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline import progress
from edgepipe.pipeline.errors import DataError


def _is_supervised(model: Model) -> bool:
    """A supervised family's Model carries a ``data_spec``; the anomaly autoencoder reconstructs its windows."""
    return ModelCard.of(model).supervised


def train_arrays(examples: Examples, model: Model) -> tuple[np.ndarray, np.ndarray, str]:
    """A supervised family's ``(x, label, loss)`` to fine-tune on: its train split in memory and its task's loss."""
    from edgepipe.components.training.fit import supervised_dataset

    data_spec = ModelCard.of(model).required("data_spec")
    xs, ys = [], []
    for bx, by in supervised_dataset(examples, "train", data_spec, 1024, cache=False):
        xs.append(bx.numpy())
        ys.append(by.numpy())
    if not xs:
        raise DataError(f"train split of {examples.path} has no examples to fine-tune on")
    from edgepipe import tasks

    return np.concatenate(xs), np.concatenate(ys), tasks.get(data_spec.task).loss  # what the model was trained on


def _fine_tune_data(examples: Examples, model: Model, batch_size: int, seed: int) -> tuple[object, object, str, int]:
    """``(x, y, loss, n)`` for ``Model.fit`` via ``fit_inputs``: the anomaly autoencoder's train windows streamed as
    shuffled ``(window, window)`` batches (the same input pipeline as training: memory stays one shuffle buffer, not
    the split), a supervised family's ``(x, label)`` arrays as before."""
    if _is_supervised(model):
        x, y, loss = train_arrays(examples, model)
        return x, y, loss, len(x)
    from edgepipe.components.training.inputs import autoencoder_dataset, check_train_on, count_windows

    # "normal" needs labels: windows without a label feature are all kept, as load_windows did
    only_normal = check_train_on(ModelCard.of(model).train_on) and "label" in examples.feature_spec
    n = count_windows(examples, "train", only_normal)
    progress.check_stop()  # counting read every window: a stop asked meanwhile ends here, not after the first batch
    if n == 0:
        raise DataError(f"train split of {examples.path} has no windows to fine-tune on")
    return autoencoder_dataset(examples, "train", batch_size, only_normal, shuffle=True, seed=seed), None, "mse", n


def _inherit(source: Model, target: Model, **extra) -> None:
    """Carry the upstream model's card (window size, train_on ...) to the derived model, with this step's record."""
    target.properties.update(ModelCard.of(source).fine_tuned(**extra).to_properties())


def _strategy(name: str):
    from edgepipe.models.strategy import get_strategy

    return get_strategy(name)


@component(version="2", execution_params=("strategy",))  # 2: nested models flattened (optimization/flatten.py)
def prune_model(windows: Input[Examples], model: Input[Model], pruned: Output[Model], target_sparsity: float = 0.5,
                epochs: int = 2, schedule: str = "polynomial", batch_size: int = 64, learning_rate: float = 5e-4,
                seed: int = 0, skip_layers: list[str] | None = None, structured_2_4: bool = False,
                policy: str = "uniform", energy_table: dict | None = None, memory: dict | None = None,
                strategy: str = "default") -> dict:
    """Magnitude-prune the model to ``target_sparsity`` (or 2:4 where tfmot can) while fine-tuning; strip, save.
    ``policy: energy`` spreads the target over layers by estimated energy and sensitivity (``energy_table`` and
    ``memory`` as in ``cost.py``: a device target's, when one is set)."""
    from edgepipe.components.optimization.pruning import layer_sparsity, measured_sparsity, prune_with_report

    x, y, loss, n = _fine_tune_data(windows, model, batch_size, seed)
    net, report = prune_with_report(model.load_keras(), x, target_sparsity=target_sparsity, epochs=epochs,
                                    schedule=schedule, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                    skip_layers=skip_layers, structured_2_4=structured_2_4,
                                    strategy=_strategy(strategy), y_train=y, loss=loss, num_examples=n,
                                    policy=policy, energy_table=energy_table, memory=memory)
    sparsity = measured_sparsity(net)
    pruned.save_keras(net)
    pruned.write_json("pruning.json", {**report, "target_sparsity": target_sparsity, "schedule": schedule,
                                       "measured_sparsity": sparsity, "layer_sparsity": layer_sparsity(net)})
    _inherit(model, pruned, pruning={"target_sparsity": target_sparsity, "measured_sparsity": sparsity,
                                     "structured_2_4": report["structured_2_4"], "policy": policy})
    return {"measured_sparsity": sparsity, "final_loss": report["loss"][-1], "not_pruned": len(report["not_pruned"])}


@component(version="2", execution_params=("strategy",))  # 2: nested models flattened (optimization/flatten.py)
def cluster_model(windows: Input[Examples], model: Input[Model], clustered: Output[Model],
                  number_of_clusters: int = 16, epochs: int = 1, batch_size: int = 64, learning_rate: float = 1e-4,
                  seed: int = 0, skip_layers: list[str] | None = None, strategy: str = "default") -> dict:
    """Cluster each kernel to ``number_of_clusters`` shared values, fine-tune the centroids, strip, save."""
    from edgepipe.components.optimization.clustering import cluster_with_report
    from edgepipe.components.optimization.pruning import measured_sparsity

    x, y, loss, _ = _fine_tune_data(windows, model, batch_size, seed)
    net, report = cluster_with_report(model.load_keras(), x, number_of_clusters=number_of_clusters, epochs=epochs,
                                      batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                      skip_layers=skip_layers, strategy=_strategy(strategy), y_train=y, loss=loss)
    clustered.save_keras(net)
    clustered.write_json("clustering.json", {**report, "number_of_clusters": number_of_clusters})
    _inherit(model, clustered, clustering={"number_of_clusters": number_of_clusters})
    return {"max_unique_values": max(report["unique_values"].values(), default=0), "final_loss": report["loss"][-1],
            "not_clustered": len(report["not_clustered"]), "kernel_sparsity": measured_sparsity(net)}


@component(version="2", execution_params=("strategy",))  # 2: nested models flattened (optimization/flatten.py)
def quantize_model(windows: Input[Examples], model: Input[Model], qat_model: Output[Model], epochs: int = 2,
                   batch_size: int = 64, learning_rate: float = 1e-4, seed: int = 0, scheme: str = "default",
                   strategy: str = "default") -> dict:
    """Quantization-aware fine-tuning (``scheme``: default, pqat, cqat); layers left float go in quantization.json.

    Weights that are exactly zero on input (a pruned model) are kept at zero throughout, whatever the scheme, so QAT
    never undoes pruning; under ``cqat`` kernels the scheme does not cover are kept on their clusters.
    """
    import tf_keras as keras

    from edgepipe.components.optimization.clustering import unique_kernel_values
    from edgepipe.components.optimization.pruning import measured_sparsity
    from edgepipe.components.optimization.qat import KeepClusters, KeepSparsity, quantize_aware, strip_cqat

    from edgepipe.components.training.fit import progress_callback
    from edgepipe.components.training.inputs import fit_inputs

    x, y, loss, _ = _fine_tune_data(windows, model, batch_size, seed)
    keras.utils.set_random_seed(seed)
    with _strategy(strategy).scope():
        qat, report = quantize_aware(model.load_keras(), scheme=scheme)
        qat.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    keep = KeepSparsity(qat)
    callbacks = [keep] if keep.active else []
    if scheme == "cqat":
        snapped = [n for n, how in report["preserved_by"].items() if how == "callback"]
        callbacks.append(KeepClusters(qat, layers=snapped))
    history = qat.fit(**fit_inputs(x, y, batch_size), epochs=max(1, epochs), verbose=0,
                      callbacks=[*callbacks, progress_callback(max(1, epochs))])
    if scheme == "cqat":
        qat = strip_cqat(qat)
    sparsity = measured_sparsity(qat)
    qat_model.save_keras(qat)
    losses = [float(v) for v in history.history["loss"]]
    qat_model.write_json("quantization.json", {**report, "loss": losses, "kernel_sparsity": sparsity,
                                               "sparsity_preserved": keep.active,
                                               "unique_values": unique_kernel_values(qat) if scheme == "cqat" else None})
    _inherit(model, qat_model, quantization={"scheme": scheme, "not_quantized": report["not_quantized"]})
    return {"final_loss": losses[-1], "not_quantized": len(report["not_quantized"]), "kernel_sparsity": sparsity}

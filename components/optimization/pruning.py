"""Magnitude pruning with a schedule that actually reaches its target on small datasets, then stripped.

tfmot prunes only on steps that are multiples of ``frequency`` (default 100) up to ``end_step``; with a few dozen
steps per epoch the default never reaches the final sparsity. The schedule here is sized from the real number of
steps: the target is reached at ~80% of training and the rest fine-tunes under the final mask. Conv1DTranspose is
absent from tfmot's prune registry, so it is made prunable on its ``kernel``; any other unsupported layer stays
dense and is listed in the returned report.

Structured 2:4 sparsity (2 zeros in every 4 consecutive input-channel weights, what sparse int8 kernels exploit) is
tfmot's ``sparsity_m_by_n``, which only handles rank-2 and rank-4 kernels (Dense, Conv2D); other prunable layers
fall back to unstructured magnitude pruning at the target and the report says so per layer.

Policies (``policy``): ``uniform`` prunes every layer to the target; ``energy`` spreads the same global target over
the layers by their estimated energy per weight and their sensitivity (``energy_allocation.py``), one tfmot
schedule per layer, so the zeroed weights add up to the same global sparsity.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

from edgepipe.pipeline.errors import ConfigError

log = logging.getLogger(__name__)
_sparsity = tfmot.sparsity.keras
SCHEDULES = ("polynomial", "constant")
POLICIES = ("uniform", "energy")


def pruning_schedule(kind: str, target_sparsity: float, total_steps: int):
    """A tfmot PruningSchedule that reaches ``target_sparsity`` within ``total_steps`` optimizer steps (0-based)."""
    if not 0.0 <= target_sparsity < 1.0:
        raise ConfigError(f"pruning: target_sparsity must be in [0, 1), got {target_sparsity}")
    if kind not in SCHEDULES:
        raise ConfigError(f"pruning: unknown schedule '{kind}' (allowed: {', '.join(SCHEDULES)})")
    total_steps = max(1, int(total_steps))
    if kind == "constant" or total_steps < 3:
        frequency = max(1, min(100, total_steps // 10))
        return _sparsity.ConstantSparsity(target_sparsity, begin_step=0, end_step=-1, frequency=frequency)
    # Ramp up over the first ~80% of steps; the last ramp step must be a multiple of `frequency`.
    end_step = max(1, int(0.8 * (total_steps - 1)))
    frequency = max(1, min(100, end_step // 10))
    end_step = max(frequency, end_step // frequency * frequency)
    return _sparsity.PolynomialDecay(initial_sparsity=0.0, final_sparsity=target_sparsity, begin_step=0,
                                     end_step=end_step, frequency=frequency)


STRUCTURED_KERNEL_RANKS = (2, 4)  # what tfmot's m_by_n mask can rearrange (Dense, Conv2D)


def prunable_layers(model, skip_layers: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Names of the top-level layers :func:`wrap_for_pruning` would prune (those with a kernel)."""
    return [layer.name for layer in model.layers if layer.name not in skip_layers
            and getattr(layer, "kernel", None) is not None
            and (type(layer) is keras.layers.Conv1DTranspose or prune_registry.PruneRegistry.supports(layer))]


def wrap_for_pruning(model, schedule, skip_layers: tuple[str, ...] | list[str] = (),
                     structured_2_4: bool = False, layer_schedules: dict[str, Any] | None = None
                     ) -> tuple[Any, dict[str, Any]]:
    """Clone ``model`` with every prunable layer wrapped, copying weights; returns ``(model, report)``.
    ``layer_schedules``: a schedule per layer name (energy policy), ``schedule`` for any layer not named.

    Cloning (rather than wrapping the caller's layers) keeps the input model untouched by the fine-tuning. Layers named
    in ``skip_layers`` stay dense (listed under ``skipped``); an unknown name is an error, not a silent no-op.
    """
    from edgepipe.components.optimization.flatten import clone_layerwise

    report: dict[str, Any] = {"pruned": [], "not_pruned": [], "skipped": [], "structured_2_4": [],
                              "unstructured_fallback": []}

    def wrap(layer, clone):
        if type(layer) is keras.layers.Conv1DTranspose:
            clone.get_prunable_weights = lambda: [clone.kernel]  # as PruneRegistry.make_prunable does for Conv1D
        if prune_registry.PruneRegistry.supports(clone) or hasattr(clone, "get_prunable_weights"):
            report["pruned"].append(layer.name)
            sched = (layer_schedules or {}).get(layer.name, schedule)
            kernel = getattr(layer, "kernel", None)
            if structured_2_4 and kernel is not None and len(kernel.shape) in STRUCTURED_KERNEL_RANKS:
                report["structured_2_4"].append(layer.name)
                return _sparsity.prune_low_magnitude(clone, pruning_schedule=sched, sparsity_m_by_n=(2, 4))
            if structured_2_4:
                report["unstructured_fallback"].append(layer.name)
            return _sparsity.prune_low_magnitude(clone, pruning_schedule=sched)
        report["not_pruned"].append({"layer": layer.name, "class": type(layer).__name__,
                                     "reason": "not in tfmot's prune registry"})
        log.warning("pruning: layer '%s' (%s) is not prunable and stays dense", layer.name, type(layer).__name__)
        return clone

    wrapped, report["skipped"] = clone_layerwise(model, "pruning", skip_layers, wrap)
    return wrapped, report


def prune(model, x_train: np.ndarray, target_sparsity: float = 0.5, epochs: int = 2, schedule: str = "polynomial",
          batch_size: int = 64, learning_rate: float = 5e-4, y_train: np.ndarray | None = None,
          seed: int = 0, **options) -> Any:
    """Fine-tune a copy of ``model`` while pruning it to ``target_sparsity``; return the stripped model.

    ``y_train`` defaults to ``x_train`` (an autoencoder reconstructs its input). ``options``: see
    :func:`prune_with_report`.
    """
    return prune_with_report(model, x_train, target_sparsity, epochs, schedule, batch_size, learning_rate,
                             y_train, seed, **options)[0]


def prune_with_report(model, x_train: Any, target_sparsity: float = 0.5, epochs: int = 2,
                      schedule: str = "polynomial", batch_size: int = 64, learning_rate: float = 5e-4,
                      y_train: np.ndarray | None = None, seed: int = 0, skip_layers: list[str] | None = None,
                      structured_2_4: bool = False, strategy=None, loss: Any = "mse",
                      num_examples: int | None = None, policy: str = "uniform",
                      energy_table: dict[str, float] | None = None,
                      memory: dict[str, str] | None = None) -> tuple[Any, dict[str, Any]]:
    """:func:`prune`, also returning ``{"pruned", "not_pruned", "skipped", "structured_2_4", "loss"}`` (and
    ``"allocation"``: per layer energy, sensitivity and sparsity, under ``policy: energy``, whose estimate uses
    ``energy_table``/``memory`` as ``cost.py`` does).

    The wrappers are built and compiled inside ``strategy.scope()`` (a ``tf.distribute.Strategy``, default: the
    current one) so pruning fine-tunes under the same distribution as training. ``x_train`` is an array or a
    streamed ``tf.data`` of ``(x, y)`` batches of ``batch_size`` (then ``num_examples`` sizes the schedule).
    """
    import tensorflow as tf

    from edgepipe.components.training.fit import progress_callback
    from edgepipe.components.training.inputs import fit_inputs

    n = len(x_train) if num_examples is None else num_examples
    if n == 0:
        raise ValueError("pruning needs at least one training example")
    keras.utils.set_random_seed(seed)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = steps_per_epoch * max(1, epochs)
    sched = pruning_schedule(schedule, target_sparsity, total_steps)
    if policy not in POLICIES:
        raise ConfigError(f"pruning: unknown policy '{policy}' (allowed: {', '.join(POLICIES)})")
    allocation, layer_schedules = None, None
    if policy == "energy":
        from edgepipe.components.optimization.energy_allocation import energy_policy

        xs, ys = _sample(x_train, y_train)
        allocation = energy_policy(model, prunable_layers(model, skip_layers or ()), target_sparsity, xs, ys, loss,
                                   energy_table, memory)
        layer_schedules = {name: pruning_schedule(schedule, min(a["sparsity"], 0.99), total_steps)
                           for name, a in allocation["layers"].items()}
    with (strategy or tf.distribute.get_strategy()).scope():
        wrapped, report = wrap_for_pruning(model, sched, skip_layers or (), structured_2_4, layer_schedules)
        wrapped.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    history = wrapped.fit(**fit_inputs(x_train, y_train, batch_size), epochs=max(1, epochs), verbose=0,
                          callbacks=[_sparsity.UpdatePruningStep(), progress_callback(max(1, epochs))])
    stripped = _sparsity.strip_pruning(wrapped)
    stripped.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    report["loss"] = [float(v) for v in history.history["loss"]]
    report["policy"] = policy
    if allocation is not None:
        report["allocation"] = allocation
    return stripped, report


def _sample(x_train: Any, y_train: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Up to ``SAMPLE`` training examples (an array, or the first batches of a streamed ``(x, y)`` dataset)."""
    from edgepipe.components.optimization.energy_allocation import SAMPLE

    if isinstance(x_train, np.ndarray):
        x = x_train[:SAMPLE]
        return x, (x if y_train is None else np.asarray(y_train)[:SAMPLE])
    xs, ys, n = [], [], 0
    for bx, by in x_train:
        xs.append(np.asarray(bx))
        ys.append(np.asarray(by))
        n += len(xs[-1])
        if n >= SAMPLE:
            break
    if not xs:
        return None, None
    return np.concatenate(xs)[:SAMPLE], np.concatenate(ys)[:SAMPLE]


def kernel_weights(layer_or_model) -> list:
    """The kernel variables (what pruning zeroes), excluding QAT's ``kernel_min``/``kernel_max`` and biases."""
    return [w for w in layer_or_model.weights if w.name.rsplit("/", 1)[-1].split(":")[0] == "kernel"]


def _zero_fraction(variables) -> float:
    if not variables:
        return 0.0
    values = np.concatenate([v.numpy().ravel() for v in variables])
    return float((values == 0).mean())


def layer_sparsity(model) -> dict[str, float]:
    """Fraction of exactly-zero kernel weights per layer that has a kernel (biases are never pruned)."""
    return {layer.name: _zero_fraction(kernel_weights(layer)) for layer in model.layers if kernel_weights(layer)}


def measured_sparsity(model) -> float:
    """Fraction of exactly-zero weights over all kernels, read from the weights themselves (not the schedule).

    Works on plain, stripped and QAT models alike.
    """
    return _zero_fraction(kernel_weights(model))


def is_2_4_sparse(kernel: np.ndarray) -> bool:
    """True when every group of 4 consecutive input-channel weights (per output channel) has >= 2 zeros.

    Read from the weights: the kernel's last axis is the output channel, the one before it the input channel
    (Dense ``[in, out]``, Conv2D ``[h, w, in, out]``); groups run along the input channel, as TFLite lays them out.
    """
    kernel = np.asarray(kernel)
    rows = np.moveaxis(kernel, -1, 0).reshape(-1, kernel.shape[-2])  # [out * spatial, in]
    pad = (-rows.shape[1]) % 4
    groups = np.pad(rows, ((0, 0), (0, pad)), constant_values=0).reshape(rows.shape[0], -1, 4)
    return bool(((groups == 0).sum(axis=-1) >= 2).all())

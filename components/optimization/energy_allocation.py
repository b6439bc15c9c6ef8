"""Energy-aware pruning (``prune.policy: energy``): how a global sparsity target is spread over the layers.

Uniform magnitude pruning zeroes the same fraction of every prunable kernel. At the same global sparsity (the
same number of zeroed weights), the energy an inference saves depends on *which* weights go: a weight of a conv
layer is fetched once but multiplied at every output position, a weight of a dense head once. The estimate per
prunable layer, with the cost model's table (``cost.py``; a device target's table and memory when one is set):

    energy per weight = bytes per stored weight x (weight memory read per byte) + positions x (int8 mult + int32 add)

(the int8 deployment: one byte per weight; ``positions`` = the output positions each weight is used at: the
output's spatial size for a conv, the input's for a transposed conv, 1 for a Dense on vectors). Removing a weight
saves that energy when zeros are stored compressed and their MACs skipped -- the cost model's sparse accounting.

Sensitivity: each layer alone is magnitude-pruned to the global target on a sample of the training data (no
fine-tuning) and the relative increase of the loss is measured; a layer whose loss jumps is spared.

Allocation: ``score = (energy per weight / mean) / (1 + sensitivity / mean sensitivity)``; each layer's sparsity is
``k x score`` clipped to ``[0, max_sparsity]``, with ``k`` found by bisection so that the zeroed weights add up to
the global target exactly (weighted by layer size). Layers whose energy per weight is the same (weights fetched
from DRAM dominate every layer equally) get nearly uniform sparsity: then there is little energy to gain by moving
sparsity between layers, and the variant table shows it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edgepipe.components.optimization.cost import ENERGY_45NM, MEMORY

MAX_SPARSITY = 0.95  # no layer is pruned to nothing
SAMPLE = 512  # examples the sensitivity is measured on


def positions(layer) -> int:
    """Output positions each kernel weight is multiplied at (batch 1)."""
    import tf_keras as keras

    shape = layer.input_shape if isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose)) \
        else layer.output_shape
    shape = shape[0] if isinstance(shape, list) else shape
    return int(np.prod([d for d in shape[1:-1] if d])) if len(shape) > 2 else 1


def layer_energy(model, names: list[str], table: dict[str, float] | None = None,
                 memory: dict[str, str] | None = None) -> dict[str, dict[str, float]]:
    """Per named layer: kernel weights, MACs (batch 1), energy per weight and the layer's prunable energy (pJ)."""
    table = {**ENERGY_45NM, **(table or {})}
    memory = {**MEMORY, **(memory or {})}
    per_byte = table[f"{memory['weights']}_read_32bit"] / 4
    per_mac = table["int8_mult"] + table["int32_add"]
    out = {}
    for name in names:
        layer = model.get_layer(name)
        n = int(np.prod(layer.kernel.shape))
        pos = positions(layer)
        per_weight = per_byte + pos * per_mac
        out[name] = {"weights": n, "macs": n * pos, "energy_per_weight_pj": per_weight,
                     "energy_pj": n * per_weight}
    return out


def sensitivity(model, x: np.ndarray, y: np.ndarray, loss: Any, names: list[str], sparsity: float) -> dict[str, float]:
    """Relative loss increase when each layer alone is magnitude-pruned to ``sparsity`` (kernel restored after)."""
    import tf_keras as keras

    loss_fn = keras.losses.get(loss)

    def evaluate() -> float:
        return float(np.mean(loss_fn(y, model(x, training=False)).numpy()))

    base = evaluate()
    out = {}
    for name in names:
        kernel = model.get_layer(name).kernel
        original = kernel.numpy()
        cut = np.quantile(np.abs(original), sparsity)
        kernel.assign(np.where(np.abs(original) <= cut, 0.0, original).astype(original.dtype))
        out[name] = max(0.0, evaluate() - base) / max(base, 1e-12)
        kernel.assign(original)
    return out


def allocate(weights: dict[str, int], score: dict[str, float], target: float,
             max_sparsity: float = MAX_SPARSITY) -> dict[str, float]:
    """Per-layer sparsities proportional to ``score`` (clipped to ``[0, max_sparsity]``) whose weighted mean over
    the layers' kernel sizes equals ``target``."""
    names = list(weights)
    n = np.array([weights[k] for k in names], dtype=float)
    s = np.array([max(score[k], 0.0) for k in names], dtype=float)
    cap = max(max_sparsity, target)
    if not s.any():
        s = np.ones_like(s)

    def zeroed(k: float) -> float:
        return float((np.clip(k * s, 0.0, cap) * n).sum())

    lo, hi = 0.0, cap / s[s > 0].min()
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if zeroed(mid) < target * n.sum() else (lo, mid)
    return {k: float(v) for k, v in zip(names, np.clip(hi * s, 0.0, cap))}


def energy_policy(model, names: list[str], target: float, x: np.ndarray | None, y: np.ndarray | None, loss: Any,
                  table: dict[str, float] | None = None, memory: dict[str, str] | None = None) -> dict[str, Any]:
    """The energy-aware allocation for the prunable layers ``names``: ``{"layers": {name: {sparsity, weights,
    macs, energy_per_weight_pj, energy_pj, energy_share, sensitivity}}, "target": target}``."""
    energy = layer_energy(model, names, table, memory)
    sens = sensitivity(model, x, y, loss, names, target) if x is not None and len(x) else {k: 0.0 for k in names}
    mean_e = np.mean([e["energy_per_weight_pj"] for e in energy.values()])
    mean_s = np.mean(list(sens.values())) or 1.0
    score = {k: (energy[k]["energy_per_weight_pj"] / mean_e) / (1.0 + sens[k] / mean_s) for k in names}
    sparsity = allocate({k: energy[k]["weights"] for k in names}, score, target)
    total = sum(e["energy_pj"] for e in energy.values()) or 1.0
    return {"target": target, "layers": {k: {**energy[k], "energy_share": energy[k]["energy_pj"] / total,
                                             "sensitivity": sens[k], "sparsity": sparsity[k]} for k in names}}

"""The optimization/variant stage shared by every template that ships an int8 model.

float model -> {prune -> pqat, qat, cluster [-> cqat]} (only the fine-tuning nodes the configured variants need)
-> convert_tflite (one ``.tflite`` per variant). The anomaly template and the supervised families call this one
function, so a variant added to the catalogue (``tasks/variants.py``) reaches every family.
Evaluation stays per template (each family has its own metric); export gates on its rows.
"""
from __future__ import annotations

import sys

from dataclasses import dataclass
from typing import Any

from edgepipe.pipeline.config import Config


@dataclass
class VariantStage:
    nodes: list  # fine-tuning nodes then convert_tflite, in pipeline order
    convert: Any  # the convert_tflite node (output "tflite")
    active: list[str]  # variant names produced
    primary: str  # the variant shipped as model.tflite, or "auto" (the export gate picks: variants.gated_primary)


def variant_stage(cfg: Config, examples, float_model, task: str) -> VariantStage:
    """Wire the fine-tuning nodes and convert_tflite for ``cfg.convert.variants`` (``examples``: the data the float
    model was trained on, windows for the autoencoder, the family's Examples otherwise)."""
    from edgepipe.components.optimization import convert_tflite
    from edgepipe.tasks.variants import DEFAULT_VARIANTS, active_variants, dropped_variants, primary_variant

    active = active_variants(list(cfg.convert.variants), cfg.enabled())
    # a list of the user's own (the default one is "whatever the enabled stages make"): say what is not built, why
    if list(cfg.convert.variants) != DEFAULT_VARIANTS:
        for name, keys in dropped_variants(list(cfg.convert.variants), cfg.enabled()).items():
            print(f"edgepipe: warning: convert.variants lists '{name}', not built: enable {keys}",
                  file=sys.stderr, flush=True)
    optimized = _optimization_nodes(cfg, examples, float_model, active)
    convert = convert_tflite(
        examples=examples, model=float_model, task=task,
        **{f"{source}_model": node.outputs[output] for source, (node, output) in _outputs(optimized).items()},
        variants=active, inference_type=cfg.convert.inference_type,
        allow_float_fallback=cfg.convert.allow_float_fallback,
        representative_samples=cfg.convert.representative_samples, seed=cfg.training.seed,
        target=cfg.target.resolved())
    primary_variant(cfg.convert.primary, active)  # a primary that is not produced is a config error, now
    return VariantStage([*optimized.values(), convert], convert, active, cfg.convert.primary)


def _optimization_nodes(cfg: Config, examples, float_model, active: list[str]) -> dict:
    """The fine-tuning nodes the configured variants need, keyed by the model they produce (see variants.NEEDS)."""
    from edgepipe.components.optimization import cluster_model, prune_model, quantize_model
    from edgepipe.tasks.variants import VARIANTS

    train_cfg = cfg.training
    sources = {VARIANTS[name].source for name in active}
    common = {"windows": examples, "batch_size": train_cfg.batch_size, "seed": train_cfg.seed,
              "strategy": train_cfg.strategy}
    qat_args = {"epochs": cfg.qat.epochs, "learning_rate": cfg.qat.learning_rate}
    nodes = {}
    p = cfg.prune
    prune_args = {"target_sparsity": p.target_sparsity, "epochs": p.epochs, "schedule": p.schedule,
                  "learning_rate": p.learning_rate, "skip_layers": list(p.skip_layers),
                  "structured_2_4": p.structured_2_4, **common}
    if sources & {"pruned", "pqat"}:
        target = cfg.target.resolved() or {}  # energy policy: the device's table and memory price the layers
        energy = {"policy": "energy", "energy_table": target.get("energy_table") or None,
                  "memory": target.get("memory")} if p.policy == "energy" else {}
        nodes["pruned"] = prune_model(model=float_model, **prune_args, **energy)
    if "pruned_uniform" in sources:  # the uniform baseline at the same global sparsity
        nodes["pruned_uniform"] = prune_model(model=float_model, **prune_args).named("prune_uniform")
    if "qat" in sources:
        nodes["qat"] = quantize_model(model=float_model, scheme="default", **qat_args, **common)
    if "pqat" in sources:
        nodes["pqat"] = quantize_model(model=nodes["pruned"].outputs["pruned"], scheme="pqat", **qat_args,
                                       **common).named("pqat_model")
    if sources & {"clustered", "cqat"}:
        nodes["clustered"] = cluster_model(model=float_model, number_of_clusters=cfg.cluster.number_of_clusters,
                                           epochs=cfg.cluster.epochs, learning_rate=cfg.cluster.learning_rate,
                                           skip_layers=list(cfg.cluster.skip_layers), **common)
    if "cqat" in sources:
        nodes["cqat"] = quantize_model(model=nodes["clustered"].outputs["clustered"], scheme="cqat", **qat_args,
                                       **common).named("cqat_model")
    return nodes


def _outputs(nodes: dict) -> dict:
    output = {"pruned": "pruned", "pruned_uniform": "pruned", "qat": "qat_model", "pqat": "qat_model", "clustered": "clustered",
              "cqat": "qat_model"}
    return {source: (node, output[source]) for source, node in nodes.items()}

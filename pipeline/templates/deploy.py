"""The verifying half of the one builder: variants -> evaluate -> report -> export.

* variants, by the family's policy (``models.registry.VARIANT_POLICIES``): ``full`` is the variant stage shared
  by every family trained on a loss (``variant_stage.py``), ``distilled`` the PTQ + distilled-QAT conversion of
  generators and Q-networks, none a float32 export with the reason;
* evaluate, by the task's declared ``evaluation``: every variant against the Keras model, the task's metric;
* the report before export, so a run whose export the gate refuses still has one;
* export: gated on the variant rows (``convert.primary: auto`` = the first int8 variant that passes), or the
  verified float32 model with why it is not int8.
"""
from __future__ import annotations

from edgepipe.pipeline.config import Config
from edgepipe.pipeline.templates.plan import Plan
from edgepipe.pipeline.templates.stages import Context

_GATE = {"export.*"}
_FULL = {"prune.*", "qat.*", "cluster.*", "convert.*", "target.*"}
_DISTILLED = {"qat.*", "convert.*", "prune.enabled", "cluster.enabled", "target.*"}  # enabled flags filter the variants


def _full(cfg: Config, plan: Plan, ctx: Context) -> None:
    from edgepipe.pipeline.templates.variant_stage import variant_stage

    stage = variant_stage(cfg, ctx.examples, ctx.model, plan.task.name)
    ctx.nodes += stage.nodes
    ctx.tflite, ctx.primary = stage.convert.outputs["tflite"], stage.primary


def _distilled(cfg: Config, plan: Plan, ctx: Context) -> None:
    """float32 / int8 PTQ on the inputs the model really sees / int8 QAT distilled from the float model; no stage
    (float32 export) when ``convert.variants`` names no int8 variant such a model can have."""
    from edgepipe.tasks.variants import DISTILLED, active_variants

    names = [n for n in active_variants(list(cfg.convert.variants), cfg.enabled()) if n in DISTILLED]
    if not any(n != "float32" for n in names):
        return
    from edgepipe.components.optimization import convert_tflite

    args = {"variants": names, "representative_samples": cfg.convert.representative_samples,
            "qat_epochs": cfg.qat.epochs, "qat_learning_rate": cfg.qat.learning_rate,
            "batch_size": _trained_batch_size(cfg, plan), "inference_type": cfg.convert.inference_type,
            "allow_float_fallback": cfg.convert.allow_float_fallback, "seed": cfg.training.seed,
            "target": cfg.target.resolved()}
    convert = convert_tflite(model=ctx.model, task=plan.task.name, **args)
    ctx.nodes.append(convert)
    ctx.tflite = convert.outputs["tflite"]
    ctx.primary = cfg.convert.primary if cfg.convert.primary in names else "auto"


def _trained_batch_size(cfg: Config, plan: Plan) -> int:
    """The batch the model was trained with, from where its trainer declares it
    (``models.registry.TRAINER_BATCH_SIZE``: a dotted config key and the default when the key is absent)."""
    from edgepipe.models.registry import TRAINER_BATCH_SIZE

    key, default = TRAINER_BATCH_SIZE[plan.family.trainer]
    value: object = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        if value is None:
            return int(default)
    return int(value)


VARIANTS = {"full": (_full, _FULL), "distilled": (_distilled, _DISTILLED), None: (None, set())}


def evaluate_stage(cfg: Config, plan: Plan, ctx: Context) -> None:
    """The one evaluate component, given the artifacts the plan made and the config's ``evaluate`` section whole: it
    is already the task's own class (``Task.evaluate``, chosen when the config was validated), so its keys are
    exactly what the task's evaluation reads; ``training.seed`` seeds what the evaluation samples (a GAN's latents)."""
    from edgepipe.components.evaluation import evaluate

    inputs = {k: v for k, v in {"examples": ctx.examples, "tflite": ctx.tflite,
                                "classifier": ctx.classifier}.items() if v is not None}
    node = evaluate(model=ctx.model, task=plan.task.name, settings=cfg.evaluate, seed=cfg.training.seed, **inputs)
    ctx.nodes.append(node)
    ctx.evaluation = node.outputs["evaluation"]


def report_stage(cfg: Config, plan: Plan, ctx: Context) -> None:
    """report.html for every task (its sections come from the report's per-task registry), before the export gate
    so a refused run still has one."""
    from edgepipe.components.report import render_report

    inputs = {k: v for k, v in {"statistics": ctx.statistics, "rejects": ctx.rejects, "examples": ctx.examples,
                                "tflite": ctx.tflite, "blessing": ctx.blessing, "search": ctx.search,
                                "validation": ctx.validation}.items()
              if v is not None}
    node = render_report(model=ctx.model, evaluation=ctx.evaluation, task=plan.task.name, primary=ctx.primary,
                         min_agreement=cfg.export.min_agreement, max_metric_drop=cfg.export.max_metric_drop,
                         **inputs)
    ctx.nodes.append(node)
    ctx.report = node.outputs["report"]


def export_stage(cfg: Config, plan: Plan, ctx: Context) -> None:
    """One exporter for every task: gated on the variant rows, or the verified float32 model with the reason."""
    from edgepipe.components.export import export_bundle

    inputs = {k: v for k, v in {"tflite": ctx.tflite, "report": ctx.report, "transform": ctx.transform,
                                "blessing": ctx.blessing,
                                "windows": ctx.examples if plan.task.data == "windows" else None}.items()
              if v is not None}
    if ctx.tflite is not None:
        params = {"min_agreement": cfg.export.min_agreement, "max_metric_drop": cfg.export.max_metric_drop,
                  "primary": ctx.primary, "float_fallback": plan.variants == "distilled"}
    else:
        params = {"tolerance": cfg.evaluate.tolerance, "float_reason": plan.float_reason or (  # VerifiedEvaluate
            f"convert.variants names no int8 variant a {plan.family.name} model can have (int8_ptq, int8_qat): "
            "the float32 model is shipped")}
    node = export_bundle(model=ctx.model, evaluation=ctx.evaluation, task=plan.task.name, seed=cfg.training.seed,
                         **inputs, **params)
    ctx.nodes.append(node)

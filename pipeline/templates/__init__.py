"""From a validated :class:`Config` to a :class:`Pipeline`: one builder for every task.

``pipeline.template`` names a group of tasks (each task declares its template: ``edgepipe.tasks``); the config's
family and ``model.task`` pick the task (:func:`plan.resolve`). The builder then runs the stages the plan switches
on (``stages.py``: data, train, judge; ``deploy.py``: variants, evaluate, report, export; ``retrain.py``: the
blessing against the last exported bundle, between evaluate and report, when ``retrain.baseline`` is set). Each
stage declares the config keys it reads, so a key given explicitly (in the YAML or by ``--set``) that no active
stage reads is refused when the pipeline is built (exit 2), as are splits the evaluation needs but ``data.split``
does not make. The evaluate stage's keys are the fields of the task's ``evaluate`` section (``Task.evaluate``), the
same class the config validated ``evaluate`` against, so the two refusals cannot disagree.
"""
from __future__ import annotations

from edgepipe.pipeline.config import Config
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.templates.plan import Plan, Template, check_config, resolve, templates

_ALWAYS = {"pipeline.*", "model.family", "export.*"}


def plan_stages(plan: Plan) -> tuple[list, frozenset[str], object]:
    """The plan's stage functions in order, the config keys they read, and the evaluation's split rule."""
    from edgepipe.pipeline.templates import deploy, retrain
    from edgepipe.pipeline.templates import stages as early

    data, data_keys = early.DATA[plan.task.data]
    train, train_keys = early.train_stage(plan)
    variants, variant_keys = deploy.VARIANTS[plan.variants]
    eval_keys = {f"evaluate.{key}" for key in plan.task.evaluate.model_fields}  # the task's section: every key
    judge = [early._judge] if plan.task.evaluation == "generation" else []

    def train_stage(cfg, plan, ctx):
        node = train(cfg, plan, ctx)
        ctx.nodes.append(node)
        ctx.model = node.outputs["model"]

    bless = [retrain.retrain_stage] if retrain.applies(plan) else []
    run = [s for s in (data, train_stage, *judge, variants, deploy.evaluate_stage, *bless, deploy.report_stage,
                       deploy.export_stage) if s is not None]
    return run, frozenset({*_ALWAYS, *data_keys, *train_keys, *variant_keys, *eval_keys,
                           *retrain.keys(plan)}), _evaluated_splits


def _evaluated_splits(config: Config) -> tuple[str, ...] | None:
    """The splits the task's evaluation scores (its evaluate section says; None: no dataset split)."""
    return config.evaluate.splits()


def uses(config: Config) -> frozenset[str]:
    """The config keys the pipeline built from ``config`` reads (``section.*`` for a whole section)."""
    return plan_stages(resolve(config))[1]


def build_pipeline(config: Config) -> Pipeline:
    from edgepipe.models.registry import validate_hparams
    from edgepipe.pipeline.templates.stages import Context

    plan = resolve(config)
    run, keys, splits = plan_stages(plan)
    check_config(config, plan, keys, splits(config))
    if "model.hparams" in keys and plan.task.data != "environment":
        validate_hparams(plan.family.name, dict(config.model.hparams))
    ctx = Context()
    for stage in run:
        stage(config, plan, ctx)
    return Pipeline(config.pipeline.name, ctx.nodes)


__all__ = ["Plan", "Template", "build_pipeline", "plan_stages", "resolve", "templates", "uses"]

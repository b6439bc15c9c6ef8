"""evaluate: the one evaluation component. Every model and its TFLite variants, scored the way the task says.

The task (``edgepipe.tasks``; the model card's unless ``task`` names one) declares its evaluation kind; the kind's
evaluator (``registry.py``: anomaly windows, supervised Examples, generated samples, policy episodes) computes the
task's metrics for the Keras model and, given ``tflite``, each variant's metric and the agreement of its decisions
with the Keras model's: the rows the export gates on. ``settings`` are the evaluator's own parameters (the
builder passes the ``evaluate`` config keys the task reads); an unknown one is an error naming the allowed ones.
Like every evaluation it reports and never fails on poor numbers.
"""
from __future__ import annotations

import inspect
from typing import Any

from edgepipe.components.evaluation import anomaly, control, generation, supervised  # noqa: F401 (register)
from edgepipe.components.evaluation.registry import EVALUATORS
from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Examples, Model, ModelEvaluation, TFLiteModels
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import ConfigError

ARTIFACTS = ("examples", "tflite", "classifier")


@component(version="1")
def evaluate(model: Input[Model], evaluation: Output[ModelEvaluation], examples: Input[Examples] | None = None,
             tflite: Input[TFLiteModels] | None = None, classifier: Input[Model] | None = None,
             task: str | None = None, settings: dict[str, Any] | None = None) -> dict:
    """Write ``evaluation.json`` (+ ``variants.json/.md/.html`` with ``tflite``) for the task's evaluation."""
    from edgepipe import tasks

    declared = tasks.get(task or ModelCard.of(model).task or "")
    fn = evaluator_for(declared.evaluation)
    params = inspect.signature(fn).parameters
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(params) - {"model", "evaluation", *ARTIFACTS})
    if unknown:
        allowed = [p for p in params if p not in ("model", "evaluation", *ARTIFACTS)]
        raise ConfigError(f"evaluate: task '{declared.name}' ({declared.evaluation} evaluation) has no setting "
                          f"{', '.join(map(repr, unknown))} (allowed: {', '.join(allowed)})")
    given = {"examples": examples, "tflite": tflite, "classifier": classifier}
    for name, value in given.items():
        if name in params and value is None and params[name].default is inspect.Parameter.empty:
            raise ConfigError(f"evaluate: task '{declared.name}' needs the '{name}' input")
    inputs = {name: value for name, value in given.items() if name in params}
    return fn(model=model, evaluation=evaluation, **inputs, **settings)


def evaluator_for(kind: str):
    if kind not in EVALUATORS:
        raise ConfigError(f"no evaluator for evaluation kind '{kind}' (known: {', '.join(EVALUATORS)})")
    return EVALUATORS[kind]

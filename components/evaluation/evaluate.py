"""evaluate: the one evaluation component. Every model and its TFLite variants, scored the way the task says.

The task (``edgepipe.tasks``; the model card's unless ``task`` names one) declares its evaluation kind and its
``evaluate`` section (``Task.evaluate``); the kind's evaluator (``registry.py``: anomaly windows, supervised
Examples, generated samples, policy episodes) computes the task's metrics for the Keras model and, given
``tflite``, each variant's metric and the agreement of its decisions with the Keras model's: the rows the export
gates on. ``settings`` is that section whole, the config's ``evaluate`` (already the task's class; None: its
defaults), not one keyword argument per key: the cache key fingerprints it by its class and sorted fields
(``pipeline/component.py`` ``param_json``). Like every evaluation it reports and never fails on poor numbers.
"""
from __future__ import annotations

import inspect

from edgepipe.components.evaluation import anomaly, control, generation, supervised  # noqa: F401 (register)
from edgepipe.components.evaluation.registry import EVALUATORS
from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Examples, Model, ModelEvaluation, TFLiteModels
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import ConfigError
from edgepipe.tasks.sections import EvaluateSection

ARTIFACTS = ("examples", "tflite", "classifier")


@component(version="2")
def evaluate(model: Input[Model], evaluation: Output[ModelEvaluation], examples: Input[Examples] | None = None,
             tflite: Input[TFLiteModels] | None = None, classifier: Input[Model] | None = None,
             task: str | None = None, settings: EvaluateSection | None = None, seed: int = 0) -> dict:
    """Write ``evaluation.json`` (+ ``variants.json/.md/.html`` with ``tflite``) for the task's evaluation.
    ``seed``: what the evaluation samples (a GAN's latents), for evaluators that draw any."""
    from edgepipe import tasks

    declared = tasks.get(task or ModelCard.of(model).task or "")
    fn = evaluator_for(declared.evaluation)
    section = declared.evaluate() if settings is None else settings
    if type(section) is not declared.evaluate:
        raise ConfigError(f"evaluate: task '{declared.name}' reads the evaluate section {declared.evaluate.__name__} "
                          f"({', '.join(declared.evaluate.model_fields)}), got {type(section).__name__}")
    params = inspect.signature(fn).parameters
    given = {"examples": examples, "tflite": tflite, "classifier": classifier}
    for name, value in given.items():
        if name in params and value is None and params[name].default is inspect.Parameter.empty:
            raise ConfigError(f"evaluate: task '{declared.name}' needs the '{name}' input")
    inputs = {name: value for name, value in given.items() if name in params}
    if "seed" in params:
        inputs["seed"] = seed
    return fn(model=model, evaluation=evaluation, settings=section, **inputs)


def evaluator_for(kind: str):
    if kind not in EVALUATORS:
        raise ConfigError(f"no evaluator for evaluation kind '{kind}' (known: {', '.join(EVALUATORS)})")
    return EVALUATORS[kind]

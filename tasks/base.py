"""The :class:`Task` declaration and its registry.

Why a declaration and not an abstract class with a dozen methods: most tasks differ only in a few facts (what the
label is, which loss, which metric, where int8 calibration inputs come from, which runtime task decodes the output);
the few behaviours that really differ (bundle fields, verification inputs) are plain functions of the model's card
(``edgepipe.models.card.ModelCard``), given per task where needed and defaulted otherwise. A new task is one module:
declare it, ``register`` it, and add the module to ``BUILTIN``; a task from outside the package (a test's toy task)
registers the same way.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from edgepipe.tasks.bundle import evaluated_examples, preprocessing, standard_bundle, standard_summary
from edgepipe.tasks.metrics import TaskMetric
from edgepipe.tasks.sections import EvaluateSection, ExamplesEvaluate

# Modules that register the built-in tasks, imported on first lookup (cheap: no TensorFlow).
BUILTIN = ("edgepipe.tasks.anomaly", "edgepipe.tasks.supervised", "edgepipe.tasks.generation",
           "edgepipe.tasks.control")
LABELS = ("class", "mask", "value", "none")  # what a task's label is: class id, per-pixel class id, float target
DATA = ("windows", "examples", "environment")  # what the pipeline feeds: series windows, Examples, a Gym env
CALIBRATION = ("windows", "examples", "latents", "observations")  # int8 representative inputs
_REGISTRY: dict[str, "Task"] = {}


def _no_fields(card: Any, io: dict[str, Any]) -> dict[str, Any]:
    return {}



def _value_report(x, y, out, names, lowest):
    """MAE/RMSE of float targets: the evaluation report of any task whose label is a value."""
    from edgepipe.components.evaluation.family_metrics import regression_report

    report = regression_report(out, y)
    return report, {"mae": report["mae"], "rmse": report["rmse"]}





@dataclass(frozen=True)
class Task:
    """One task as the pipeline sees it.

    ``runtime`` is the ``bundle.json`` task its bundles are written for (the runtime's ``@register``ed decoder:
    forecasting is regression on a window, control a greedy policy). ``metric`` scores a model and measures how
    often a variant's decisions agree with the Keras model's; None means variants cannot be compared on this task
    (a reconstruction has no decision), so the task ships float32 and ``float_reason`` says why.
    ``template`` is the ``pipeline.template`` that runs it (a template is the set of tasks naming it);
    ``configurable``: the task can be named by ``model.task``; the others are implied by the family and template.
    """

    name: str
    description: str
    runtime: str
    metric: TaskMetric | None
    label: str = "none"
    label_required: bool = True  # False: the label is optional (a GAN is conditional only when labels exist)
    loss: str | None = None
    data: str = "examples"
    calibration: str = "examples"
    template: str = "supervised"
    evaluation: str = "supervised"  # which evaluation component scores it: anomaly | supervised | generation | control
    # the config's ``evaluate`` section for this task (``tasks/sections.py``): the keys its evaluation reads, nothing
    # else; the evaluate component receives it whole
    evaluate: type[EvaluateSection] = field(default=ExamplesEvaluate, compare=False)
    configurable: bool = True
    float_reason: str | None = None
    # The bundle (``tasks/bundle.py``): ``bundle(ctx) -> BundleParts`` is the task's whole part of bundle.json;
    # the standard one composes the three hooks below (output fields from the model card and tensors, what
    # a device does to raw input, and the inputs/outputs a device checks itself against).
    bundle: Callable[[Any], Any] = field(default=standard_bundle, compare=False)
    bundle_fields: Callable[[Any, dict[str, Any]], dict[str, Any]] = field(default=_no_fields,  # (ModelCard, io)
                                                                          compare=False)
    preprocessing: Callable[[Any], dict[str, Any]] = field(default=preprocessing, compare=False)
    verification: Callable[[Any], dict[str, Any]] = field(default=evaluated_examples, compare=False)
    summary: Callable[[dict, dict, str], str] = field(default=standard_summary, compare=False)  # SUMMARY.md
    # evaluate_model's report of a task fed Examples: (x, y, keras outputs, class names, lowest_confidence) ->
    # (evaluation.json metrics, the headline numbers recorded as the run's metrics)
    evaluation_report: Callable[..., tuple[dict, dict]] = field(default=_value_report, compare=False)

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.label, LABELS, "label"), (self.data, DATA, "data"),
                                     (self.calibration, CALIBRATION, "calibration")):
            if value not in allowed:
                raise ValueError(f"task '{self.name}': {what} must be one of {allowed}, got {value!r}")
        if not (isinstance(self.evaluate, type) and issubclass(self.evaluate, EvaluateSection)):
            raise ValueError(f"task '{self.name}': evaluate must be an EvaluateSection subclass (tasks/sections.py)")
        if self.metric is None and not self.float_reason:
            raise ValueError(f"task '{self.name}': a task without a variant metric must say why (float_reason)")

    @property
    def integer_labels(self) -> bool:
        """Labels are class ids (classification, segmentation masks, a cGAN's condition)."""
        return self.label in ("class", "mask")

    @property
    def quantizable(self) -> bool:
        return self.metric is not None


def register(task: Task) -> Task:
    """Add ``task`` to the registry (re-registering the same declaration is a no-op, a different one an error)."""
    known = _REGISTRY.get(task.name)
    if known is not None and known != task:
        raise ValueError(f"task '{task.name}' is already registered with a different declaration")
    _REGISTRY[task.name] = task
    return task


def _load() -> None:
    for module in BUILTIN:
        importlib.import_module(module)


def get(name: str) -> Task:
    """The task ``name``; an unknown one is a one-line ConfigError naming the known ones."""
    _load()
    if name not in _REGISTRY:
        from edgepipe.pipeline.errors import ConfigError

        raise ConfigError(f"unknown task '{name}' (known: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def names(configurable: bool | None = None) -> tuple[str, ...]:
    """Registered task names in registration order (``configurable=True``: those ``model.task`` may name)."""
    _load()
    return tuple(n for n, t in _REGISTRY.items() if configurable is None or t.configurable == configurable)


def registered() -> dict[str, Task]:
    """``{name: task}`` for every registered task, in registration order."""
    _load()
    return dict(_REGISTRY)


def builtin() -> dict[str, Task]:
    """The tasks edgepipe itself declares (``BUILTIN``), without any registered from outside: what docs list."""
    _load()
    found = [v for module in BUILTIN for v in vars(importlib.import_module(module)).values() if isinstance(v, Task)]
    return {task.name: task for task in found}


def chosen(template_tasks: tuple[str, ...], family_tasks: tuple[str, ...], task: str) -> str:
    """The task a config runs: the one task of its template the family does, else ``model.task`` (a family doing
    several, e.g. an MLP classifies or regresses). Also where they do not meet (a pipeline of your own keeps the
    default template): the family's one task, else ``model.task``; the builder refuses such a plan itself."""
    possible = [t for t in family_tasks if t in template_tasks] or list(family_tasks)
    return possible[0] if len(possible) == 1 else task


def templates() -> dict[str, tuple[str, ...]]:
    """``{template: its tasks}``, in registration order: what ``pipeline.template`` may name."""
    _load()
    out: dict[str, tuple[str, ...]] = {}
    for name, task in _REGISTRY.items():
        out[task.template] = (*out.get(task.template, ()), name)
    return out


def runtime_tasks() -> dict[str, str]:
    """``{pipeline task: runtime task}`` for every registered task."""
    _load()
    return {n: t.runtime for n, t in _REGISTRY.items()}

"""What every report section reads: the component's inputs and parameters, plus lazily loaded, shared data.

Why one object: sections are independent modules registered per task, yet several need the same expensive things
(the Keras model, ``predictions.npz``, a few input examples). Each is loaded at most once, on first use, and only if
a section that is actually rendered asks for it, so an anomaly report without ``examples`` never loads TensorFlow
data pipelines and a report without a model never builds one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import (ExampleStatistics, Examples, Model, ModelBlessing, ModelEvaluation,
                                         Rejects, SearchResults, TFLiteModels, ValidationReport)
from edgepipe.pipeline.contracts import EvaluationReport, VariantRow
from edgepipe.pipeline.errors import ConfigError

ANOMALY = "anomaly"  # the windowed sensor detector: evaluate_anomaly's evaluation.json has no ``task`` key
EVAL_SPLITS = ("eval", "test")


def resolve_task(task: str | None, evaluation: ModelEvaluation | None, model: Model | None,
                 known: tuple[str, ...]) -> str | None:
    """The report's task: the ``task`` parameter, else evaluation.json's ``task`` (or ``anomaly`` for the
    reconstruction-MSE detector's evaluation), else the model card's ``task`` (or ``anomaly`` for a model scored
    by reconstruction MSE), else None (only the common sections)."""
    if task is not None:
        if task not in known:
            raise ConfigError(f"report parameter 'task': unknown task '{task}' (allowed: {', '.join(known)})")
        return task
    doc = evaluation.report() if evaluation is not None else None
    if doc is not None:
        if doc.task:
            return doc.task
        if doc.score == "reconstruction_mse":
            return ANOMALY
    if evaluation is not None and evaluation.properties.get("task"):  # the component's own summary property
        return evaluation.properties["task"]
    if model is not None:
        card = ModelCard.of(model)
        if card.task:
            return card.task
        if card.score == "reconstruction_mse":
            return ANOMALY
    return None


@dataclass
class ReportContext:
    """Inputs (any may be None), parameters, and the lazily loaded artifacts sections share."""

    task: str | None
    statistics: ExampleStatistics | None = None
    rejects: Rejects | None = None
    model: Model | None = None
    evaluation: ModelEvaluation | None = None
    tflite: TFLiteModels | None = None
    examples: Examples | None = None
    blessing: ModelBlessing | None = None  # a retrain's comparison with the last exported bundle
    search: SearchResults | None = None  # a budget search's trials (pipeline/search.py)
    validation: ValidationReport | None = None  # validate_examples' anomalies of eval/test against train
    params: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str, default: Any = None) -> Any:
        value = self.params.get(name)
        return default if value is None else value

    # ---- evaluation -----------------------------------------------------------------------------------------------
    @cached_property
    def doc(self) -> EvaluationReport | None:
        """evaluation.json (typed), or None without an evaluation."""
        return self.evaluation.report() if self.evaluation is not None else None

    @property
    def metrics(self) -> dict[str, Any]:
        """The task's own evaluation report (``evaluation.json`` ``metrics``)."""
        return (self.doc.metrics if self.doc is not None else None) or {}

    @cached_property
    def predictions(self) -> dict[str, np.ndarray] | None:
        """evaluate_model's per-example arrays (``x``, ``y``, ``keras``, one per variant), or None."""
        if self.evaluation is None:
            return None
        path = self.evaluation.path / ((self.doc.predictions_file if self.doc else None) or "predictions.npz")
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    @cached_property
    def variant_rows(self) -> list[VariantRow]:
        """The evaluation's variant table (``variants.json`` rows), empty without one."""
        return (self.evaluation.variant_rows() if self.evaluation is not None else None) or []

    # ---- model ------------------------------------------------------------------------------------------------------
    @cached_property
    def card(self) -> ModelCard | None:
        """The model's card (family, task, data spec, latent size, environment ...), or None without a model."""
        return ModelCard.of(self.model) if self.model is not None else None

    @cached_property
    def keras(self):
        """The Keras model (the generator for a GAN, the Q-network for DQN), or None without a model."""
        return self.model.load_keras() if self.model is not None else None

    @cached_property
    def history(self) -> dict[str, Any] | None:
        path = self.model.path / "history.json" if self.model is not None else None
        return json.loads(path.read_text()) if path is not None and path.exists() else None

    @property
    def class_names(self) -> list[str] | None:
        names = self.metrics.get("class_names")
        if names:
            return list(names)
        return self.card.labels if self.card is not None else None

    # ---- inputs -----------------------------------------------------------------------------------------------------
    def inputs(self, limit: int) -> tuple[np.ndarray | None, np.ndarray | None, str]:
        """Up to ``limit`` model inputs with their labels (None where unknown) and where they came from.

        Preference: the evaluated examples in ``predictions.npz`` (exactly what the metrics were computed on, no
        re-read), else the ``examples`` input's eval/test split read the way evaluation reads it
        (``evaluation.supervised.split_arrays``; windows for the anomaly detector), else none."""
        if self.predictions is not None and "x" in self.predictions:
            y = self.predictions.get("y")
            return self.predictions["x"][:limit], (y[:limit] if y is not None else None), "evaluated examples"
        if self.examples is None:
            return None, None, "no examples"
        cache = self.__dict__.setdefault("_inputs", {})
        if limit not in cache:
            cache[limit] = self._read_examples(limit)
        return cache[limit]

    def _read_examples(self, limit: int):
        split = (self.doc.split if self.doc else None) or next(
            (s for s in (*EVAL_SPLITS, "train") if self.examples.split_files(s)), None)
        if split is None or not self.examples.split_files(split):
            return None, None, f"examples have no eval/test split ({', '.join(self.examples.splits)})"
        spec = self.examples.feature_spec
        card = self.card or ModelCard()
        feature = card.input_feature or ("window" if "window" in spec else None)
        if card.data_spec is not None:
            from edgepipe.components.evaluation.supervised import split_arrays

            y_key = card.data_spec.extra.get("y_key", card.label_feature or "label")
            _, x, y = split_arrays(self.examples, self.model, split, with_labels=y_key in spec)
            return x[:limit], (y[:limit] if y is not None else None), f"{split} split"
        if feature not in spec:  # raw windows without a data spec: the anomaly detector's ``window`` feature
            return None, None, f"examples have no input feature ({', '.join(spec)})"
        xs, ys, n, used = [], [], 0, []
        for name in [s for s in EVAL_SPLITS if self.examples.split_files(s)] or [split]:  # windows: eval, then test
            for batch in self.examples.dataset(name, batch_size=min(limit, 1024)):
                xs.append(batch[feature].numpy())
                if "label" in batch:
                    ys.append(batch["label"].numpy())
                n += len(xs[-1])
                used = [*dict.fromkeys([*used, name])]
                if n >= limit:
                    break
            if n >= limit:
                break
        if not xs:
            return None, None, f"{split} split is empty"
        return (np.concatenate(xs)[:limit], np.concatenate(ys)[:limit] if len(ys) == len(xs) else None,
                f"{' + '.join(used)} split{'s' if len(used) > 1 else ''}")

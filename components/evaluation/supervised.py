"""The supervised evaluator: a model fed Examples (classification, regression, forecasting, segmentation,
reconstruction, or a task registered from outside) on one split, the report its task declares
(``Task.evaluation_report``), and every TFLite variant compared with Keras by the task's metric.

Like every evaluation it reports and never fails on poor numbers.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgepipe.pipeline.artifacts import Examples, Model, ModelEvaluation, TFLiteModels
from edgepipe.pipeline.contracts import EvaluationReport
from edgepipe.components.evaluation.registry import evaluator
from edgepipe.tasks.sections import ExamplesEvaluate
from edgepipe.models.card import ModelCard
from edgepipe.pipeline.errors import DataError

log = logging.getLogger(__name__)


def split_arrays(examples: Examples, model: Model, split: str, with_labels: bool = True):
    from edgepipe.components.training.fit import supervised_dataset

    spec = ModelCard.of(model).required("data_spec")
    if not examples.split_files(split):
        raise DataError(f"{examples.path}: no split '{split}' to evaluate on")
    ds = supervised_dataset(examples, split, spec, 256, cache=False, with_labels=with_labels)
    xs, ys = [], []
    for batch in ds:
        if with_labels:
            xs.append(batch[0].numpy())
            ys.append(batch[1].numpy())
        else:
            xs.append(batch.numpy())
    x = np.concatenate(xs)
    return spec, x, (np.concatenate(ys) if ys else None)


@evaluator("supervised")
def evaluate_model(model: Model, evaluation: ModelEvaluation, examples: Examples,
                   tflite: TFLiteModels | None = None, *, settings: ExamplesEvaluate) -> dict:
    """Metrics of a supervised model on ``settings.split`` (the task's ``evaluate`` section): accuracy, per-class precision/recall, confusion matrix and the
    lowest-confidence examples (classification); MAE/RMSE (regression, forecasting); IoU (segmentation);
    reconstruction error (autoencoders).

    With ``tflite`` (the variant stage's converted models) every variant is run with LiteRT on the same split and
    compared with the Keras model by the task's declared metric (``edgepipe.tasks``): ``variants.json/.md/.html`` rows
    and, in evaluation.json, ``models`` (file hashes) and ``agreement`` -- what export gates on. Per-example inputs
    and outputs of every model go to ``predictions.npz`` (``x``, ``y``, ``keras``, ``<variant>``), so a device's
    answers can be checked against the pipeline's own on the same examples.
    """
    from edgepipe import tasks

    split, latency_runs = settings.split, settings.latency_runs
    lowest_confidence = getattr(settings, "lowest_confidence", 0)  # ClassificationEvaluate; no other report lists any
    card = ModelCard.of(model)
    task = card.task or "classification"
    declared = tasks.get(task)
    spec, x, y = split_arrays(examples, model, split, with_labels=declared.label != "none")
    net = model.load_keras()
    out = net.predict(x, batch_size=256, verbose=0)
    names = list(spec.class_names) if spec.class_names else None
    report, summary = declared.evaluation_report(x, y, out, names, lowest_confidence)
    outputs = {"keras": out}
    variants: dict[str, Any] = {}
    if tflite is not None and declared.quantizable:
        variants = _evaluate_variants(tflite, model, net, task, x, y, outputs, evaluation, latency_runs)
        summary.update({f"{v}_agreement": a["all"] for v, a in variants["agreement"].items()})
    np.savez_compressed(evaluation.file("predictions.npz"), x=x, **({"y": y} if y is not None else {}),
                        **{name: np.asarray(o) for name, o in outputs.items()})
    evaluation.write_report(EvaluationReport.build(schema_version=1, family=card.family, task=task, split=split,
                                                   metrics=report, predictions_file="predictions.npz", **variants))
    evaluation.properties.update({"task": task, "split": split, **summary})
    return summary


def _evaluate_variants(tflite: TFLiteModels, model: Model, net, task: str, x, y, outputs: dict,
                       evaluation: ModelEvaluation, latency_runs: int) -> dict[str, Any]:
    """Run each TFLite variant on ``x`` (adding to ``outputs``), score it with the task metric and write the table;
    the :class:`EvaluationReport` fields it fills (reference, models, agreement, metric_name, variant_metrics)."""
    import hashlib
    import json

    from edgepipe import tasks
    from edgepipe.tasks.metrics import compare_variants
    from edgepipe.components.evaluation.variants import build_rows, run_progress, write_table
    from edgepipe.components.optimization.pruning import measured_sparsity
    from edgepipe.runtime.litert import ModelRunner

    models = {"keras": {"kind": "keras", "source": "model"}}
    for name in tflite.variants():
        path = tflite.variant_path(name)
        outputs[name] = ModelRunner(path).run(x, run_progress(path.stem))
        models[name] = {"kind": "tflite", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    metric = tasks.get(task).metric
    compared = compare_variants(metric, y, outputs)
    values = {m: c["metric"] for m, c in compared.items()}
    agree = {m: {"all": c["agreement"]} for m, c in compared.items() if m != "keras"}
    index = json.loads((tflite.path / "variants.json").read_text())
    latencies = {name: ModelRunner(tflite.variant_path(name)).latency_us(runs=latency_runs) for name in index}
    reference = {"size_bytes": (model.path / Model.filename).stat().st_size, "gzip_bytes": None,
                 "params": int(net.count_params()), "sparsity": measured_sparsity(net)}
    rows = build_rows(index, metric.name, values, {m: a["all"] for m, a in agree.items()},
                      {m: metric.drop(values[m], values["keras"]) for m in values}, latencies, reference)
    write_table(evaluation, rows)
    return {"reference": "keras", "models": models, "agreement": agree, "metric_name": metric.name,
            "variant_metrics": values}

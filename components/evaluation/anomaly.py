"""Evaluate the Keras model and every TFLite variant as anomaly detectors, and how often they agree.

Each model gets its own threshold from its own errors on normal training windows: a quantized model's error scale
shifts slightly, and comparing it against the float model's threshold would count calibration drift as
disagreement. What must carry over to the device is the *decision*, so agreement is measured on decisions (eval +
test windows). Three numbers per variant: ``all`` (every window), ``decisive`` (the windows whose Keras score is
outside a band of ``agreement_band`` around the Keras threshold: a window scored within a few percent of the
threshold is a coin toss that int8 rounding may flip without either decision being wrong; clear decisions must
agree) and ``score_correlation`` (Spearman: the order of scores, which the threshold-free streaming likelihood
relies on). The export step gates on ``decisive`` (``agreement_gate`` says so). This component reports; it never
fails on poor numbers.

It also writes the variant comparison table (``variants.json/.md/.html``, see :mod:`.variants`): per variant F1 and
agreement against the Keras float model, size, gzip size, parameters, sparsity and batch-1 XNNPACK latency.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from edgepipe.components.evaluation.variants import build_rows, run_progress, write_table
from edgepipe.pipeline.artifacts import Examples, Model, ModelEvaluation, TFLiteModels
from edgepipe.pipeline.contracts import AgreementGate, EvaluationReport
from edgepipe.components.evaluation.registry import evaluator
from edgepipe.pipeline.errors import ConfigError
from edgepipe.runtime.scores import describe, window_scores

if TYPE_CHECKING:  # importing the task module here would register it before the registry's own order
    from edgepipe.tasks.anomaly import AnomalyEvaluate

log = logging.getLogger(__name__)
REFERENCE = "keras"
EVAL_SPLITS = ("eval", "test")
BATCH = 256  # windows scored per call (and held in memory) at a time


@evaluator("anomaly")
def evaluate_anomaly(model: Model, evaluation: ModelEvaluation, examples: Examples, tflite: TFLiteModels, *,
                     settings: AnomalyEvaluate) -> dict:
    """``settings``: the task's ``evaluate`` section (``edgepipe.tasks.anomaly.AnomalyEvaluate``), read below.

    Write ``evaluation.json`` (thresholds, metrics per model per split, agreement), ``errors.npz`` and the
    variant table; latency is the median of ``latency_runs`` batch-1 single-thread invokes after a warm-up.

    ``input_clip="train_range"`` (the default): every model is fed the window clipped to the normal train windows'
    [min, max] (the range the int8 input is calibrated on, where its quantization saturates) while the score compares
    the unclipped window, so the Keras reference and every variant share one input domain and out-of-range values
    score as error (on NAB's ec2_request_latency_system_failure, int8_qat's agreement went from 0.929 to 0.989).
    ``"none"`` feeds the raw window: where later values leave the trained range, int8 saturates and float does not.
    ``agreement_band``: the relative band around the Keras threshold left out of the gated ``decisive`` agreement.
    ``score``/``score_steps``: the window score (``runtime/scores.py``, the device's own), e.g. ``newest_mse`` over the
    newest 4 steps; thresholds, metrics, agreement and the likelihood prior are all on it."""
    from edgepipe.components.evaluation.metrics import (agreement, decisive_agreement, detection_metrics,
                                                        rank_correlation, threshold)
    from edgepipe.runtime.litert import ModelRunner

    s = settings
    threshold_quantile, threshold_margin, latency_runs = s.threshold_quantile, s.threshold_margin, s.latency_runs
    input_clip, agreement_band, score, score_steps = s.input_clip, s.agreement_band, s.score, s.score_steps
    size = examples.feature_spec.get("window", {}).get("shape", [None])[0]  # the section cannot know it
    if size is not None and score_steps > int(size):  # before any model is loaded or scored
        raise ConfigError(f"evaluate.score_steps {score_steps} exceeds the window size ({size} steps)")
    warnings: list[str] = []
    present = []
    for split in ("train", *EVAL_SPLITS):
        if examples.split_files(split):
            present.append(split)
        else:
            warnings.append(f"split '{split}' is missing")
    domain = _input_domain(examples, "train" in present, input_clip)
    if input_clip == "train_range" and domain is None:
        warnings.append("the normal train windows are constant: no input clip (nothing to clip to)")
    keras_model = model.load_keras()
    # one batch of BATCH windows per call: the same chunks Keras predict(batch_size=BATCH) and ModelRunner use
    predictors: dict[str, Any] = {REFERENCE: keras_model.predict_on_batch}
    models: dict[str, Any] = {REFERENCE: {"kind": "keras", "source": "float_model"}}
    for name in tflite.variants():
        path = tflite.variant_path(name)
        runner = ModelRunner(path)
        predictors[name] = functools.partial(runner.run, each=run_progress(path.stem))
        models[name] = {"kind": "tflite", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "input_dtype": runner.input.dtype.name}

    scoring = functools.partial(window_scores, kind=score, steps=score_steps)
    data, errors = _stream_errors(examples, present, predictors, domain, scoring)
    thresholds = {m: threshold(errors[m].get("train", np.zeros(0)), threshold_quantile, threshold_margin)
                  for m in predictors}
    if thresholds[REFERENCE] is None:
        warnings.append("no normal training windows: thresholds and decisions are undefined")
    splits = [s for s in EVAL_SPLITS if s in data]
    labels = {s: data[s]["label"] for s in splits}
    pooled_labels = np.concatenate([labels[s] for s in splits]) if splits else np.zeros(0, np.int64)
    metrics, agree = {}, {}
    for m in predictors:
        pooled = np.concatenate([errors[m][s] for s in splits]) if splits else np.zeros(0)
        metrics[m] = {s: detection_metrics(errors[m][s], labels[s], thresholds[m]) for s in splits}
        metrics[m]["all"] = detection_metrics(pooled, pooled_labels, thresholds[m])
        if m == REFERENCE:
            continue
        ref = np.concatenate([errors[REFERENCE][s] for s in splits]) if splits else np.zeros(0)
        agree[m] = {s: agreement(errors[m][s], thresholds[m], errors[REFERENCE][s], thresholds[REFERENCE])
                    for s in splits}
        agree[m]["all"] = agreement(pooled, thresholds[m], ref, thresholds[REFERENCE])
        agree[m]["decisive"], agree[m]["near_threshold"] = decisive_agreement(
            pooled, thresholds[m], ref, thresholds[REFERENCE], agreement_band)
        agree[m]["score_correlation"] = rank_correlation(pooled, ref)
        models[m]["score_relative_difference"] = _relative_difference(pooled, ref)

    _save_errors(evaluation, data, errors, splits)
    counts = {"train_normal": int(len(errors[REFERENCE]["train"])) if "train" in data else 0,
              **{s: {"windows": int(len(labels[s])), "anomalous": int(labels[s].sum())} for s in splits}}
    band = f"[t/{1 + agreement_band:g}, t*{1 + agreement_band:g}]"
    gate = AgreementGate.build(on="decisive", band=agreement_band, definition=f"decisions on the {'+'.join(splits)} "
                               f"windows whose Keras score is outside {band}, t the Keras threshold")
    evaluation.write_report(EvaluationReport.build(
        schema_version=1, task="anomaly", score=describe(score, score_steps, domain is not None), reference=REFERENCE,
        splits=tuple(splits), threshold_quantile=threshold_quantile, threshold_margin=threshold_margin, models=models,
        input_clip=domain, thresholds=thresholds, metrics=metrics, agreement=agree, agreement_gate=gate,
        counts=counts, warnings=tuple(warnings), errors_file="errors.npz"))
    rows = _variant_rows(tflite, model, keras_model, metrics, {m: a["decisive"] for m, a in agree.items()},
                         latency_runs)
    write_table(evaluation, rows)
    evaluation.properties.update({"reference": REFERENCE, "variants": sorted(agree)})
    for w in warnings:
        log.warning("evaluation: %s", w)
    summary: dict[str, Any] = {f"{m}_agreement": a["all"] for m, a in agree.items()}
    summary.update({f"{m}_agreement_decisive": a["decisive"] for m, a in agree.items()})
    summary.update({f"{m}_f1": metrics[m]["all"]["f1"] for m in predictors})
    summary.update({f"{m}_auc": metrics[m]["all"]["auc"] for m in predictors})
    return summary


def _variant_rows(tflite: TFLiteModels, float_model: Model, keras_model, metrics: dict, agree: dict,
                  latency_runs: int) -> list[dict[str, Any]]:
    """The variant table's rows; ``agree``: per variant the agreement the export gate judges."""
    from edgepipe import tasks
    from edgepipe.components.optimization.pruning import measured_sparsity
    from edgepipe.runtime.litert import ModelRunner

    f1 = tasks.get("anomaly").metric
    index_file = tflite.path / "variants.json"
    index = json.loads(index_file.read_text()) if index_file.exists() else {
        name: {"size_bytes": tflite.variant_path(name).stat().st_size, "gzip_bytes": None}
        for name in tflite.variants()}
    values = {m: metrics[m]["all"]["f1"] for m in metrics}
    latencies = {name: ModelRunner(tflite.variant_path(name)).latency_us(runs=latency_runs) for name in index}
    reference = {"size_bytes": (float_model.path / Model.filename).stat().st_size, "gzip_bytes": None,
                 "params": int(keras_model.count_params()), "sparsity": measured_sparsity(keras_model)}
    return build_rows(index, f1.name, values, agree,
                      {m: f1.drop(values[m], values[REFERENCE]) for m in values}, latencies, reference)


def _stream_errors(windows: Examples, splits: list[str], predictors: dict[str, Any],
                   domain: dict[str, float] | None, scoring) -> tuple[dict[str, dict], dict[str, dict[str, np.ndarray]]]:
    """``(columns, errors)``: per split the windows' identities (label, start, series ...; no window tensors) and
    per model per split the reconstruction errors, in one streamed pass over each split (every model scores each
    batch), so memory holds one batch of windows rather than every split (train: normal windows only)."""
    from edgepipe.components.training.inputs import iter_windows

    columns: dict[str, dict] = {}
    errors: dict[str, dict[str, np.ndarray]] = {m: {} for m in predictors}
    for split in splits:
        parts: dict[str, list] = {}
        scores: dict[str, list] = {m: [] for m in predictors}
        for batch in iter_windows(windows, split, only_normal=(split == "train"), batch_size=BATCH):
            x = batch.pop("window")
            for m, predict in predictors.items():
                scores[m].append(_errors(predict, x, domain, scoring))
            for key, value in batch.items():
                if value.dtype == object:  # strings: fixed-width bytes, not one Python object per window
                    value = value.astype(bytes)
                parts.setdefault(key, []).append(value)
        empty = {name: np.zeros(0, np.int64 if name == "label" else np.float32) for name in windows.feature_spec}
        columns[split] = {key: np.concatenate(parts[key]) if key in parts else empty[key]
                          for key in [*parts, *(k for k in empty if k not in parts and k != "window")]}
        for m in predictors:
            errors[m][split] = np.concatenate(scores[m]) if scores[m] else np.zeros(0)
    return columns, errors


def _input_domain(windows: Examples, has_train: bool, input_clip: str) -> dict[str, float] | None:
    """``{"min", "max"}`` of the normal train windows (normalized) for ``train_range``; None for ``none`` or when
    they are constant (min == max: bundle.json's input_clip needs max > min)."""
    from edgepipe.components.training.inputs import iter_windows
    if input_clip == "none":
        return None
    if input_clip != "train_range":
        raise ConfigError(f"evaluate.input_clip must be 'none' or 'train_range', got '{input_clip}'")
    low, high = np.inf, -np.inf
    for batch in (iter_windows(windows, "train", only_normal=True, batch_size=4096) if has_train else ()):
        if len(batch["window"]):
            low, high = min(low, float(np.min(batch["window"]))), max(high, float(np.max(batch["window"])))
    if low > high:
        raise ConfigError("evaluate.input_clip=train_range needs normal training windows")
    if low == high:  # constant training data (a flat line): no range to clip to; the model sees the raw window
        return None
    return {"min": low, "max": high}


def _errors(predict, x: np.ndarray, domain: dict[str, float] | None, scoring) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0)
    fed = x if domain is None else np.clip(x, domain["min"], domain["max"]).astype(np.float32)
    return scoring(x, predict(fed))


def _relative_difference(errors: np.ndarray, reference: np.ndarray) -> float | None:
    """Median |e - e_ref| / e_ref: how far a variant's scores drift from the Keras model's (diagnostic only)."""
    if len(errors) == 0:
        return None
    return float(np.median(np.abs(errors - reference) / np.maximum(reference, 1e-12)))


def _save_errors(evaluation: ModelEvaluation, data: dict, errors: dict, splits: list[str]) -> None:
    """Per-window scores and identities, keyed ``<split>__<model>`` / ``<split>__label`` ..., for plots."""
    arrays = {}
    for split, columns in data.items():
        for model, per_split in errors.items():
            arrays[f"{split}__{model}"] = per_split[split].astype(np.float32)
        for key in ("label", "start_time", "start"):
            if key in columns:
                arrays[f"{split}__{key}"] = np.asarray(columns[key]).reshape(-1)
        if "series" in columns:
            arrays[f"{split}__series"] = np.array([s.decode() if isinstance(s, bytes) else str(s)
                                                   for s in np.asarray(columns["series"]).reshape(-1)])
    np.savez_compressed(evaluation.file("errors.npz"), **arrays)

"""bless_model: a retrained candidate against the last exported bundle, on the candidate's own evaluation data.

Why: a later run on new data can train a worse model (drifted or contaminated training data, a bad labelling) that
still passes the per-variant export bounds, which only compare a variant with its own Keras model. TFX's Evaluator
answers this with a *blessing*: the baseline (the model now deployed) is scored on the candidate's evaluation split
with the same metric, and the candidate ships only if it is no worse by more than a bound. Here the baseline is
an exported bundle, scored through the runtime (``edgepipe.runtime.Bundle``: its own preprocessing, primary
``.tflite`` and threshold, exactly what a device runs), and the candidate is the variant the export gate will ship
(``convert.primary``, ``auto`` resolved as the gate does). ``blessing.json`` holds both metrics, the bound and the
verdict; the export gate refuses an unblessed candidate (exit 4) and the report shows the comparison.

Baseline scorers are registered per evaluation kind (:func:`baseline_scorer`): anomaly windows (the candidate's
eval+test windows de-normalized with its own fitted transform and fed raw to the baseline bundle, which
normalizes them with *its* parameters and applies *its* threshold) and supervised Examples (the evaluation's
``predictions.npz`` inputs through the baseline's primary model). A kind without a scorer cannot be blessed: the
retrain stage declares its keys only for the kinds registered here, so ``retrain.baseline`` is refused at build.
The anomaly scorer also records how the new train split moved against the baseline's normalization (a schema
check of the series: same channels, centre shift in baseline scale units, scale ratio).

What ``bundle.json`` alone says is checked when the pipeline is built (:func:`incomparable`, called by the retrain
stage), so a baseline of another task, window size, channel set or input shape is refused (exit 2) before anything
trains; the scorers keep the checks only the data can answer (a channel missing from the new CSV: exit 3).

Not comparable, blessed with the reason recorded (as for a metric undefined on the data): a baseline that cannot
judge the new data says nothing about the candidate. TFX blesses a candidate against a baseline that *ran on the
same kind of data*; when the new train split sits far outside the baseline's normalization (any channel's centre
moved by more than ``MAX_CENTER_SHIFT`` baseline scales, or its scale changed by more than ``MAX_SCALE_RATIO``x
either way), or the baseline raises an alarm on at least ``MAX_ALARM_RATE`` of the evaluation windows (an
always-alarm detector, whose F1 is just the labelled share's), its F1 would block every candidate below that share.
Within the bounds the F1s are compared, and a refusal line says the drift and the baseline's alarm rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgepipe.pipeline.artifacts import Examples, ModelBlessing, ModelEvaluation, TransformParams
from edgepipe.pipeline.component import Input, InputPath, Output, component
from edgepipe.pipeline.errors import DataError
from edgepipe.runtime.tasks.anomaly import channel_names


@dataclass
class BaselineScore:
    """The baseline bundle's metric on the candidate's evaluation data (and what else the scorer found)."""

    metric: float | None
    examples: int
    details: dict[str, Any] = field(default_factory=dict)  # e.g. precision/recall, the data drift per channel
    undefined: str | None = None  # why the metric cannot compare the two models on this data (then not compared)


Scorer = Callable[..., BaselineScore]
SCORERS: dict[str, Scorer] = {}
Check = Callable[[dict[str, Any], dict[str, Any]], "tuple[str, str] | None"]
CHECKS: dict[str, Check] = {}
MAX_CENTER_SHIFT = 10.0  # baseline scales a channel's centre may move before the baseline cannot judge the data
MAX_SCALE_RATIO = 10.0  # x (or 1/x) a channel's scale may change
MAX_ALARM_RATE = 0.9  # share of evaluation windows the baseline may flag before it is an always-alarm detector


def baseline_scorer(kind: str) -> Callable[[Scorer], Scorer]:
    """Register ``fn(bundle_path, evaluation, examples, transform, task, variant) -> BaselineScore`` for an
    evaluation kind (``variant``: the candidate's variant the export will ship)."""
    def register(fn: Scorer) -> Scorer:
        SCORERS[kind] = fn
        return fn
    return register


def baseline_check(kind: str) -> Callable[[Check], Check]:
    """Register ``fn(bundle_doc, given) -> (config key, why) | None`` for an evaluation kind: what the baseline's
    ``bundle.json`` says up front that the config (``given``: dotted key -> value, None where only the data will
    tell) contradicts."""
    def register(fn: Check) -> Check:
        CHECKS[kind] = fn
        return fn
    return register


def incomparable(doc: dict[str, Any], task: Any, given: dict[str, Any]) -> tuple[str, str] | None:
    """``(config key, why)`` when the baseline bundle's ``doc`` alone shows that a candidate of ``task`` (the Task)
    configured as ``given`` cannot be compared with it, else None: another task first, then the kind's check."""
    if doc.get("task") != task.runtime:
        ours = task.runtime if task.runtime == task.name else f"{task.runtime} (task {task.name})"
        return "retrain.baseline", (f"the baseline bundle's task is {doc.get('task')} ({doc.get('family') or 'model'}"
                                    f"), this pipeline's is {ours}: not comparable")
    check = CHECKS.get(task.evaluation)
    return check(doc, given) if check else None


def verdict(candidate: float | None, baseline: float | None, max_regression: float,
            higher_is_better: bool) -> tuple[bool, float | None, str]:
    """``(blessed, regression, reason)``: regression is how much worse the candidate is (positive = worse, in the
    metric's units). Without a baseline, or where either metric is undefined, there is nothing to compare: blessed,
    and the reason says why."""
    if baseline is None and candidate is None:
        return True, None, "the metric is undefined for both models (no labelled evaluation data): not compared"
    if not _finite(baseline):
        return True, None, "the baseline's metric is undefined on this data: not compared"
    if not _finite(candidate):
        return True, None, "the candidate's metric is undefined on this data: not compared"
    regression = float(baseline - candidate) if higher_is_better else float(candidate - baseline)
    if regression > max_regression + 1e-12:
        return False, regression, f"worse than the baseline by {regression:.4f} > max_regression {max_regression}"
    return True, regression, f"no worse than the baseline by more than max_regression {max_regression}"


@component(version="1")
def bless_model(evaluation: Input[ModelEvaluation], blessing: Output[ModelBlessing],
                examples: Input[Examples] | None = None, transform: Input[TransformParams] | None = None,
                baseline: InputPath | None = None, baseline_run: str | None = None, task: str | None = None,
                max_regression: float = 0.01, primary: str = "auto", min_agreement: float = 0.98,
                max_metric_drop: float | None = None) -> dict:
    """Write ``blessing.json``; ``baseline`` is a bundle directory (None: the first export, blessed as such).
    ``primary``/``min_agreement``/``max_metric_drop`` are the export's, to name the variant the gate will ship."""
    from edgepipe import tasks
    from edgepipe.components.evaluation.variants import gate
    from edgepipe.pipeline.errors import VerificationError
    from edgepipe.tasks.variants import gated_primary

    declared = tasks.get(task or "")
    rows = gate(evaluation.variant_rows() or [], min_agreement, max_metric_drop)
    try:
        chosen, _ = gated_primary(primary, rows)
    except VerificationError:  # no variant can ship: the export refuses on its own; compare the named one, if any
        chosen = None if primary == "auto" else primary
    row = next((r for r in rows if r.variant == chosen), None)
    metric = declared.metric
    doc: dict[str, Any] = {
        "schema_version": 1, "metric_name": metric.name, "higher_is_better": metric.higher_is_better,
        "max_regression": max_regression,
        "candidate": {"variant": chosen, "metric": _number(row.metric if row else None),
                      "per_variant": {r.variant: _number(r.metric) for r in rows}}}
    if baseline is None:
        blessed, regression, reason = True, None, "no earlier exported bundle of this pipeline: the first export"
        doc["baseline"] = None
    else:
        scorer = SCORERS.get(declared.evaluation)
        if scorer is None:
            raise DataError(f"retrain: no baseline scorer for {declared.evaluation} evaluation "
                            f"(known: {', '.join(SCORERS)})")
        score = scorer(Path(baseline), evaluation=evaluation, examples=examples, transform=transform,
                       task=declared.name, variant=chosen)
        meta = _bundle_doc(Path(baseline))
        doc["baseline"] = {"bundle": str(baseline), "run": baseline_run, "variant": meta.get("primary_variant"),
                           "metric": _number(score.metric), "examples": score.examples, **score.details}
        if score.undefined:
            doc["not_compared"] = score.undefined  # refusal/summary: no verdict from the two metrics
        blessed, regression, reason = (True, None, score.undefined) if score.undefined else verdict(
            doc["candidate"]["metric"], score.metric, max_regression, metric.higher_is_better)
    doc.update(blessed=blessed, regression=regression, reason=reason)
    blessing.write_json("blessing.json", doc)
    blessing.properties.update(blessed=blessed, baseline=str(baseline) if baseline else None, variant=chosen)
    return {"blessed": blessed, "candidate_metric": doc["candidate"]["metric"],
            "baseline_metric": (doc["baseline"] or {}).get("metric"), "regression": regression,
            "max_regression": max_regression}


def refusal(doc: dict[str, Any], chosen: str) -> str | None:
    """The export gate's one line when the shipped variant ``chosen`` is not blessed, else None."""
    candidate = doc["candidate"].get("per_variant", {}).get(chosen)
    base = doc.get("baseline") or {}
    if doc.get("not_compared"):
        return None
    blessed, regression, _ = verdict(candidate, base.get("metric"), doc["max_regression"], doc["higher_is_better"])
    if blessed:
        return None
    return (f"retrain: candidate '{chosen}' {doc['metric_name']} {candidate:.4f} is worse than the baseline bundle's "
            f"{base['metric']:.4f} ({base.get('bundle')}{_context(base)}) by {regression:.4f} > "
            f"retrain.max_regression {doc['max_regression']}; nothing exported")


def _context(base: dict[str, Any]) -> str:
    """What else the comparison measured, for the refusal line: the baseline's alarm rate and the largest drift."""
    parts = []
    if base.get("alarm_rate") is not None:
        parts.append(f"baseline alarm rate {base['alarm_rate']:.3f}")
    drift = base.get("drift") or {}
    worst = drift.get("largest_shift_channel")
    if drift.get("comparable") and worst is not None:
        moved = drift["channels"][worst]
        parts.append(f"new train data vs its normalization: '{worst}' centre moved {moved['center_shift']:.2f} "
                     f"baseline scales, scale x{moved['scale_ratio']:.3g}")
    return "".join(f"; {p}" for p in parts)


def summary(doc: dict[str, Any], chosen: str) -> dict[str, Any]:
    """What bundle.json and evaluation.json carry of the blessing of the shipped variant ``chosen`` (the gate's
    choice: the one the blessing named, unless the gate's rules choose another, which is then judged here)."""
    base = doc.get("baseline") or {}
    if chosen == doc["candidate"]["variant"]:
        candidate, regression, reason = doc["candidate"]["metric"], doc["regression"], doc["reason"]
    else:
        candidate = doc["candidate"].get("per_variant", {}).get(chosen)
        _, regression, reason = (True, None, doc["reason"]) if not base or doc.get("not_compared") else verdict(
            candidate, base.get("metric"), doc["max_regression"], doc["higher_is_better"])
    return {"blessed": True, "metric_name": doc["metric_name"], "candidate_variant": chosen,
            "candidate_metric": candidate, "baseline_bundle": base.get("bundle"), "baseline_run": base.get("run"),
            "baseline_metric": base.get("metric"), "regression": regression,
            "max_regression": doc["max_regression"], "reason": reason}


# ---- baseline scorers ------------------------------------------------------------------------------------------
@baseline_scorer("anomaly")
def _anomaly(bundle_path: Path, evaluation: ModelEvaluation, examples: Examples | None,
             transform: TransformParams | None, task: str, variant: str) -> BaselineScore:
    """The baseline bundle's F1 on the candidate's eval+test windows (pooled, as the evaluation pools them)."""
    from edgepipe.components.evaluation.metrics import detection_metrics
    from edgepipe.components.training.inputs import iter_windows

    if examples is None or transform is None:
        raise DataError("retrain: an anomaly candidate is compared on its windows and fitted transform, not given")
    bundle = _load(bundle_path)
    meta, params = bundle.doc, transform.read_json("transform.json")
    names = channel_names(meta) or []
    channels = list(params["channels"])
    missing = [n for n in names if n not in channels]
    if missing:
        raise DataError(f"retrain: the new data has no channel {', '.join(map(repr, missing))} that the baseline "
                        f"bundle {bundle_path} reads (new channels: {', '.join(channels)})")
    wrong = _anomaly_fits(meta, {"window.size": int(examples.feature_spec["window"]["shape"][0])})
    if wrong:  # checked at build (a config key); here only for windows made otherwise
        raise DataError(f"retrain: {wrong[0]} {wrong[1]} ({bundle_path})")
    order = [channels.index(n) for n in names]
    center, scale = np.asarray(params["center"], np.float64), np.asarray(params["scale"], np.float64)
    report = evaluation.report()
    splits = list((report.splits if report else None) or [])
    scores, labels = [], []
    for split in splits:
        for batch in iter_windows(examples, split, batch_size=1024):
            raw = (batch["window"].astype(np.float64) * scale + center)[..., order]
            scores.append(bundle.predict(raw, kind="windows").window_score)
            labels.append(batch["label"])
    errors = np.concatenate(scores) if scores else np.zeros(0)
    truth = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    found = detection_metrics(errors, truth, bundle.impl.threshold)
    details = {"splits": splits, "precision": found["precision"], "recall": found["recall"],
               "threshold": bundle.impl.threshold, "alarm_rate": _rate(found["flagged"], len(truth)),
               "drift": _drift(meta["normalization"], params, names)}
    if not found["anomalous"]:  # new normal data without labels (issue 14): F1 has no positives to find
        pooled = (report.model_metrics(variant) if report else {}).get("all") or {}
        details["candidate_alarm_rate"] = _rate(pooled.get("flagged"), pooled.get("windows"))
        return BaselineScore(None, int(len(truth)), details, undefined=(
            "no labelled anomalous window in the evaluation data: F1 is undefined for both models, not compared "
            "(alarm rates on these presumably normal windows are recorded)"))
    return BaselineScore(found["f1"], int(len(truth)), details, undefined=_cannot_judge(details))


def _cannot_judge(details: dict[str, Any]) -> str | None:
    """Why the baseline cannot judge the new data (module docstring: the bounds), or None."""
    drift, rate = details.get("drift") or {}, details.get("alarm_rate")
    for name, moved in (drift.get("channels") or {}).items() if drift.get("comparable") else ():
        ratio = moved["scale_ratio"]
        if abs(moved["center_shift"]) > MAX_CENTER_SHIFT or not 1 / MAX_SCALE_RATIO <= ratio <= MAX_SCALE_RATIO:
            return (f"the new train data moved far from the baseline's normalization ('{name}' centre "
                    f"{moved['center_shift']:.1f} baseline scales, scale x{ratio:.3g}; bounds {MAX_CENTER_SHIFT:g} "
                    f"scales, {MAX_SCALE_RATIO:g}x): the baseline cannot judge this data, not compared")
    if rate is not None and rate >= MAX_ALARM_RATE:
        return (f"the baseline flags {rate:.3f} of the evaluation windows (>= {MAX_ALARM_RATE:g}: an always-alarm "
                "detector, whose F1 is the labelled share's): the baseline cannot judge this data, not compared")
    return None


@baseline_check("anomaly")
def _anomaly_fits(doc: dict[str, Any], given: dict[str, Any]) -> tuple[str, str] | None:
    """A series baseline: the same window size (its model's input length) and, where the config names the
    channels (``data.feature_columns``), every channel the baseline reads among them."""
    size, ours = (doc.get("window") or {}).get("size"), given.get("window.size")
    if size is not None and ours is not None and int(ours) != int(size):
        return "window.size", (f"{ours} differs from the baseline bundle's {size}: the models cannot be compared on "
                               "the same windows")
    columns = given.get("data.feature_columns")
    missing = [n for n in channel_names(doc) or [] if n not in columns] if columns else []
    if missing:
        return "data.feature_columns", (f"{list(columns)} lacks channel {', '.join(map(repr, missing))} that the "
                                        "baseline bundle reads: the models cannot be compared on the same windows")
    return None


def _drift(old: dict[str, Any], new: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """How the new train split's fitted normalization moved from the baseline's, per channel: the centre's shift in
    baseline scale units and the scale's ratio (the series' schema check: the same statistics normalize fits)."""
    if old.get("method") != new.get("method"):
        return {"comparable": False, "reason": f"normalization {new.get('method')} vs the baseline's "
                                               f"{old.get('method')}"}
    old_ch, new_ch = list(old["channels"]), list(new["channels"])
    per = {}
    for name in names:
        i, j = old_ch.index(name), new_ch.index(name)
        o_scale = float(old["scale"][i]) or 1.0
        per[name] = {"center_shift": (float(new["center"][j]) - float(old["center"][i])) / o_scale,
                     "scale_ratio": float(new["scale"][j]) / o_scale}
    worst = max(per, key=lambda n: abs(per[n]["center_shift"])) if per else None
    return {"comparable": True, "method": new.get("method"), "channels": per, "largest_shift_channel": worst,
            "largest_shift": abs(per[worst]["center_shift"]) if worst else None}


# Per-column train counts the runtime's skew report reads: they describe the train split, not what the model is fed
# (added to bundles after some were made, so a baseline without them is still the same transform).
_REPORT_ONLY = ("train_missing", "train_rows")


def _model_input_rule(transform: dict) -> dict:
    """A table transform without what does not change the model's input: the train schema and the skew report's
    per-column train counts."""
    rule = {k: v for k, v in transform.items() if k != "schema"}
    if isinstance(rule.get("features"), dict):
        rule["features"] = {name: {k: v for k, v in f.items() if k not in _REPORT_ONLY} if isinstance(f, dict) else f
                            for name, f in rule["features"].items()}
    return rule


@baseline_scorer("supervised")
def _supervised(bundle_path: Path, evaluation: ModelEvaluation, examples: Examples | None,
                transform: TransformParams | None, task: str, variant: str) -> BaselineScore:
    """The baseline's primary model on the inputs the candidate was evaluated on (``predictions.npz`` x, y), scored
    with the task's metric. The inputs must be the baseline's too: the same shape, and no table transform fitted
    differently (refused, naming the bundle: a retrained table's transform moves with its data, and raw rows are
    not kept by the evaluation); images and sequences are fed as stored."""
    from edgepipe import tasks
    from edgepipe.runtime.litert import ModelRunner

    bundle = _load(bundle_path)
    fitted = (bundle.doc.get("preprocessing") or {}).get("transform")
    if isinstance(fitted, dict):  # a table transform fitted on the baseline's train split
        mine = transform.read_json("transform.json") if transform else None
        if mine is None or _model_input_rule(mine) != _model_input_rule(fitted):
            raise DataError(f"retrain: the baseline bundle {bundle_path} transforms table rows with parameters fitted "
                            "on its own train split, which differ from the candidate's: the candidate's transformed "
                            "evaluation inputs are not the baseline's inputs, so they cannot be compared")
    file = bundle_path / bundle.doc["default_model"]
    with np.load(evaluation.file("predictions.npz")) as saved:
        x, y = saved["x"], (saved["y"] if "y" in saved.files else None)
    runner = ModelRunner(file.read_bytes(), name=file.name)
    expected = list(runner.input.shape[1:])
    if list(x.shape[1:]) != expected:
        raise DataError(f"retrain: the candidate's evaluation inputs have shape {list(x.shape[1:])}, the baseline "
                        f"bundle's model {file} takes {expected}: not comparable on the same data")
    out = runner.run(x)
    metric = tasks.get(task).metric
    value = metric.score(y, out) if (metric.score is not None and y is not None) else None
    return BaselineScore(_number(value), int(len(x)), {"model_file": file.name})


@baseline_check("supervised")
def _supervised_fits(doc: dict[str, Any], given: dict[str, Any]) -> tuple[str, str] | None:
    """Examples: a table baseline reads the raw columns the config names (``data.feature_columns``, in that
    order: the candidate's inputs are fed to it as they are); an image baseline takes the images the config's
    image folder makes (``data.image``: [height, width, channels])."""
    pre = doc.get("preprocessing") or {}
    columns = given.get("data.feature_columns")
    if columns and pre.get("kind") == "table":
        reads = list(pre.get("columns") or pre.get("features") or [])
        if list(columns) != reads:
            return "data.feature_columns", (f"{list(columns)} are not the columns the baseline bundle reads "
                                            f"({reads}, in that order): not comparable on the same inputs")
    image = given.get("data.image")
    if image:
        takes = [(pre.get("image") or {}).get(k) for k in ("height", "width", "channels")]
        if pre.get("kind") != "image" or list(image) != takes:
            shape = "x".join(map(str, takes)) + " images" if pre.get("kind") == "image" else \
                f"{pre.get('kind') or 'unknown'} inputs {(doc.get('input') or {}).get('shape')}"
            return "data.image", (f"{'x'.join(map(str, image))} images, but the baseline bundle's model takes "
                                  f"{shape}: not comparable on the same inputs")
    return None


def _load(path: Path):
    """The baseline bundle, verified by the runtime; a bundle it refuses is unusable input (exit 3), named."""
    from edgepipe.runtime import Bundle
    from edgepipe.runtime.errors import BundleError

    try:
        return Bundle.load(path)
    except BundleError as err:
        raise DataError(f"retrain: baseline bundle {path} cannot be used: {err}") from None


def _bundle_doc(path: Path) -> dict[str, Any]:
    import json

    return json.loads((path / "bundle.json").read_text(encoding="utf-8"))


def _rate(count: Any, total: Any) -> float | None:
    return float(count) / float(total) if isinstance(count, int) and isinstance(total, int) and total else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _number(value: Any) -> float | None:
    return float(value) if _finite(value) else None


__all__ = ["BaselineScore", "CHECKS", "SCORERS", "baseline_check", "baseline_scorer", "bless_model", "incomparable",
           "refusal", "summary", "verdict"]

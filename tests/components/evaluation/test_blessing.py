"""bless_model: the baseline bundle scored on the candidate's evaluation data, the verdict, and the export gate."""
import json
import shutil

import pytest

from edgepipe import tasks
from edgepipe.components.evaluation.blessing import bless_model, incomparable, refusal, verdict
from edgepipe.components.export import export_bundle
from edgepipe.pipeline.artifacts import Bundle, ModelBlessing, ModelEvaluation, TransformParams
from edgepipe.pipeline.errors import DataError, VerificationError


@pytest.fixture(scope="module")
def baseline(chain, evaluation, tmp_path_factory):
    """The bundle the session chain exports: what a retrain is compared with."""
    bundle = Bundle(tmp_path_factory.mktemp("baseline") / "bundle")
    export_bundle.fn(model=chain["model"], tflite=chain["tflite"], evaluation=evaluation,
                     transform=chain["transform"], windows=chain["windows"], bundle=bundle, min_agreement=0.9)
    bundle.finalize()
    return bundle.path


def _bless(chain, evaluation, tmp_path, baseline, transform=None, **params):
    blessing = ModelBlessing(tmp_path / "blessing")
    metrics = bless_model.fn(evaluation=evaluation, blessing=blessing, examples=chain["windows"],
                             transform=transform or chain["transform"], baseline=str(baseline) if baseline else None,
                             task="anomaly", min_agreement=0.9, **params)
    blessing.finalize()
    return metrics, blessing.read_json("blessing.json")


def _transform(tmp_path, **changes):
    params = TransformParams(tmp_path / "transform")
    doc = {"method": "zscore", "channels": ["vibration", "temperature"], "center": [2.1, 45.0], "scale": [0.4, 3.2]}
    params.write_json("transform.json", {**doc, **changes})
    return params


def test_the_same_model_scores_the_same_through_its_bundle(chain, evaluation, baseline, tmp_path):
    metrics, doc = _bless(chain, evaluation, tmp_path, baseline, max_regression=0.0)
    shipped = json.loads((baseline / "bundle.json").read_text())["primary_variant"]
    rows = {r["variant"]: r for r in evaluation.read_json("variants.json")}
    assert doc["candidate"]["variant"] == shipped == doc["baseline"]["variant"]
    # the runtime's scores of the exported file equal the pipeline's evaluation of it: zero regression
    assert doc["baseline"]["metric"] == pytest.approx(rows[shipped]["metric"], abs=1e-9)
    assert doc["blessed"] and metrics["blessed"] and doc["regression"] == pytest.approx(0.0, abs=1e-9)
    assert doc["baseline"]["examples"] == sum(evaluation.read_json("evaluation.json")["counts"][s]["windows"]
                                              for s in ("eval", "test"))
    drift = doc["baseline"]["drift"]["channels"]
    assert drift["temperature"] == {"center_shift": 0.0, "scale_ratio": 1.0}


def test_a_candidate_worse_than_the_baseline_is_refused_at_export(chain, evaluation, baseline, tmp_path):
    worse = ModelEvaluation(tmp_path / "evaluation")
    shutil.copytree(evaluation.path, worse.path)
    rows = worse.read_json("variants.json")
    for row in rows:
        row["metric"] = row["metric"] - 0.2  # every variant and the Keras model: the gate's bounds still pass
    worse.write_json("variants.json", rows)
    metrics, doc = _bless(chain, worse, tmp_path, baseline, max_regression=0.1)
    assert not doc["blessed"] and doc["regression"] == pytest.approx(0.2, abs=1e-9)
    assert metrics["baseline_metric"] - metrics["candidate_metric"] == pytest.approx(0.2, abs=1e-9)
    out = Bundle(tmp_path / "bundle")
    with pytest.raises(VerificationError, match=r"worse than the baseline bundle's .* by 0\.2000 > "
                                                r"retrain\.max_regression 0\.1; nothing exported"):
        export_bundle.fn(model=chain["model"], tflite=chain["tflite"], evaluation=worse,
                         transform=chain["transform"], windows=chain["windows"], bundle=out, min_agreement=0.9,
                         blessing=ModelBlessing.open(tmp_path / "blessing"))
    assert not out.path.exists() or not any(out.path.iterdir())


def test_a_blessed_export_records_the_comparison(chain, evaluation, baseline, tmp_path):
    _bless(chain, evaluation, tmp_path, baseline, max_regression=0.01)
    out = Bundle(tmp_path / "bundle")
    metrics = export_bundle.fn(model=chain["model"], tflite=chain["tflite"], evaluation=evaluation,
                               transform=chain["transform"], windows=chain["windows"], bundle=out,
                               min_agreement=0.9, blessing=ModelBlessing.open(tmp_path / "blessing"))
    doc = json.loads((out.path / "bundle.json").read_text())
    assert metrics["blessed"] and doc["blessing"]["blessed"]
    assert doc["blessing"]["baseline_bundle"] == str(baseline)
    assert json.loads((out.path / "evaluation.json").read_text())["blessing"] == doc["blessing"]


def test_shifted_new_data_is_measured_against_the_baseline_normalization(chain, evaluation, baseline, tmp_path):
    # the candidate's windows de-normalize to raw values 3 baseline scales higher in temperature
    shifted = _transform(tmp_path, center=[2.1, 45.0 + 3 * 3.2], scale=[0.4, 6.4])
    _, doc = _bless(chain, evaluation, tmp_path, baseline, transform=shifted)
    drift = doc["baseline"]["drift"]
    assert drift["channels"]["temperature"] == {"center_shift": pytest.approx(3.0), "scale_ratio": 2.0}
    assert drift["largest_shift_channel"] == "temperature"
    _, same = _bless(chain, evaluation, tmp_path / "same", baseline)
    # the baseline sees raw data it was not fitted on: it does worse there, so the candidate is blessed
    assert doc["baseline"]["metric"] < same["baseline"]["metric"] and doc["blessed"]


def test_new_data_without_a_channel_the_baseline_reads_is_unusable(chain, evaluation, baseline, tmp_path):
    renamed = _transform(tmp_path, channels=["vibration", "pressure"])
    with pytest.raises(DataError, match="no channel 'temperature' that the baseline bundle"):
        _bless(chain, evaluation, tmp_path, baseline, transform=renamed)


def test_new_normal_data_without_labels_is_not_compared_by_f1(chain, baseline, tmp_path):
    """Re-fitting on new normal data (issue 14): no labelled anomaly, so F1 cannot rank the two models."""
    from edgepipe.components.evaluation.anomaly import evaluate_anomaly
    from tests.components.fixtures import make_windows_examples

    normal = make_windows_examples(tmp_path / "windows", {"train": (48, 0), "eval": (32, 0), "test": (32, 0)}, seed=7)
    evaluation = ModelEvaluation(tmp_path / "evaluation")
    evaluate_anomaly(examples=normal, model=chain["model"], tflite=chain["tflite"], evaluation=evaluation,
                     settings=tasks.get("anomaly").evaluate(latency_runs=2))
    evaluation.finalize()
    blessing = ModelBlessing(tmp_path / "blessing")
    bless_model.fn(evaluation=evaluation, blessing=blessing, examples=normal, transform=chain["transform"],
                   baseline=str(baseline), task="anomaly", min_agreement=0.0, max_regression=0.0)
    doc = blessing.read_json("blessing.json")
    assert doc["blessed"] and doc["regression"] is None and "F1 is undefined for both models" in doc["reason"]
    assert doc["baseline"]["metric"] is None and doc["baseline"]["examples"] == 64
    for rate in (doc["baseline"]["alarm_rate"], doc["baseline"]["candidate_alarm_rate"]):
        assert 0.0 <= rate <= 1.0


def test_first_export_has_no_baseline(chain, evaluation, tmp_path):
    metrics, doc = _bless(chain, evaluation, tmp_path, None)
    assert doc["blessed"] and doc["baseline"] is None and "first export" in doc["reason"]
    assert refusal(doc, doc["candidate"]["variant"]) is None and metrics["baseline_metric"] is None


@pytest.mark.parametrize("candidate, base, bound, higher, blessed, regression", [
    (0.80, 0.84, 0.05, True, True, 0.04),     # F1 a little lower, within the bound
    (0.70, 0.84, 0.05, True, False, 0.14),    # F1 lower by more than the bound
    (0.90, 0.84, 0.0, True, True, -0.06),     # better
    (0.50, 0.40, 0.05, False, False, 0.10),   # MAE: higher is worse
    (0.42, 0.40, 0.05, False, True, 0.02),
])
def test_verdict(candidate, base, bound, higher, blessed, regression):
    ok, found, reason = verdict(candidate, base, bound, higher)
    assert ok is blessed and found == pytest.approx(regression)
    assert reason.startswith("worse than the baseline") is (not blessed)


@pytest.mark.parametrize("candidate, base", [(None, 0.8), (0.8, None), (None, None), (float("nan"), 0.8)])
def test_an_undefined_metric_is_not_compared(candidate, base):
    ok, regression, reason = verdict(candidate, base, 0.01, True)
    assert ok and regression is None and "not compared" in reason


def test_a_refusal_says_the_baselines_alarm_rate_and_drift(chain, evaluation, baseline, tmp_path):
    """QA 23 F6: the refusal line says what else was measured, so an always-alarm baseline or drifted data shows."""
    worse = ModelEvaluation(tmp_path / "evaluation")
    shutil.copytree(evaluation.path, worse.path)
    worse.write_json("variants.json", [{**r, "metric": r["metric"] - 0.2} for r in worse.read_json("variants.json")])
    _, doc = _bless(chain, worse, tmp_path, baseline, max_regression=0.01)
    line = refusal(doc, doc["candidate"]["variant"])
    rate = doc["baseline"]["alarm_rate"]
    assert 0.0 < rate < 0.9 and not doc["blessed"]
    assert f"; baseline alarm rate {rate:.3f}; new train data vs its normalization: 'vibration' centre moved " \
           "0.00 baseline scales, scale x1) by 0.2000 > " in line


@pytest.mark.parametrize("center, scale, why", [
    ([2.1, 45.0 + 20 * 3.2], [0.4, 3.2], "'temperature' centre 20.0 baseline scales, scale x1"),
    ([2.1, 45.0], [0.4, 3.2 * 12], "'temperature' centre 0.0 baseline scales, scale x12"),
    ([2.1, 45.0], [0.4 / 20, 3.2], "'vibration' centre 0.0 baseline scales, scale x0.05"),
])
def test_data_far_from_the_baselines_normalization_is_not_compared(chain, evaluation, baseline, tmp_path, center,
                                                                    scale, why):
    """QA 23 F6: beyond the bounds (10 baseline scales of centre shift, 10x scale either way) the baseline cannot
    judge the new data: blessed, not compared, the reason recorded, and the export gate ships a worse candidate."""
    worse = ModelEvaluation(tmp_path / "evaluation")
    shutil.copytree(evaluation.path, worse.path)
    worse.write_json("variants.json", [{**r, "metric": r["metric"] - 0.2} for r in worse.read_json("variants.json")])
    far = _transform(tmp_path, center=center, scale=scale)
    metrics, doc = _bless(chain, worse, tmp_path, baseline, transform=far, max_regression=0.01)
    assert doc["blessed"] and metrics["blessed"] and doc["regression"] is None
    assert doc["reason"] == doc["not_compared"] == (
        f"the new train data moved far from the baseline's normalization ({why}; bounds 10 scales, 10x): the "
        "baseline cannot judge this data, not compared")
    assert doc["baseline"]["metric"] is not None  # measured and kept, only not compared
    out = Bundle(tmp_path / "bundle")
    export_bundle.fn(model=chain["model"], tflite=chain["tflite"], evaluation=worse, transform=chain["transform"],
                     windows=chain["windows"], bundle=out, min_agreement=0.9,
                     blessing=ModelBlessing.open(tmp_path / "blessing"))
    shipped = json.loads((out.path / "bundle.json").read_text())["blessing"]
    assert shipped["blessed"] and shipped["regression"] is None and shipped["reason"] == doc["reason"]


def test_an_always_alarm_baseline_is_not_compared(chain, evaluation, baseline, tmp_path):
    """QA 23 F6: a baseline flagging >= 90% of the windows (here the new data sit 8 scales above its normal, within
    the drift bounds) is an always-alarm detector: its F1 is the labelled share's, not a bar for the candidate."""
    high = _transform(tmp_path, center=[2.1 + 8 * 0.4, 45.0 + 8 * 3.2])
    _, doc = _bless(chain, evaluation, tmp_path, baseline, transform=high, max_regression=0.0)
    rate = doc["baseline"]["alarm_rate"]
    assert rate >= 0.9 and doc["blessed"] and doc["regression"] is None
    assert doc["reason"] == (f"the baseline flags {rate:.3f} of the evaluation windows (>= 0.9: an always-alarm "
                             "detector, whose F1 is the labelled share's): the baseline cannot judge this data, not "
                             "compared")


def test_what_the_baseline_bundle_json_says_up_front(baseline):
    """QA 23 F5/N10: the build-time check on a real exported bundle (the pipeline side: test_template_retrain.py)."""
    doc = json.loads((baseline / "bundle.json").read_text())
    size = doc["window"]["size"]
    assert incomparable(doc, tasks.get("anomaly"), {"window.size": size, "data.feature_columns": None}) is None
    assert incomparable(doc, tasks.get("anomaly"), {"window.size": size + 8})[0] == "window.size"
    key, why = incomparable(doc, tasks.get("anomaly"), {"window.size": size, "data.feature_columns": ["vibration"]})
    assert key == "data.feature_columns" and "lacks channel 'temperature' that the baseline bundle reads" in why
    key, why = incomparable(doc, tasks.get("classification"), {"window.size": size})
    assert key == "retrain.baseline" and why.startswith("the baseline bundle's task is anomaly_detection (")
    assert why.endswith("this pipeline's is classification: not comparable")


def test_the_retrain_check_reads_a_baselines_channels_by_the_runtimes_rule():
    """window.channel_names first, else normalization.channels (runtime/tasks/anomaly.py ``channel_names``, the
    one rule for the runtime and the retrain check); a raw bundle.json without them names no channel."""
    from edgepipe.runtime.tasks.anomaly import channel_names

    only_norm = {"task": "anomaly_detection", "window": {"size": 8}, "normalization": {"channels": ["a", "b"]}}
    both = {**only_norm, "window": {"size": 8, "channel_names": ["x"]}}
    assert channel_names(only_norm) == ["a", "b"] and channel_names(both) == ["x"] and channel_names({}) is None
    key, why = incomparable(only_norm, tasks.get("anomaly"), {"window.size": 8, "data.feature_columns": ["a"]})
    assert key == "data.feature_columns" and "lacks channel 'b'" in why
    assert incomparable(both, tasks.get("anomaly"), {"window.size": 8, "data.feature_columns": ["x"]}) is None
    assert incomparable({"task": "anomaly_detection"}, tasks.get("anomaly"), {"data.feature_columns": ["x"]}) is None


def test_a_baseline_made_before_the_skew_counts_has_the_same_table_transform():
    """Bundles made before fit_transform wrote train_missing/train_rows per column transform rows the same way:
    a retrain against one must not be refused as 'fitted differently'; a moved center still is."""
    from edgepipe.components.evaluation.blessing import _model_input_rule

    old = {"numeric": "zscore", "features": {"fare": {"kind": "numeric", "center": 12.5, "scale": 10.1, "fill": 12.5,
                                                      "train_missing": 0}},
           "outputs": ["fare"]}
    new = {**old, "schema": {"fare": {}}, "features": {"fare": {**old["features"]["fare"], "train_rows": 7000}}}
    assert _model_input_rule(new) == _model_input_rule(old)
    moved = {**old, "features": {"fare": {**old["features"]["fare"], "center": 13.0}}}
    assert _model_input_rule(moved) != _model_input_rule(old)

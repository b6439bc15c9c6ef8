"""export_bundle: the agreement gate, integrity checks, and the complete bundle."""
import json
import shutil

import numpy as np
import pytest

from edgepipe.components.export import export_bundle
from edgepipe.pipeline.artifacts import Bundle, ModelEvaluation
from edgepipe.pipeline.errors import VerificationError
from edgepipe.runtime.litert import ModelRunner
from tests.components.fixtures import CHANNEL_NAMES, CHANNELS, STRIDE, WINDOW


def _edited_evaluation(evaluation, tmp_path, edit):
    copy = ModelEvaluation(tmp_path / "evaluation")
    shutil.copytree(evaluation.path, copy.path)
    report = copy.read_json("evaluation.json")
    edit(report)
    copy.write_json("evaluation.json", report)
    return copy


def _export(chain, evaluation, bundle, min_agreement):
    return export_bundle.fn(model=chain["model"], tflite=chain["tflite"], evaluation=evaluation, transform=chain["transform"],
                            windows=chain["windows"], bundle=bundle, min_agreement=min_agreement)


def _low(report, variants=None):
    for name, value in report["agreement"].items():
        if name != "keras" and (variants is None or name in variants):
            value.update(all=0.5, decisive=0.5)  # decisive: what the anomaly gate judges


def test_refuses_below_min_agreement_and_writes_nothing(chain, evaluation, tmp_path):
    low = _edited_evaluation(evaluation, tmp_path, _low)  # no int8 variant passes
    bundle = Bundle(tmp_path / "bundle")
    bundle.path.mkdir()
    with pytest.raises(VerificationError) as info:
        _export(chain, low, bundle, 0.98)
    message = str(info.value)  # every int8 variant auto tried, each with why (QA 23 N5), not only the first
    assert message.startswith("no int8 variant passed verification: int8_qat agreement 0.5 < 0.98; int8_ptq "
                              "agreement 0.5 < 0.98 (agreement with the Keras model on ") and "\n" not in message
    assert info.value.exit_code == 4
    assert list(bundle.path.iterdir()) == []


def test_auto_ships_the_next_verified_int8_variant_and_says_why(chain, evaluation, tmp_path):
    first = json.loads((evaluation.path / "evaluation.json").read_text())
    produced = [v for v in ("pqat", "int8_qat", "pruned_int8", "int8_ptq") if v in first["models"]]
    assert len(produced) >= 2, produced
    low = _edited_evaluation(evaluation, tmp_path, lambda r: _low(r, {produced[0]}))
    bundle = Bundle(tmp_path / "bundle")
    _export(chain, low, bundle, 0.98)
    doc = json.loads((bundle.path / "bundle.json").read_text())
    assert doc["primary_variant"] == produced[1] and doc["models"]["int8"]["variant"] == produced[1]
    assert f"'{produced[0]}' (agreement 0.5 < 0.98) failed" in doc["primary_reason"]
    assert "Why:" in (bundle.path / "SUMMARY.md").read_text()
    named = Bundle(tmp_path / "named")  # a primary the user named is refused, never replaced
    with pytest.raises(VerificationError, match=produced[0]):
        export_bundle.fn(model=chain["model"], tflite=chain["tflite"], evaluation=low, transform=chain["transform"],
                         windows=chain["windows"], bundle=named, min_agreement=0.98, primary=produced[0])


def test_refuses_a_model_that_is_not_the_evaluated_one(chain, evaluation, tmp_path):
    wrong = _edited_evaluation(evaluation, tmp_path, lambda r: r["models"]["int8_qat"].update(sha256="0" * 64))
    bundle = Bundle(tmp_path / "bundle")
    with pytest.raises(VerificationError, match="sha256 mismatch"):
        _export(chain, wrong, bundle, 0.0)
    assert not bundle.path.exists() or list(bundle.path.iterdir()) == []


def test_writes_a_complete_bundle(chain, evaluation, tmp_path):
    bundle = Bundle(tmp_path / "bundle")
    metrics = _export(chain, evaluation, bundle, 0.0)
    bundle.finalize()
    names = sorted(p.name for p in bundle.path.iterdir())
    assert names == ["SUMMARY.md", "_artifact.json", "bundle.json", "evaluation.json", "model.tflite",
                     "model_data.cc", "model_data.h", "model_float32.tflite", "model_int8_ptq.tflite",
                     "variants.html", "variants.json", "variants.md"]
    doc = json.loads((bundle.path / "bundle.json").read_text())
    report = evaluation.read_json("evaluation.json")
    assert doc["schema_version"] == 1 and doc["task"] == "anomaly_detection"
    assert doc["window"] == {"size": WINDOW, "stride": STRIDE, "channels": CHANNELS, "channel_names": CHANNEL_NAMES,
                             "layout": doc["window"]["layout"]}
    assert doc["normalization"] == chain["transform"].read_json("transform.json")
    assert doc["primary_variant"] == "int8_qat" and doc["models"]["int8"]["variant"] == "int8_qat"
    assert doc["thresholds"] == {"model.tflite": report["thresholds"]["int8_qat"],
                                 "model_float32.tflite": report["thresholds"]["float32"],
                                 "model_int8_ptq.tflite": report["thresholds"]["int8_ptq"]}
    runner = ModelRunner(bundle.path / "model.tflite")
    scale, zero_point = runner.input.scale, runner.input.zero_point
    assert doc["input"] == {"name": runner.input.name, "shape": [None, WINDOW, CHANNELS], "dtype": "int8",
                            "quantization": {"scale": pytest.approx(scale), "zero_point": zero_point}}
    assert doc["output"]["dtype"] == "int8" and doc["output"]["quantization"]["scale"] > 0
    assert doc["models"]["float32"]["input"]["quantization"] is None
    assert doc["models"]["float32"]["output"]["shape"] == doc["output"]["shape"] == [None, WINDOW, CHANNELS]
    assert doc["metrics"]["agreement_with_keras"]["int8"]["all"] == metrics["primary_agreement"]
    assert set(doc["versions"]) == {"tensorflow", "tf_keras", "tfmot", "ai_edge_litert", "apache_beam", "edgepipe",
                                    "python"}
    assert all(doc["versions"].values())
    micro = doc["micro"]  # the int8 model for TensorFlow Lite Micro, run under its interpreter at export
    assert micro["ok"] and not micro["missing_ops"] and micro["arena_bytes"] > 0, micro
    # fed the windows evaluation scored (QA 23 N6), not standard-normal noise
    assert micro["inputs"] == {runner.input.name: "eval_windows"} and micro["examples"] == 8
    header = (bundle.path / "model_data.h").read_text()
    assert f"kTensorArenaSize = {-(-micro['arena_bytes'] // 16) * 16};" in header
    length = (bundle.path / "model.tflite").stat().st_size
    assert f"g_model_len = {length};" in (bundle.path / "model_data.cc").read_text()
    prior = doc["likelihood"]  # the streaming likelihood starts from the shipped model's normal training scores
    train = np.load(evaluation.path / "errors.npz")["train__int8_qat"]
    assert prior == {"initial_mean": pytest.approx(float(train.mean())),
                     "initial_std": pytest.approx(float(train.std()))}
    summary = (bundle.path / "SUMMARY.md").read_text()
    assert "model.tflite" in summary and "model_float32.tflite" in summary

    # The bundle alone is enough to score a window the way evaluation did.
    x = chain["windows"].read_numpy("test")["window"]
    score = ((runner.run(x) - x) ** 2).reshape(len(x), -1).mean(axis=1)
    errors = np.load(evaluation.path / "errors.npz")
    np.testing.assert_allclose(score, errors["test__int8_qat"], rtol=1e-4, atol=1e-7)


def test_variant_table_gates_each_variant_and_only_passing_ones_ship(chain, evaluation, tmp_path):
    def lower_ptq(report):
        report["agreement"]["int8_ptq"].update(all=0.5, decisive=0.5)

    bundle = Bundle(tmp_path / "bundle")
    export_bundle.fn(model=chain["model"], tflite=chain["tflite"], evaluation=_edited_evaluation(evaluation, tmp_path, lower_ptq),
                     transform=chain["transform"], windows=chain["windows"], bundle=bundle, min_agreement=0.8)
    rows = {r["variant"]: r for r in json.loads((bundle.path / "variants.json").read_text())}
    assert list(rows) == ["keras", "float32", "int8_ptq", "int8_qat"]
    for row in rows.values():
        assert {"variant", "size_bytes", "gzip_bytes", "latency_us", "metric", "agreement", "exported", "params",
                "sparsity", "source"} <= set(row)
    assert rows["int8_ptq"]["exported"] is False and "agreement 0.5 < 0.8" in rows["int8_ptq"]["reason"]
    assert not (bundle.path / "model_int8_ptq.tflite").exists()
    assert rows["int8_qat"]["exported"] and rows["int8_qat"]["primary"] and rows["int8_qat"]["file"] == "model.tflite"
    assert rows["float32"]["gzip_bytes"] < rows["float32"]["size_bytes"] and rows["float32"]["latency_us"] > 0
    assert rows["float32"]["size_vs_float32"] == 1.0  # (tiny fixture: int8 metadata outweighs its smaller weights)
    assert "| int8_ptq |" in (bundle.path / "variants.md").read_text()
    assert "<td>int8_qat</td>" in (bundle.path / "variants.html").read_text()


def test_primary_failing_the_metric_bound_is_refused(chain, evaluation, tmp_path):
    def worse_f1(report):
        pass  # the table carries the metric; edit it there

    copy = _edited_evaluation(evaluation, tmp_path, worse_f1)
    rows = copy.read_json("variants.json")
    for row in rows:
        if row["variant"] == "int8_qat":
            row["metric_drop"] = 0.3
    copy.write_json("variants.json", rows)
    bundle = Bundle(tmp_path / "bundle")
    with pytest.raises(VerificationError, match="primary int8 variant 'int8_qat' fails the export bounds"):
        export_bundle.fn(model=chain["model"], tflite=chain["tflite"], evaluation=copy, transform=chain["transform"],
                         windows=chain["windows"], bundle=bundle, min_agreement=0.0, max_metric_drop=0.05,
                         primary="int8_qat")
    assert not bundle.path.exists() or list(bundle.path.iterdir()) == []
    # The same drop on a secondary with an explicit primary only un-exports the secondary.
    ok = Bundle(tmp_path / "ok")
    export_bundle.fn(model=chain["model"], tflite=chain["tflite"], evaluation=copy, transform=chain["transform"], windows=chain["windows"],
                     bundle=ok, min_agreement=0.0, max_metric_drop=0.05, primary="int8_ptq")
    table = {r["variant"]: r for r in json.loads((ok.path / "variants.json").read_text())}
    assert table["int8_ptq"]["primary"] and table["int8_qat"]["exported"] is False

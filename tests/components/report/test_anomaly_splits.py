"""What an anomaly bundle says about its metrics: the splits they pooled, and n/a where they are undefined.

``data.split={train: 0.7, eval: 0.3}`` is a valid anomaly run (eval or test), yet SUMMARY.md and report.html said
"eval+test"; a run without labels showed precision 0.000 beside recall and F1 n/a. Built from the records alone
(no pipeline run): SUMMARY.md (``tasks/anomaly.series_summary``) and the report's two anomaly sections.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

from edgepipe.components.report.sections.anomaly import _evaluation_section, _models_section
from edgepipe.pipeline.contracts import EvaluationReport
from edgepipe.tasks.anomaly import series_summary

UNLABELLED = {"windows": 40, "anomalous": 0, "flagged": 3, "precision": 0.0, "recall": None, "f1": None,
              "auc": None}


def report(splits: tuple[str, ...]) -> EvaluationReport:
    per_split = {s: UNLABELLED for s in splits}
    return EvaluationReport.of({
        "reference": "keras", "splits": list(splits), "thresholds": {"keras": 1.0, "int8_qat": 1.1},
        "models": {"keras": {"kind": "keras"}, "int8_qat": {"kind": "tflite", "input_dtype": "int8"}},
        "metrics": {"keras": {"all": UNLABELLED, **per_split}, "int8_qat": {"all": UNLABELLED, **per_split}},
        "agreement": {"int8_qat": {"all": 1.0, "decisive": 1.0, "score_correlation": 0.99}},
        "agreement_gate": {"on": "decisive", "band": 0.1, "definition": f"decisions on the {'+'.join(splits)} "
                                                                       "windows whose Keras score is outside"}})


def doc() -> dict:
    return {"input": {"quantization": {"scale": 0.1, "zero_point": 0}},
            "window": {"size": 32, "channels": 3, "stride": 4}, "score": None,
            "models": {"int8_qat": {"file": "model.tflite", "variant": "int8_qat", "size_bytes": 2048,
                                    "threshold": 1.1}},
            "metrics": {"min_agreement": 0.98, "max_metric_drop": 0.1}, "primary_variant": "int8_qat",
            "versions": {"edgepipe": "0"}}


def test_summary_md_names_eval_alone_when_there_is_no_test_split():
    summary = series_summary(doc(), report(("eval",)), "")
    assert "| F1 (eval) |" in summary and "decisions on all eval windows" in summary
    assert "eval+test" not in summary
    both = series_summary(doc(), report(("eval", "test")), "")  # unchanged where both were pooled
    assert "| F1 (eval+test) |" in both and "decisions on all eval+test windows" in both


def test_the_report_names_the_pooled_splits_and_shows_precision_na_without_labels(tmp_path):
    evaluation = _evaluation_section(SimpleNamespace(path=tmp_path), report(("eval",)), 12, "int8_qat")
    rows = re.findall(r"<tr>(.*?)</tr>", evaluation.split("Detection metrics")[1], re.S)
    keras = re.findall(r"<td[^>]*>(.*?)</td>", next(r for r in rows if ">keras<" in r))
    assert keras[:7] == ["keras", "40", "0", "3", "n/a", "n/a", "n/a"]  # windows anomalous flagged precision ...
    assert "Over all eval windows" in evaluation
    models = _models_section(report(("eval",)), None, None, "int8_qat")
    assert "fraction of eval windows" in models and "eval+test" not in models

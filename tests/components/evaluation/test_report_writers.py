"""Every evaluator writes ``evaluation.json`` through the typed writer (``ModelEvaluation.write_report``): the file
it writes is an :class:`EvaluationReport` with every key a named field (nothing left in ``extra``), read back and
written again unchanged, and a field of the wrong type fails at the writer, naming the key, with nothing written.

Evaluations come from the real evaluators: the anomaly fixture (tests/components/fixtures.py) and the tiny
classification (with TFLite variants), cGAN and DQN runs of tests/components/report/family_runs.py (built once per
session, shared with the report tests)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from edgepipe.pipeline.artifacts import ModelEvaluation
from edgepipe.pipeline.contracts import AgreementGate, EvaluationReport
from edgepipe.pipeline.errors import DataError
from tests.components.report import family_runs

KINDS = ["anomaly", "classification", "generation", "control"]


@pytest.fixture(scope="session")
def runs(tmp_path_factory, evaluation):
    base = str(tmp_path_factory.getbasetemp() / "report-families")  # the report tests' runs, when in one session
    return {"anomaly": lambda: evaluation,
            **{kind: (lambda kind=kind: getattr(family_runs, kind)(base)["evaluation"]) for kind in KINDS[1:]}}


@pytest.mark.parametrize("kind", KINDS)
def test_each_evaluator_writes_a_typed_report_that_round_trips(runs, kind):
    evaluation = runs[kind]()
    written = json.loads((evaluation.path / "evaluation.json").read_text())
    report = evaluation.report()
    assert report.to_dict() == written == EvaluationReport.from_dict(written).to_dict()
    assert report.extra == {}, f"{kind}: keys written outside the record's fields"
    assert report.schema_version == 1 and report.metrics and set(written) >= {"schema_version", "task", "metrics"}
    if kind == "anomaly":
        assert isinstance(report.agreement_gate, AgreementGate) and report.agreement_gate.on == "decisive"
        assert report.splits == ("eval", "test") and report.warnings == () and "warnings" in written
        assert set(report.thresholds) == set(report.models)
    if kind == "classification":  # the variant stage ran: the report names each variant's file and agreement
        assert report.reference == "keras" and set(report.agreement) == set(report.models) - {"keras"} != set()
        assert report.metric_name and set(report.variant_metrics) == set(report.models)
        assert report.predictions_file == "predictions.npz" and (evaluation.path / "predictions.npz").is_file()


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_typed_field_fails_at_the_writer_and_writes_nothing(runs, kind, tmp_path):
    report = runs[kind]().report()
    out = ModelEvaluation(tmp_path / "evaluation")
    for field, value in {"task": 3, "splits": "eval", "metrics": [1, 2], "warnings": "careful",
                         "schema_version": True}.items():
        with pytest.raises(DataError, match=f"evaluation.json: '{field}' must be"):
            out.write_report(dataclasses.replace(report, **{field: value}))
    with pytest.raises(DataError, match="'agreement_gate' must be AgreementGate"):
        out.write_report(dataclasses.replace(report, agreement_gate={"on": "decisive"}))
    assert not (out.path / "evaluation.json").exists()
    out.write_report(report)
    assert out.read_json("evaluation.json") == report.to_dict()


def test_a_misspelt_field_fails_where_the_report_is_built():
    with pytest.raises(TypeError, match="'threshold_quantil' is no field"):
        EvaluationReport.build(schema_version=1, threshold_quantil=0.99)
    with pytest.raises(TypeError, match="'task' is a field"):
        EvaluationReport.build(schema_version=1, extra={"task": "anomaly"})

"""The typed contracts between components (pipeline/contracts.py): files written before them load and are written
back unchanged, readers get typed fields, and a mistyped value is a one-line DataError naming where it was read.

``data/*_v1_*.json`` are files as the pipeline wrote them before the contracts existed (a cnn bundle's gated variant
table; an anomaly evaluation's ``evaluation.json`` from before ``agreement_gate`` and its variant table)."""
import json
import shutil
from pathlib import Path

import pytest

from edgepipe.pipeline.artifacts import Examples, ModelEvaluation
from edgepipe.pipeline.contracts import (AgreementGate, EvaluationReport, ExamplesInfo, VariantRow, rows_from_json,
                                         rows_to_json)
from edgepipe.pipeline.errors import DataError

DATA = Path(__file__).parent / "data"


def _old_evaluation(tmp_path) -> ModelEvaluation:
    evaluation = ModelEvaluation(tmp_path / "evaluation")
    evaluation.path.mkdir(parents=True)
    shutil.copyfile(DATA / "evaluation_v1_anomaly.json", evaluation.path / "evaluation.json")
    shutil.copyfile(DATA / "variants_v1_anomaly.json", evaluation.path / "variants.json")
    return evaluation


@pytest.mark.parametrize("name", ["variants_v1_bundle.json", "variants_v1_anomaly.json"])
def test_a_variant_table_written_before_the_contract_loads_and_is_written_back_unchanged(name, tmp_path):
    old = json.loads((DATA / name).read_text())
    rows = rows_from_json(old, name)
    assert rows_to_json(rows) == old
    for row, raw in zip(rows, old):  # every key is a typed field or kept as it was; nulls stay explicit nulls
        assert set(raw) == set(row.recorded)
        assert row.variant == raw["variant"] and row.exported == raw.get("exported")
        assert row.fit_reasons == (tuple(raw["fit_reasons"]) if raw.get("fit_reasons") is not None else None)
        assert row.reference == (raw["variant"] == "keras")
    # written by the artifact as before (sorted keys, same content)
    target = ModelEvaluation(tmp_path / "e")
    from edgepipe.components.evaluation.variants import write_table

    write_table(target, rows)
    assert json.loads((target.path / "variants.json").read_text()) == old


def test_an_old_evaluation_report_loads_typed_and_gates_on_all_without_an_agreement_gate(tmp_path):
    evaluation = _old_evaluation(tmp_path)
    raw = json.loads((evaluation.path / "evaluation.json").read_text())
    report = evaluation.report()
    assert report.to_dict() == raw
    assert report.agreement_gate is None and report.gate_scope == "the evaluated data"
    assert report.splits == tuple(raw["splits"]) and report.reference == raw["reference"]
    for variant, scopes in raw["agreement"].items():  # no agreement_gate: the gate judges "all"
        assert report.gated_agreement(variant) == scopes["all"] == report.agreement_all(variant)
        assert report.sha256(variant) == raw["models"][variant]["sha256"]
    assert ModelEvaluation(tmp_path / "none").report() is None


def test_the_gate_judges_old_rows_with_the_reports_agreement(tmp_path):
    """gate() on a pre-contract table: refused rows say why, the Keras row stays ungated, input rows untouched."""
    from edgepipe.components.evaluation.variants import gate

    evaluation = _old_evaluation(tmp_path)
    rows = evaluation.variant_rows()
    gated = gate(rows, min_agreement=1.01, max_metric_drop=None)  # no agreement reaches 1.01: all refused
    by_name = {r.variant: r for r in gated}
    assert by_name["keras"].exported is None
    for row in (r for r in gated if not r.reference):
        assert row.exported is False and row.reason.startswith("agreement ") and "< 1.01" in row.reason
    assert all(r.exported is None for r in rows)  # frozen: the evaluation's rows are not modified
    passing = gate([r.to_dict() for r in rows], min_agreement=0.0, max_metric_drop=None)  # JSON objects too
    assert all(r.exported and r.to_dict()["reason"] is None for r in passing if not r.reference)


def test_agreement_gate_is_typed_and_names_the_scope_the_export_judges(tmp_path):
    raw = json.loads((DATA / "evaluation_v1_anomaly.json").read_text())
    variant = next(v for v in raw["agreement"] if v != "keras")
    raw["agreement"][variant]["decisive"] = raw["agreement"][variant]["all"] / 2
    raw["agreement_gate"] = {"on": "decisive", "band": 0.1, "definition": "decisions away from the threshold"}
    report = EvaluationReport.from_dict(raw, "evaluation.json")
    assert isinstance(report.agreement_gate, AgreementGate) and report.agreement_gate.band == 0.1
    assert report.gated_agreement(variant) == raw["agreement"][variant]["decisive"]
    assert report.gate_scope == "decisions away from the threshold"
    assert report.to_dict() == raw


def test_updated_records_new_keys_nulls_included_and_keeps_unknown_ones():
    row = VariantRow.from_dict({"variant": "int8_qat", "agreement": 0.99, "max_abs_q_diff": 0.5})
    marked = row.updated(exported=True, reason=None, mean_abs_pixel_diff=0.01)
    assert marked.exported is True and marked.extra == {"max_abs_q_diff": 0.5, "mean_abs_pixel_diff": 0.01}
    assert marked.to_dict() == {"variant": "int8_qat", "agreement": 0.99, "max_abs_q_diff": 0.5, "exported": True,
                                "reason": None, "mean_abs_pixel_diff": 0.01}
    assert row.to_dict() == {"variant": "int8_qat", "agreement": 0.99, "max_abs_q_diff": 0.5}


@pytest.mark.parametrize("row, message", [
    ({"variant": "pqat", "size_bytes": "12 KB"}, "variants.json row 1: 'size_bytes' must be int, got '12 KB'"),
    ({"variant": "pqat", "fits": 1}, "variants.json row 1: 'fits' must be bool, got 1"),
    ({"label": "pruned"}, "variants.json row 1: no 'variant'"),
    ("pqat", "variants.json row 1: expected a JSON object, got str"),
])
def test_a_mistyped_row_is_one_line_naming_the_file_row_and_key(row, message):
    with pytest.raises(DataError) as info:
        rows_from_json([{"variant": "keras"}, row], "variants.json")
    assert str(info.value) == message


def test_examples_info_reads_series_names_and_an_image_channel_count(tmp_path):
    """Series ingest records channel names; the image ingests record a channel count under the same key."""
    series = Examples(tmp_path / "s", {"splits": ["train"], "kind": "timeseries_chunks", "channels": ["a", "b"],
                                       "counts": {"train": 3}, "transform": {"impute": "mean"}})
    info = series.info()
    assert info.channel_names == ["a", "b"] and info.kind == "timeseries_chunks" and info.impute == "mean"
    assert info.to_dict() == series.properties
    images = Examples(tmp_path / "i", {"splits": ["train"], "kind": "images", "channels": 1, "num_classes": 4,
                                       "image_size": [32, 32]})
    info = images.info()
    assert info.channels == 1 and info.channel_names == [] and info.num_classes == 4
    assert info.extra == {"image_size": [32, 32]} and info.to_dict() == images.properties
    with pytest.raises(DataError, match=r"s properties: 'stride' must be int, got '2'"):
        Examples(tmp_path / "s", {"stride": "2"}).info()


def test_a_built_record_writes_exactly_the_keys_it_was_given_defaults_and_nulls_included():
    """``build`` (the evaluators' writer): a key equal to its default or null is still written, as before."""
    report = EvaluationReport.build(schema_version=1, task="control", input_clip=None, warnings=(), extra={"note": "x"})
    assert report.to_dict() == {"schema_version": 1, "task": "control", "input_clip": None, "warnings": [],
                                "note": "x"}
    assert EvaluationReport.from_dict(report.to_dict()).to_dict() == report.to_dict()
    assert report.checked() is report


def test_checked_names_a_wrong_type_inside_a_nested_record():
    report = EvaluationReport.build(agreement_gate=AgreementGate.build(on="decisive", band="wide"))
    with pytest.raises(DataError, match="agreement_gate: 'band' must be float"):
        report.checked("evaluation.json")

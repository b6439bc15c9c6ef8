"""T9: the data validation's anomalies (validate_examples' validation.json) are listed in report.html."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgepipe.components.data import compute_statistics, infer_schema, ingest_csv, validate_examples
from edgepipe.components.report import html, render_report
from edgepipe.pipeline.artifacts import Report, ValidationReport

PENGUINS = Path(__file__).resolve().parents[3] / "../shared/datasets/penguins/penguins_processed.csv"


def _call(comp, root: Path, **params):
    outputs = {name: typ(root / name) for name, typ in comp.outputs.items()}
    comp.fn(**outputs, **params)
    for artifact in outputs.values():
        artifact.finalize()
    return outputs


@pytest.mark.skipif(not PENGUINS.exists(), reason="shared datasets not present")
def test_the_report_lists_every_validation_anomaly_and_omits_the_section_without_validation(tmp_path):
    examples = _call(ingest_csv, tmp_path / "i", source=str(PENGUINS), label_column="species")["examples"]
    statistics = _call(compute_statistics, tmp_path / "s", examples=examples)["statistics"]
    schema = _call(infer_schema, tmp_path / "c", statistics=statistics)["schema"]
    # max_mean_drift 0: every eval/test mean differs from train's, so the real splits give anomalies to list
    report = _call(validate_examples, tmp_path / "v", statistics=statistics, schema=schema, max_mean_drift=0.0)
    validation = ValidationReport.open(report["report"].path)
    anomalies = validation.read_json("validation.json")["anomalies"]
    assert len(anomalies) >= 4

    page_dir = Report(tmp_path / "r")
    render_report.fn(report=page_dir, validation=validation)
    page = (page_dir.path / "report.html").read_text()
    assert ">Data validation<" in page and f"{len(anomalies)} anomalies in eval/test" in page
    for a in anomalies:
        cells = "".join(f'<td class="l">{html.esc(a[k])}</td>' for k in ("feature", "kind", "split", "detail"))
        assert cells in page, a
    assert "validation" in page_dir.properties["sections"]

    bare = Report(tmp_path / "r2")
    render_report.fn(report=bare)
    assert ">Data validation<" not in (bare.path / "report.html").read_text()


def test_the_supervised_template_hands_the_validation_to_the_report(tmp_path):
    from edgepipe.pipeline.config import load_config
    from edgepipe.pipeline.templates import build_pipeline

    config = tmp_path / "config.yaml"
    config.write_text(f"pipeline: {{name: p, template: supervised, root: {tmp_path}/root}}\n"
                      f"data: {{source: {PENGUINS.resolve()}, label_column: species}}\n"
                      "model: {family: mlp, task: classification}\n")
    nodes = {node.name: node for node in build_pipeline(load_config(str(config))).nodes}
    assert str(nodes["render_report"].inputs["validation"]) == "validate_examples.outputs['report']"

"""The anomaly report's model comparison has the variant table's device cost (MACs, arena, energy, fits <target>,
from the variant table's own formatter) and the agreement the export gate judges (clear windows, with the count of
near-threshold windows left out) beside the all-windows one: the all-windows agreement alone made a shipped model
look as if it failed export.min_agreement. On the real default-pipeline run shared with the runtime tests."""
from __future__ import annotations

import json
import re

import pytest

from edgepipe.components.evaluation.variants import device_cells
from edgepipe.pipeline.contracts import VariantRow
from tests.runtime.fixtures import default_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return default_run(tmp_path_factory)


def _models_rows(report: str) -> tuple[list[str], dict[str, list[str]]]:
    body = re.search(r'<section id="models">(.*?)</section>', report, re.S).group(1)
    head = [re.sub("<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", body)]
    rows = {}
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)[1:]:
        cells = [re.sub("<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
        rows[cells[0]] = cells
    return head, rows


def test_model_comparison_has_device_cost_and_the_gated_agreement(run):
    report = (run.artifact("render_report", "report") / "report.html").read_text(encoding="utf-8")
    evaluation = run.artifact("evaluate", "evaluation")
    doc = json.loads((evaluation / "evaluation.json").read_text())
    table = {r["variant"]: VariantRow.of(r) for r in json.loads((evaluation / "variants.json").read_text())}
    head, rows = _models_rows(report)
    for column in ("MACs", "arena (B)", "energy (uJ)", "agreement (all)", "gated agreement", "export gate"):
        assert column in head, head
    assert any(h.startswith("fits ") for h in head)
    primary = json.loads((run.bundle / "bundle.json").read_text())["primary_variant"]
    cells = dict(zip(head, rows[primary]))
    assert [cells[h] for h in head[head.index("MACs"):head.index("MACs") + 4]] == device_cells(table[primary])
    decisive, near = doc["agreement"][primary]["decisive"], doc["agreement"][primary]["near_threshold"]
    assert cells["gated agreement"].startswith(f"{decisive:.4g}")
    assert (f"({near} near)" in cells["gated agreement"]) is bool(near)
    assert cells["export gate"] == "passes"  # the shipped model passed the gate

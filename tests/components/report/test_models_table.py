"""The supervised families' model comparison shows the variant table's device cost (MACs, arena, energy, fits
<target>) from the variant table's own formatter, as the anomaly report's does (QA O4: it had energy and fit but
neither MACs nor arena)."""
from __future__ import annotations

import re

from edgepipe.components.evaluation.variants import device_cells
from edgepipe.components.report.context import ReportContext
from edgepipe.components.report.sections.common import models
from edgepipe.pipeline.contracts import VariantRow


def test_the_model_comparison_has_macs_arena_energy_and_fit():
    rows = [VariantRow(variant="keras", metric_name="accuracy", metric=0.97),
            VariantRow(variant="int8_ptq", mode="int8", size_bytes=4096, metric_name="accuracy", metric=0.96,
                       metric_drop=0.01, agreement=0.99, macs=2400, arena_bytes=1536, energy_uj=0.0123,
                       target="cortex_m4", fits=False, fit_reasons=("arena 1.5 KB > ram_kb 1 KB",))]
    ctx = ReportContext(task="classification", params={"primary": "int8_ptq", "min_agreement": 0.98,
                                                        "max_metric_drop": 0.05})
    ctx.__dict__["variant_rows"] = rows
    html = models(ctx)
    head = [re.sub("<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", html)]
    assert head[head.index("MACs"):head.index("MACs") + 4] == ["MACs", "arena (B)", "energy (uJ)", "fits cortex_m4"]
    int8 = [re.sub("<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>",
                                                         re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S)[-1])]
    start = head.index("MACs")
    assert int8[start:start + 4] == [html_escape(c) for c in device_cells(rows[1])]


def html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

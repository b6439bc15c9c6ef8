"""The data validation section: every anomaly ``validate_examples`` found in eval/test against the train schema.

Why a section of its own: a feature drifting 116 train standard deviations in test, or a category the model never
saw, changes what the evaluation numbers mean; before this section only ``validation.json`` (or ``edgepipe show``)
said so. Shown for every task whose pipeline validated its data; absent (None) where nothing was validated.
"""
from __future__ import annotations

from edgepipe.components.report import html
from edgepipe.components.report.context import ReportContext
from edgepipe.components.report.sections import section


@section(order=15, name="validation")
def validation(ctx: ReportContext) -> str | None:
    if ctx.validation is None:
        return None
    path = ctx.validation.path / "validation.json"
    if not path.exists():
        return None
    doc = ctx.validation.read_json("validation.json")
    anomalies = doc.get("anomalies") or []
    checked = "/".join(doc.get("checked") or []) or "no split"
    if not anomalies:
        return html.section("Data validation", f"<p class=note>No anomaly in {html.esc(checked)} against the "
                                               "train schema.</p>", "validation")
    fail_on = ", ".join(doc.get("fail_on") or []) or "none"
    note = (f"<p class=note>{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'} in {html.esc(checked)} "
            f"against the schema inferred on train (kinds that fail the run, <code>schema.fail_on</code>: "
            f"{html.esc(fail_on)}).</p>")
    rows = [[a.get("feature"), a.get("kind"), a.get("split"), a.get("detail")] for a in anomalies]
    return html.section("Data validation", note + html.table(["feature", "kind", "split", "detail"], rows, left=4),
                        "validation")

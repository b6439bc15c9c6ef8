"""The retrain section: the candidate against the last exported bundle on the same evaluation data, and the
verdict the export gate enforces (``components/evaluation/blessing.py``); for a series, how the new train split's
normalization moved from the baseline's. Every task: shown only when the run was a retrain (a blessing input).
"""
from __future__ import annotations

from edgepipe.components.report import html
from edgepipe.components.report.context import ReportContext
from edgepipe.components.report.sections import section


@section(order=85, name="blessing")
def blessing(ctx: ReportContext) -> str | None:
    if ctx.blessing is None:
        return None
    doc = ctx.blessing.read_json("blessing.json")
    cand, base = doc["candidate"], doc.get("baseline") or {}
    verdict = "blessed" if doc["blessed"] else "not blessed: export refused"
    body = [html.kpis([("verdict", verdict), (f"candidate {doc['metric_name']}", cand["metric"]),
                       (f"baseline {doc['metric_name']}", base.get("metric")),
                       ("regression", doc["regression"]), ("max_regression", doc["max_regression"])]),
            f'<p class="note">{html.esc(doc["reason"])}.</p>']
    if base:
        rows = [["candidate (this run)", cand["variant"], cand["metric"]],
                ["baseline " + (f"(run {base['run']})" if base.get("run") else "(given bundle)"),
                 base.get("variant"), base.get("metric")]]
        body += [html.table(["model", "variant", doc["metric_name"]], rows, left=2),
                 f'<p class="note">Both scored on the candidate\'s evaluation data ({base.get("examples")} examples'
                 f'{", splits " + ", ".join(base["splits"]) if base.get("splits") else ""}); baseline bundle '
                 f'<code>{html.esc(base.get("bundle"))}</code>, run through the runtime as a device would.</p>']
    if base.get("candidate_alarm_rate") is not None or (base and doc["regression"] is None):
        body.append(f'<p class="note">Windows flagged on this evaluation data: candidate '
                    f'{html.fmt(base.get("candidate_alarm_rate"))}, baseline {html.fmt(base.get("alarm_rate"))}.</p>')
    drift = base.get("drift") or {}
    if drift.get("comparable"):
        rows = [[name, c["center_shift"], c["scale_ratio"]] for name, c in drift["channels"].items()]
        body += ["<h3>Train data against the baseline's normalization</h3>",
                 html.table(["channel", "centre shift (baseline scales)", "scale ratio"], rows)]
    elif drift:
        body.append(f'<p class="note">Drift not compared: {html.esc(drift.get("reason"))}.</p>')
    return html.section("Retrain: blessing against the last export", "".join(body), "blessing")

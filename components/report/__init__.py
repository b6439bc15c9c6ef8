"""edgepipe.components.report: one self-contained HTML report per run (data, training, evaluation, models)."""
from edgepipe.components.report.report import render_report

__all__ = ["render_report"]

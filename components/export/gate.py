"""The export gate: which variants ship, which one is ``model.tflite``, and the checks before anything is written.

One gate for every task. Each variant row of the evaluation is judged against the bounds (agreement of decisions
with the Keras model >= ``min_agreement``; task metric no worse than ``max_metric_drop``); ``primary: auto`` takes
the first int8 variant that passes (``variants.gated_primary``). A primary that fails refuses the export
(VerificationError, exit 4; under ``auto`` naming every int8 variant tried and why) -- unless ``float_fallback`` (generators, Q-networks, which have no training loss to
recover with), where the next passing int8 variant or float32 ships and the bundle says why. Every shipped file must
be the one evaluated (SHA-256).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgepipe.pipeline.contracts import EvaluationReport, VariantRow
from edgepipe.pipeline.errors import VerificationError


@dataclass
class Gated:
    rows: list[VariantRow]  # the variant table, each row marked exported (or not) and why
    chosen: str  # the variant shipped as model.tflite
    reason: str | None  # why it is not the first choice
    content: dict[str, bytes]  # every passing variant's bytes
    skipped: str | None  # why the metric bound could not apply (metric undefined for the Keras model)


def _table(evaluation, report: EvaluationReport) -> list[VariantRow]:
    """The evaluation's variant table, agreement re-read from evaluation.json (the numbers the gate trusts)."""
    rows = evaluation.variant_rows()
    if rows is None:
        rows = [VariantRow(variant=v, label=v, metric_name=report.metric_name, metric=None, metric_drop=None,
                           recorded=("variant", "label", "metric_name", "metric", "metric_drop"))
                for v in ("keras", *[m for m in report.models if m != "keras"])]
    return [row if row.reference else row.updated(agreement=report.gated_agreement(row.variant)) for row in rows]


def gate_variants(tflite, evaluation, report: EvaluationReport | dict[str, Any], min_agreement: float,
                  max_metric_drop: float | None, primary: str, float_fallback: bool = False) -> Gated:
    """``report``: the evaluation's :class:`EvaluationReport` (or evaluation.json as read)."""
    from edgepipe.components.evaluation.variants import gate, metric_gate_skipped
    from edgepipe.tasks.variants import AUTO_PRIMARY, gated_primary

    report = EvaluationReport.of(report, "evaluation.json")
    table = _table(evaluation, report)
    skipped = metric_gate_skipped(table, max_metric_drop)
    rows = gate(table, min_agreement, max_metric_drop)
    chosen, reason = gated_primary(primary, rows)
    failures = all_int8_failed(rows) if primary == "auto" else None
    row = next((r for r in rows if r.variant == chosen), None)
    if (row is None or not row.exported) and float_fallback:
        why = row.reason if row else "not evaluated"
        passing = [r.variant for r in rows if r.exported and r.variant in AUTO_PRIMARY]
        fallback = sorted(passing, key=AUTO_PRIMARY.index)[0] if passing else "float32"
        reason = ((f"no int8 variant passed verification ({failures}); " if failures else
                   f"int8 variant '{chosen}' fails the export bounds ({why}); ")
                  + (f"'{fallback}' ships instead" if passing else "the float32 model is shipped"))
        chosen = fallback
        row = next((r for r in rows if r.variant == chosen), None)
    kind = "" if chosen == "float32" else "int8 "
    measured = report.gated_agreement(chosen)
    scope = report.gate_scope
    if failures and chosen != "float32":  # auto tried them all: name each and why, not only the first
        raise VerificationError(f"no int8 variant passed verification: {failures} (agreement with the Keras model "
                                f"on {scope}); nothing exported")
    if measured is None or not np.isfinite(measured):
        raise VerificationError(f"agreement of the primary variant '{chosen}' with the Keras model was not measured "
                                "(no such variant, or nothing evaluated); nothing exported")
    if measured < min_agreement and row is not None and not row.exported:
        raise VerificationError(f"primary {kind}variant '{chosen}' agrees with the Keras model on {measured:.4f} of "
                                f"{scope}, below min_agreement {min_agreement:.4f}; nothing exported")
    if row is None or not row.exported:
        why = row.reason if row else "not evaluated"
        raise VerificationError(f"primary {kind}variant '{chosen}' fails the export bounds ({why}); nothing exported")
    content = {}
    for r in rows:
        if r.reference or not r.exported:
            continue
        path = tflite.variant_path(r.variant)
        if not path.exists():
            raise VerificationError(f"TFLite variant '{r.variant}' is missing from {tflite.path}; nothing exported")
        data = path.read_bytes()
        if report.sha256(r.variant) != hashlib.sha256(data).hexdigest():
            raise VerificationError(f"{path.name} differs from the model that was evaluated (sha256 mismatch); "
                                    "nothing exported")
        content[r.variant] = data
    return Gated(rows, chosen, reason, content, skipped)


def all_int8_failed(rows: list[VariantRow]) -> str | None:
    """``pqat agreement 0.3333 < 0.98; int8_ptq agreement 0.8 < 0.98`` when none of the int8 variants this run
    built that ``primary: auto`` ranks passes the bounds (in its order), else None. A row's own reasons are joined
    with ', ' so that '; ' separates variants."""
    from edgepipe.tasks.variants import AUTO_PRIMARY

    tried = sorted((r for r in rows if r.variant in AUTO_PRIMARY), key=lambda r: AUTO_PRIMARY.index(r.variant))
    if not tried or any(r.exported for r in tried):
        return None
    return "; ".join(f"{r.variant} {(r.reason or 'not judged').replace('; ', ', ')}" for r in tried)


def check_blessing(blessing, chosen: str) -> dict[str, Any] | None:
    """A retrain's blessing (``components/evaluation/blessing.py``) of the variant that ships: its summary for
    bundle.json and evaluation.json, or VerificationError (exit 4, nothing written) when that variant is worse than
    the last exported bundle on the same evaluation data by more than ``retrain.max_regression``."""
    if blessing is None:
        return None
    from edgepipe.components.evaluation.blessing import refusal, summary

    doc = blessing.read_json("blessing.json")
    why = refusal(doc, chosen)
    if why:
        raise VerificationError(why)
    return summary(doc, chosen)

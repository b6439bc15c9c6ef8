"""Classification: accuracy, the confusion matrix as a picture, the per-class table, and the lowest-confidence
examples drawn with their true and predicted labels.

Why these: accuracy alone hides which classes are confused and whether the model is unsure where it is wrong;
the lowest-confidence examples are where labelling errors and ambiguous inputs show. Every number comes from
evaluate_model's ``evaluation.json`` (``family_metrics.classification_report``), the pictures from the inputs it
kept in ``predictions.npz`` at the indices it reported, so the report and the metrics cannot disagree.
"""
from __future__ import annotations

from edgepipe.components.report import figures, html
from edgepipe.components.report.context import ReportContext
from edgepipe.components.report.sections import section

WRONG, RIGHT = "#c44e52", "#2f6b2f"


def variant_kpis(ctx: ReportContext) -> list[tuple[str, object]]:
    """Each TFLite variant's agreement with the Keras model on the same examples (what export gates on)."""
    doc = ctx.doc
    return [(f"{name} agreement", doc.agreement_all(name)) for name in (doc.agreement if doc else {})]


@section("classification", order=30, name="evaluation")
def evaluation(ctx: ReportContext) -> str:
    m = ctx.metrics
    if ctx.doc is None or "confusion_matrix" not in m:
        return html.section("Classification", '<p class="note">Not available (no classification evaluation).</p>',
                            "evaluation")
    names = list(m.get("class_names") or range(len(m["confusion_matrix"])))
    split = ctx.doc.split or "?"
    per_class = m.get("per_class") or {}
    rows = [[name, per_class[name].get("precision"), per_class[name].get("recall"), per_class[name].get("f1"),
             per_class[name].get("support")] for name in _class_order(per_class, names)]
    body = [html.kpis([("accuracy", m.get("accuracy")), (f"{split} examples", m.get("examples")),
                       ("classes", len(names)), *variant_kpis(ctx)]),
            f"<h3>Confusion matrix (Keras model, {html.esc(split)} split)</h3>",
            "<p class=note>Rows: true class, columns: predicted; cell: count, colour: share of the true class.</p>",
            html.figure(figures.confusion_matrix(m["confusion_matrix"], [str(n) for n in names]), "confusion matrix"),
            _counts_table(m["confusion_matrix"], names),
            "<h3>Per class</h3>",
            html.table(["class", "precision", "recall", "F1", "support"], rows, left=1)]
    return html.section("Classification", "".join(body), "evaluation")


def _counts_table(cm: list[list[int]], names: list) -> str:
    """The matrix as numbers too (up to 20 classes): searchable, and what a reader copies."""
    if len(cm) > 20:
        return ""
    return html.table(["true \\ predicted", *map(str, names)], [[n, *row] for n, row in zip(names, cm)], left=1)


@section("classification", order=40, name="lowest_confidence")
def lowest_confidence(ctx: ReportContext) -> str | None:
    items = list(ctx.metrics.get("lowest_confidence") or [])[:int(ctx.param("max_examples", 10))]
    if not items:
        return None
    table = html.table(["index", "true", "predicted", "confidence", "correct"],
                       [[i["index"], i["true"], i["predicted"], i["confidence"], i["correct"]] for i in items],
                       left=3)
    x, _, source = ctx.inputs(max(i["index"] for i in items) + 1)
    if x is None or len(x) <= max(i["index"] for i in items):
        picture, note = None, f'<p class="note">Inputs not drawn: {html.esc(source)}.</p>'
    else:
        picture = figures.example_grid([x[i["index"]] for i in items],
                                       [f"#{i['index']} true {i['true']}\npred {i['predicted']} "
                                        f"({i['confidence']:.2f})" for i in items],
                                       colors=[RIGHT if i["correct"] else WRONG for i in items])
        note = ("<p class=note>The examples the Keras model is least sure of (lowest top-class probability), "
                "least sure first; red: misclassified.</p>")
    return html.section("Lowest-confidence examples", note + html.figure(picture, "lowest-confidence examples")
                        + table, "lowest-confidence")


def _class_order(per_class: dict, names: list) -> list[str]:
    """The per-class rows in the confusion matrix's order (``class_names``), then any other class, integers by
    value: evaluation.json's keys come back sorted as strings (0, 1, 10, 11, 2, ...)."""
    position = {str(n): i for i, n in enumerate(names)}
    return sorted(per_class, key=lambda k: (position.get(k, len(position)), *(
        (0, int(k), "") if k.lstrip("-").isdigit() else (1, 0, k))))


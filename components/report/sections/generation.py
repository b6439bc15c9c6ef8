"""GANs: the sample grids evaluate_gan wrote, the discriminator's view, and the judge classifier's class shares.

Why the class shares next to the pictures: a grid shows whether samples look right, but mode collapse (a class
the generator never draws) is easy to miss by eye in 64 samples and obvious as a bar near zero over 2,000. The
grids are evaluate_gan's own PNGs (``metrics.grids``) redrawn large; nothing is sampled again.
"""
from __future__ import annotations

from edgepipe.components.report import figures, html
from edgepipe.components.report.context import ReportContext
from edgepipe.components.report.sections import section
from edgepipe.components.report.sections.classification import variant_kpis


def shown_grids(grids: list[str]) -> list[str]:
    """The all-classes grid when there is one (the per-class files repeat its rows), else every grid."""
    return ["samples_by_class.png"] if "samples_by_class.png" in grids else list(grids)


@section("generation", order=30, name="evaluation")
def evaluation(ctx: ReportContext) -> str:
    m = ctx.metrics
    if ctx.doc is None or "discriminator_fake_mean" not in m:
        return html.section("Generated samples", '<p class="note">Not available (no GAN evaluation).</p>',
                            "evaluation")
    body = [html.kpis([("discriminator on real", m.get("discriminator_real_mean")),
                       ("discriminator on generated", m.get("discriminator_fake_mean")),
                       ("pixel std generated", m.get("generated_pixel_std")),
                       ("pixel std real", m.get("real_pixel_std")),
                       ("samples", m.get("samples")), *variant_kpis(ctx)]),
            "<p class=note>Discriminator: mean probability of 'real' (a converged GAN drives both towards 0.5); "
            "pixel std across samples: far below the real images' means little variety.</p>"]
    grids = list(m.get("grids") or [])
    for name in shown_grids(grids):
        path = ctx.evaluation.path / name
        if path.exists():
            caption = ("one row per class" if name == "samples_by_class.png" else "samples")
            body += [f"<h3>{html.esc(name)} <span class=note>({caption}, Keras generator)</span></h3>",
                     html.figure(figures.png_file(path.read_bytes()), f"generated {name}")]
    return html.section("Generated samples", "".join(body), "evaluation")


@section("generation", order=40, name="judge")
def judge(ctx: ReportContext) -> str | None:
    m = ctx.metrics
    shares = m.get("class_shares")
    if not shares:
        return None
    about = m.get("classifier") or {}
    body = [html.kpis([("smallest class share", m.get("min_class_share")), ("classes seen", m.get("classes_seen")),
                       ("label agreement", m.get("label_agreement")),
                       (f"judge ({about.get('family', '?')}) test accuracy", about.get("test_accuracy"))]),
            "<p class=note>An independent classifier trained on the same images labels the generated samples: the "
            "share of each class (mode collapse shows as a class near 0; dashed: uniform)"
            + ("; label agreement: fraction classified as the class asked for" if "label_agreement" in m else "")
            + ". Its own test accuracy bounds how far its verdicts can be trusted.</p>",
            html.figure(figures.bars(shares, "share of generated samples", 1 / len(shares)), "class shares"),
            html.table(["class", "share"], list(shares.items()), left=1)]
    return html.section("Judged by a classifier", "".join(body), "judge")

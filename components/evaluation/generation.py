"""Evaluation of a GAN generator: sample grids per class, the discriminator's score, an independent classifier's
verdict on the samples, and every converted variant against the Keras generator on fixed latents."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgepipe.components.evaluation.registry import evaluator
from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Examples, Model, ModelEvaluation, TFLiteModels
from edgepipe.pipeline.contracts import EvaluationReport

from edgepipe.components.evaluation.supervised import split_arrays

if TYPE_CHECKING:  # importing the task module here would register it before the registry's own order
    from edgepipe.tasks.generation import GenerationEvaluate


@evaluator("generation")
def evaluate_gan(model: Model, evaluation: ModelEvaluation, examples: Examples, tflite: TFLiteModels | None = None,
                 classifier: Model | None = None, *, settings: GenerationEvaluate, seed: int = 0) -> dict:
    """``settings``: the task's ``evaluate`` section (split, samples, samples_per_class, latency_runs); ``seed``
    draws the latents (the pipeline's ``training.seed``).

    Sample grids (``samples_<class>.png``, one row of ``samples_per_class`` per class for a cGAN) and a
    discriminator-based score: the mean probability the trained discriminator gives real test images and generated
    ones (a converged GAN drives both towards 0.5), plus the generator's mode coverage proxy (per-pixel std).

    A discriminator trained with the generator cannot say whether the samples are *right*. With ``classifier`` (a
    classifier trained on the same images) the samples are judged independently: each class's share of
    unconditional samples (mode collapse shows as a class near 0) and, for a cGAN, the fraction classified as the
    class asked for (:func:`family_metrics.sample_classes`); that becomes the variants' metric. ``samples`` is 2,000
    so a class share near 5% is measured to about +-1% (two standard errors).

    With ``tflite`` (convert_generator's variants) each variant is checked against the Keras generator on fixed
    latents (mean |pixel difference|, the metric of its own samples: ``family_variants.generator_variants``)
    and ``variants.json/.md/.html`` are written for the export gate."""
    import tensorflow as tf
    import tf_keras as keras

    from edgepipe.components.evaluation.family_metrics import image_grid
    from edgepipe.models.custom_objects import custom_object_scope

    split, samples, samples_per_class = settings.split, settings.samples, settings.samples_per_class
    latency_runs = settings.latency_runs
    generator = model.load_keras()
    with custom_object_scope():
        discriminator = keras.models.load_model(str(model.path / "discriminator.h5"), compile=False)
    card = ModelCard.of(model)
    conditional = bool(card.conditional)
    latent_dim = int(card.required("latent_dim"))
    spec, x_real, y_real = split_arrays(examples, model, split, with_labels=conditional)
    rng = np.random.default_rng(seed)
    num_classes = int(card.num_classes or 0)

    def generate(n, labels=None):
        noise = rng.normal(size=(n, latent_dim)).astype(np.float32)
        inputs = [noise, labels.reshape(-1, 1).astype(np.int32)] if conditional else noise
        return generator.predict(inputs, batch_size=256, verbose=0)

    def d_prob(images, labels=None):
        inputs = [images, labels.reshape(-1, 1).astype(np.int32)] if conditional else images
        return tf.sigmoid(discriminator.predict(inputs, batch_size=256, verbose=0)).numpy().reshape(-1)

    fake_labels = rng.integers(0, num_classes, size=samples) if conditional else None
    fake = generate(samples, fake_labels)
    real = x_real[:samples]
    real_labels = y_real[:samples] if conditional else None
    report: dict[str, Any] = {
        "samples": int(samples), "real_examples": int(len(real)),
        "discriminator_real_mean": float(d_prob(real, real_labels).mean()),
        "discriminator_fake_mean": float(d_prob(fake, fake_labels).mean()),
        "generated_pixel_std": float(fake.std(axis=0).mean()), "real_pixel_std": float(real.std(axis=0).mean()),
        "generated_mean": float(fake.mean()), "real_mean": float(real.mean())}
    judge, judged_by = _sample_judge(classifier, conditional, examples, split)
    if judge is not None:
        report["classifier"] = judged_by
        report.update(judge(fake, fake_labels))
    grids = []
    if conditional:
        names = list(card.class_names or []) or [str(c) for c in range(num_classes)]
        rows = []
        for c in range(num_classes):
            imgs = generate(samples_per_class, np.full(samples_per_class, c))
            tf.io.write_file(str(evaluation.file(f"samples_{names[c]}.png")),
                             tf.io.encode_png(image_grid(imgs, 1, samples_per_class)))
            grids.append(f"samples_{names[c]}.png")
            rows.append(imgs)
        allimgs = np.concatenate(rows)
        tf.io.write_file(str(evaluation.file("samples_by_class.png")),
                         tf.io.encode_png(image_grid(allimgs, num_classes, samples_per_class)))
        grids.append("samples_by_class.png")
    else:
        side = max(1, int(np.sqrt(samples_per_class * 8)))
        tf.io.write_file(str(evaluation.file("samples.png")), tf.io.encode_png(image_grid(fake, side, side)))
        grids.append("samples.png")
    report["grids"] = grids
    variants: dict[str, Any] = {}  # the report fields of the variants (family_variants._table)
    if tflite is not None:
        from edgepipe.components.evaluation.family_variants import generator_variants

        variants = generator_variants(tflite, evaluation, generator, d_prob, samples, seed, latency_runs, judge)
    evaluation.write_report(EvaluationReport.build(schema_version=1, family=card.family, task="generation",
                                                   split=split, metrics=report, **variants))
    summary = {k: report[k] for k in ("discriminator_real_mean", "discriminator_fake_mean", "generated_pixel_std",
                                      "min_class_share", "label_agreement") if k in report}
    summary.update({f"{v}_agreement": a["all"] for v, a in (variants.get("agreement") or {}).items()})
    evaluation.properties.update({"task": "generation", **summary})
    return summary


def _sample_judge(classifier: Model | None, conditional: bool, examples: Examples, split: str):
    """``(judge, about)``: ``judge(images, asked_labels) -> sample_classes report`` with the classifier, and the
    classifier's family and own accuracy on real images of ``split`` (how far its verdicts can be trusted);
    ``(None, None)`` without one."""
    if classifier is None:
        return None, None
    from edgepipe.components.evaluation.family_metrics import sample_classes

    net = classifier.load_keras()
    k = int(net.outputs[0].shape[-1])  # one probability per class
    judge_card = ModelCard.of(classifier)
    names = judge_card.labels or None  # the data spec's class names (train_model records them there)
    shape = tuple(int(d) for d in net.inputs[0].shape[1:])

    def predict(images: np.ndarray) -> np.ndarray:
        return net.predict(images.reshape((-1, *shape)), batch_size=256, verbose=0).argmax(-1)

    def judge(images: np.ndarray, asked: np.ndarray | None = None) -> dict[str, Any]:
        return sample_classes(predict(images), k, asked if conditional else None, names)

    _, x, y = split_arrays(examples, classifier, split, with_labels=True)
    about = {"family": judge_card.family,
             "test_accuracy": float((predict(x) == y.reshape(-1)).mean())}
    return judge, about

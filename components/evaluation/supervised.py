"""Evaluation per model family: classification, regression/forecasting, segmentation, reconstruction (one
component, chosen by the model's task), GANs (sample grids per class + discriminator score) and RL (average return).

Each writes ``evaluation.json`` in a ModelEvaluation artifact and returns its headline numbers as metrics. Like the
anomaly evaluation it reports and never fails on poor numbers.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgepipe.pipeline.artifacts import Examples, Model, ModelEvaluation, TFLiteModels
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import DataError

log = logging.getLogger(__name__)


def _split_arrays(examples: Examples, model: Model, split: str, with_labels: bool = True):
    from edgepipe.components.training.fit import supervised_dataset
    from edgepipe.models.spec import DataSpec

    spec = DataSpec.from_json(model.properties["data_spec"])
    if not examples.split_files(split):
        raise DataError(f"{examples.path}: no split '{split}' to evaluate on")
    ds = supervised_dataset(examples, split, spec, 256, cache=False, with_labels=with_labels)
    xs, ys = [], []
    for batch in ds:
        if with_labels:
            xs.append(batch[0].numpy())
            ys.append(batch[1].numpy())
        else:
            xs.append(batch.numpy())
    x = np.concatenate(xs)
    return spec, x, (np.concatenate(ys) if ys else None)


@component(version="2")
def evaluate_model(examples: Input[Examples], model: Input[Model], evaluation: Output[ModelEvaluation],
                   tflite: Input[TFLiteModels] | None = None, split: str = "test", lowest_confidence: int = 10,
                   latency_runs: int = 50) -> dict:
    """Metrics of a supervised model on ``split``: accuracy, per-class precision/recall, confusion matrix and the
    lowest-confidence examples (classification); MAE/RMSE (regression, forecasting); IoU (segmentation);
    reconstruction error (autoencoders).

    With ``tflite`` (the variant stage's converted models) every variant is run with LiteRT on the same split and
    compared with the Keras model by the task's declared metric (``edgepipe.tasks``): ``variants.json/.md/.html`` rows
    and, in evaluation.json, ``models`` (file hashes) and ``agreement`` -- what export gates on. Per-example inputs
    and outputs of every model go to ``predictions.npz`` (``x``, ``y``, ``keras``, ``<variant>``), so a device's
    answers can be checked against the pipeline's own on the same examples.
    """
    from edgepipe import tasks

    task = model.properties.get("task", "classification")
    declared = tasks.get(task)
    spec, x, y = _split_arrays(examples, model, split, with_labels=declared.label != "none")
    net = model.load_keras()
    out = net.predict(x, batch_size=256, verbose=0)
    names = list(spec.class_names) if spec.class_names else None
    report, summary = declared.evaluation_report(x, y, out, names, lowest_confidence)
    outputs = {"keras": out}
    doc: dict[str, Any] = {"schema_version": 1, "family": model.properties.get("family"), "task": task,
                           "split": split, "metrics": report, "predictions_file": "predictions.npz"}
    if tflite is not None and declared.quantizable:
        doc.update(_evaluate_variants(tflite, model, net, task, x, y, outputs, evaluation, latency_runs))
        summary.update({f"{v}_agreement": a["all"] for v, a in doc["agreement"].items()})
    np.savez_compressed(evaluation.file("predictions.npz"), x=x, **({"y": y} if y is not None else {}),
                        **{name: np.asarray(o) for name, o in outputs.items()})
    evaluation.write_json("evaluation.json", doc)
    evaluation.properties.update({"task": task, "split": split, **summary})
    return summary


def _evaluate_variants(tflite: TFLiteModels, model: Model, net, task: str, x, y, outputs: dict,
                       evaluation: ModelEvaluation, latency_runs: int) -> dict[str, Any]:
    """Run each TFLite variant on ``x`` (adding to ``outputs``), score it with the task metric and write the table."""
    import hashlib
    import json

    from edgepipe import tasks
    from edgepipe.tasks.metrics import compare_variants
    from edgepipe.components.evaluation.variants import build_rows, run_progress, write_table
    from edgepipe.components.optimization.pruning import measured_sparsity
    from edgepipe.runtime.litert import ModelRunner

    models = {"keras": {"kind": "keras", "source": "model"}}
    for name in tflite.variants():
        path = tflite.variant_path(name)
        outputs[name] = ModelRunner(path).run(x, run_progress(path.stem))
        models[name] = {"kind": "tflite", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    metric = tasks.get(task).metric
    compared = compare_variants(metric, y, outputs)
    values = {m: c["metric"] for m, c in compared.items()}
    agree = {m: {"all": c["agreement"]} for m, c in compared.items() if m != "keras"}
    index = json.loads((tflite.path / "variants.json").read_text())
    latencies = {name: ModelRunner(tflite.variant_path(name)).latency_us(runs=latency_runs) for name in index}
    reference = {"size_bytes": (model.path / Model.filename).stat().st_size, "gzip_bytes": None,
                 "params": int(net.count_params()), "sparsity": measured_sparsity(net)}
    rows = build_rows(index, metric.name, values, {m: a["all"] for m, a in agree.items()},
                      {m: metric.drop(values[m], values["keras"]) for m in values}, latencies, reference)
    write_table(evaluation, rows)
    return {"reference": "keras", "models": models, "agreement": agree, "metric_name": metric.name,
            "variant_metrics": values}


@component(version="3")
def evaluate_gan(examples: Input[Examples], model: Input[Model], evaluation: Output[ModelEvaluation],
                 tflite: Input[TFLiteModels] | None = None, classifier: Input[Model] | None = None,
                 split: str = "test", samples_per_class: int = 8, samples: int = 2000, seed: int = 0,
                 latency_runs: int = 50) -> dict:
    """Sample grids (``samples_<class>.png``, one row of ``samples_per_class`` per class for a cGAN) and a
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

    generator = model.load_keras()
    with custom_object_scope():
        discriminator = keras.models.load_model(str(model.path / "discriminator.h5"), compile=False)
    conditional = bool(model.properties.get("conditional"))
    latent_dim = int(model.properties["latent_dim"])
    spec, x_real, y_real = _split_arrays(examples, model, split, with_labels=conditional)
    rng = np.random.default_rng(seed)
    num_classes = int(model.properties.get("num_classes") or 0)

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
        names = model.properties.get("class_names") or [str(c) for c in range(num_classes)]
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
    doc = {"schema_version": 1, "family": model.properties.get("family"), "task": "generation", "split": split,
           "metrics": report}
    if tflite is not None:
        from edgepipe.components.evaluation.family_variants import generator_variants

        doc.update(generator_variants(tflite, evaluation, generator, d_prob, samples, seed, latency_runs, judge))
    evaluation.write_json("evaluation.json", doc)
    summary = {k: report[k] for k in ("discriminator_real_mean", "discriminator_fake_mean", "generated_pixel_std",
                                      "min_class_share", "label_agreement") if k in report}
    summary.update({f"{v}_agreement": a["all"] for v, a in (doc.get("agreement") or {}).items()})
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
    names = classifier.properties.get("class_names")
    shape = tuple(int(d) for d in net.inputs[0].shape[1:])

    def predict(images: np.ndarray) -> np.ndarray:
        return net.predict(images.reshape((-1, *shape)), batch_size=256, verbose=0).argmax(-1)

    def judge(images: np.ndarray, asked: np.ndarray | None = None) -> dict[str, Any]:
        return sample_classes(predict(images), k, asked if conditional else None, names)

    _, x, y = _split_arrays(examples, classifier, split, with_labels=True)
    about = {"family": classifier.properties.get("family"),
             "test_accuracy": float((predict(x) == y.reshape(-1)).mean())}
    return judge, about


@component(version="2")
def evaluate_policy(model: Input[Model], evaluation: Output[ModelEvaluation], tflite: Input[TFLiteModels] | None = None,
                    episodes: int = 100, seed: int = 12345, variant_episodes: int = 5, observation_episodes: int = 5,
                    latency_runs: int = 50) -> dict:
    """Average return of the exported Q-network's greedy policy over ``episodes`` fresh episodes.

    With ``tflite`` (convert_policy's variants) each variant's greedy actions are compared with Keras's on the
    observations of ``observation_episodes`` episodes and its own policy is run for ``variant_episodes`` episodes
    (``family_variants.policy_variants``); ``variants.json/.md/.html`` are written for the export gate."""
    from edgepipe.models.dqn import evaluate_greedy

    net = model.load_keras()
    frame_stack = int(model.properties.get("frame_stack", 1))
    result = evaluate_greedy(net, model.properties["env_name"], episodes, frame_stack, seed=seed)
    doc = {"schema_version": 1, "family": "dqn", "task": "control", "metrics": result}
    if tflite is not None:
        from edgepipe.components.evaluation.family_variants import policy_variants

        doc.update(policy_variants(tflite, evaluation, net, model.properties["env_name"], frame_stack,
                                   variant_episodes, observation_episodes, seed, latency_runs))
    evaluation.write_json("evaluation.json", doc)
    evaluation.properties.update({"task": "control", "average_return": result["average_return"]})
    return {"average_return": result["average_return"], "episodes": episodes,
            **{f"{v}_agreement": a["all"] for v, a in (doc.get("agreement") or {}).items()}}

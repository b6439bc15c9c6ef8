"""Per-variant verification of GAN generators and DQN Q-networks (the rows export gates on).

* generator: every ``.tflite`` variant and the Keras generator run on the same fixed latents (+ labels cycling over
  the classes); ``agreement`` = 1 - mean |pixel difference| vs Keras (pixels in 0..1, so 0.98 = 2% of the range on
  average; the max difference is reported too), ``metric`` = the trained discriminator's mean score of the
  variant's own samples, ``metric_drop`` = |score - Keras's score| (a shift either way means different samples);
* policy: ``agreement`` = fraction of ``observations`` (visited by epsilon-greedy episodes of the Keras policy) on
  which the variant's greedy action equals Keras's; ``metric`` = average return of the variant's own greedy policy
  over ``episodes`` episodes (same seeds for every model), ``metric_drop`` = (Keras return - variant return) /
  max(|Keras return|, 1): relative, so ``export.max_metric_drop`` 0.1 means "within 10% of the float return".

The outputs are what ``evaluate_model`` writes for supervised families: ``variants.json/.md/.html`` rows and, in
evaluation.json, ``models`` (file hashes), ``agreement``, ``metric_name``, ``variant_metrics``.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

import numpy as np


def _table(tflite, evaluation, net, metric_name: str, values: dict, agreements: dict, drops: dict,
           extra: dict[str, dict], latency_runs: int, keras_extra: dict | None = None) -> dict[str, Any]:
    from edgepipe.components.evaluation.variants import build_rows, write_table
    from edgepipe.components.optimization.pruning import measured_sparsity
    from edgepipe.runtime.litert import ModelRunner

    index = json.loads((tflite.path / "variants.json").read_text())
    latencies = {}
    for name in index:
        try:
            latencies[name] = ModelRunner(tflite.variant_path(name)).latency_us(runs=latency_runs)
        except (ValueError, RuntimeError):  # a model the batch-1 timer cannot run: no latency
            latencies[name] = None
    reference = {"size_bytes": None, "gzip_bytes": None, "params": int(net.count_params()),
                 "sparsity": measured_sparsity(net)}
    rows = build_rows(index, metric_name, values, agreements, drops, latencies, reference)
    rows = [row.updated(**(extra.get(row.variant, {}) if not row.reference else (keras_extra or {}))) for row in rows]
    write_table(evaluation, rows)
    models = {"keras": {"kind": "keras", "source": "model"}}
    for name in index:
        path = tflite.variant_path(name)
        models[name] = {"kind": "tflite", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {"reference": "keras", "models": models, "metric_name": metric_name, "variant_metrics": values,
            "agreement": {m: {"all": a} for m, a in agreements.items()}}


def generator_variants(tflite, evaluation, generator, d_prob: Callable, samples: int, seed: int,
                       latency_runs: int, judge: Callable | None = None) -> dict[str, Any]:
    """Rows and evaluation fields for a generator's variants (see the module docstring). With ``judge`` (a
    classifier's verdict on samples, ``evaluate_gan``) the metric is the cGAN's label agreement or the smallest
    class share of unconditional samples, and its drop is Keras's value minus the variant's."""
    from edgepipe.components.optimization.distill import latent_inputs
    from edgepipe.runtime.litert import ModelRunner

    arrays = latent_inputs(generator, samples, seed)
    labels = arrays[1].reshape(-1) if len(arrays) > 1 else None
    names = [t.name.split(":")[0] for t in generator.inputs]
    reference = generator.predict(arrays if len(arrays) > 1 else arrays[0], batch_size=256, verbose=0)
    metric_name = "discriminator_fake_mean"
    if judge is not None:
        metric_name = "label_agreement" if labels is not None else "min_class_share"

    def metric(images) -> tuple[float, dict[str, Any]]:
        score = float(d_prob(images, labels).mean())
        if judge is None:
            return score, {}
        verdict = judge(images, labels)
        return verdict[metric_name], {"discriminator_fake_mean": score, "min_class_share": verdict["min_class_share"]}

    values, keras_extra = {}, {}
    values["keras"], keras_extra = metric(reference)
    agreements, drops, extra = {}, {"keras": 0.0}, {}
    for name in tflite.variants():
        runner = ModelRunner(tflite.variant_path(name), max_batch=1)  # one latent at a time
        out = runner.run_named(runner.by_name(arrays, names)).reshape(reference.shape)
        diff = np.abs(out - reference)
        values[name], extra[name] = metric(out)
        agreements[name] = float(1.0 - diff.mean())
        drops[name] = values["keras"] - values[name] if judge is not None else abs(values[name] - values["keras"])
        extra[name].update({"mean_abs_pixel_diff": float(diff.mean()), "max_abs_pixel_diff": float(diff.max())})
    doc = _table(tflite, evaluation, generator, metric_name, values, agreements, drops, extra, latency_runs,
                 keras_extra)
    doc["variant_checks"] = {"latents": int(samples), "seed": int(seed), **extra}
    return doc


def policy_variants(tflite, evaluation, q_model, env_name: str, frame_stack: int, episodes: int,
                    observation_episodes: int, seed: int, latency_runs: int) -> dict[str, Any]:
    """Rows and evaluation fields for a Q-network's variants (see the module docstring)."""
    from edgepipe.components.optimization.distill import collect_observations
    from edgepipe.runtime.litert import ModelRunner

    def keras_q(x):
        return q_model(x, training=False).numpy()

    obs, _ = collect_observations(keras_q, env_name, observation_episodes, frame_stack, seed=seed + 7919,
                                  epsilon=0.2)
    reference = keras_q(obs)
    predictors = {"keras": keras_q}
    for name in tflite.variants():
        predictors[name] = ModelRunner(tflite.variant_path(name), max_batch=1).run  # one observation at a time
    values, agreements, drops, extra = {}, {}, {}, {}
    for name, predict in predictors.items():
        _, returns = collect_observations(predict, env_name, episodes, frame_stack, seed=seed, epsilon=0.0)
        values[name] = float(np.mean(returns))
        if name == "keras":
            continue
        q = predict(obs)
        agreements[name] = float((q.argmax(1) == reference.argmax(1)).mean())
        extra[name] = {"max_abs_q_diff": float(np.abs(q - reference).max())}
    for name, value in values.items():
        drops[name] = (values["keras"] - value) / max(abs(values["keras"]), 1.0)
    doc = _table(tflite, evaluation, q_model, "average_return", values, agreements, drops, extra, latency_runs)
    doc["variant_checks"] = {"observations": int(len(obs)), "episodes": int(episodes), **extra}
    return doc

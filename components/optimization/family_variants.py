"""Int8 variants for the families the supervised variant stage cannot serve: GAN generators and DQN Q-networks.

Neither has a labelled training split to fine-tune on, so:

* calibration (post-training int8, ``int8_ptq``) uses the inputs the exported model really sees -- latent vectors
  drawn with the bundle's documented sampler (+ every class label, cGAN) for a generator, observations from
  episodes of the trained greedy policy (epsilon-greedy, so off-policy states are covered too) for a Q-network;
* quantization-aware training (``int8_qat``) is *distillation*: the QAT copy of the model is fine-tuned to reproduce
  the float model's own outputs (samples / Q-values, MSE) on those same inputs -- cheap, and it needs neither the
  discriminator's adversarial loop nor the replay buffer. Layers QAT cannot wrap are named in ``quantization.json``.

Both components write a ``TFLiteModels`` artifact in ``convert_tflite``'s layout (``<variant>.tflite`` + the
``variants.json`` index), so evaluation rows, the export gate and the reports treat these families like the others.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable

import numpy as np

from edgepipe.pipeline.artifacts import Model, TFLiteModels
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.runtime.litert import ModelRunner, sample_latent

FAMILY_VARIANTS = ("float32", "int8_ptq", "int8_qat")


def latent_inputs(model, n: int, seed: int) -> list[np.ndarray]:
    """``[latent]`` or ``[latent, label]`` (labels cycling over every class) in the generator's input order; latents
    from the bundle's documented sampler (``runtime.litert.sample_latent``)."""
    latent_dim = int(model.inputs[0].shape[-1])
    arrays = [sample_latent(n, latent_dim, seed)]
    if len(model.inputs) > 1:
        k = max(1, int(_num_classes(model)))
        arrays.append((np.arange(n) % k).astype(np.int32).reshape(-1, 1))
    return arrays


def _num_classes(model) -> int:
    for layer in model.layers:
        if type(layer).__name__ == "Embedding":
            return int(layer.input_dim)
    return 1


def collect_observations(predict: Callable[[np.ndarray], np.ndarray], env_name: str, episodes: int,
                         frame_stack: int = 1, seed: int = 0, epsilon: float = 0.1,
                         max_steps: int = 5_000) -> tuple[np.ndarray, list[float]]:
    """Observations visited by an epsilon-greedy run of ``predict`` (observations -> Q-values) over ``episodes``
    episodes, and each episode's return (with ``epsilon=0``: the greedy policy's returns)."""
    from edgepipe.models.dqn import make_env

    rng = np.random.default_rng(seed)
    seen, returns = [], []
    for episode in range(max(1, episodes)):
        env = make_env(env_name, frame_stack, seed=seed + episode)
        step = env.reset()
        total, steps = 0.0, 0
        while not step.is_last() and steps < max_steps:
            obs = np.asarray(step.observation, dtype=np.float32)
            seen.append(obs)
            q = predict(obs[None])
            action = int(rng.integers(q.shape[-1])) if rng.random() < epsilon else int(np.argmax(q[0]))
            step = env.step(np.asarray(action, dtype=env.action_spec().dtype))
            total += float(step.reward)
            steps += 1
        returns.append(total)
        env.close()
    return np.stack(seen).astype(np.float32), returns


def distill_qat(model, inputs: list[np.ndarray], epochs: int, learning_rate: float, batch_size: int,
                seed: int) -> tuple[Any, dict[str, Any]]:
    """QAT by distillation: the QAT copy of ``model`` fine-tuned to the float model's outputs on ``inputs``."""
    import tf_keras as keras

    from edgepipe.components.optimization.qat import quantize_aware

    feed = inputs if len(inputs) > 1 else inputs[0]
    target = model.predict(feed, batch_size=256, verbose=0)
    keras.utils.set_random_seed(seed)
    qat, report = quantize_aware(model, scheme="default")
    report["calibrated_ranges"] = calibrate_ranges(qat, feed)
    qat.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    history = qat.fit(feed, target, batch_size=batch_size, epochs=max(1, epochs), shuffle=True, verbose=0)
    report["loss"] = [float(v) for v in history.history["loss"]]
    return qat, report


def calibrate_ranges(qat, feed, ema_decay: float = 0.999) -> int:
    """Start every activation range of a fresh QAT model at the range of ``feed`` (one batch).

    tfmot's activation quantizers start at [-6, 6] and move by an EMA with decay 0.999 per training step, so a short
    fine-tune (a few hundred steps) leaves ranges near +-6: Q-values of 50 or pixels past 6 would clip. One
    training-mode forward pass moves each range by (1 - decay) * (batch range - initial); the batch range is
    recovered from that step and assigned, everything else the pass touched (BatchNorm statistics) is restored.
    Weight ranges (``kernel``/``bias``) are recomputed from the weights every step and left alone."""
    import re

    ranges = [v for v in qat.variables if re.search(r"_(min|max):\d+$", v.name) and not re.search(r"kernel|bias",
                                                                                                   v.name)]
    snapshot = [v.numpy() for v in qat.variables]
    before = [v.numpy() for v in ranges]
    qat(feed, training=True)
    after = [v.numpy() for v in ranges]
    qat(feed, training=True)  # an EMA range moves again (by decay x the first move); a set-to-batch one does not
    again = [v.numpy() for v in ranges]
    for variable, value in zip(qat.variables, snapshot):
        variable.assign(value)
    for variable, old, new, second in zip(ranges, before, after, again):
        moving = np.abs(second - new) > 0.5 * np.abs(new - old)
        variable.assign(np.where(moving, old + (new - old) / (1.0 - ema_decay), new))
    return len(ranges)


def _write_variants(tflite: TFLiteModels, nets: dict[str, Any], names: list[str], representative: Callable,
                    inference_type: str, allow_float_fallback: bool, params: int) -> dict[str, Any]:
    from edgepipe.components.optimization.pruning import measured_sparsity
    from edgepipe.components.optimization.tflite import convert, float_ops, gzip_size
    from edgepipe.tasks.variants import VARIANTS

    index = {}
    for name in names:
        variant = VARIANTS[name]
        net = nets[variant.source]
        content = convert(net, variant.mode, representative=representative if variant.mode == "int8" else None,
                          inference_type=inference_type, allow_float_fallback=allow_float_fallback)
        content = name_inputs(content, [t.name.split(":")[0] for t in nets["float"].inputs])
        path = tflite.write_variant(name, content)
        runner = ModelRunner(content)
        float_in = next((t for t in runner.inputs if np.issubdtype(t.dtype, np.floating) or t.scale),
                        runner.input)
        index[name] = {
            "file": path.name, "mode": variant.mode, "source": variant.source, "description": variant.description,
            "size_bytes": len(content), "gzip_bytes": gzip_size(content),
            "sha256": hashlib.sha256(content).hexdigest(), "params": params, "sparsity": measured_sparsity(net),
            "input_dtype": float_in.dtype.name, "output_dtype": runner.output.dtype.name,
            "float_ops": sorted({op for op, _ in float_ops(content)}) if variant.mode == "int8" else None}
    tflite.write_json("variants.json", index)
    return index


def name_inputs(content: bytes, names: list[str]) -> bytes:
    """Name each input tensor after the Keras input it comes from: float conversion calls the latent
    ``serving_default_noise:0``, full-integer conversion ``noise``; the bundle names one input for all its models."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    subgraph = model.subgraphs[0]
    for index in subgraph.inputs:
        tensor = subgraph.tensors[index]
        current = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        match = next((n for n in sorted(names, key=len, reverse=True) if n in current), None)
        if match is not None:
            tensor.name = match.encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _check(variants: list[str] | None) -> list[str]:
    from edgepipe.pipeline.errors import ConfigError

    names = list(variants or FAMILY_VARIANTS)
    unknown = [n for n in names if n not in FAMILY_VARIANTS]
    if unknown:
        raise ConfigError(f"GAN/DQN variants: {', '.join(unknown)} not available for this family "
                          f"(allowed: {', '.join(FAMILY_VARIANTS)}; pruning/clustering need a training loss)")
    return names if "float32" in names else ["float32", *names]


def _representative(arrays: list[np.ndarray]) -> Callable:
    def generate():
        for i in range(len(arrays[0])):
            yield [a[i:i + 1] for a in arrays]

    return generate


@component(version="1")
def convert_generator(model: Input[Model], tflite: Output[TFLiteModels], variants: list[str] | None = None,
                      representative_samples: int = 200, qat_epochs: int = 2, qat_samples: int = 2048,
                      qat_learning_rate: float = 1e-4, batch_size: int = 64, inference_type: str = "int8",
                      allow_float_fallback: bool = False, seed: int = 0) -> dict:
    """A GAN generator as ``float32`` / ``int8_ptq`` (calibrated on sampled latents + labels) / ``int8_qat``
    (QAT distilled from the float generator); ``quantization.json`` lists layers QAT left in float."""
    names = _check(variants)
    net = model.load_keras()
    nets = {"float": net}
    report = None
    if "int8_qat" in names:
        nets["qat"], report = distill_qat(net, latent_inputs(net, qat_samples, seed + 1), qat_epochs,
                                          qat_learning_rate, batch_size, seed)
        tflite.write_json("quantization.json", report)
    calibration = latent_inputs(net, representative_samples, seed + 2)
    index = _write_variants(tflite, nets, names, _representative(calibration), inference_type, allow_float_fallback,
                            int(net.count_params()))
    tflite.properties.update({"variants": names, "inference_type": inference_type, "family": "generator"})
    return {"variants": len(names), "float32_bytes": index["float32"]["size_bytes"],
            "not_quantized": len(report["not_quantized"]) if report else None}


@component(version="1")
def convert_policy(model: Input[Model], tflite: Output[TFLiteModels], variants: list[str] | None = None,
                   episodes: int = 10, epsilon: float = 0.2, representative_samples: int = 500,
                   qat_epochs: int = 5, qat_learning_rate: float = 1e-4, batch_size: int = 64,
                   inference_type: str = "int8", allow_float_fallback: bool = False, seed: int = 0) -> dict:
    """A DQN Q-network as ``float32`` / ``int8_ptq`` (calibrated on observations of ``episodes`` epsilon-greedy
    episodes of the trained policy) / ``int8_qat`` (QAT distilled from the float Q-values on those observations)."""
    names = _check(variants)
    net = model.load_keras()
    props = model.properties
    obs, _ = collect_observations(lambda x: net(x, training=False).numpy(), props["env_name"], episodes,
                                  int(props.get("frame_stack", 1)), seed=seed, epsilon=epsilon)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(obs), size=min(len(obs), representative_samples), replace=False)
    flat = obs.reshape(len(obs), -1)  # the observations holding each feature's extremes widen the input range
    pick = np.unique(np.concatenate([pick, flat.argmin(axis=0), flat.argmax(axis=0)]))
    nets = {"float": net}
    report = None
    if "int8_qat" in names:
        nets["qat"], report = distill_qat(net, [obs], qat_epochs, qat_learning_rate, batch_size, seed)
        tflite.write_json("quantization.json", report)
    index = _write_variants(tflite, nets, names, _representative([obs[pick]]), inference_type,
                            allow_float_fallback, int(net.count_params()))
    tflite.properties.update({"variants": names, "inference_type": inference_type, "family": "policy",
                              "observations": int(len(obs))})
    return {"variants": len(names), "float32_bytes": index["float32"]["size_bytes"], "observations": int(len(obs)),
            "representative_samples": int(len(pick)),
            "not_quantized": len(report["not_quantized"]) if report else None}


# The converter for each declared calibration source of a task without a training set (``edgepipe.tasks``).
CONVERTERS = {"latents": convert_generator, "observations": convert_policy}

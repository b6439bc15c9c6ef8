"""Int8 for models without a labelled training split to fine-tune on: GAN generators and DQN Q-networks.

* calibration (post-training int8) uses the inputs the exported model really sees -- latent vectors drawn with the
  bundle's documented sampler (+ every class label, cGAN) for a generator, observations from episodes of the trained
  greedy policy (epsilon-greedy, so off-policy states are covered too) for a Q-network (``calibration.py``);
* quantization-aware training is *distillation*: the QAT copy of the model is fine-tuned to reproduce the float
  model's own outputs (samples / Q-values, MSE) on those same inputs -- cheap, and it needs neither the
  discriminator's adversarial loop nor the replay buffer. Layers QAT cannot wrap are named in ``quantization.json``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edgepipe.runtime.litert import sample_latent


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

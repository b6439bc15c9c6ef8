"""Where int8 calibration inputs come from, by the source a task declares (``Task.calibration``).

Post-training int8 needs inputs that span what the deployed model will see; where they come from is the task's
business: the anomaly detector's normal training windows, a supervised family's training examples, a generator's
sampled latents (+ labels), a Q-network's visited observations. Each source also declares whether QAT can be
*distilled* from those inputs when no QAT model was trained on a loss (generators and Q-networks: ``distill.py``),
and whether input tensors are renamed after the Keras inputs (multi-input generators: one name for every file).
Those two are facts of the source, known without gathering anything: a conversion whose variants need no
calibration (``Variant.calibrated``: float32, float16, dynamic) asks them and gathers nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from edgepipe.models.card import ModelCard
from edgepipe.pipeline.errors import DataError


@dataclass
class Calibration:
    representative: Callable[[], Iterable[list[np.ndarray]]]  # the converter's representative_dataset
    count: int
    distill: list[np.ndarray] | None = None  # inputs an int8_qat model is distilled on, when none was trained
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """A calibration source: ``gather(examples, model, net, samples=, seed=, ...) -> Calibration`` (calling the
    source gathers), and what is known of it before gathering."""

    gather: Callable[..., Calibration]
    distills: bool = False  # an int8_qat can be distilled from its inputs when no QAT model was trained
    name_inputs: bool = False  # every variant's input tensors are renamed after the Keras inputs

    def __call__(self, *args: Any, **kwargs: Any) -> Calibration:
        return self.gather(*args, **kwargs)


SOURCES: dict[str, Source] = {}


def source(name: str, distills: bool = False, name_inputs: bool = False):
    def register(fn: Callable[..., Calibration]) -> Callable[..., Calibration]:
        SOURCES[name] = Source(fn, distills, name_inputs)
        return fn

    return register


def _batches(arrays: list[np.ndarray]) -> Callable[[], Iterable[list[np.ndarray]]]:
    def generate():
        for i in range(len(arrays[0])):
            yield [a[i:i + 1].astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a[i:i + 1]
                   for a in arrays]

    return generate


def with_extremes(x: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """``pick`` plus the examples holding the smallest and largest value, so the int8 input range covers the
    whole train range (evaluate.input_clip); sorted."""
    flat = x.reshape(len(x), -1)
    return np.unique(np.concatenate([pick, [int(flat.min(axis=1).argmin()), int(flat.max(axis=1).argmax())]]))


@source("examples")
def _examples(examples, model, net, samples: int, seed: int, **_) -> Calibration:
    from edgepipe.components.optimization.steps import train_arrays

    x = train_arrays(examples, model)[0]
    pick = np.random.default_rng(seed).choice(len(x), size=min(len(x), max(1, samples)), replace=False)
    chosen = x[with_extremes(x, pick)]
    return Calibration(_batches([chosen]), len(chosen))


@source("windows")
def _windows(examples, model, net, samples: int, seed: int, batch_size: int = 4096, **_) -> Calibration:
    """``samples`` normal train windows drawn with ``seed`` plus the extremes, streamed (a count, then one pass
    keeping only the drawn windows) with the same draw as indexing them all."""
    from edgepipe.components.training.inputs import check_train_on, count_windows, iter_windows

    # "normal" needs labels: windows without a label feature are all kept, as load_windows did
    card = ModelCard.of(model)
    only_normal = check_train_on(card.train_on) and "label" in examples.feature_spec
    n = count_windows(examples, "train", only_normal)
    if n == 0:
        raise DataError(f"train split of {examples.path} has no windows to calibrate on")
    pick = np.sort(np.random.default_rng(seed).choice(n, size=min(n, max(1, samples)), replace=False))
    chosen: dict[int, np.ndarray] = {}
    low, high = (np.inf, -1, None), (-np.inf, -1, None)  # (value, index, window) of the first extreme
    offset = 0
    for batch in iter_windows(examples, "train", only_normal=only_normal, batch_size=batch_size):
        x = batch["window"]
        flat = x.reshape(len(x), -1)
        i, j = int(flat.min(axis=1).argmin()), int(flat.max(axis=1).argmax())
        if flat[i].min() < low[0]:
            low = (flat[i].min(), offset + i, x[i].copy())
        if flat[j].max() > high[0]:
            high = (flat[j].max(), offset + j, x[j].copy())
        for k in pick[(pick >= offset) & (pick < offset + len(x))]:
            chosen[int(k)] = x[int(k) - offset].copy()
        offset += len(x)
    chosen.update({low[1]: low[2], high[1]: high[2]})
    windows = np.stack([chosen[k] for k in sorted(chosen)])
    return Calibration(_batches([windows]), len(windows),
                       properties={"window_size": card.window_size, "channels": card.channels})


@source("latents", distills=True, name_inputs=True)
def _latents(examples, model, net, samples: int, seed: int, qat_samples: int = 2048, **_) -> Calibration:
    from edgepipe.components.optimization.distill import latent_inputs

    arrays = latent_inputs(net, samples, seed + 2)
    return Calibration(_batches(arrays), len(arrays[0]), distill=latent_inputs(net, qat_samples, seed + 1))


@source("observations", distills=True, name_inputs=True)
def _observations(examples, model, net, samples: int, seed: int, episodes: int = 10, epsilon: float = 0.2,
                  **_) -> Calibration:
    from edgepipe.components.optimization.distill import collect_observations

    card = ModelCard.of(model)
    obs, _ = collect_observations(lambda x: net(x, training=False).numpy(), card.required("env_name"), episodes,
                                  int(card.frame_stack), seed=seed, epsilon=epsilon)
    pick = np.random.default_rng(seed).choice(len(obs), size=min(len(obs), samples), replace=False)
    flat = obs.reshape(len(obs), -1)  # the observations holding each feature's extremes widen the input range
    pick = np.unique(np.concatenate([pick, flat.argmin(axis=0), flat.argmax(axis=0)]))
    return Calibration(_batches([obs[pick]]), len(pick), distill=[obs], properties={"observations": int(len(obs))})

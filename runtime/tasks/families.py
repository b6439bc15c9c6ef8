"""Segmentation, generation and policy bundles: the model families whose answer is not one vector per input.

* segmentation: image(s) -> per-pixel class mask (argmax) + probabilities, preprocessed like classification;
* generation: latent vectors (+ class labels for a conditional GAN) -> samples in 0..1; or ``{"n", "seed"}`` to
  draw latents with the bundle's documented sampler, so a fixed seed gives the pipeline's own samples;
* policy: observations -> greedy action (argmax of the Q-values) + the Q-values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgepipe.runtime.errors import InputError
from edgepipe.runtime.litert import sample_latent
from edgepipe.runtime.tasks.base import Task, register
from edgepipe.runtime.tasks.vector import VectorTask


@dataclass
class SegmentationResult:
    model: str
    labels: list[str]
    probabilities: np.ndarray  # [n, H, W, classes]

    @property
    def masks(self) -> np.ndarray:
        return self.probabilities.argmax(axis=-1)

    def records(self) -> list[dict[str, Any]]:
        k = self.probabilities.shape[-1]
        return [{"mask": m.tolist(), "pixels": dict(zip(self.labels, np.bincount(m.ravel(), minlength=k).tolist()))}
                for m in self.masks]

    def to_dict(self) -> dict[str, Any]:
        return {"task": "segmentation", "model": self.model, "labels": self.labels, "predictions": self.records()}


@register
class SegmentationTask(VectorTask):
    name = "segmentation"

    def predict(self, raw: Any, kind: str | None = None) -> SegmentationResult:
        y = self.runner.run(self.batch(raw, kind)).astype(np.float64)
        labels = self.doc.get("labels") or [str(i) for i in range(y.shape[-1])]
        return SegmentationResult(model=self.runner.name, labels=list(labels), probabilities=y)


@dataclass
class GenerationResult:
    model: str
    latent: np.ndarray  # [n, latent_dim]
    labels: np.ndarray | None  # [n] class of each sample (conditional generators)
    samples: np.ndarray  # [n, H, W(, C)] in 0..1

    def records(self) -> list[dict[str, Any]]:
        return [{**({"label": int(self.labels[i])} if self.labels is not None else {}),
                 "sample": self.samples[i].tolist()} for i in range(len(self.samples))]

    def to_dict(self) -> dict[str, Any]:
        return {"task": "generation", "model": self.model, "predictions": self.records()}


@register
class GenerationTask(Task):
    name = "generation"
    input_kinds = ("latent",)

    def __init__(self, doc: dict[str, Any], model: dict[str, Any], runner):
        super().__init__(doc, model, runner)
        gen = doc["generation"]
        self.latent_dim, self.latent_input = int(gen["latent_dim"]), gen["latent_input"]
        self.label_input, self.num_classes = gen.get("label_input"), gen.get("num_classes")

    def predict(self, raw: Any, kind: str | None = None) -> GenerationResult:
        """``raw``: latents [n, latent_dim]; or ``{"latent": ..., "label": [...]}``; or ``{"n": 8, "seed": 0,
        "label": [...]}`` to sample latents. Conditional generators need one label per sample, or one for all."""
        if kind is not None:
            self.check_kind(kind)
        request = raw if isinstance(raw, dict) else {"latent": raw}
        unknown = set(request) - {"latent", "label", "n", "seed"}
        if unknown:
            raise InputError(f"generation: unknown key(s) {', '.join(sorted(unknown))} (latent, label, n, seed)")
        if request.get("latent") is not None:
            try:
                z = np.asarray(request["latent"], dtype=np.float64)
            except (TypeError, ValueError):
                raise InputError("latent: not a numeric array") from None
            z = z[None] if z.ndim == 1 else z
            if z.ndim != 2 or z.shape[1] != self.latent_dim or not len(z):
                raise InputError(f"latent: expected shape [n, {self.latent_dim}], got {list(z.shape)}")
            if not np.isfinite(z).all():
                raise InputError("latent: non-finite values")
            z = z.astype(np.float32)
        else:
            n, seed = request.get("n"), request.get("seed", 0)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1 or isinstance(seed, bool) \
                    or not isinstance(seed, int):
                raise InputError("generation: give 'latent' vectors, or 'n' (>= 1) and an integer 'seed'")
            z = sample_latent(n, self.latent_dim, seed)
        arrays = {self.latent_input: z}
        labels = None
        if self.label_input:
            if request.get("label") is None:
                raise InputError(f"generation: this conditional generator needs 'label' (one class per sample, "
                                 f"0..{self.num_classes - 1})")
            labels = self._labels(request["label"], len(z))
            arrays[self.label_input] = labels.reshape(-1, 1)
        elif request.get("label") is not None:
            raise InputError("label: this generator is not conditional")
        samples = self.runner.run_named(arrays) if len(self.runner.inputs) > 1 else self.runner.run(z)
        return GenerationResult(model=self.runner.name, latent=z, labels=labels, samples=samples)

    def _labels(self, label: Any, n: int) -> np.ndarray:
        """One class per sample: a list of ``n``, or one integer meaning that class for all ``n`` samples (what
        ``{"n": 8, "label": 3}`` asks for)."""
        top = self.num_classes - 1
        forms = f"label: give one integer in 0..{top} (used for all {n} samples) or a list of {n}, one per sample"
        try:
            labels = np.asarray(label)
        except ValueError:  # ragged nesting
            raise InputError(forms) from None
        if labels.ndim == 0:
            labels = np.full(n, labels)
        labels = labels.reshape(-1)
        if len(labels) != n:
            raise InputError(f"{forms}; got {len(labels)} labels")
        if not np.issubdtype(labels.dtype, np.number) or np.any(labels != np.round(labels)) \
                or labels.min() < 0 or labels.max() > top:
            raise InputError(forms)
        return labels.astype(np.int64)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "generation": self.doc["generation"], "labels": self.doc.get("labels")}


@dataclass
class PolicyResult:
    model: str
    q_values: np.ndarray  # [n, actions]

    @property
    def actions(self) -> np.ndarray:
        return self.q_values.argmax(axis=1)

    def records(self) -> list[dict[str, Any]]:
        return [{"action": int(a), "q_values": [float(v) for v in q]} for a, q in zip(self.actions, self.q_values)]

    def to_dict(self) -> dict[str, Any]:
        return {"task": "policy", "model": self.model, "predictions": self.records()}


@register
class PolicyTask(VectorTask):
    name = "policy"
    input_kinds = ("features",)

    def predict(self, raw: Any, kind: str | None = None) -> PolicyResult:
        """Observations [n, *observation_shape] (or one observation) -> greedy actions and Q-values."""
        q = self.runner.run(self.batch(raw, kind)).astype(np.float64)
        return PolicyResult(model=self.runner.name, q_values=q)

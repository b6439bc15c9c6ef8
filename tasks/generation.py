"""Generation: a GAN generator maps latent vectors (and, for a cGAN, a class label) to images.

Variants are judged by their own evaluation (pixel difference from the Keras generator on fixed latents, and the
judging classifier's verdict on their samples), calibrated on latents drawn with the sampler the bundle documents.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PositiveInt

from edgepipe.tasks.base import Task, register
from edgepipe.tasks.metrics import TaskMetric
from edgepipe.tasks.sections import ExamplesEvaluate

if TYPE_CHECKING:  # models.spec imports edgepipe.tasks: the card is only an annotation here
    from edgepipe.models.card import ModelCard


def _judge_family(value: str) -> str:
    """The family registry's classifiers of images and tables, looked up when a config is validated (not at import:
    the registry's families import this package)."""
    from edgepipe.models.registry import families

    allowed = tuple(n for n, f in families().items() if f.trainer == "supervised" and "classification" in f.tasks)
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(map(repr, allowed))} (classifier families)")
    return value


class JudgeSection(BaseModel):
    """gan template: a classifier trained on the same images judges the generated samples (class coverage, and a
    cGAN's agreement with the label asked for). Null in YAML turns it off."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    family: Annotated[str, AfterValidator(_judge_family)] = "cnn"
    hparams: dict[str, Any] = Field(default_factory=lambda: {"filters": [32, 64], "dense_units": 64})
    epochs: PositiveInt = 20  # 99% test accuracy on the 8x8 digits


class GenerationEvaluate(ExamplesEvaluate):
    """``evaluate`` of a generator: the judge of its samples, and how many samples are drawn."""

    classifier: JudgeSection | None = Field(default_factory=JudgeSection)  # null: no judge
    samples: PositiveInt = 2000         # generated samples the judge classifies (class coverage)
    samples_per_class: PositiveInt = 8  # one row of the sample grid per class (a cGAN), or this many x 8 samples


def _generation_fields(card: ModelCard, io: dict[str, Any]) -> dict[str, Any]:
    from edgepipe.runtime.litert import LATENT_SAMPLER

    names = card.labels
    inputs = io.get("inputs") or [io["input"]]
    # the latent is the float (or quantized int8) input; a label is a plain integer input (no quantization)
    latent = next(d for d in inputs if d["dtype"].startswith("float") or d.get("quantization"))
    label = next((d for d in inputs if d is not latent and not d["dtype"].startswith("float")
                  and not d.get("quantization")), None)
    k = int(card.classes or 0)
    out: dict[str, Any] = {"generation": {
        "latent_dim": int(latent["shape"][-1]), "latent_input": latent["name"],
        "label_input": label["name"] if label else None, "num_classes": k if label else None,
        "sampler": LATENT_SAMPLER, "output_range": [0.0, 1.0]}}
    if label and names and len(names) == k:
        out["labels"] = list(names)
    return out


def _latents(ctx) -> dict[str, Any]:
    """The shipped generator run on 16 latents from the documented sampler (``seed``), labels cycling over the
    classes for a cGAN: a device drawing the same latents must produce the same images."""
    import numpy as np

    from edgepipe.runtime.litert import ModelRunner, sample_latent

    fields = _generation_fields(ctx.card, ctx.io[ctx.chosen])["generation"]
    z = sample_latent(16, fields["latent_dim"], ctx.seed)
    arrays = {fields["latent_input"]: z}
    out = {"latent": z, "seed": np.array(ctx.seed)}
    if fields["label_input"]:
        labels = (np.arange(16) % max(1, fields["num_classes"])).astype(np.int32).reshape(-1, 1)
        arrays[fields["label_input"]] = labels
        out["label"] = labels.reshape(-1)
    out["output"] = ModelRunner(ctx.content[ctx.chosen], max_batch=1).run_named(arrays)
    return out


GENERATION = register(Task(
    name="generation", description="images from latent vectors (and a class label for a conditional GAN)",
    runtime="generation", metric=TaskMetric("sample_score", True), label="class", label_required=False, data="examples",
    calibration="latents", template="gan", evaluation="generation", configurable=False, bundle_fields=_generation_fields,
    preprocessing=lambda ctx: {"kind": "latent", "transform": "none"}, verification=_latents,
    evaluate=GenerationEvaluate))

"""The model card: what a trained ``Model`` artifact says about itself, as one typed record.

Why a dataclass and not ``model.properties.get(...)``: the training components write a dozen facts (family, task,
data spec, window size, environment ...) that optimization, conversion, evaluation, export and the tasks' bundle
code all read. Read as loose dict keys, a renamed key or a default that differs between readers (``frame_stack``
1 here, missing there) fails far from where it was written. :class:`ModelCard` names every key once, with its type
and the default every reader used.

The card is stored exactly as before: :meth:`ModelCard.to_properties` gives the same JSON keys and values the
writers put into ``Model.properties`` (explicit nulls included), so the metadata store, the UI, the report and
cached artifacts are unchanged, and :meth:`ModelCard.of` reads any artifact's properties, keeping keys it does not
know in ``extra`` (an older or newer writer's card still loads and is written back unchanged).

The pipeline kernel (``pipeline/artifacts.py``) knows nothing of models, so there is no ``Model.card``: readers call
``ModelCard.of(model)``. Importing this module does not import TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from edgepipe.models.spec import DataSpec
from edgepipe.pipeline.errors import ConfigError, DataError

# What an optimization step records on the model it fine-tuned; a further step replaces them (steps.py _inherit).
OPTIMIZATION_KEYS = ("pruning", "quantization", "clustering")


@dataclass(frozen=True)
class ModelCard:
    """The facts a trained model carries. ``None`` (or the documented default) means "not recorded".

    Written by ``train_autoencoder`` (anomaly: window_size, channels, train_on, score, input_feature),
    ``train_model`` (any supervised family: data_spec, input/label feature, encoder), ``train_gan`` (generation:
    latent_dim, conditional, class names, exported, generator_ema_decay) and ``train_dqn`` (control: env_name,
    frame_stack, exported, policy); the optimization steps add ``pruning``/``quantization``/``clustering``.
    """

    family: str | None = None  # the model family it was built from (registry name: "cnn", "autoencoder", "dqn" ...)
    task: str | None = None  # the task name (edgepipe.tasks); None on cards older than tasks
    trainer: str | None = None  # which trainer fitted it: the family's trainer, "gan" or "rl" (None: train_autoencoder)
    data_spec: DataSpec | None = None  # shape and labels of one example (train_model, train_gan)
    hparams: dict[str, Any] | None = None  # the hyperparameters it was built and trained with
    input_feature: str | None = None  # the Examples feature fed to the model ("window" for the series autoencoder)
    label_feature: str | None = None  # the Examples feature it was trained to predict (train_model)
    # series anomaly autoencoder (train_autoencoder)
    window_size: int | None = None  # time steps per window
    channels: int | None = None  # values per time step (the number; the names are the windows' property)
    train_on: str = "normal"  # which train windows it learnt: "normal" (labelled normal only) or "all"
    score: str | None = None  # how a window's anomaly score is computed ("reconstruction_mse")
    encoder: str | None = None  # file in the artifact holding the bottleneck encoder (an autoencoder family)
    # generation (train_gan)
    latent_dim: int | None = None  # length of the generator's latent vector
    conditional: bool = False  # a cGAN: the generator also takes a class label
    num_classes: int | None = None  # classes a cGAN is conditioned on (also in data_spec)
    class_names: tuple[str, ...] | None = None  # their names (also in data_spec)
    generator_ema_decay: float | None = None  # the weight averaging of the exported generator (0: none)
    exported: str | None = None  # which network the artifact's model file is ("generator", "q_network")
    # control (train_dqn)
    env_name: str | None = None  # the Gym environment it acts in
    frame_stack: int = 1  # consecutive observations stacked into one input
    policy: str | None = None  # how an action is chosen from the output (a sentence)
    # optimization steps (components/optimization/steps.py)
    pruning: dict[str, Any] | None = None  # target/measured sparsity, 2:4 structure
    quantization: dict[str, Any] | None = None  # QAT scheme and the layers left float
    clustering: dict[str, Any] | None = None  # clusters per kernel
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they were
    # The property keys as written, in order: to_properties writes these (nulls included) so the JSON is unchanged.
    recorded: tuple[str, ...] = field(default=(), repr=False, compare=False)

    # ---- construction ------------------------------------------------------------------------------------------
    @classmethod
    def record(cls, **values: Any) -> "ModelCard":
        """The card a trainer writes: every keyword is recorded (``None`` too), unknown ones go to ``extra``."""
        known = _field_names()
        extra = {k: v for k, v in values.items() if k not in known}
        typed = {}
        for key in (k for k in values if k in known):
            try:
                typed[key] = _typed(key, values[key])
            except (TypeError, ValueError, KeyError, ConfigError):  # a spec this version cannot read: kept as is
                extra[key] = values[key]
        return cls(**typed, extra=extra, recorded=tuple(values))

    @classmethod
    def of(cls, model: Any) -> "ModelCard":
        """The card of a ``Model`` artifact (or of a properties mapping); unknown keys are kept in ``extra``."""
        props: Mapping[str, Any] = model if isinstance(model, Mapping) else model.properties
        return cls.record(**dict(props))

    def to_properties(self) -> dict[str, Any]:
        """The JSON ``Model.properties`` the writers stored: recorded keys in order, then any field set since."""
        defaults = {f.name: f.default for f in fields(self) if f.name not in ("extra", "recorded")}
        keys = list(self.recorded)
        keys += [k for k, d in defaults.items() if k not in keys and getattr(self, k) != d]
        keys += [k for k in self.extra if k not in keys]
        return {k: (self.extra[k] if k in self.extra else _json(k, getattr(self, k))) for k in keys}

    def fine_tuned(self, **steps: Any) -> "ModelCard":
        """The card of a model fine-tuned from this one: every fact carried, earlier optimization records
        (``pruning``, ``quantization``, ``clustering``) dropped and ``steps`` (this step's record) added."""
        kept = [k for k in self.recorded if k not in OPTIMIZATION_KEYS]
        cleared = {k: None for k in OPTIMIZATION_KEYS}
        extra = {k: v for k, v in self.extra.items() if k not in OPTIMIZATION_KEYS}
        card = replace(self, **cleared, extra=extra, recorded=tuple(kept))
        added = ModelCard.record(**steps)
        typed = {k: getattr(added, k) for k in steps if k in _field_names()}
        return replace(card, **typed, extra={**card.extra, **added.extra},
                       recorded=tuple(kept) + tuple(k for k in steps if k not in kept))

    # ---- derived facts ---------------------------------------------------------------------------------------
    @property
    def supervised(self) -> bool:
        """Trained on Examples with labels (a data spec whose task is not reconstruction)."""
        return self.data_spec is not None and self.data_spec.task != "reconstruction"

    @property
    def labels(self) -> list[str] | None:
        """Class names: the data spec's, else the card's own (a GAN records both)."""
        names = (self.data_spec.class_names if self.data_spec else None) or self.class_names
        return list(names) if names else None

    @property
    def classes(self) -> int | None:
        """Number of classes: the card's own, else the data spec's."""
        return self.num_classes or (self.data_spec.num_classes if self.data_spec else None) or None

    def required(self, name: str) -> Any:
        """A fact a reader cannot do without (``env_name``, ``latent_dim``): DataError naming it when missing."""
        value = getattr(self, name) if name in _field_names() else self.extra.get(name)
        if value is None and name in self.extra:
            raise DataError(f"model card of a '{self.family or 'unknown'}' model: '{name}' cannot be read "
                            f"({self.extra[name]!r})")
        if value is None:
            raise DataError(f"model card of a '{self.family or 'unknown'}' model has no '{name}' "
                            f"(recorded: {', '.join(self.recorded) or 'nothing'})")
        return value


def _field_names() -> frozenset[str]:
    return _FIELDS


def _typed(key: str, value: Any) -> Any:
    """A stored JSON value as the field's type: the data spec as :class:`DataSpec`, class names as a tuple."""
    if value is None:
        return None
    if key == "data_spec":
        return value if isinstance(value, DataSpec) else DataSpec.from_json(value)
    if key == "class_names":
        return tuple(value)
    return value


def _json(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key == "data_spec":
        return value.to_json()
    if key == "class_names":
        return list(value)
    return value


_FIELDS = frozenset(f.name for f in fields(ModelCard)) - {"extra", "recorded"}

"""Model families by name, so configs say ``family: cnn`` and components never import a builder directly.

A builder is ``fn(spec: DataSpec, **hparams) -> compiled tf_keras model`` (the Conv1D autoencoder also accepts
``window_size``/``channels`` instead of a spec). Builders register themselves with :func:`register`; :func:`build`
imports the built-in families lazily (the registry must be importable without TensorFlow, e.g. by config validation
or ``edgepipe models``) and turns an unknown family, an unknown hyperparameter or a hyperparameter of the wrong type
into a one-line :class:`ConfigError` naming what is allowed, before anything is built.
"""
from __future__ import annotations

import importlib
import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable

from edgepipe.pipeline.errors import ConfigError

_BUILTIN_MODULES = ("edgepipe.models.autoencoder", "edgepipe.models.mlp", "edgepipe.models.cnn",
                    "edgepipe.models.sequence", "edgepipe.models.unet", "edgepipe.models.mobilenet",
                    "edgepipe.models.gan", "edgepipe.models.dqn")
_REGISTRY: dict[str, "Family"] = {}
TRAINERS = ("supervised", "autoencoder", "gan", "rl")
# How a family's deployable variants are made (the catalogue: ``edgepipe.tasks.variants``): "full" = the variant
# stage (prune / QAT / PQAT / cluster, fine-tuned on the training loss), "distilled" = PTQ on the inputs the model
# really sees plus QAT distilled from the float model (no training loss to fine-tune on: generators, Q-networks),
# None = float32 only, ``float_reason`` saying why.
VARIANT_POLICIES = ("full", "distilled", None)
# Where each trainer's batch size lives in the config: (dotted key, default when the key is absent). A distilled
# int8_qat fine-tunes with the batch the model was trained with; the RL trainer's is an agent hyperparameter
# (``train_dqn``'s ``batch_size``), every other trainer's the training section's.
TRAINER_BATCH_SIZE: dict[str, tuple[str, int | None]] = {
    "supervised": ("training.batch_size", None), "autoencoder": ("training.batch_size", None),
    "gan": ("training.batch_size", None), "rl": ("model.hparams.batch_size", 64)}


@dataclass(frozen=True)
class Family:
    name: str
    fn: Callable[..., Any]
    description: str
    trainer: str  # which training component fits it: supervised | autoencoder | gan | rl
    tasks: tuple[str, ...]
    variants: str | None = "full"
    float_reason: str | None = None


def register(name: str, description: str, trainer: str = "supervised", tasks: tuple[str, ...] = ("classification",),
             variants: str | None = "full",
             float_reason: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make ``fn(spec, **hparams) -> compiled keras.Model`` buildable as ``name``; ``tasks`` are
    registered task names (``edgepipe.tasks``), ``variants`` one of VARIANT_POLICIES."""
    if trainer not in TRAINERS:
        raise ValueError(f"trainer must be one of {TRAINERS}, got {trainer!r}")
    if variants not in VARIANT_POLICIES:
        raise ValueError(f"variants must be one of {VARIANT_POLICIES}, got {variants!r}")
    if variants is None and not float_reason:
        raise ValueError(f"model family '{name}' ships float32 only: say why (float_reason)")

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"model family '{name}' is already registered by {_REGISTRY[name].fn.__qualname__}")
        _REGISTRY[name] = Family(name, fn, description, trainer, tuple(tasks), variants, float_reason)
        return fn

    return wrap


def families() -> dict[str, Family]:
    """Every registered family by name (built-ins loaded), in name order."""
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def available() -> dict[str, str]:
    """``{name: description}`` of every registered family."""
    _load_builtins()
    return {name: fam.description for name, fam in sorted(_REGISTRY.items())}


def family(name: str) -> Family:
    _load_builtins()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model family '{name}' (allowed: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def hyperparameters(name: str) -> dict[str, Any]:
    """``{hyperparameter: default}`` of a family (``spec`` excluded)."""
    fn = family(name).fn
    return {p: (None if v.default is inspect.Parameter.empty else v.default)
            for p, v in inspect.signature(fn).parameters.items() if p != "spec" and v.kind is not v.VAR_KEYWORD}


def validate_hparams(name: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """Check names and types of ``hparams`` against the builder's signature; returns them coerced (``"3"`` stays an
    error for a list, ``3`` becomes ``3.0`` for a float). One-line ConfigError on the first problem."""
    from pydantic import ConfigDict, ValidationError, create_model

    fn = family(name).fn
    params = inspect.signature(fn).parameters
    if not isinstance(hparams, dict):
        raise ConfigError(f"model family '{name}': hyperparameters must be a mapping, got {type(hparams).__name__}")
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(hparams) - set(params) - {"spec"})
        if unknown:
            allowed = [p for p in params if p != "spec"]
            raise ConfigError(f"model family '{name}' has no hyperparameter {', '.join(map(repr, unknown))} "
                              f"(allowed: {', '.join(allowed)})")
    hints = typing.get_type_hints(fn)
    fields = {p: (hints.get(p, Any), ...) for p in hparams if p in params and p != "spec"}
    model = create_model(f"{name}_hparams", __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
                         **fields)
    try:
        validated = model.model_validate({k: v for k, v in hparams.items() if k in fields})
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"model family '{name}': hyperparameter '{key}': {first['msg']} "
                          f"(got {first.get('input')!r})") from None
    out = dict(hparams)
    out.update({k: getattr(validated, k) for k in fields})
    return out


def build(name: str, spec: Any = None, **hparams: Any):
    """Build the family ``name`` for data ``spec`` with ``hparams``; bad names, types or specs raise ConfigError.

    Call it inside ``strategy.scope()`` to place the variables for distributed training.
    """
    fam = family(name)
    hparams = validate_hparams(name, hparams)
    spec_param = inspect.signature(fam.fn).parameters.get("spec")
    if spec_param is not None:
        from edgepipe.models.spec import coerce_spec

        if spec is not None or spec_param.default is inspect.Parameter.empty:
            hparams["spec"] = coerce_spec(spec, name)
    elif spec is not None:
        raise ConfigError(f"model family '{name}' takes no data spec")
    return fam.fn(**hparams)

"""Model families by name, so configs say ``family: autoencoder`` and components never import a builder directly.

Builders register themselves with :func:`register`; :func:`build` imports the built-in families lazily (the
registry must be importable without TensorFlow, e.g. by config validation) and turns an unknown family or an
unknown hyperparameter into a one-line :class:`ConfigError` naming what is allowed.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from edgepipe.pipeline.errors import ConfigError

_BUILTIN_MODULES = ("edgepipe.models.autoencoder",)
_REGISTRY: dict[str, tuple[Callable[..., Any], str]] = {}


def register(name: str, description: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make ``fn(**hparams) -> compiled keras.Model`` buildable as ``name``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name][0] is not fn:
            raise ValueError(f"model family '{name}' is already registered by {_REGISTRY[name][0].__qualname__}")
        _REGISTRY[name] = (fn, description)
        return fn

    return wrap


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def available() -> dict[str, str]:
    """``{name: description}`` of every registered family."""
    _load_builtins()
    return {name: desc for name, (_, desc) in sorted(_REGISTRY.items())}


def build(name: str, **hparams: Any):
    """Build the family ``name`` with ``hparams``; unknown names or hyperparameters raise ConfigError."""
    _load_builtins()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model family '{name}' (allowed: {', '.join(sorted(_REGISTRY))})")
    fn = _REGISTRY[name][0]
    params = inspect.signature(fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(hparams) - set(params))
        if unknown:
            raise ConfigError(f"model family '{name}' has no hyperparameter {', '.join(map(repr, unknown))} "
                              f"(allowed: {', '.join(params)})")
    return fn(**hparams)

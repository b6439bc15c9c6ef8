"""Typed getters over a parsed JSON document whose every failure is one :class:`BundleError` line naming the key.

Why its own module: the checks of ``bundle.json`` are spread over the modules that own each section
(:mod:`edgepipe.runtime.schema` for the common keys and the task families, ``likelihood.check_section``,
``skew.check_transform``); each receives a :class:`Checker`, and this leaf module (it imports only the errors) gives
them all the same wording and the same float32 bounds without importing the schema module that calls them.

Numbers are held to float32: a value finite in JSON (1e308) is inf in the runtime's float32 arithmetic, and then
NaN scores and invalid JSON output, so it is refused here, naming the key.
"""
from __future__ import annotations

import math
from typing import Any

from edgepipe.runtime.errors import BundleError

FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max
FLOAT32_TINY = 1.1754943508222875e-38  # numpy.finfo(numpy.float32).tiny: the smallest normal value


def float32_problem(value: float, shown: str) -> str | None:
    """Why an input number cannot reach the float32 model, or None: the one wording for every input reader (CSV
    cells, JSON numbers, table cells). ``shown`` is the value as the user wrote it. A value finite here but beyond
    float32 becomes inf in the model: NaN scores, and invalid JSON out."""
    if not math.isfinite(value):
        return f"non-finite value {shown}"
    if abs(value) > FLOAT32_MAX:
        return f"{shown} is out of float32 range"
    return None


class Checker:
    """Typed getters over a JSON document; every failure raises BundleError naming ``source`` and the dotted key."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str) -> None:
        raise BundleError(f"{self.source}: key '{key}' {message}")

    def get(self, obj: dict, key: str, path: str, optional: bool = False) -> Any:
        full = f"{path}.{key}" if path else key
        if key not in obj:
            if optional:
                return None
            raise BundleError(f"{self.source}: missing key '{full}'")
        return obj[key]

    def obj(self, value: Any, key: str) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"must be an object, got {kind_of(value)}")
        return value

    def string(self, value: Any, key: str, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str) or not value:
            self.fail(key, f"must be a non-empty string, got {kind_of(value)}")
        if choices is not None and value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}, got '{value}'")
        return value

    def integer(self, value: Any, key: str, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be an integer, got {kind_of(value)}")
        if minimum is not None and value < minimum:
            self.fail(key, f"must be >= {minimum}, got {value}")
        return value

    def number(self, value: Any, key: str, positive: bool = False) -> float:
        """A number the runtime's float32 arithmetic can hold: 1e308 is finite in JSON but inf in float32 (and
        then NaN scores and invalid JSON output), so it is refused here, naming the key."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"must be a finite number, got {kind_of(value)}")
        if abs(value) > FLOAT32_MAX:
            self.fail(key, f"must fit in float32 (|x| <= {FLOAT32_MAX:.4g}), got {value:g}")
        if positive and value <= 0:
            self.fail(key, f"must be > 0, got {value}")
        if positive and value < FLOAT32_TINY:
            self.fail(key, f"must be >= {FLOAT32_TINY:.4g} (smaller rounds to 0 in float32), got {value:g}")
        return float(value)

    def numbers(self, value: Any, key: str, length: int, positive: bool = False) -> list[float]:
        if not isinstance(value, list):
            self.fail(key, f"must be a list of {length} numbers, got {kind_of(value)}")
        if len(value) != length:
            self.fail(key, f"has {len(value)} values, expected {length} (one per channel)")
        return [self.number(v, f"{key}[{i}]", positive) for i, v in enumerate(value)]

    def strings(self, value: Any, key: str, length: int | None = None) -> list[str]:
        if not isinstance(value, list):
            self.fail(key, f"must be a list of strings, got {kind_of(value)}")
        if length is not None and len(value) != length:
            self.fail(key, f"has {len(value)} names, expected {length}")
        names = [self.string(v, f"{key}[{i}]") for i, v in enumerate(value)]
        if len(set(names)) != len(names):
            self.fail(key, f"has duplicate names: {names}")
        return names


def kind_of(value: Any) -> str:
    """How a wrong value is named in an error: its type, and its first 40 characters for scalars."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return type(value).__name__
    return f"{type(value).__name__} {value!r:.40}"

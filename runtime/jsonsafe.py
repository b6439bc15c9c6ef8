"""JSON in and out of the runtime: parsing that cannot blow the stack, output that is always valid JSON.

Why one module: ``bundle.json``, ``predict``'s JSON input files and HTTP bodies are all parsed, and JSON Lines and
HTTP responses are all written, by code that must never end in a traceback or a 500. Python's parser raises
RecursionError on deeply nested input (and anything that later walks a parsed document recursively, such as
``copy.deepcopy``, fails far earlier), and ``json.dumps(allow_nan=False)`` raises on inf/NaN, which a model fed
extreme (still finite) values can produce. Here nesting becomes a ValueError the callers turn into their one-line
error, and inf/NaN become ``null``.
"""
from __future__ import annotations

import json
import math
from typing import Any


class NestingError(ValueError):
    """A JSON document nested more deeply than the reader allows."""


def loads(text: str | bytes, max_depth: int | None = None) -> Any:
    """``json.loads`` whose only failures are ValueError (NestingError when nested beyond ``max_depth`` levels, or
    beyond what the parser itself can handle)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise NestingError("JSON nested too deeply to parse") from None
    if max_depth is not None:
        check_depth(value, max_depth)
    return value


def check_depth(value: Any, max_depth: int) -> None:
    """Raise NestingError if lists/objects nest more than ``max_depth`` levels (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > max_depth:
            raise NestingError(f"JSON nested more than {max_depth} levels deep")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON (no ``Infinity``/``NaN`` tokens): non-finite floats are written as ``null``; NumPy scalars and
    arrays as plain numbers and lists."""
    try:
        return json.dumps(value, allow_nan=False, default=_plain, **kwargs)
    except ValueError:  # an inf/NaN somewhere: the slow path replaces them
        return json.dumps(_finite(value), allow_nan=False, default=_plain, **kwargs)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value

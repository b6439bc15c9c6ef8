"""JSON request bodies (the server's, and the ``predict`` JSON files'): parsed by hand so that an error names the
offending element in the bundle's own terms (``series[3][1]: not a number``, ``rows[2].fare: ...``).

``parse_body`` takes one body -> ``(kind, values)``; a malformed request (not an object, unknown or missing keys)
is a BodyError (HTTP 400), unusable data an InputError (422, exit 3). Model input sent to a table bundle that
transforms raw rows is RowsOnly (400, exit 2): the numbers would skip the transform.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from edgepipe.runtime.checker import float32_problem
from edgepipe.runtime.errors import InputError
from edgepipe.runtime.rejects import numeric_columns, table_value_problem

class BodyError(InputError):
    """The request itself is malformed (not an object, unknown or missing keys): HTTP 400 rather than 422."""


class RowsOnly(BodyError):
    """Model input (``features``) sent to a table bundle that transforms raw rows itself: the numbers would skip
    the transform and give confident wrong answers, so it is refused as a wrong request (HTTP 400, exit 2)."""

    exit_code = 2


def refuse_model_input(task) -> None:
    """Raise RowsOnly for a table bundle with a transform (``task.table``): its clients send raw rows."""
    table = getattr(task, "table", None)
    if table is not None:
        raise RowsOnly("this table bundle applies its own transform to raw rows: send them as "
                       "{\"rows\": [{column: value, ...}]} (or a CSV of its columns), not model-input features "
                       f"(columns: {', '.join(table.columns)})")


GENERATION_KEYS = ("latent", "label", "n", "seed")


def parse_body(body: Any, task) -> tuple[str | None, Any]:
    """``{"series": [[...], ...]}`` or ``{"windows": [[[...]]]}`` (anomaly), ``{"features": [...]}`` (vector
    tasks; ``{"observations": [...]}`` for a policy) -> (kind, float64 array), with every value checked to be a JSON
    number (no strings, booleans, null). A generator takes ``{"latent": [[...]], "label": [...]}`` or
    ``{"n": 8, "seed": 0, "label": [...]}`` -> ``(None, request dict)``, which the task itself checks."""
    keys_allowed = _body_keys(task)
    if not isinstance(body, dict):
        raise BodyError(f"body must be a JSON object with one of: {', '.join(keys_allowed)}")
    if "latent" in task.input_kinds:
        return None, _generation_request(body)
    if "rows" in task.input_kinds and "rows" in body:
        return "rows", _rows(body, keys_allowed, numeric_columns(getattr(task, "table", None)))
    if "features" in body or "observations" in body:
        refuse_model_input(task)
    keys = [k for k in keys_allowed if k in body]
    unknown = sorted(set(body) - set(keys_allowed))
    if unknown:
        raise BodyError(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(keys_allowed)})")
    if len(keys) != 1:
        raise BodyError(f"body must have exactly one of: {', '.join(keys_allowed)}")
    key = keys[0]
    array = np.asarray(_numbers(body[key], key), dtype=np.float64)
    return ("features" if key == "observations" else key), array


def _rows(body: dict, keys_allowed: list[str], numeric: set[str],
          where=lambda i: f"rows[{i}]") -> dict[str, list[Any]]:
    """``{"rows": [{column: number | string | null, ...}, ...]}`` (a transformed table's raw rows) -> columns;
    a column absent from every row stays absent (the skew report names it); a value beyond float32 in a ``numeric``
    column is refused, as in a CSV. ``where(i)`` names row i in an error (a JSON Lines file: ``file:line``)."""
    if len(body) != 1:
        raise BodyError(f"body must have exactly one of: {', '.join(keys_allowed)}")
    rows = body["rows"]
    if not isinstance(rows, list) or not rows:
        raise InputError("rows: must be a non-empty list of objects")
    names: dict[str, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(f"{where(i)}: not a row object ({{column: value, ...}})")
        for name, value in row.items():
            if value is not None and (isinstance(value, (bool, dict, list)) or not isinstance(value, (int, float, str))):
                raise InputError(f"{where(i)}.{name}: must be a number, a string or null, got {_excerpt(value)}")
            if name in numeric and (problem := table_value_problem(value)):
                raise InputError(f"{where(i)}.{name}: {problem}")
            names.setdefault(name)
    return {name: [row.get(name) for row in rows] for name in names}


def _body_keys(task) -> list[str]:
    if "latent" in task.input_kinds:
        return list(GENERATION_KEYS)
    keys = [k for k in ("series", "windows", "features", "rows") if k in task.input_kinds]
    return [*keys, "observations"] if getattr(task, "name", None) == "policy" else keys


def _generation_request(body: dict) -> dict[str, Any]:
    """A generator's request: exactly one of ``latent`` (numbers [n, latent_dim]) or ``n`` (+ optional ``seed``),
    optional ``label`` (integers, one per sample); value ranges and shapes are the task's to check."""
    unknown = sorted(set(body) - set(GENERATION_KEYS))
    if unknown:
        raise BodyError(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(GENERATION_KEYS)})")
    if ("latent" in body) == ("n" in body):
        raise BodyError("body must have exactly one of: latent, n (with an optional seed)")
    if "latent" in body and "seed" in body:
        raise BodyError("seed goes with n, not with latent")
    request: dict[str, Any] = {}
    if "latent" in body:
        request["latent"] = _numbers(body["latent"], "latent")
    else:
        for key in ("n", "seed"):
            if key in body and (isinstance(body[key], bool) or not isinstance(body[key], int)):
                raise InputError(f"{key}: must be an integer, got {_excerpt(body[key])}")
        request.update({key: body[key] for key in ("n", "seed") if key in body})
    if "label" in body:
        label = body["label"]
        request["label"] = _numbers(label, "label") if isinstance(label, list) else _numbers([label], "label")[0]
    return request


def _numbers(value: Any, where: str, depth: int = 0) -> Any:
    """Validate a nested list of JSON numbers (rectangular); return it unchanged."""
    if isinstance(value, list):
        if not value:
            raise InputError(f"{where}: empty list")
        if depth > 4:
            raise InputError(f"{where}: nested too deeply")
        first = _shape(value[0])
        for i, item in enumerate(value):
            _numbers(item, f"{where}[{i}]", depth + 1)
            if _shape(item) != first:
                raise InputError(f"{where}[{i}]: has {_describe(item)}, {where}[0] has {_describe(value[0])}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: not a number: {_excerpt(value)}")
    problem = float32_problem(value, json.dumps(value))
    if problem:
        raise InputError(f"{where}: {problem}")
    return value


def _excerpt(value: Any) -> str:
    """At most 40 characters of a JSON value for an error line (a deeply nested one is named by its type)."""
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    return json.dumps(value)[:40]


def _shape(value: Any) -> Sequence[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def _describe(value: Any) -> str:
    shape = _shape(value)
    return f"{shape[0]} values" if len(shape) == 1 else ("a single number" if not shape else f"shape {shape}")

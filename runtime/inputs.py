"""Raw inputs for ``predict``/``serve``: CSV, NPZ, JSON and image files, and JSON request bodies.

Every reader returns named parts ``[(name, kind, array)]`` (a CSV with a series column yields one part per
series, in order of first appearance) and reports unusable input as one InputError line naming the file, line
or JSON path, so the CLI exits 3 and the server answers 4xx with the same text. NPZ files are read with
``allow_pickle=False``: a bundle's input is data, never code.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgepipe.runtime import jsonsafe
from edgepipe.runtime.checker import float32_problem
from edgepipe.runtime.errors import InputError, UsageError
from edgepipe.runtime.jsonsafe import NestingError
from edgepipe.runtime.rejects import SeriesOrder, numeric_columns, table_value_problem
from edgepipe.runtime.tasks.base import usable_kinds

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
Part = tuple[str, str, Any]  # (name, kind, values)


class BodyError(InputError):
    """The request itself is malformed (not an object, unknown or missing keys): HTTP 400 rather than 422."""


def read_input(path: str | Path, task, series_column: str | None = None,
               timestamp_column: str | None = None) -> list[tuple[str, str, Any, list[str] | None]]:
    """``[(name, kind, values, timestamps or None)]`` from a file, by suffix."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: " + ("is a directory, not an input file" if path.is_dir() else
                                        "not a regular file" if path.exists() else "no such input file"))
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return [(path.stem, "image", read_image(path, task), None)]
    if suffix == ".npz":
        return [(*part, None) for part in read_npz(path, task)]
    if suffix in (".json", ".jsonl"):
        body = _load_json(path)
        try:
            return [(path.stem, *parse_body(body, task), None)]
        except InputError as err:  # a body's error names a key (it is the server's too): name the file here
            raise type(err)(f"{path}: {err}") from None
    if suffix in (".csv", ".txt", ".gz"):
        return read_csv(path, task, series_column, timestamp_column)
    raise UsageError(f"{path}: unknown input type '{suffix}' (use .csv, .npz, .json or an image)")


def _load_json(path: Path) -> Any:
    try:
        return jsonsafe.loads(path.read_text(encoding="utf-8"))
    except NestingError as err:
        raise InputError(f"{path}: {err}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None


def channel_names(task) -> list[str] | None:
    return getattr(task, "channel_names", None)


# ---- CSV ---------------------------------------------------------------------------------------------------------
def read_csv(path: Path, task, series_column: str | None, timestamp_column: str | None):
    """Columns named like the bundle's channels (any order, extra columns ignored); rows in time order. A table
    bundle (``preprocessing.features``) reads one example per row from the columns named like its features."""
    if getattr(task, "feature_names", None):
        return read_table(path, task)
    if "series" not in task.input_kinds:
        raise UsageError(f"{path}: task '{task.name}' does not take CSV time series")
    names = channel_names(task)
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    if not header:
        raise InputError(f"{path}: empty file (no header)")
    if names is None:
        raise UsageError(f"{path}: the bundle does not name its channels; pass an NPZ or JSON array instead")
    missing = [n for n in names if n not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (bundle channels: {', '.join(names)}; "
                         f"header: {', '.join(header)})")
    for flag, column in (("--series-column", series_column), ("--timestamp-column", timestamp_column)):
        if column and column not in header:
            raise InputError(f"{path}: {flag} '{column}' is not a column (header: {', '.join(header)})")
    series_column = series_column or ("series" if "series" in header else None)
    timestamp_column = timestamp_column or ("timestamp" if "timestamp" in header else None)
    cols = [header.index(n) for n in names]
    sid = header.index(series_column) if series_column else None
    tid = header.index(timestamp_column) if timestamp_column else None
    groups: dict[str, tuple[list[list[float]], list[str]]] = {}
    order = SeriesOrder(path, timestamp_column, series_column)  # scores are causal: rows in time order
    for row in reader:
        if not row:
            continue
        values = _parse_row(row, header, names, cols, path, reader.line_num)
        key = row[sid].strip() if sid is not None else path.stem
        stamp = row[tid].strip() if tid is not None else None
        order.add(key, stamp, reader.line_num)
        rows, stamps = groups.setdefault(key, ([], []))
        rows.append(values)
        stamps.append(stamp or "")
    if not groups:
        raise InputError(f"{path}: no data rows after the header")
    order.warn()
    return [(key, "series", np.asarray(rows, dtype=np.float64), stamps if tid is not None else None)
            for key, (rows, stamps) in groups.items()]


def _parse_row(row: list[str], header: list[str], names: list[str], cols: list[int], path: Path,
               line: int) -> list[float]:
    """The named columns of one CSV row as finite floats; anything else is one error naming file, line, column."""
    if len(row) != len(header):
        raise InputError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
    values = []
    for name, i in zip(names, cols):
        cell = row[i].strip()
        try:
            value = float(cell)
        except ValueError:
            what = "missing value" if not cell else f"not a number: {cell[:40]!r}"
            raise InputError(f"{path}:{line}: column '{name}': {what}") from None
        problem = float32_problem(value, repr(cell))
        if problem:
            raise InputError(f"{path}:{line}: column '{name}': {problem}")
        values.append(value)
    return values


def read_table(path: Path, task):
    """``[(stem, "features", [n, F])]``: one example per data row, columns in the bundle's feature order. A
    transformed table (``task.table``) reads its raw columns as text, ``[(stem, "rows", {column: [cells]})]``:
    blanks, strings and absent columns are the transform's and the skew report's business (runtime/skew.py)."""
    names = list(task.feature_names)
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    header = [h.strip() for h in next(reader, [])]
    if not header:
        raise InputError(f"{path}: empty file (no header)")
    if getattr(task, "table", None) is not None:
        return [(path.stem, "rows", _raw_columns(reader, header, names, path, numeric_columns(task.table)), None)]
    missing = [n for n in names if n not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (bundle features: {', '.join(names)}; "
                         f"header: {', '.join(header)})")
    cols = [header.index(n) for n in names]
    rows = []
    for row in reader:
        if not row:
            continue
        rows.append(_parse_row(row, header, names, cols, path, reader.line_num))
    if not rows:
        raise InputError(f"{path}: no data rows after the header")
    return [(path.stem, "features", np.asarray(rows, dtype=np.float64), None)]


def _raw_columns(reader, header: list[str], names: list[str], path: Path,
                 numeric: set[str]) -> dict[str, list[str]]:
    """The bundle's columns present in the header, as cell text per row (a row of the wrong width, or a value
    beyond float32 in a ``numeric`` column, is an error)."""
    cols = {n: header.index(n) for n in names if n in header}
    out: dict[str, list[str]] = {n: [] for n in cols}
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise InputError(f"{path}:{reader.line_num}: {len(row)} fields, the header has {len(header)}")
        for name, i in cols.items():
            if name in numeric and (problem := table_value_problem(row[i])):
                raise InputError(f"{path}:{reader.line_num}: column '{name}': {problem}")
            out[name].append(row[i])
    if not cols:
        raise InputError(f"{path}: none of the bundle's columns ({', '.join(names)}) in the header "
                         f"({', '.join(header)})")
    if not next(iter(out.values())):
        raise InputError(f"{path}: no data rows after the header")
    return out


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix.lower() == ".gz":
        import gzip

        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err})") from None


# ---- NPZ / images ------------------------------------------------------------------------------------------------
def read_npz(path: Path, task) -> list[Part]:
    """``series`` or ``windows`` or ``features`` (or ``x``, as in the pipeline's own .npz data) array; for a
    generator ``latent`` (or ``x``) and, for a conditional one, ``label``; otherwise every array is one part named
    by its key."""
    with path.open("rb") as handle:
        head = handle.read(6)
    if head[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):  # else np.load tries pickle: a misleading 'pickled data'
        what = "a single .npy array: save it with np.savez" if head == b"\x93NUMPY" else "no zip header"
        raise InputError(f"{path}: not a NumPy .npz archive ({what})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except ValueError as err:  # object arrays need pickle: refused
        raise InputError(f"{path}: unreadable NPZ ({str(err).splitlines()[0]})") from None
    except OSError as err:
        raise InputError(f"{path}: not an NPZ archive ({err})") from None
    if not arrays:
        raise InputError(f"{path}: the archive holds no arrays")
    if "latent" in task.input_kinds:
        key = next((k for k in ("latent", "x", "z") if k in arrays), None)
        if key is None:
            raise InputError(f"{path}: no 'latent' array (arrays: {', '.join(arrays)})")
        request = {"latent": _numeric(arrays[key], f"{path}:{key}")}
        if "label" in arrays:
            request["label"] = _numeric(arrays["label"], f"{path}:label")
        return [(path.stem, "latent", request)]
    if "x" in arrays and "features" in task.input_kinds:
        return [(path.stem, "features", _numeric(arrays["x"], f"{path}:x"))]
    for kind in ("windows", "series", "features"):
        if kind in arrays:
            _check_kind(task, kind, path)
            return [(path.stem, kind, _numeric(arrays[kind], f"{path}:{kind}"))]
    kind = "series" if "series" in task.input_kinds else "features"
    return [(key, kind, _numeric(value, f"{path}:{key}")) for key, value in arrays.items()]


def _numeric(array: np.ndarray, where: str) -> np.ndarray:
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputError(f"{where}: not a numeric array (dtype {array.dtype})")
    return array.astype(np.float64)


def _check_kind(task, kind: str, where: Any) -> None:
    if kind not in task.input_kinds:
        raise UsageError(f"{where}: task '{task.name}' takes {' or '.join(usable_kinds(task))} input, not {kind}")


def _forms(task, kinds: list[str]) -> str:
    """The files to give for ``kinds`` (a CSV only where read_csv takes one for this bundle)."""
    table_csv = getattr(task, "feature_names", None) and getattr(task, "table", None) is None
    forms = {"series": "a CSV, NPZ or JSON series", "windows": "NPZ or JSON windows",
             "features": ("a CSV of its columns, or " if table_csv else "") + "NPZ or JSON features",
             "rows": "a CSV of its columns or JSON rows", "latent": "NPZ or JSON latent vectors"}
    return ", or ".join(forms.get(k, k) for k in kinds)


def read_image(path: Path, task) -> np.ndarray:
    """An image as float64 [H, W, C] (0-255), resized to the model's input; only for image-model bundles."""
    if "image" not in task.input_kinds or not getattr(task, "takes_images", False):
        kinds = [k for k in usable_kinds(task) if k != "image"]
        raise UsageError(f"{path}: this bundle's task '{task.name}' takes {' or '.join(kinds)} input, not images "
                         f"(give {_forms(task, kinds)})")
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("reading images needs Pillow: pip install pillow") from None
    height, width, channels = task.feature_shape
    try:
        with Image.open(path) as image:
            image = image.convert({1: "L", 3: "RGB", 4: "RGBA"}.get(channels, "RGB"))
            image = image.resize((width, height), Image.BILINEAR)
            array = np.asarray(image, dtype=np.float64)
    except OSError as err:
        raise InputError(f"{path}: unreadable image ({err})") from None
    return array[..., None] if array.ndim == 2 else array


# ---- JSON bodies -------------------------------------------------------------------------------------------------
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
    keys = [k for k in keys_allowed if k in body]
    unknown = sorted(set(body) - set(keys_allowed))
    if unknown:
        raise BodyError(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(keys_allowed)})")
    if len(keys) != 1:
        raise BodyError(f"body must have exactly one of: {', '.join(keys_allowed)}")
    key = keys[0]
    array = np.asarray(_numbers(body[key], key), dtype=np.float64)
    return ("features" if key == "observations" else key), array


def _rows(body: dict, keys_allowed: list[str], numeric: set[str]) -> dict[str, list[Any]]:
    """``{"rows": [{column: number | string | null, ...}, ...]}`` (a transformed table's raw rows) -> columns;
    a column absent from every row stays absent (the skew report names it); a value beyond float32 in a ``numeric``
    column is refused, as in a CSV."""
    if len(body) != 1:
        raise BodyError(f"body must have exactly one of: {', '.join(keys_allowed)}")
    rows = body["rows"]
    if not isinstance(rows, list) or not rows:
        raise InputError("rows: must be a non-empty list of objects")
    names: dict[str, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(f"rows[{i}]: not an object")
        for name, value in row.items():
            if value is not None and (isinstance(value, (bool, dict, list)) or not isinstance(value, (int, float, str))):
                raise InputError(f"rows[{i}].{name}: must be a number, a string or null, got {_excerpt(value)}")
            if name in numeric and (problem := table_value_problem(value)):
                raise InputError(f"rows[{i}].{name}: {problem}")
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

"""Raw inputs for ``predict``/``serve``: CSV, NPZ, JSON, JSON Lines and image files, and JSON request bodies.

Every reader returns named parts ``[(name, kind, array)]`` (a CSV with a series column yields one part per
series, in order of first appearance) and reports unusable input as one InputError line naming the file, line
or JSON path, so the CLI exits 3 and the server answers 4xx with the same text. NPZ files are read with
``allow_pickle=False``: a bundle's input is data, never code. A ``.json`` file is one document (a request body);
a ``.jsonl`` file is JSON Lines, as ``predict`` writes them: one row object per line (a table bundle's raw rows)
or one request body per line, each body its own input named ``stem:line``.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from edgepipe.runtime import jsonsafe
from edgepipe.runtime.checker import float32_problem
from edgepipe.runtime.errors import InputError, UsageError
from edgepipe.runtime.jsonsafe import NestingError
from edgepipe.runtime.bodies import GENERATION_KEYS, _body_keys, _rows, parse_body
from edgepipe.runtime.rejects import SeriesOrder, numeric_columns, table_value_problem
from edgepipe.runtime.skew import Rows
from edgepipe.runtime.tasks.base import usable_kinds

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
Part = tuple[str, str, Any]  # (name, kind, values)


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
    if suffix == ".jsonl":
        return read_json_lines(path, task)
    if suffix == ".json":
        body = _load_json(path)
        try:
            return [(path.stem, *parse_body(body, task), None)]
        except InputError as err:  # a body's error names a key (it is the server's too): name the file here
            raise type(err)(f"{path}: {err}") from None
    if suffix in (".csv", ".txt", ".gz"):
        return read_csv(path, task, series_column, timestamp_column)
    raise UsageError(f"{path}: unknown input type '{suffix}' (use .csv, .npz, .json, .jsonl or an image)")


def _load_json(path: Path) -> Any:
    try:
        return jsonsafe.loads(path.read_text(encoding="utf-8"))
    except NestingError as err:
        raise InputError(f"{path}: {err}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None


def read_json_lines(path: Path, task) -> list[tuple[str, str, Any, None]]:
    """JSON Lines: every non-blank line one JSON object -- all of them raw rows of a table bundle (one input, each
    row's line kept for the skew report) or all of them request bodies (one input per line, ``stem:line``)."""
    objects: list[tuple[int, Any]] = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = jsonsafe.loads(line)
        except NestingError as err:
            raise InputError(f"{path}:{number}: {err}") from None
        except ValueError as err:  # the decoder's "line 1 column 5" would contradict the file's line
            what = f"{err.msg} at column {err.colno}" if hasattr(err, "colno") else str(err)
            raise InputError(f"{path}:{number}: not valid JSON ({what})") from None
        if not isinstance(value, dict):
            raise InputError(f"{path}:{number}: not a JSON object (one row or one request body per line)")
        objects.append((number, value))
    if not objects:
        raise InputError(f"{path}: no JSON lines")
    keys = set(_body_keys(task)) | set(GENERATION_KEYS if "latent" in task.input_kinds else ())
    bodies = [(n, v) for n, v in objects if v and set(v) <= keys]
    if "rows" in task.input_kinds and len(bodies) < len(objects):
        if bodies:
            raise InputError(f"{path}:{bodies[0][0]}: a request body among row objects (one kind per file)")
        rows = [v for _, v in objects]
        columns = _rows({"rows": rows}, ["rows"], numeric_columns(task.table),
                        lambda i: f"{path}:{objects[i][0]}")
        return [(path.stem, "rows", Rows(columns, [n for n, _ in objects]), None)]
    parts = []
    for number, body in objects:
        try:
            parts.append((f"{path.stem}:{number}", *parse_body(body, task), None))
        except InputError as err:
            raise type(err)(f"{path}:{number}: {err}") from None
    return parts


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
    reader, header = _csv_header(path)
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


def _csv_header(path: Path):
    """``(reader after the header, header)``; an empty file or a column named twice is refused, as ingest refuses
    it (components/data/ingest.py read_header): which of the two would be used is a guess."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    header = [h.strip() for h in next(reader, [])]
    if not header:
        raise InputError(f"{path}: empty file (no header)")
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise InputError(f"{path}:1: duplicate column name(s) in the header: {', '.join(map(repr, twice))}")
    return reader, header


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
    reader, header = _csv_header(path)
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


def _raw_columns(reader, header: list[str], names: list[str], path: Path, numeric: set[str]) -> Rows:
    """The bundle's columns present in the header, as cell text per row, with each row's file line (a row of the
    wrong width, or a value beyond float32 in a ``numeric`` column, is an error)."""
    cols = {n: header.index(n) for n in names if n in header}
    out: dict[str, list[str]] = {n: [] for n in cols}
    lines: list[int] = []
    for row in reader:
        if not row:
            continue
        lines.append(reader.line_num)
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
    return Rows(out, lines)


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

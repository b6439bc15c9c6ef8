"""Column files for intermediate data between the Beam jobs of one component (any Beam filesystem).

Why not pickles or TFRecords: a worker often needs only some rows of a staged block (the rows of one time bucket)
and only some columns (the timestamps, to find those rows), so a block is stored as raw C-ordered columns behind a
small JSON header; :func:`read_columns` seeks straight to a column's row slice. Files are written with
``beam.files.atomic_write`` (hidden name, then rename), so a retried bundle overwrites instead of duplicating.

Layout: 8-byte little-endian header length, UTF-8 JSON ``{"rows": n, "columns": [[name, dtype, inner shape,
offset], ...]}``, then each column's bytes (row ``i`` of a column at ``offset + i * row_bytes``).
"""
from __future__ import annotations

import json

import numpy as np

from edgepipe.components.data.beam.files import atomic_write, open_input


def write_columns(uri: str, columns: dict[str, np.ndarray]) -> int:
    """Write equally long arrays as one column file; returns the row count."""
    arrays = {name: np.ascontiguousarray(array) for name, array in columns.items()}
    rows = {len(a) for a in arrays.values()}
    if len(rows) > 1:
        raise ValueError(f"columns of different lengths: { {k: len(a) for k, a in arrays.items()} }")
    n = rows.pop() if rows else 0
    layout, offset = [], 0
    for name, array in arrays.items():
        layout.append([name, array.dtype.str, list(array.shape[1:]), offset])
        offset += array.nbytes
    header = json.dumps({"rows": n, "columns": layout}).encode()
    atomic_write(uri, [len(header).to_bytes(8, "little"), header, *(a.tobytes() for a in arrays.values())])
    return n


def read_columns(uri: str, names: list[str] | None = None, rows: tuple[int, int] | None = None
                 ) -> dict[str, np.ndarray]:
    """Columns ``names`` (default: all) of a column file, rows ``[lo, hi)`` (default: all); read-only arrays."""
    with open_input(uri) as handle:
        size = int.from_bytes(handle.read(8), "little")
        meta = json.loads(handle.read(size))
        base = 8 + size
        n = meta["rows"]
        lo, hi = (0, n) if rows is None else (max(0, rows[0]), min(n, rows[1]))
        out = {}
        for name, dtype, inner, offset in meta["columns"]:
            if names is not None and name not in names:
                continue
            dtype = np.dtype(dtype)
            row_bytes = dtype.itemsize * int(np.prod(inner, dtype=np.int64))
            count = max(hi - lo, 0)
            handle.seek(base + offset + lo * row_bytes)
            raw = handle.read(count * row_bytes)
            out[name] = np.frombuffer(raw, dtype).reshape(count, *inner)
        return out

"""What the pipeline's ingest rejects, refused by the runtime too: a CSV series out of time order, and a table
value beyond float32.

Why here: the runtime must not import the pipeline (its image has no TensorFlow, Beam or pandas), so this
re-implements the small part of ingest's checks that ``predict``/``serve`` need, with ingest's reasons, each an
InputError naming file:line (or the JSON row) and column. Both checks run while the input is read (one pass).

Time order (:class:`SeriesOrder`): each series' rows together, timestamps parsable and strictly increasing. Why
refuse rather than sort: a bundle's scores, likelihoods and alerts are causal -- each window is judged against
the windows before it -- so rows out of time order, a repeated timestamp, or a series that continues after another
one give wrong alerts with exit 0. Ingest rejects the same rows (``components/data/csv_values.py``:
"missing value", "unparsable timestamp"; ``series_stages.py``: "duplicate timestamp ... (first at line N)").
Timestamps are read as ingest reads them: ISO-8601 text as ``datetime.fromisoformat`` or NumPy reads it (a
'YYYY-...' date of at least 10 characters), naive times as UTC, compared in whole seconds as ingest stores them.

Table values (:func:`table_value_problem`): see there.
"""
from __future__ import annotations

import json
import math
import warnings
from array import array
from bisect import bisect_left
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgepipe.runtime.checker import FLOAT32_MAX
from edgepipe.runtime.errors import InputError
from edgepipe.runtime.skew import MISSING


def epoch_seconds(text: str) -> int | None:
    """Whole epoch seconds of an ISO-8601 timestamp (naive = UTC), or None when ingest would not parse it."""
    if len(text) < 10 or not text[:4].isdigit():  # NumPy also reads 'now', 'today' and bare years: ingest refuses
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return _numpy_seconds(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return math.floor(stamp.timestamp())


def _numpy_seconds(text: str) -> int | None:
    """The forms only NumPy's parser reads (ingest accepts those too)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NumPy warns when it converts an explicit UTC offset
            value = np.datetime64(text, "s")
    except (ValueError, OverflowError):
        return None
    return None if np.isnat(value) else int(value.astype(np.int64))


class SeriesOrder:
    """Feed it every data row (``add``); it raises on the first row that breaks the order of its series."""

    def __init__(self, path: Path, timestamp_column: str | None, series_column: str | None):
        self.path, self.timestamp_column, self.series_column = path, timestamp_column, series_column
        self.current: str | None = None
        self.last_line: dict[str, int] = {}  # series -> the line of its latest row
        # per series, while its rows are read: the seconds and lines so far (increasing), the last timestamp's text
        self.seconds: dict[str, array] = {}
        self.lines: dict[str, array] = {}
        self.last_text: dict[str, str] = {}

    def add(self, key: str, stamp: str | None, line: int) -> None:
        """Check one row of series ``key`` (``stamp``: its timestamp cell, None without a timestamp column)."""
        if key != self.current:
            if key in self.last_line:
                raise InputError(f"{self.path}:{line}: series '{key}' reappears after series '{self.current}' "
                                 f"(its rows so far end at line {self.last_line[key]}): the rows of each series "
                                 "must be together, in time order")
            self.current = key
        self.last_line[key] = line
        if stamp is None:
            return
        self._stamp(key, stamp, line)

    def _stamp(self, key: str, stamp: str, line: int) -> None:
        where = f"{self.path}:{line}"
        seconds = epoch_seconds(stamp)
        if seconds is None:
            what = "missing value" if not stamp else "unparsable timestamp"
            raise InputError(f"{where}: {what} in column '{self.timestamp_column}'"
                             + (f": {stamp[:40]!r}" if stamp else ""))
        past, lines = self.seconds.setdefault(key, array("q")), self.lines.setdefault(key, array("q"))
        if past and seconds <= past[-1]:
            series = f" in series '{key}'" if self.series_column else ""
            i = bisect_left(past, seconds)
            if past[i] == seconds:
                raise InputError(f"{where}: duplicate timestamp {stamp[:40]!r}{series} (first at line {lines[i]})")
            raise InputError(f"{where}: timestamp {stamp[:40]!r}{series} is earlier than "
                             f"{self.last_text[key][:40]!r} at line {lines[-1]}: rows must be in time order")
        past.append(seconds)
        lines.append(line)
        self.last_text[key] = stamp


# ---- table values ------------------------------------------------------------------------------------------------
def numeric_columns(table) -> set[str]:
    """The numeric columns of a transformed table (``runtime/skew.py``'s TableTransform; none without one)."""
    return {name for name, rule in table.rules.items() if rule.get("kind") == "numeric"} if table else set()


def table_value_problem(cell: Any) -> str | None:
    """Why a cell of a transformed table's numeric column cannot be used, or None.

    Only a number the model cannot hold is refused: beyond float32 (1e39, inf) it becomes inf in the float32 input,
    which ingest rejects as well ("out of float32 range", "non-finite value") -- imputing it would hide bad data as
    a blank. Blanks, the missing tokens and NaN (CSV text or a JSON number alike) stay missing and text stays text:
    the transform imputes them and the skew report counts them (runtime/skew.py)."""
    if cell is None or isinstance(cell, bool):
        return None
    text = cell.strip() if isinstance(cell, str) else None
    if text is not None and text in MISSING:
        return None
    try:
        value = float(text if text is not None else cell)
    except ValueError:
        return None
    except OverflowError:  # a JSON integer beyond any float
        return f"an integer of {len(str(abs(cell)))} digits is out of float32 range"
    shown = repr(text[:40]) if text is not None else json.dumps(cell)[:40]
    if math.isinf(value):
        return f"non-finite value {shown}"
    if abs(value) > FLOAT32_MAX:  # NaN compares False: it stays missing
        return f"{shown} is out of float32 range"
    return None

"""What the pipeline's ingest rejects, refused by the runtime too: a CSV series out of time order, and a table
value beyond float32.

Why here: the runtime must not import the pipeline (its image has no TensorFlow, Beam or pandas), so this
re-implements the small part of ingest's checks that ``predict``/``serve`` need, with ingest's reasons, each an
InputError naming file:line (or the JSON row) and column. Both checks run while the input is read (one pass).

Time order (:class:`SeriesOrder`): within each series, timestamps parsable and never going back. Why refuse rather
than sort: a bundle's scores, likelihoods and alerts are causal -- each window is judged against the windows before
it -- so rows out of time order give wrong alerts with exit 0. Ingest rejects the same rows
(``components/data/csv_values.py``: "missing value", "unparsable timestamp"). Two cases are kept, not refused:
* a timestamp equal to an earlier one of its series (ingest drops it: "duplicate timestamp ... (first at line N)")
  is scored in file order, the order a device receives samples in, with one warning (:class:`InputWarning`) naming
  the first such line and the count. 8 of NAB's 58 published series repeat a timestamp (a clock change, e.g.
  ec2_network_in_5abac7.csv:2120): refusing them would refuse real sensor files that train without trouble;
* the rows of several series interleaved (a long-format log, every series in time order): each series is read in
  its own order.
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

from edgepipe.runtime.checker import float32_problem
from edgepipe.runtime.errors import InputError, InputWarning
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
    """Feed it every data row (``add``); it raises on the first row that breaks the time order of its series and
    keeps count of repeated timestamps (:meth:`warning`)."""

    def __init__(self, path: Path, timestamp_column: str | None, series_column: str | None):
        self.path, self.timestamp_column, self.series_column = path, timestamp_column, series_column
        # per series, while its rows are read: the seconds and lines so far (increasing), the last timestamp's text
        self.seconds: dict[str, array] = {}
        self.lines: dict[str, array] = {}
        self.last_text: dict[str, str] = {}
        self.rows = self.repeats = 0
        self.first_repeat: str | None = None

    def add(self, key: str, stamp: str | None, line: int) -> None:
        """Check one row of series ``key`` (``stamp``: its timestamp cell, None without a timestamp column)."""
        self.rows += 1
        if stamp is None:
            return
        where = f"{self.path}:{line}"
        seconds = epoch_seconds(stamp)
        if seconds is None:
            what = "missing value" if not stamp else "unparsable timestamp"
            raise InputError(f"{where}: {what} in column '{self.timestamp_column}'"
                             + (f": {stamp[:40]!r}" if stamp else ""))
        past, lines = self.seconds.setdefault(key, array("q")), self.lines.setdefault(key, array("q"))
        series = f" in series '{key}'" if self.series_column else ""
        if past and seconds <= past[-1]:
            i = bisect_left(past, seconds)
            if past[i] != seconds:
                raise InputError(f"{where}: timestamp {stamp[:40]!r}{series} is earlier than "
                                 f"{self.last_text[key][:40]!r} at line {lines[-1]}: rows must be in time order")
            self.repeats += 1
            if self.first_repeat is None:
                self.first_repeat = f"{where}: timestamp {stamp[:40]!r}{series} repeats line {lines[i]}"
            return
        past.append(seconds)
        lines.append(line)
        self.last_text[key] = stamp

    def warning(self) -> str | None:
        """One line about the repeated timestamps, or None."""
        if not self.repeats:
            return None
        more = f" (and {self.repeats - 1} more row(s) repeat an earlier timestamp)" if self.repeats > 1 else ""
        many = self.series_column is None and self.repeats * 10 > self.rows  # a clock change repeats a few
        hint = "; several series in one file? name their column with --series-column" if many else ""
        return f"{self.first_repeat}{more}: scored in file order; the pipeline's ingest drops such rows{hint}"

    def warn(self) -> None:
        if (message := self.warning()) is not None:
            warnings.warn(message, InputWarning, stacklevel=3)


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
    if math.isnan(value):  # it stays missing
        return None
    return float32_problem(value, repr(text[:40]) if text is not None else json.dumps(cell)[:40])

"""Row-level CSV parsing for ingest: one file -> NumPy blocks of valid rows per series, plus reject records.

Why blocks: converting 8192 rows of strings with one ``astype`` per column is far cheaper than per-row ``float()``;
only a block that holds a bad value falls back to a per-cell loop to say which cell and why. Every row that cannot
be used becomes ``{"file", "line", "reason"}`` (``line``: 1-based physical line from ``csv.reader.line_num``, so
quoted multi-line fields still point at the right place) and the first problem from the left is the reason given.
"""
from __future__ import annotations

import csv
import gzip
import io
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from edgepipe.components.data.beam_io import count

REJECTS = "rejects"
BLOCK_ROWS = 8192  # rows parsed together with NumPy


@dataclass(frozen=True)
class Layout:
    """Which CSV columns mean what; shared by every file of one ingest."""

    timestamp_column: str
    series_column: str | None
    feature_columns: tuple[str, ...]
    label_column: str | None


def open_text(path: str) -> io.TextIOWrapper:
    """A CSV as text through Beam's filesystems, so workers can read ``gs://`` inputs too; ``.gz`` is inflated.

    Undecodable bytes become U+FFFD and then fail number/timestamp parsing: a bad row, not a crash.
    """
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    if path.endswith(".gz"):
        raw = gzip.GzipFile(fileobj=raw, mode="rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def series_id(path: str) -> str:
    """Series id of a one-series-per-file CSV: the file name without ``.csv``/``.gz`` (NAB keys match it)."""
    name = Path(path).name
    return Path(name[:-3] if name.endswith(".gz") else name).stem


def epoch(text: str) -> int:
    """One ISO-8601 timestamp -> epoch seconds; naive times are taken as UTC."""
    stamp = datetime.fromisoformat(str(text).strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return int(stamp.timestamp())


# ---- vectorized parsing ---------------------------------------------------------------------------------------------
def parse_floats(column: np.ndarray, name: str, reason: np.ndarray) -> np.ndarray:
    """Strings -> float64; rows that are empty, not numbers or not finite get a reason (first one wins)."""
    try:
        values = column.astype(np.float64)
        bad_parse = np.zeros(len(column), dtype=bool)
    except (ValueError, OverflowError):
        values = np.full(len(column), np.nan)
        bad_parse = np.zeros(len(column), dtype=bool)
        for i, text in enumerate(column):  # rare path: only blocks holding a bad value
            try:
                values[i] = float(text)
            except ValueError:
                bad_parse[i] = True
                _set(reason, i, f"missing value in column '{name}'" if not text.strip()
                     else f"not a number in column '{name}': {text[:40]!r}")
    for i in np.flatnonzero(~np.isfinite(values) & ~bad_parse):
        _set(reason, i, f"non-finite value in column '{name}': {column[i][:40]!r}")
    return values


def parse_timestamps(column: np.ndarray, name: str, reason: np.ndarray) -> np.ndarray:
    """ISO-8601 / 'YYYY-mm-dd HH:MM:SS' strings -> int64 epoch seconds (UTC if no offset)."""
    text = np.char.strip(column)
    # NumPy also accepts 'now', 'today' and bare years; require a 'YYYY-mm-dd' prefix to refuse those.
    shaped = np.char.isdigit(text.astype("U4")) & (np.char.str_len(text) >= 10)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NumPy warns when converting explicit UTC offsets
            stamps = text.astype("datetime64[s]")
        good = ~np.isnat(stamps) & shaped
        seconds = stamps.astype(np.int64)
    except (ValueError, OverflowError):
        seconds, good = np.zeros(len(text), np.int64), np.zeros(len(text), bool)
        for i, item in enumerate(text):
            try:
                seconds[i], good[i] = epoch(item), bool(shaped[i])
            except (ValueError, OverflowError):
                pass
    for i in np.flatnonzero(~good):
        _set(reason, i, f"missing value in column '{name}'" if not text[i]
             else f"unparsable timestamp in column '{name}': {column[i][:40]!r}")
    return seconds


def _set(reason: np.ndarray, i: int, message: str) -> None:
    if reason[i] is None:
        reason[i] = message


# ---- Beam DoFns -----------------------------------------------------------------------------------------------------
class ParseCsv(beam.DoFn):
    """One CSV file -> per-series blocks of parsed rows (main) and reject records (tagged ``rejects``)."""

    def __init__(self, layout: Layout):
        self.layout = layout

    def process(self, path: str):
        rows_read = 0
        with open_text(path) as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader)]
            rows, lines = [], []
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as err:
                    rows_read += 1
                    yield reject(path, reader.line_num, f"malformed CSV: {err}")
                    continue
                if not row:
                    continue  # blank line: not a row
                rows_read += 1
                if len(row) != len(header):
                    what = "missing field" if len(row) < len(header) else "too many fields"
                    yield reject(path, reader.line_num, f"{what}: expected {len(header)} fields, got {len(row)}")
                    continue
                rows.append(row)
                lines.append(reader.line_num)
                if len(rows) >= BLOCK_ROWS:
                    yield from self._block(path, header, rows, lines)
                    rows, lines = [], []
            if rows:
                yield from self._block(path, header, rows, lines)
        count("rows_read", rows_read)

    def _block(self, path: str, header: list[str], rows: list[list[str]], lines: list[int]):
        lay = self.layout
        table = np.array(rows, dtype=str)
        lines = np.asarray(lines, dtype=np.int64)
        reason = np.full(len(rows), None, dtype=object)
        index = {name: i for i, name in enumerate(header)}
        features = np.zeros((len(rows), len(lay.feature_columns)), np.float64)
        labels = np.zeros(len(rows), np.int64)
        stamps = None
        series = np.full(len(rows), series_id(path), dtype=object)
        used = [lay.timestamp_column, *lay.feature_columns, *(c for c in (lay.series_column, lay.label_column) if c)]
        for column in sorted(used, key=index.__getitem__):  # left to right: the first problem is reported
            cells = table[:, index[column]]
            if column == lay.timestamp_column:
                stamps = parse_timestamps(cells, column, reason)
            elif column == lay.series_column:
                series = np.char.strip(cells).astype(object)
                for i in np.flatnonzero(series == ""):
                    _set(reason, i, f"missing value in column '{column}'")
            elif column == lay.label_column:
                labels = (parse_floats(cells, column, reason) != 0).astype(np.int64)
            else:
                features[:, lay.feature_columns.index(column)] = parse_floats(cells, column, reason)
        ok = np.equal(reason, None)
        for i in np.flatnonzero(~ok):
            yield reject(path, int(lines[i]), reason[i])
        good = np.flatnonzero(ok)
        ids, inverse = np.unique(series[good], return_inverse=True)
        groups = np.split(good[np.argsort(inverse, kind="stable")], np.cumsum(np.bincount(inverse))[:-1])
        for sid, keep in zip(ids.tolist(), groups):  # one sort instead of a mask per series
            yield sid, {"file": path, "line": lines[keep], "timestamp": stamps[keep],
                        "values": features[keep], "label": labels[keep]}


def reject(path: str, line: int, reason: str) -> beam.pvalue.TaggedOutput:
    """A reject record on the ``rejects`` output, counted."""
    count("rows_rejected")
    return beam.pvalue.TaggedOutput(REJECTS, {"file": path, "line": int(line), "reason": reason})

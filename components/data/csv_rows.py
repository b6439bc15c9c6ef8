"""Row-level CSV parsing for ingest: byte ranges of files -> NumPy blocks of valid rows, plus reject records.

Why byte ranges: a file larger than ``split_bytes`` (64 MB) is cut at line boundaries into ranges that different
workers parse; line numbers are counted per range (local) and made global by the launcher once it knows how many
lines every range holds (``lines/<file>@<offset>`` report values), so no worker reads another's range.

Why blocks and two paths: the fast path hands a block of up to 65,536 lines to NumPy's C ``loadtxt`` (no quotes,
every row the header's width); anything it refuses, or any block with a value that turns out missing, not finite
or not a timestamp, is parsed again by the exact path (``csv.reader`` + one ``astype`` per column, a per-cell loop
only in blocks holding a bad value) which says which cell and why. Every row that cannot be used becomes
``{"file", "line", "reason"}`` (``line``: 1-based physical line, header = 1; quoted multi-line fields counted by
``csv.reader.line_num``) and the first problem from the left is the reason given. Bytes that are not UTF-8 are
decoded with ``surrogateescape`` so such a row is rejected by name ("invalid UTF-8"), never silently altered.
How one cell becomes a value, and the reason a bad one gives, is :mod:`csv_values`; this module cuts files into
ranges and blocks and chooses the path.
"""
from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from edgepipe.components.data.beam.job import count, data, reject as reject_record, value
from edgepipe.components.data.csv_values import (FLOAT32_MAX, has_surrogates, parse_floats, parse_timestamps,
                                                 set_reason, utf8_check)

BLOCK_ROWS = 65536  # lines parsed together with NumPy
TIMESTAMP_WIDTH = 40  # characters of a timestamp the fast path loads; a field this long goes to the exact path
SPLIT_BYTES = 64 << 20  # files larger than this are parsed as several ranges


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
    name = str(path).rstrip("/").rsplit("/", 1)[-1]
    return Path(name[:-3] if name.endswith(".gz") else name).stem


# ---- ranges ---------------------------------------------------------------------------------------------------------
def plan_ranges(files: list[str], split_bytes: int = SPLIT_BYTES) -> list[tuple[int, str, int, int]]:
    """(file index, path, start, end) byte ranges cut just after a newline; end -1 = to the end of the file.

    Files on any Beam filesystem (local, ``gs://`` ...) are cut; compressed ones are one range. A quoted field
    that holds a newline exactly at a cut would be split
    (its rows are then rejected and counted); pass a larger ``split_bytes`` (or 0: never cut) for such files."""
    ranges = []
    for index, path in enumerate(files):
        if path.endswith(".gz") or split_bytes <= 0:
            ranges.append((index, path, 0, -1))
            continue
        size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
        start = 0
        with open_binary(path) as handle:
            while start < size:
                target = start + split_bytes
                if target >= size:
                    ranges.append((index, path, start, -1))
                    break
                handle.seek(target)
                while True:
                    block = handle.read(1 << 16)
                    if not block:
                        cut = size
                        break
                    newline = block.find(b"\n")
                    if newline >= 0:
                        cut = handle.tell() - len(block) + newline + 1
                        break
                ranges.append((index, path, start, cut if cut < size else -1))
                start = cut
    return ranges


def read_range_text(path: str, start: int, end: int) -> tuple[str, int]:
    """Text of a byte range (``surrogateescape`` for bytes that are not UTF-8, ``\\r\\n`` -> ``\\n``) and its
    count of newlines."""
    with open_binary(path) as handle:
        if path.endswith(".gz"):
            raw = handle.read()
        else:
            handle.seek(start)
            raw = handle.read() if end < 0 else handle.read(end - start)
    if start == 0 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    text = raw.decode("utf-8", "surrogateescape")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text, raw.count(b"\n")


def open_binary(path: str):
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return gzip.GzipFile(fileobj=raw, mode="rb") if path.endswith(".gz") else raw



def iter_blocks(text: str, skip_header: bool, delimiter: str = ","):
    """(kind, lines, line numbers) blocks of a range's text: ``fast`` blocks of plain lines, or one ``csv`` block
    of parsed rows when the range holds quotes (csv.reader keeps quoted newlines together)."""
    if '"' in text:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        rows, lines = [], []
        bad = []
        if skip_header:
            next(reader, None)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                bad.append((reader.line_num, f"malformed CSV: {err}"))
                continue
            if row:
                rows.append(row)
                lines.append(reader.line_num)
        yield "csv", rows, lines, bad
        return
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    start = 1 if skip_header else 0
    numbers = range(start + 1, len(lines) + 1)
    body = lines[start:]
    for lo in range(0, len(body), BLOCK_ROWS):
        part = body[lo:lo + BLOCK_ROWS]
        nums = numbers[lo:lo + BLOCK_ROWS]
        if "" in part:  # blank lines are skipped; the C-level scan spares a Python loop over every block
            keep = [i for i, line in enumerate(part) if line]
            part = [part[i] for i in keep]
            nums = [nums[i] for i in keep]
        yield "fast", part, list(nums), []


def split_fields(lines: list[str], delimiter: str) -> list[list[str]]:
    return [line.split(delimiter) for line in lines]


class RangeParser(beam.DoFn):
    """Base of the DoFns that parse a byte range ``(_, path, start, end)`` of a CSV: reads it, reports its line count
    (for :func:`ingest.resolve_lines`), rejects malformed lines, counts ``rows_read``, and hands each block of
    :func:`iter_blocks` to :meth:`block` (``kind``, rows or lines, their local line numbers). Subclasses set
    ``headers`` ({path: header}) and ``delimiter``."""

    headers: dict[str, list[str]]
    delimiter: str

    def process(self, item):
        _, path, start, end = item
        text, newlines = read_range_text(path, start, end)
        yield value(f"lines/{path}@{start}", newlines)
        header = self.headers[path]
        rows_read = 0
        for b, (kind, rows, lines, bad) in enumerate(iter_blocks(text, start == 0, self.delimiter)):
            for line, reason in bad:
                rows_read += 1
                yield reject_record(path, line, reason, range=start)
            rows_read += len(rows)
            yield from self.block(path, start, b, header, kind, rows, lines)
        yield count("rows_read", rows_read)

    def block(self, path: str, start: int, index: int, header: list[str], kind: str, rows: list, lines: list):
        raise NotImplementedError


# ---- time-series rows -----------------------------------------------------------------------------------------------
class ParseRange(RangeParser):
    """A byte range of a CSV -> per-series blocks of parsed rows (data) plus rejects and the range's line count.

    Block: ``{"file", "range", "line" [n] (local to the range), "timestamp" [n] epoch s, "values" [n, c] float64,
    "label" [n]}``. Emits mixed output (see ``beam.job.split_outputs``)."""

    def __init__(self, layout: Layout, headers: dict[str, list[str]], delimiter: str = ","):
        self.layout, self.headers, self.delimiter = layout, headers, delimiter

    def block(self, path, start, index, header, kind, rows, lines):
        out = None
        if kind == "fast" and rows:
            out = self._fast(path, start, header, rows, lines)
        if out is None:
            table = rows if kind == "csv" else split_fields(rows, self.delimiter)
            out = list(self._exact(path, start, header, table, lines))
        yield from out

    def _fast(self, path, start, header, lines, numbers):
        """All rows good -> blocks; None when anything needs the exact path."""
        lay = self.layout
        if has_surrogates("\n".join(lines)):
            return None
        index = {name: i for i, name in enumerate(header)}
        used = [lay.timestamp_column, *lay.feature_columns, *(c for c in (lay.series_column, lay.label_column) if c)]
        names = {index[c]: c for c in used}
        # every column typed (unused ones as 1 char), so loadtxt itself refuses a row of the wrong width
        dtype = [(f"c{i}", "U1" if i not in names else f"U{TIMESTAMP_WIDTH}" if names[i] == lay.timestamp_column else
                  ("U256" if names[i] == lay.series_column else "f8")) for i in range(len(header))]
        try:
            table = np.loadtxt(lines, delimiter=self.delimiter, dtype=dtype, comments=None, ndmin=1,
                               quotechar=None)
        except ValueError:
            return None
        stamps = table[f"c{index[lay.timestamp_column]}"]
        if (np.char.str_len(stamps) >= TIMESTAMP_WIDTH).any():  # loadtxt cuts longer strings silently
            return None
        reason = np.full(len(lines), None, dtype=object)
        stamps = parse_timestamps(stamps, lay.timestamp_column, reason)
        values = np.stack([table[f"c{index[c]}"] for c in lay.feature_columns], axis=1)
        labels = table[f"c{index[lay.label_column]}"] if lay.label_column else np.zeros(len(lines))
        if (not np.equal(reason, None).all() or not np.isfinite(values).all() or not np.isfinite(labels).all()
                or (np.abs(values) > FLOAT32_MAX).any() or (np.abs(labels) > FLOAT32_MAX).any()):
            return None
        if lay.series_column:
            series = np.char.strip(table[f"c{index[lay.series_column]}"])
            if (np.char.str_len(series) == 0).any() or (np.char.str_len(series) >= 256).any():
                return None
            series = series.astype(object)
        else:
            series = None
        return list(self._emit(path, start, np.arange(len(lines)), np.asarray(numbers, np.int64), stamps, values,
                               (labels != 0).astype(np.int64), series))

    def _emit(self, path, start, good, lines, stamps, values, labels, series):
        if series is None:
            yield data((series_id(path), {"file": path, "range": start, "line": lines[good],
                                          "timestamp": stamps[good], "values": values[good], "label": labels[good]}))
            return
        ids, inverse = np.unique(series[good], return_inverse=True)
        inverse = inverse.reshape(-1)
        groups = np.split(good[np.argsort(inverse, kind="stable")], np.cumsum(np.bincount(inverse))[:-1])
        for sid, keep in zip(ids.tolist(), groups):  # one sort instead of a mask per series
            yield data((sid, {"file": path, "range": start, "line": lines[keep], "timestamp": stamps[keep],
                              "values": values[keep], "label": labels[keep]}))

    def _exact(self, path, start, header, rows, numbers):
        lay = self.layout
        good_rows, good_lines = [], []
        for row, line in zip(rows, numbers):
            if len(row) != len(header):
                what = "missing field" if len(row) < len(header) else "too many fields"
                yield reject_record(path, line, f"{what}: expected {len(header)} fields, got {len(row)}", range=start)
            else:
                good_rows.append(row)
                good_lines.append(line)
        if not good_rows:
            return
        table = np.array(good_rows, dtype=str)
        lines = np.asarray(good_lines, dtype=np.int64)
        reason = np.full(len(good_rows), None, dtype=object)
        index = {name: i for i, name in enumerate(header)}
        features = np.zeros((len(good_rows), len(lay.feature_columns)), np.float64)
        labels = np.zeros(len(good_rows), np.int64)
        stamps = None
        series = None
        used = [lay.timestamp_column, *lay.feature_columns, *(c for c in (lay.series_column, lay.label_column) if c)]
        for column in sorted(used, key=index.__getitem__):  # left to right: the first problem is reported
            cells = table[:, index[column]]
            utf8_check(cells, column, reason)
            if column == lay.timestamp_column:
                stamps = parse_timestamps(cells, column, reason)
            elif column == lay.series_column:
                series = np.char.strip(cells).astype(object)
                for i in np.flatnonzero(series == ""):
                    set_reason(reason, i, f"missing value in column '{column}'")
            elif column == lay.label_column:
                labels = (parse_floats(cells, column, reason) != 0).astype(np.int64)
            else:
                features[:, lay.feature_columns.index(column)] = parse_floats(cells, column, reason)
        ok = np.equal(reason, None)
        for i in np.flatnonzero(~ok):
            yield reject_record(path, int(lines[i]), reason[i], range=start)
        yield from self._emit(path, start, np.flatnonzero(ok), lines, stamps, features, labels, series)

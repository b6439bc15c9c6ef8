"""ingest_timeseries: CSV files -> validated, time-split chunks of multichannel series (TFRecord Examples).

Why chunks and not one Example per row: a row is a few floats, so per-row protos would cost more than the data;
a chunk of up to ``chunk_size`` consecutive steps keeps records large, keeps order explicit (``start``: step index
in the series) and lets ``make_windows`` rebuild each series without a global sort. Why split here, by time and
per series: windows built later must never see the future of another split, so the boundary is fixed once, at the
source. ``segment`` (the step index where the chunk's contiguous run begins) marks runs that windows must not
bridge: a split boundary, or a gap when ``gaps="break"``; a chunk never spans two segments.

Optional regularization: ``resample="10min"`` puts every step on a grid of that interval (epoch-aligned; rows in
one slot are averaged, labels OR-ed); ``gaps`` then says what a missing slot means: ``leave`` (skip it),
``interpolate`` (linear fill, label of a filled slot = OR of its neighbours) or ``break`` (start a new segment).
Without ``resample``, ``gaps="break"`` breaks where a step is longer than 1.5x the series' median step.

Parsing runs per byte range of each file (``csv_rows``); sorting, de-duplication, resampling, gap handling and
the time split run per *time bucket* of a series (``series_stages``: three Beam jobs), so no worker holds more than
one range or ``bucket_rows`` rows, however long a series is (``make_windows`` downstream is bounded the same way).

Row problems never abort the run: each bad row goes to the Rejects artifact's ``rejects.jsonl`` as
``{"file", "line", "reason"}`` (``line`` is the 1-based physical line, header = line 1; see ``csv_rows``), sorted
by file and line. Only the *input as a whole* being unusable (missing or empty file, no glob match, missing
column, too many rejects, no valid row) raises :class:`DataError`, with one line.
"""
from __future__ import annotations

import csv
import glob
import json
from pathlib import Path

import re

from apache_beam.io.filesystems import FileSystems

from edgepipe.components.data.beam.files import remove_tree, worker_uri
from edgepipe.components.data.csv_rows import SPLIT_BYTES, Layout, open_text
from edgepipe.components.data.csv_values import epoch
from edgepipe.components.data.series_stages import (BUCKET_ROWS, plan_buckets, sort_buckets, stage_rows,
                                                    write_chunk_index, write_chunks)
from edgepipe.components.data.splits import parse_split
from edgepipe.pipeline.artifacts import Examples, Rejects
from edgepipe.pipeline.component import InputPath, Output, component
from edgepipe.pipeline.contracts import ExamplesInfo
from edgepipe.pipeline.errors import ConfigError, DataError

DEFAULT_SPLIT = {"train": 0.6, "eval": 0.2, "test": 0.2}
GAP_MODES = ("leave", "interpolate", "break")
CHUNK_FEATURE_SPEC = {
    "series": {"dtype": "string", "shape": []},
    "start": {"dtype": "int64", "shape": []},
    "segment": {"dtype": "int64", "shape": []},
    "timestamp": {"dtype": "int64", "shape": None},
    "values": {"dtype": "float32", "shape": None},
    "label": {"dtype": "int64", "shape": None},
}


# ---- launcher-side checks (cheap, before Beam starts) ----------------------------------------------------------------
def refuse_builtin(source: str, reader: str, wants: str) -> None:
    """Refuse a ``builtin:`` dataset name (ConfigError) where ``reader`` only reads ``wants``.

    Why: the built-in templates resolve ``builtin:`` names before any component runs (``pipeline/templates/
    sources.py``); one that reaches a reader comes from a pipeline of the user's own passing ``data.source``'s
    default (no CONFIG given), and "input file not found: builtin:sensors" would hide that."""
    if str(source).startswith("builtin:"):
        raise ConfigError(f"data.source '{source}' is a built-in dataset, which {reader} cannot read: give {wants} "
                          f"(--set data.source=...) or a CONFIG")


def resolve_files(source: str, reader: str, wants: str) -> list[str]:
    """Expand a path or glob (local, or any Beam filesystem URL) to existing files, or raise DataError naming it
    (``reader``, ``wants``: the component and what it reads, for :func:`refuse_builtin`)."""
    source = str(source)
    refuse_builtin(source, reader, wants)
    if "://" in source:
        try:
            files = sorted(m.path for m in FileSystems.match([source])[0].metadata_list)
        except Exception as err:  # Beam raises BeamIOError and friends, per filesystem
            raise DataError(f"cannot list {source}: {str(err).splitlines()[0]}") from None
        if not files:
            raise DataError(f"no file matches {source}")
        return files
    if any(ch in source for ch in "*?["):
        files = sorted(p for p in glob.glob(source, recursive=True) if Path(p).is_file())
        if not files:
            raise DataError(f"no file matches {source}")
        return files
    path = Path(source)
    if path.is_dir():
        raise DataError(f"input {source} is a directory, not a file (name a CSV, or a glob such as {source}/*.csv)")
    if not path.is_file():
        raise DataError(f"input file not found: {source}")
    return [str(path)]


def read_header(path: str) -> list[str]:
    """Header of a CSV, requiring at least one data line after it."""
    with open_text(path) as handle:
        reader = csv.reader(handle)
        rows = (row for row in reader if row)
        header = next(rows, None)
        if header is None:
            raise DataError(f"{path}: empty file (no header)")
        if next(rows, None) is None:
            raise DataError(f"{path}: no data rows after the header")
    header = [name.strip().lstrip("\ufeff") for name in header]
    if len(set(header)) != len(header):
        raise DataError(f"{path}: duplicate column names in header {header}")
    return header


def build_layout(files: list[str], timestamp_column: str, series_column: str | None,
                 feature_columns: list[str] | None, label_column: str | None) -> Layout:
    """Resolve feature columns (default: every other column of the first file) and check every header has them."""
    special = [c for c in (timestamp_column, series_column, label_column) if c]
    first = read_header(files[0])
    features = list(feature_columns) if feature_columns else [c for c in first if c not in special]
    if not features:
        raise DataError(f"{files[0]}: no feature columns besides {special}")
    for path in files:
        header = first if path == files[0] else read_header(path)
        for column in [*special, *features]:
            if column not in header:
                raise DataError(f"{path}: column '{column}' not in header ({', '.join(header)})")
    return Layout(timestamp_column, series_column, tuple(features), label_column)


def check_split(split: dict[str, float] | None) -> dict[str, float]:
    spec = parse_split(split, DEFAULT_SPLIT, allowed=("time",), where="ingest_timeseries split")
    return dict(zip(spec.names, spec.fractions))


_UNITS = {"s": 1, "sec": 1, "min": 60, "t": 60, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str | None) -> int | None:
    """"10min", "30s", "1h", "2d" -> seconds."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)?\s*([a-zA-Z]+)\s*", str(text))
    unit = match and _UNITS.get(match.group(2).lower())
    if not unit or (match.group(1) is not None and int(match.group(1)) == 0):
        raise ConfigError(f"resample: cannot read interval '{text}' (e.g. '30s', '10min', '1h', '1d')")
    return int(match.group(1) or 1) * unit


def load_label_windows(labels_json: str | None, labels_key: str | None) -> dict[str, list[tuple[int, int]]]:
    """NAB ``combined_windows.json`` -> {series id or "*": [(start_s, end_s), ...]} (inclusive epoch seconds)."""
    if not labels_json:
        return {}
    path = Path(labels_json)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"labels file not found: {labels_json}") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{labels_json}: not valid JSON ({err})") from None
    if not isinstance(table, dict):
        raise DataError(f"{labels_json}: expected an object {{key: [[start, end], ...]}}")
    if labels_key is not None and labels_key not in table:
        raise DataError(f"{labels_json}: no entry '{labels_key}'")
    selected = {"*": table[labels_key]} if labels_key is not None else {Path(k).stem: v for k, v in table.items()}
    windows = {}
    for key, pairs in selected.items():
        try:
            windows[key] = [(epoch(a), epoch(b)) for a, b in pairs]
        except (TypeError, ValueError):
            raise DataError(f"{labels_json}: entry '{labels_key or key}' is not a list of [start, end] timestamps"
                            ) from None
    return windows


# ---- the component --------------------------------------------------------------------------------------------------
def resolve_lines(records: list[dict], line_counts: dict[str, list]) -> list[dict]:
    """Make range-local line numbers global: line += newlines in the file's earlier ranges; fill ``{first}``."""
    offsets: dict[tuple[str, int], int] = {}
    per_file: dict[str, list[tuple[int, int]]] = {}
    for key, counts in line_counts.items():
        path, _, start = key[len("lines/"):].rpartition("@")
        per_file.setdefault(path, []).append((int(start), int(counts[0])))
    for path, items in per_file.items():
        total = 0
        for start, lines in sorted(items):
            offsets[(path, start)] = total
            total += lines
    out = []
    for record in records:
        record = dict(record)
        start = record.pop("range", 0)
        record["line"] = offsets.get((record["file"], start), 0) + record["line"]
        ref = record.pop("ref", None)
        if ref is not None:
            path, ref_start, ref_line = ref
            record["reason"] = record["reason"].replace("{first}", str(offsets.get((path, ref_start), 0) + ref_line))
        out.append(record)
    return sorted(out, key=lambda r: (r["file"], r["line"]))


def record_rejects(rejects: Rejects, records: list[dict], read: int, max_reject_fraction: float, unit: str) -> None:
    """Write ``rejects.jsonl``, refuse the input (DataError) when more than ``max_reject_fraction`` of the ``read``
    items were rejected, and state ``count``, ``rows_read`` and ``unit`` on the artifact.

    ``unit`` is what a source reads one at a time (rows, records, images, examples): the refusal and the run summary
    count in it. ``rows_read`` keeps its name for the readers that predate images and records (the CLI, the UI)."""
    listing = rejects.file("rejects.jsonl")
    listing.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    fraction = len(records) / max(read, 1)
    if records and fraction > max_reject_fraction:  # the listing stays with the failed outputs: said where
        first = records[0]
        raise DataError(f"{len(records)} of {read} {unit} rejected ({fraction:.2%} > max_reject_fraction "
                        f"{max_reject_fraction:.2%}); first: {reject_place(first)}: {first['reason']}; all "
                        f"rejects: {listing}")
    rejects.properties.update(count=len(records), rows_read=read, unit=unit)


def reject_place(record: dict) -> str:
    """``file:line``, or the file alone when the whole file was rejected (``line`` 0: an undecodable image, an
    unreadable TFRecord file)."""
    return f"{record['file']}:{record['line']}" if record.get("line") else str(record["file"])


@component(version="2")
def ingest_timeseries(examples: Output[Examples], rejects: Output[Rejects], source: InputPath,
                      timestamp_column: str = "timestamp", series_column: str | None = None,
                      feature_columns: list[str] | None = None, label_column: str | None = None,
                      labels_json: InputPath | None = None, labels_key: str | None = None,
                      split: dict[str, float] | None = None, max_reject_fraction: float = 0.01,
                      chunk_size: int = 4096, resample: str | None = None, gaps: str = "leave",
                      delimiter: str = ",", split_bytes: int = SPLIT_BYTES, bucket_rows: int = BUCKET_ROWS,
                      beam_args: list[str] | None = None) -> dict:
    """Read CSV time series (a file or glob; one series per file unless ``series_column``), reject bad rows, label
    from a column or NAB windows, [resample, handle gaps], split each series by time and write chunk Examples plus
    a rejects list."""
    files = resolve_files(worker_uri(source, beam_args), "ingest_timeseries", "a CSV path")
    layout = build_layout(files, timestamp_column, series_column, feature_columns, label_column)
    split = check_split(split)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    if bucket_rows < 2:
        raise ConfigError(f"bucket_rows must be >= 2, got {bucket_rows}")
    if gaps not in GAP_MODES:
        raise ConfigError(f"gaps: unknown mode '{gaps}' (choose from {', '.join(GAP_MODES)})")
    interval = parse_interval(resample)
    if gaps == "interpolate" and interval is None:
        raise ConfigError("gaps='interpolate' needs resample (the grid to fill), e.g. resample='10min'")
    windows = load_label_windows(labels_json, labels_key)
    names = list(split)
    headers = {path: read_header(path) for path in files}

    staging, report_dir = worker_uri(examples.path / "_staging", beam_args), examples.path / "_report"
    remove_tree(staging)
    try:
        result, blocks, line_counts = stage_rows(beam_args, report_dir, files, split_bytes, layout, headers,
                                                 delimiter, staging, bucket_rows)
        rows_read = result.get("rows_read")
        if not blocks:
            record_rejects(rejects, resolve_lines(result.rejects, line_counts), rows_read, max_reject_fraction, "rows")
            raise DataError(f"{source}: no valid rows")
        sorted_result = sort_buckets(beam_args, report_dir, plan_buckets(blocks, bucket_rows, interval), staging,
                                     windows, interval)
        records = resolve_lines(result.rejects + sorted_result.rejects, line_counts)
        record_rejects(rejects, records, rows_read, max_reject_fraction, "rows")
        totals = write_chunks(beam_args, report_dir, worker_uri(examples.path, beam_args),
                              sorted_result.values.get("bucket", []), split, chunk_size, interval, gaps)
    finally:
        remove_tree(staging)
    write_chunk_index(examples, totals["shards"])
    rejected = len(records)
    steps = {name: totals[f"steps_{name}"] for name in names}
    labelled = sum(1 for sid in totals["series_ids"] if windows.get("*", windows.get(sid)) is not None)
    if windows and labelled == 0:
        raise DataError(f"{labels_json}: no entry matches a series of {source} (set labels_key)")

    examples.properties.update(ExamplesInfo.from_dict(dict(  # typed on write: a fact of the wrong type fails here
        splits=names, channels=list(layout.feature_columns), kind="timeseries_chunks",
        feature_spec=CHUNK_FEATURE_SPEC, has_labels=bool(label_column or labels_json),
        chunk_size=chunk_size, series_count=len(totals["series_ids"]), resample=resample, gaps=gaps,
        resample_seconds=interval, split={"method": "time", **split}), f"{examples.path} properties").to_dict())
    totals["rows_merged_by_resample"] = sorted_result.get("rows_merged_by_resample")
    extra = {k: totals[k] for k in ("gaps", "steps_interpolated", "rows_merged_by_resample") if totals[k]}
    return {"rows_read": rows_read, "rows_rejected": rejected, "series": len(totals["series_ids"]),
            **{f"steps_{name}": n for name, n in steps.items()}, **extra}

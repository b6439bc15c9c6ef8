"""ingest_timeseries: CSV files -> validated, time-split chunks of multichannel series (TFRecord Examples).

Why chunks and not one Example per row: a row is a few floats, so per-row protos would cost more than the data;
a chunk of up to ``chunk_size`` consecutive steps keeps records large, keeps order explicit (``start``) and lets
``make_windows`` rebuild each series without a global sort. Why split here, by time and per series: windows built
later must never see the future of another split, so the boundary is fixed once, at the source.

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

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from edgepipe.components.data.beam_io import beam_pipeline, count, encode_example, run_pipeline, write_split
from edgepipe.components.data.csv_rows import REJECTS, Layout, ParseCsv, epoch, open_text, reject
from edgepipe.pipeline.artifacts import Examples, Rejects
from edgepipe.pipeline.component import InputPath, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError

DEFAULT_SPLIT = {"train": 0.6, "eval": 0.2, "test": 0.2}
CHUNK_FEATURE_SPEC = {
    "series": {"dtype": "string", "shape": []},
    "start": {"dtype": "int64", "shape": []},
    "timestamp": {"dtype": "int64", "shape": None},
    "values": {"dtype": "float32", "shape": None},
    "label": {"dtype": "int64", "shape": None},
}


# ---- launcher-side checks (cheap, before Beam starts) ----------------------------------------------------------------
def resolve_files(source: str) -> list[str]:
    """Expand a path or glob (local, or any Beam filesystem URL) to existing files, or raise DataError naming it."""
    source = str(source)
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
    header = [name.strip() for name in header]
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
    split = dict(split or DEFAULT_SPLIT)
    if not split or any(f < 0 for f in split.values()) or abs(sum(split.values()) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be >= 0 and sum to 1, got {split}")
    return split


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


class BuildChunks(beam.DoFn):
    """All rows of one series -> sorted, de-duplicated, labelled, split by time, cut into chunk Examples."""

    def __init__(self, split: dict[str, float], chunk_size: int, windows: dict[str, list[tuple[int, int]]]):
        self.split, self.chunk_size, self.windows = split, chunk_size, windows

    def process(self, item):
        sid, blocks = item
        blocks = list(blocks)
        files = sorted({b["file"] for b in blocks})
        rank = np.concatenate([np.full(len(b["line"]), files.index(b["file"])) for b in blocks])
        lines = np.concatenate([b["line"] for b in blocks])
        stamps = np.concatenate([b["timestamp"] for b in blocks])
        order = np.lexsort((lines, rank, stamps))  # time, then file, then line: the first occurrence wins
        rank, lines, stamps = rank[order], lines[order], stamps[order]
        values = np.concatenate([b["values"] for b in blocks])[order]
        labels = np.concatenate([b["label"] for b in blocks])[order]

        first = np.ones(len(stamps), dtype=bool)
        first[1:] = stamps[1:] != stamps[:-1]
        origin = np.maximum.accumulate(np.where(first, np.arange(len(stamps)), 0))
        for i in np.flatnonzero(~first):
            when = np.datetime64(int(stamps[i]), "s")
            yield reject(files[rank[i]], int(lines[i]),
                         f"duplicate timestamp {when} in series '{sid}' (first at line {lines[origin[i]]})")
        stamps, values, labels = stamps[first], values[first], labels[first]

        windows = self.windows.get("*", self.windows.get(sid))
        if windows is not None:
            count("series_labelled")
            for lo, hi in windows:
                labels |= ((stamps >= lo) & (stamps <= hi)).astype(np.int64)

        count("series")
        bounds = np.round(np.cumsum([0.0, *self.split.values()]) * len(stamps)).astype(int)
        bounds[-1] = len(stamps)
        for name, lo, hi in zip(self.split, bounds[:-1], bounds[1:]):
            count(f"steps_{name}", hi - lo)
            for start in range(lo, hi, self.chunk_size):
                end = min(start + self.chunk_size, hi)
                count(f"chunks_{name}")
                yield name, encode_example({"series": sid, "start": np.int64(start), "timestamp": stamps[start:end],
                                            "values": values[start:end], "label": labels[start:end]})


def _split_index(item, num_partitions: int, names: list[str]) -> int:
    return names.index(item[0])


# ---- the component --------------------------------------------------------------------------------------------------
@component
def ingest_timeseries(examples: Output[Examples], rejects: Output[Rejects], source: InputPath,
                      timestamp_column: str = "timestamp", series_column: str | None = None,
                      feature_columns: list[str] | None = None, label_column: str | None = None,
                      labels_json: InputPath | None = None, labels_key: str | None = None,
                      split: dict[str, float] | None = None, max_reject_fraction: float = 0.01,
                      chunk_size: int = 4096, beam_args: list[str] | None = None) -> dict:
    """Read CSV time series (a file or glob; one series per file unless ``series_column``), reject bad rows, label
    from a column or NAB windows, split each series by time and write chunk Examples plus a rejects list."""
    files = resolve_files(source)
    layout = build_layout(files, timestamp_column, series_column, feature_columns, label_column)
    split = check_split(split)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    windows = load_label_windows(labels_json, labels_key)
    names = list(split)

    pipeline = beam_pipeline(beam_args)
    parsed = (pipeline | "Files" >> beam.Create(files)
              | "Parse" >> beam.ParDo(ParseCsv(layout)).with_outputs(REJECTS, main="rows"))
    built = (parsed.rows | "BySeries" >> beam.GroupByKey()
             | "Chunks" >> beam.ParDo(BuildChunks(split, chunk_size, windows)).with_outputs(REJECTS, main="chunks"))
    reject_file = rejects.file("rejects.jsonl")
    _ = ((parsed[REJECTS], built[REJECTS]) | "AllRejects" >> beam.Flatten()
         | "RejectJson" >> beam.Map(json.dumps, sort_keys=True)
         | "WriteRejects" >> beam.io.WriteToText(str(reject_file), shard_name_template="", num_shards=1))
    parts = built.chunks | "BySplit" >> beam.Partition(_split_index, len(names), names)
    for i, name in enumerate(names):
        write_split(parts[i] | f"Payload[{name}]" >> beam.Values(), examples, name)
    counters = run_pipeline(pipeline)

    records = sorted((json.loads(line) for line in reject_file.read_text().splitlines() if line),
                     key=lambda r: (r["file"], r["line"]))
    reject_file.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    rows_read, rejected = counters.get("rows_read", 0), len(records)
    steps = {name: counters.get(f"steps_{name}", 0) for name in names}
    fraction = rejected / max(rows_read, 1)
    if records and fraction > max_reject_fraction:
        first = records[0]
        raise DataError(f"{rejected} of {rows_read} rows rejected ({fraction:.2%} > max_reject_fraction "
                        f"{max_reject_fraction:.2%}); first: {first['file']}:{first['line']}: {first['reason']}")
    if sum(steps.values()) == 0:
        raise DataError(f"{source}: no valid rows")
    if windows and counters.get("series_labelled", 0) == 0:
        raise DataError(f"{labels_json}: no entry matches a series of {source} (set labels_key)")

    rejects.properties.update(count=rejected, rows_read=rows_read)
    examples.properties.update(
        splits=names, channels=list(layout.feature_columns), kind="timeseries_chunks",
        feature_spec=CHUNK_FEATURE_SPEC, has_labels=bool(label_column or labels_json),
        chunk_size=chunk_size, series_count=counters.get("series", 0))
    return {"rows_read": rows_read, "rows_rejected": rejected, "series": counters.get("series", 0),
            **{f"steps_{name}": n for name, n in steps.items()}}

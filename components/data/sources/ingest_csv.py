"""CSV tables -> one Example per row (``ingest_csv``): typed columns, a label, rejects with reasons.

Why a module of its own: one source a module, registered with :func:`.registry.source` for ``.csv`` paths. Work is
cut into byte ranges of the files (:func:`csv_rows.plan_ranges`) that a worker parses and writes alone.
"""
from __future__ import annotations

import csv
from typing import Any

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam.files import base_name, remove_tree, worker_uri
from edgepipe.components.data.beam.job import Job, count, reject, value
from edgepipe.components.data.csv_rows import SPLIT_BYTES, RangeParser, open_text, plan_ranges, split_fields
from edgepipe.components.data.csv_values import FLOAT32_MAX, has_surrogates
from edgepipe.components.data.ingest import read_header, record_rejects, resolve_files, resolve_lines
from edgepipe.components.data.sources.registry import source
from edgepipe.components.data.sources.shared import (DEFAULT_SPLIT, MISSING, SPEC_DTYPE, TYPES, finish,
                                                     infer_column_types, write_batch)
from edgepipe.components.data.splits import SplitSpec, assign, hash_text, hash_values, mix64, parse_split
from edgepipe.pipeline.artifacts import Examples, Rejects
from edgepipe.pipeline.component import InputPath, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError


class ParseTable(RangeParser):
    """A byte range of a CSV table -> rows as typed columns, split and written; rejects with reasons."""

    def __init__(self, examples: str, spec: SplitSpec, headers: dict[str, list[str]], features: list[str],
                 types: dict[str, str], label: str | None, label_type: str | None, delimiter: str,
                 missing: list[str], unseen: list[int] | None = None):
        self.examples, self.spec, self.headers, self.features = examples, spec, headers, features
        self.types, self.label, self.label_type = types, label, label_type
        self.delimiter, self.missing = delimiter, list(missing)
        self.unseen = set(unseen or ())  # int labels absent from train: their eval/test rows are rejected

    def block(self, path, start, index, header, kind, rows, lines):
        table = rows if kind == "csv" else split_fields(rows, self.delimiter)
        yield from self._block(path, start, index, header, table, lines)

    def _block(self, path, start, block, header, rows, numbers):
        keep = []
        for i, row in enumerate(rows):
            if len(row) != len(header):
                what = "missing field" if len(row) < len(header) else "too many fields"
                yield reject(path, numbers[i], f"{what}: expected {len(header)} fields, got {len(row)}", range=start)
            else:
                keep.append(i)
        if not keep:
            return
        table = np.array([rows[i] for i in keep], dtype=str).reshape(len(keep), len(header))
        lines = np.asarray(numbers, np.int64)[keep]
        index = {name: i for i, name in enumerate(header)}
        reason = np.full(len(keep), None, dtype=object)
        missing_set = set(self.missing)
        columns: dict[str, Any] = {}
        wanted = [*self.features, *([self.label] if self.label else [])]
        for column in sorted(wanted, key=index.__getitem__):
            cells = np.char.strip(table[:, index[column]])
            kind = self.label_type if column == self.label else self.types[column]
            absent = np.isin(cells, list(missing_set))
            for i, text in enumerate(cells.tolist()):
                if reason[i] is None and has_surrogates(text):
                    reason[i] = f"invalid UTF-8 in column '{column}'"
            if column == self.label:
                for i in np.flatnonzero(absent):
                    reason[i] = reason[i] or f"missing label in column '{column}'"
            name = "label" if column == self.label else column
            if kind == "string":
                columns[name] = np.where(absent, "", cells).astype(object)
                yield count(f"missing/{column}", int(absent.sum()))
                continue
            parsed = np.full(len(cells), np.nan)
            try:
                parsed[~absent] = cells[~absent].astype(np.float64)
            except ValueError:
                for i in np.flatnonzero(~absent):
                    try:
                        parsed[i] = float(cells[i])
                    except ValueError:
                        reason[i] = reason[i] or f"not a number in column '{column}': {cells[i][:40]!r}"
            bad = ~absent & np.isinf(parsed)
            for i in np.flatnonzero(bad):
                reason[i] = reason[i] or f"non-finite value in column '{column}': {cells[i][:40]!r}"
            for i in np.flatnonzero(np.abs(parsed) > FLOAT32_MAX):  # finite, but inf once stored as float32
                reason[i] = reason[i] or f"value out of float32 range in column '{column}': {cells[i][:40]!r}"
            if kind == "int":
                for i in np.flatnonzero(absent):
                    reason[i] = reason[i] or f"missing value in int column '{column}'"
                frac = np.isfinite(parsed) & (parsed != np.round(parsed))
                for i in np.flatnonzero(frac):
                    reason[i] = reason[i] or f"not an integer in column '{column}': {cells[i][:40]!r}"
                columns[name] = np.where(np.isfinite(parsed), parsed, 0).astype(np.int64)
            else:
                columns[name] = parsed.astype(np.float32)
                if column != self.label:
                    yield count(f"missing/{column}", int((absent | np.isnan(parsed)).sum()))
        # a row's split depends on its own text (or key) alone, so rejecting other rows never moves it
        if self.spec.method == "hash":
            hashes = hash_values(np.char.strip(table[:, index[self.spec.key]]))
        else:  # the row's own text (and file name): independent of how files are cut into ranges
            text = np.array([self.delimiter.join(row) for row in table.tolist()], dtype=object)
            hashes = mix64(hash_values(text) ^ np.uint64(hash_text(base_name(path))))
        ok = np.equal(reason, None)
        if "label" in columns and columns["label"].dtype.kind == "i":
            which = np.asarray(self.spec.names, dtype=object)[assign(self.spec, hashes)]
            if self.unseen:
                for i in np.flatnonzero(ok & (which != "train") & np.isin(columns["label"], list(self.unseen))):
                    ok[i], reason[i] = False, f"label {columns['label'][i]} does not occur in the train split"
            for name in self.spec.names:
                yield value(f"label_values/{name}", np.unique(columns["label"][ok & (which == name)]).tolist())
        for i in np.flatnonzero(~ok):
            yield reject(path, int(lines[i]), reason[i], range=start)
        good = np.flatnonzero(ok)
        if len(good) == 0:
            return
        columns = {k: v[good] for k, v in columns.items()}
        yield from write_batch(self.examples, self.spec, columns, hashes[good], "csv", path, start, block)


@source("csv", suffixes=(".csv", ".csv.gz"))
@component(version="1")
def ingest_csv(examples: Output[Examples], rejects: Output[Rejects], source: InputPath,
               label_column: str | None = None, feature_columns: list[str] | None = None,
               column_types: dict[str, str] | None = None, delimiter: str = ",", split: dict | None = None,
               missing_values: list[str] = MISSING, max_reject_fraction: float = 0.01,
               split_bytes: int = SPLIT_BYTES, class_names: list[str] | None = None,
               beam_args: list[str] | None = None) -> dict:
    """CSV files (a path or glob, with header) -> one Example per row: numeric columns float32 (missing -> NaN,
    counted) or int64, categorical columns string, ``label`` (int64 if the label column is integer, else float32);
    bad rows to ``rejects``. ``class_names`` name an integer label's classes 0..k-1 (k from the train split): the
    Examples' ``class_names``, which the model card and the bundle's ``labels`` carry to predict and serve."""
    files = resolve_files(worker_uri(source, beam_args), "ingest_csv", "a CSV path")
    headers = {path: read_header(path) if delimiter == "," else _header(path, delimiter) for path in files}
    first = headers[files[0]]
    features = list(feature_columns) if feature_columns else [c for c in first if c != label_column]
    if "label" in features and label_column:
        raise ConfigError("ingest_csv: a feature column is named 'label', which the label column would overwrite")
    for path, header in headers.items():
        for column in [*features, *([label_column] if label_column else [])]:
            if column not in header:
                raise DataError(f"{path}: column '{column}' not in header ({', '.join(header)})")
    spec = parse_split(split, DEFAULT_SPLIT, where="ingest_csv split")
    if spec.method == "hash" and spec.key not in first:
        raise ConfigError(f"ingest_csv split: hash key '{spec.key}' is not a column ({', '.join(first)})")
    types = infer_column_types(files[0], first, delimiter, set(missing_values))
    for name, kind in (column_types or {}).items():
        if kind not in TYPES:
            raise ConfigError(f"ingest_csv column_types: '{name}': unknown type '{kind}' (float, int, string)")
        if name not in first:
            raise ConfigError(f"ingest_csv column_types: '{name}' is not a column")
        types[name] = kind
    label_type = None
    if label_column:
        label_type = types[label_column]
        if label_type == "string":  # the file's cells decide it, not the config: unusable data (exit 3)
            raise DataError(f"{files[0]}: label column '{label_column}' holds strings: write its classes as integers "
                            f"0..k-1 (transform_features encodes features, not the label; data.class_names names them)")
    if class_names is not None and (label_type != "int" or len(set(class_names)) != len(class_names)):
        why = "names repeat" if label_type == "int" else f"label column '{label_column}' is not integer classes"
        raise ConfigError(f"ingest_csv class_names: {why} ({', '.join(map(str, class_names))})")

    def parse(unseen: list[int]):
        job = Job(beam_args, examples.path / "_report")
        job.report(job.pipeline | "Ranges" >> beam.Create(plan_ranges(files, split_bytes))
                   | "Parse" >> beam.ParDo(ParseTable(job.uri(examples.path), spec, headers, features, types,
                                                      label_column, label_type, delimiter, missing_values, unseen)))
        return job, job.run()

    job, result = parse([])
    unseen = sorted(set(_label_values(result, spec, exclude="train")) - set(_label_values(result, spec, "train")))
    if unseen and "train" in spec.names:
        # Classes come from train (the model cannot learn a class it never saw, and a typo in an eval/test row
        # must not add output units): parse again, rejecting those rows by name, into emptied split folders.
        for name in spec.names:
            remove_tree(job.uri(examples.path / f"Split-{name}"))
        job, result = parse(unseen)
    records = resolve_lines(result.rejects, {k: v for k, v in result.values.items() if k.startswith("lines/")})
    rows_read = result.get("rows_read")
    record_rejects(rejects, records, rows_read, max_reject_fraction, "rows")
    feature_spec = {c: {"dtype": SPEC_DTYPE[types[c]], "shape": []} for c in features}
    props: dict[str, Any] = {}
    if label_column:
        feature_spec["label"] = {"dtype": "int64" if label_type == "int" else "float32", "shape": []}
        if label_type == "int":
            values = _label_values(result, spec, "train" if "train" in spec.names else None)
            props.update(label_values=values, num_classes=(max(values) + 1) if values else 0)
            if class_names is not None:
                if len(class_names) != props["num_classes"]:
                    raise ConfigError(f"ingest_csv class_names: {len(class_names)} names for {props['num_classes']} "
                                      f"classes (train split labels {', '.join(map(str, values))}): name classes "
                                      f"0..{props['num_classes'] - 1} in order")
                props["class_names"] = [str(n) for n in class_names]
    missing = {c: result.get(f"missing/{c}") for c in features if result.get(f"missing/{c}")}
    metrics = finish(examples, spec, result, kind="table", source=str(source), feature_spec=feature_spec,
                     feature_columns=features, label_column=label_column,
                     column_types={c: types[c] for c in features}, missing_counts=missing, **props)
    return {"rows_read": rows_read, "rows_rejected": len(records), "missing_values": sum(missing.values()),
            **metrics}


def _label_values(result, spec: SplitSpec, split: str | None = None, exclude: str | None = None) -> list[int]:
    """The int label values the parse saw in ``split`` (every split when None), less those of ``exclude``."""
    names = [n for n in spec.names if (split is None or n == split) and n != exclude]
    return sorted({v for n in names for part in result.values.get(f"label_values/{n}", []) for v in part})


def _header(path: str, delimiter: str) -> list[str]:
    with open_text(path) as handle:
        rows = [r for r in csv.reader(handle, delimiter=delimiter) if r][:2]
    if not rows:
        raise DataError(f"{path}: empty file (no header)")
    if len(rows) < 2:
        raise DataError(f"{path}: no data rows after the header")
    return [c.strip().lstrip("\ufeff") for c in rows[0]]

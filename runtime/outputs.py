"""Turn results into rows for ``edgepipe predict``: JSON Lines or CSV, one row per window, per time step, or per
alert event (anomaly bundles on a series: the onsets, see runtime/likelihood.py).

Rows carry the input part's name (``series``) so a multi-series CSV stays readable, and, when the input had a
timestamp column, the timestamp of each window's first step (or of each step).
"""
from __future__ import annotations

import csv
import math
from typing import Any, Iterable, Iterator, TextIO

from edgepipe.runtime import jsonsafe

LEVELS = ("window", "step", "alert")
FORMATS = ("jsonl", "csv")


def rows(name: str, result: Any, level: str, timestamps: list[str] | None) -> Iterator[dict[str, Any]]:
    """Flat records of one part's result (anomaly: per window or per step; other tasks: per example)."""
    if hasattr(result, "window_records"):
        if level == "alert":
            for record in result.alerts():
                if timestamps is not None:
                    record = {"timestamp": timestamps[record["step"]], **record}
                yield {"series": name, **record}
            return
        if level == "step" and result.step_score is not None:
            for record in result.step_records():
                if timestamps is not None:
                    record = {"timestamp": timestamps[record["step"]], **record}
                yield {"series": name, **record}
            return
        for record in result.window_records():
            if timestamps is not None and result.step_score is not None:
                record = {"start_time": timestamps[record["start"]], **record}
            yield {"series": name, **record}
        return
    for i, record in enumerate(result.records()):
        yield {"input": name, "index": i, **record}


def write(records: Iterable[dict[str, Any]], out: TextIO, fmt: str) -> int:
    """Write records; returns how many. CSV takes its columns from the first record (lists as JSON text)."""
    n = 0
    if fmt == "jsonl":
        for record in records:
            out.write(jsonsafe.dumps(record) + "\n")  # inf/NaN (an extreme input's score) -> null
            n += 1
        return n
    writer = None
    for record in records:
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(record), extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
        writer.writerow({k: _cell(v) for k, v in record.items()})
        n += 1
    return n


def _cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return jsonsafe.dumps(value)
    return value

"""Property: malformed CSV mixed with valid rows never crashes ingest (DataError at most) and loses no valid row."""
import csv
import json
from collections import Counter
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from edgepipe.components.data import ingest_csv, ingest_timeseries
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.pipeline.artifacts import Examples, Rejects
from edgepipe.pipeline.errors import DataError

BASE = np.datetime64("2024-05-01T00:00:00", "s")


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


valid_rows = st.lists(st.tuples(st.integers(0, 5000), st.floats(allow_nan=False, allow_infinity=False, width=32)),
                      max_size=12, unique_by=lambda r: r[0])
garbage_row = st.one_of(
    st.lists(st.text(max_size=8), max_size=4).map(lambda r: ["?" + r[0], r[1]] if len(r) == 2 else r),
    st.tuples(st.integers(10_000, 20_000), st.text(max_size=8).filter(lambda t: not _is_float(t)))
    .map(lambda r: [str(BASE + np.timedelta64(60 * r[0], "s")), r[1]]),
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid=valid_rows, garbage=st.lists(garbage_row, max_size=8), seed=st.integers(0, 2**16))
def test_garbage_never_crashes_and_valid_rows_survive(valid, garbage, seed):
    rows = [[str(BASE + np.timedelta64(60 * k, "s")), repr(v)] for k, v in valid] + garbage
    np.random.default_rng(seed).shuffle(rows)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "series.csv"
        with open(source, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["timestamp", "value"])
            writer.writerows(rows)
        examples, rejects = Examples(Path(tmp) / "ex"), Rejects(Path(tmp) / "rj")
        try:
            metrics = ingest_timeseries.fn(examples=examples, rejects=rejects, source=str(source),
                                           split={"train": 1.0}, max_reject_fraction=1.0)
        except DataError as err:
            assert not valid, f"DataError although {len(valid)} rows were valid: {err}"
            return
        got = {}
        for split in examples.properties["splits"]:
            for chunk in iter_examples(examples, split):
                got.update(zip(chunk["timestamp"].tolist(), chunk["values"].tolist()))
        expected = {int((BASE + np.timedelta64(60 * k, "s")).astype(np.int64)): float(np.float32(v)) for k, v in valid}
        assert got == expected
        non_blank = [r for r in garbage if r]
        assert metrics["rows_rejected"] == len(non_blank)
        assert metrics["rows_read"] == len(valid) + len(non_blank)
        lines = [json.loads(x) for x in rejects.file("rejects.jsonl").read_text().splitlines()]
        assert len(lines) == len(non_blank) and all(r["line"] >= 2 for r in lines)


cell = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr), st.sampled_from(["", "NA"]),
                 st.text(alphabet="abc,\"' x\n", max_size=6))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.lists(cell, min_size=1, max_size=4), max_size=15),
       good=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=10))
def test_ingest_csv_garbage_never_crashes_and_every_row_is_kept_or_rejected(rows, good):
    """Rows of any width with numbers, missing markers, quotes, delimiters and newlines: ingest_csv either raises
    DataError or accounts for every row (written + rejected == read), and every well-formed row survives."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "t.csv"
        with open(source, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["a", "b"])
            writer.writerows([[repr(v), repr(v)] for v in good] + rows)
        examples, rejects = Examples(Path(tmp) / "ex"), Rejects(Path(tmp) / "rj")
        try:
            metrics = ingest_csv.fn(examples=examples, rejects=rejects, source=str(source), max_reject_fraction=1.0,
                                    column_types={"a": "float", "b": "float"})
        except DataError:
            return
        written = sum(v for k, v in metrics.items() if k.startswith("examples_"))
        assert written + metrics["rows_rejected"] == metrics["rows_read"]
        got = Counter(float(np.float32(ex["a"][0])) for s in examples.properties["splits"]
                      for ex in iter_examples(examples, s) if not np.isnan(ex["a"][0]))
        for v in good:
            assert got[float(np.float32(v))] >= 1

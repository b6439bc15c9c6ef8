"""ingest_timeseries in time buckets: the result does not depend on the bucket size, and no stage call holds more
than about ``bucket_rows`` rows of a series."""
import random

import numpy as np
import pytest

from edgepipe.components.data import ingest_timeseries, series_stages
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.components.data.series_stages import gap_summary, plan_series, weighted_median
from edgepipe.components.data.staging import read_columns, write_columns

T0 = np.datetime64("2024-01-01T00:00:00", "s")


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory):
    """Two series in one long table, rows shuffled: jittered 1-min steps, a 100-min hole, a stretch of 2-min steps,
    30 exact duplicate timestamps per series, ~1% labels."""
    rng = np.random.default_rng(5)
    lines = []
    for sid in ("s1", "s2"):
        minutes = np.concatenate([np.arange(0, 900), np.arange(1000, 1600), np.arange(1600, 2400, 2)])
        stamps = T0 + (minutes * 60 + rng.integers(0, 3, len(minutes)) * 20) * np.timedelta64(1, "s")
        for t in stamps:
            lines.append(f"{sid},{t},{rng.normal():.4f},{rng.normal():.4f},{int(rng.random() < 0.01)}")
        for t in rng.choice(stamps, 30, replace=False):
            lines.append(f"{sid},{t},{rng.normal():.4f},0.5,0")
    random.Random(0).shuffle(lines)
    path = tmp_path_factory.mktemp("shuffled") / "long.csv"
    path.write_text("sid,timestamp,a,b,lab\n" + "\n".join(lines) + "\n")
    return path


def _everything(out, rows):
    splits = out["examples"].splits
    return {split: {sid: {k: v.tolist() for k, v in cols.items()}
                    for sid, cols in rows(out["examples"], split).items()} for split in splits}


@pytest.mark.parametrize("options", [{}, {"resample": "1min"}, {"resample": "1min", "gaps": "interpolate"},
                                     {"gaps": "break", "chunk_size": 50}, {"resample": "2min", "gaps": "break"}],
                         ids=["plain", "resample", "interpolate", "break", "resample-break"])
def test_result_does_not_depend_on_bucket_size(tmp_path, run, rows, shuffled, options):
    params = dict(source=str(shuffled), series_column="sid", label_column="lab", split_bytes=20_000,
                  max_reject_fraction=0.05, **options)
    whole_metrics, whole = run(ingest_timeseries, tmp_path / "whole", bucket_rows=10**9, **params)
    cut_metrics, cut = run(ingest_timeseries, tmp_path / "cut", bucket_rows=97, **params)
    assert cut_metrics == whole_metrics and whole_metrics["rows_rejected"] == 60
    assert _everything(cut, rows) == _everything(whole, rows)
    assert (cut["rejects"].file("rejects.jsonl").read_text() == whole["rejects"].file("rejects.jsonl").read_text())
    # every step keeps its split and segment (where windows restart their stride)
    assert _step_segments(cut) == _step_segments(whole)
    assert not list((cut["examples"].path / "_staging").glob("*"))


def _step_segments(out):
    steps = {}
    for split in out["examples"].splits:
        for c in iter_examples(out["examples"], split):
            start, segment = int(c["start"][0]), int(c["segment"][0])
            for i in range(len(c["timestamp"])):
                steps[(c["series"], start + i)] = (split, segment)
    return steps


def test_no_stage_call_holds_more_than_about_bucket_rows(tmp_path, run, shuffled, monkeypatch):
    sizes = []
    real = series_stages.write_columns

    def spy(uri, columns):
        if uri.rsplit("/", 1)[-1].startswith("steps-"):
            sizes.append(len(columns["timestamp"]))
        return real(uri, columns)

    monkeypatch.setattr(series_stages, "write_columns", spy)
    metrics, _ = run(ingest_timeseries, tmp_path / "o", source=str(shuffled), series_column="sid",
                     label_column="lab", bucket_rows=200, split_bytes=20_000, max_reject_fraction=0.05)
    steps = sum(metrics[f"steps_{s}"] for s in ("train", "eval", "test"))
    assert sum(sizes) == steps and len(sizes) >= steps // 200
    assert max(sizes) <= 1.25 * 200


def test_weighted_median_equals_numpy_median():
    rng = np.random.default_rng(0)
    for _ in range(200):
        values = rng.integers(-5, 50, rng.integers(1, 8))
        counts = rng.integers(1, 6, len(values))
        assert weighted_median(values, counts) == np.median(np.repeat(values, counts))


def test_gap_summary_counts_and_last_positions():
    stamps = np.array([0, 10, 20, 50, 60, 90, 100])
    summary = gap_summary(stamps)
    assert summary == {"delta": [10, 30], "count": [4, 2], "last_step": [6, 5]}


def test_plan_series_carries_breaks_and_offsets_across_buckets():
    def report(index, stamps):
        stamps = np.asarray(stamps)
        row = lambda i: {"timestamp": int(stamps[i]), "values": [0.0], "label": 0}  # noqa: E731
        return {"series": "s", "index": index, "uri": f"u{index}", "rows": len(stamps), "first": row(0),
                "last": row(-1), "gaps": gap_summary(stamps)}

    # steps of 10 s; a 100 s hole inside bucket 0 (before step 3) and one between bucket 1 and 2
    tasks, total, counters = plan_series([report(2, [400, 410]), report(0, [0, 10, 20, 120, 130]),
                                          report(1, [140, 150])], None, "break")
    assert total == 9 and counters["gaps"] == 2
    assert [(t["offset"], t["steps"], t["segment"]) for t in tasks] == [(0, 5, 0), (5, 2, 3), (7, 2, 7)]
    tasks, total, counters = plan_series([report(0, [0, 10]), report(1, [50, 60])], 10, "interpolate")
    assert total == 7 and counters == {"gaps": 1, "steps_interpolated": 3}
    assert tasks[1]["previous"]["timestamp"] == 10 and tasks[1]["steps"] == 5


def test_column_files_read_row_slices(tmp_path):
    values = np.arange(30, dtype=np.float64).reshape(10, 3)
    write_columns(str(tmp_path / "x.col"), {"t": np.arange(10), "v": values, "l": np.ones(10, np.int8)})
    part = read_columns(str(tmp_path / "x.col"), ["v", "l"], rows=(3, 7))
    np.testing.assert_array_equal(part["v"], values[3:7])
    assert set(part) == {"v", "l"} and part["l"].dtype == np.int8
    assert read_columns(str(tmp_path / "x.col"), rows=(8, 20))["t"].tolist() == [8, 9]


def test_a_range_whose_rows_are_all_rejected_is_skipped(tmp_path, run):
    """Found by the property test: the exact parser emits an empty block for a range with no valid row."""
    stamps = T0 + np.arange(200) * np.timedelta64(60, "s")
    good = "".join(f"{t},{i}.5\n" for i, t in enumerate(stamps))
    bad = "".join(f"{t},oops\n" for t in stamps[:50])
    (tmp_path / "s.csv").write_text("timestamp,v\n" + good + bad)
    metrics, out = run(ingest_timeseries, tmp_path / "o", source=str(tmp_path / "s.csv"), split={"train": 1.0},
                       split_bytes=len("timestamp,v\n" + good) - 1, max_reject_fraction=0.5)  # 2nd range: bad rows only
    assert metrics["rows_rejected"] == 50 and metrics["steps_train"] == 200

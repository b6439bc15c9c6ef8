"""ingest_timeseries: exact rejects, whole-input errors, time split without leakage, labels (column and NAB)."""
import json
from pathlib import Path

import numpy as np
import pytest

from edgepipe.components.data import ingest_timeseries
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.pipeline.errors import DataError

NAB = Path(__file__).resolve().parents[3] / "../shared/datasets/nab"

BAD_CSV = """timestamp,vibration,current
2024-01-01 00:00:00,1.0,2.0
2024-01-01T00:10:00,abc,2.0
2024-01-01 00:20:00,1.0
2024-01-01 00:30:00,,2.0
2024-01-01 00:40:00,nan,2.0
2024-01-01 00:50:00,1.0,inf
not-a-date,1.0,2.0
2024-01-01 00:00:00,9.0,9.0
2024-01-01 01:00:00,1.0,2.0,3.0
2024-01-01 01:10:00,3.0,4.0

2024-01-01 00:05:00,5.0,6.0
"""

EXPECTED_REJECTS = [
    (3, "not a number in column 'vibration': 'abc'"),
    (4, "missing field: expected 3 fields, got 2"),
    (5, "missing value in column 'vibration'"),
    (6, "non-finite value in column 'vibration': 'nan'"),
    (7, "non-finite value in column 'current': 'inf'"),
    (8, "unparsable timestamp in column 'timestamp': 'not-a-date'"),
    (9, "duplicate timestamp 2024-01-01T00:00:00 in series 'bad' (first at line 2)"),
    (10, "too many fields: expected 3 fields, got 4"),
]


def _epoch(text):
    return int(np.datetime64(text, "s").astype(np.int64))


def test_each_kind_of_bad_row_is_rejected_with_its_line_and_no_valid_row_is_lost(tmp_path, run, rows):
    source = tmp_path / "bad.csv"
    source.write_text(BAD_CSV)
    metrics, out = run(ingest_timeseries, tmp_path / "out", source=str(source), split={"train": 1.0},
                       max_reject_fraction=1.0)
    records = [json.loads(line) for line in out["rejects"].file("rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in records] == EXPECTED_REJECTS
    assert {r["file"] for r in records} == {str(source)}
    assert metrics == {"rows_read": 11, "rows_rejected": 8, "series": 1, "steps_train": 3}
    got = rows(out["examples"], "train")["bad"]
    assert got["timestamp"].tolist() == [_epoch("2024-01-01T00:00"), _epoch("2024-01-01T00:05"),
                                         _epoch("2024-01-01T01:10")]
    np.testing.assert_array_equal(got["values"], [[1.0, 2.0], [5.0, 6.0], [3.0, 4.0]])
    np.testing.assert_array_equal(got["label"], [0, 0, 0])
    props = out["examples"].properties
    assert props["channels"] == ["vibration", "current"] and props["kind"] == "timeseries_chunks"
    assert props["has_labels"] is False and props["splits"] == ["train"]
    assert props["feature_spec"]["values"] == {"dtype": "float32", "shape": None}


def test_too_many_rejects_is_one_data_error_naming_count_fraction_and_first(tmp_path, run):
    source = tmp_path / "bad.csv"
    source.write_text(BAD_CSV)
    with pytest.raises(DataError) as err:
        run(ingest_timeseries, tmp_path / "out", source=str(source), split={"train": 1.0})
    message = str(err.value)
    assert "\n" not in message
    assert "8 of 11 rows rejected (72.73%" in message
    assert f"{source}:3: not a number in column 'vibration'" in message


@pytest.mark.parametrize("case", ["missing", "empty", "header_only", "no_match", "missing_column"])
def test_unusable_input_is_a_data_error_naming_the_path(tmp_path, run, case):
    target = tmp_path / "in.csv"
    if case == "empty":
        target.write_text("")
    elif case == "header_only":
        target.write_text("timestamp,value\n\n")
    elif case == "missing_column":
        target.write_text("time,value\n2024-01-01,1\n")
    source = str(tmp_path / "nothing-*.csv") if case == "no_match" else str(target)
    with pytest.raises(DataError, match="timestamp" if case == "missing_column" else None) as err:
        run(ingest_timeseries, tmp_path / "out", source=source)
    assert source in str(err.value)


def _multi_series_csv(path, lengths, rng):
    lines = []
    for sid, n in lengths.items():
        stamps = np.datetime64("2024-03-01T00:00") + np.arange(n) * np.timedelta64(5, "m")
        for i, ts in enumerate(stamps):
            lines.append(f"{ts},{sid},{i + 0.25},{rng.normal():.6f},{int(i % 7 == 0)}")
    rng.shuffle(lines)
    path.write_text("timestamp,machine,a,b,anomaly\n" + "\n".join(lines) + "\n")


def test_time_split_per_series_has_no_leakage_and_keeps_every_row(tmp_path, run, rows):
    lengths = {"s1": 100, "s2": 57}
    _multi_series_csv(tmp_path / "multi.csv", lengths, np.random.default_rng(0))
    metrics, out = run(ingest_timeseries, tmp_path / "out", source=str(tmp_path / "multi.csv"),
                       series_column="machine", label_column="anomaly", chunk_size=16)
    ex = out["examples"]
    assert ex.properties["channels"] == ["a", "b"] and ex.properties["has_labels"] is True
    per_split = {s: rows(ex, s) for s in ("train", "eval", "test")}
    for sid, n in lengths.items():
        parts = [per_split[s][sid] for s in ("train", "eval", "test")]
        assert parts[0]["timestamp"].max() < parts[1]["timestamp"].min()
        assert parts[1]["timestamp"].max() < parts[2]["timestamp"].min()
        assert [len(p["timestamp"]) for p in parts] == [round(0.6 * n), round(0.8 * n) - round(0.6 * n),
                                                       n - round(0.8 * n)]
        start = np.concatenate([p["start"] for p in parts])
        np.testing.assert_array_equal(start, np.arange(n))  # step index within the series, across splits
        values = np.concatenate([p["values"] for p in parts])
        np.testing.assert_array_equal(values[:, 0], np.arange(n) + 0.25)  # sorted back into time order
        np.testing.assert_array_equal(np.concatenate([p["label"] for p in parts]), (np.arange(n) % 7 == 0))
    assert metrics["steps_train"] + metrics["steps_eval"] + metrics["steps_test"] == sum(lengths.values())
    assert max(len(c["timestamp"]) for c in iter_examples(ex, "train")) == 16


def test_glob_gives_one_series_per_file_and_tf_can_parse_the_chunks(tmp_path, run):
    for name, offset in (("pump", 0.0), ("fan", 100.0)):
        stamps = np.datetime64("2024-01-01T00:00") + np.arange(20) * np.timedelta64(1, "h")
        (tmp_path / f"{name}.csv").write_text(
            "timestamp,value\n" + "".join(f"{t},{offset + i}\n" for i, t in enumerate(stamps)))
    metrics, out = run(ingest_timeseries, tmp_path / "out", source=str(tmp_path / "*.csv"), split={"train": 1.0})
    assert metrics["series"] == 2 and metrics["steps_train"] == 40
    parsed = list(out["examples"].dataset("train"))
    by_series = {p["series"].numpy().decode(): p["values"].values.numpy() for p in parsed}
    np.testing.assert_array_equal(by_series["fan"], 100.0 + np.arange(20))
    np.testing.assert_array_equal(by_series["pump"], np.arange(20.0))


@pytest.mark.skipif(not (NAB / "artificialWithAnomaly/art_daily_jumpsup.csv").exists(), reason="NAB not present")
def test_nab_labels_follow_combined_windows(tmp_path, run, rows):
    metrics, out = run(ingest_timeseries, tmp_path / "out",
                       source=str(NAB / "artificialWithAnomaly/art_daily_jumpsup.csv"),
                       labels_json=str(NAB / "labels/combined_windows.json"),
                       labels_key="artificialWithAnomaly/art_daily_jumpsup.csv")
    assert metrics["rows_read"] == 4032 and metrics["rows_rejected"] == 0
    parts = [rows(out["examples"], s)["art_daily_jumpsup"] for s in ("train", "eval", "test")]
    stamps = np.concatenate([p["timestamp"] for p in parts])
    labels = np.concatenate([p["label"] for p in parts])
    labelled = stamps[labels == 1]
    assert labelled.min() == _epoch("2014-04-10T16:15") and labelled.max() == _epoch("2014-04-12T01:45")
    assert len(labelled) == (labelled.max() - labelled.min()) // 300 + 1  # every 5-minute step in between
    assert out["examples"].properties["has_labels"] is True


@pytest.mark.skipif(not (NAB / "labels/combined_windows.json").exists(), reason="NAB not present")
def test_unknown_labels_key_is_a_data_error(tmp_path, run):
    (tmp_path / "s.csv").write_text("timestamp,value\n2024-01-01 00:00:00,1\n")
    with pytest.raises(DataError, match="no entry 'nope.csv'"):
        run(ingest_timeseries, tmp_path / "out", source=str(tmp_path / "s.csv"),
            labels_json=str(NAB / "labels/combined_windows.json"), labels_key="nope.csv")


@pytest.mark.skipif(not (NAB / "labels/combined_windows.json").exists(), reason="NAB not present")
def test_nab_glob_without_labels_key_matches_entries_by_file_name(tmp_path, run, rows):
    metrics, out = run(ingest_timeseries, tmp_path / "out",
                       source=str(NAB / "artificialWithAnomaly/art_daily_jumps*.csv"),
                       labels_json=str(NAB / "labels/combined_windows.json"), split={"train": 0.5, "rest": 0.5})
    assert metrics["series"] == 2
    positives = {split: {sid: int(part["label"].sum()) for sid, part in rows(out["examples"], split).items()}
                 for split in ("train", "rest")}
    assert positives == {"train": {"art_daily_jumpsup": 0, "art_daily_jumpsdown": 0},
                         "rest": {"art_daily_jumpsup": 403, "art_daily_jumpsdown": 403}}  # 33.5 h of 5-min steps


def test_gzipped_csv_reads_like_plain(tmp_path, run, rows):
    import gzip

    with gzip.open(tmp_path / "z.csv.gz", "wt") as handle:
        handle.write("timestamp,v\n2024-01-01 00:00:00,1.5\n2024-01-01 00:01:00,2.5\n2024-01-01 00:02:00,x\n")
    metrics, out = run(ingest_timeseries, tmp_path / "out", source=str(tmp_path / "z.csv.gz"), split={"train": 1.0},
                       max_reject_fraction=0.5)
    assert metrics["rows_rejected"] == 1
    np.testing.assert_array_equal(rows(out["examples"], "train")["z"]["values"][:, 0], [1.5, 2.5])

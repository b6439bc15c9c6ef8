"""``edgepipe predict`` refuses what would give wrong answers or destroy the user's files, in one line with an exit
code (QA findings F1, F2, F4, F10, F11), on real inputs: the embedded sensors CSV, NAB series and taxi rows.

* F1/F4: ``--output`` that is the input, inside the bundle, or a directory: exit 2, nothing written;
* F2: series rows out of time order or with an unparsable timestamp: exit 3 naming file:line, with ingest's
  reasons; a repeated timestamp (8 of NAB's series have one) is scored in file order with one warning line, and
  interleaved series (each in time order) are read as such;
* F10: the error names what is really wrong (a directory, a missing bundle, a file that is no .npz) and suggests
  only inputs the bundle takes;
* F11: a table value beyond float32 is refused like other bad values; NaN stays missing, as a blank does;
  "N rows written" counts rows, not the skew report.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgepipe.runtime import Bundle, InputError, UsageError
from edgepipe.runtime.cli import main
from edgepipe.runtime.inputs import parse_body, read_input
from edgepipe.runtime.rejects import SeriesOrder, epoch_seconds
from edgepipe.runtime.tasks import TASKS
from tests.runtime.fixtures import REPO, SENSORS, default_run, taxi_head
from tests.runtime.test_tasks import StubRunner, vector_doc

NAB = REPO.parent / "shared" / "datasets" / "nab"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return default_run(tmp_path_factory)


@pytest.fixture(scope="module")
def sensor_rows():
    """Header and the first 150 rows of machines m1 and m2 of the embedded CSV (machine, timestamp, channels...)."""
    with SENSORS.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    return header, [r for r in rows if r[0] == "m1"][:150], [r for r in rows if r[0] == "m2"][:150]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def predict(*args, capsys):
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str) -> str:
    assert err.startswith("edgepipe: error: ") and err.count("\n") == 1, err
    return err


# ---- F1 / F4: --output ---------------------------------------------------------------------------------------
def test_output_that_is_the_input_or_inside_the_bundle_is_refused_and_nothing_is_written(run, sensor_rows, tmp_path,
                                                                                        capsys):
    header, m1, _ = sensor_rows
    source = write_csv(tmp_path / "m1.csv", header, m1)
    before = source.read_bytes()
    bundle = tmp_path / "bundle"
    shutil.copytree(run.bundle, bundle)
    meta = (bundle / "bundle.json").read_bytes()
    (tmp_path / "link.csv").symlink_to(source)
    cases = [(source, "is the input file"), (tmp_path / "sub" / ".." / "m1.csv", "is the input file"),
             (tmp_path / "link.csv", "is the input file"), (bundle / "bundle.json", "is inside the bundle directory"),
             (bundle / "model.tflite", "is inside the bundle directory"),
             (bundle / "predictions.jsonl", "is inside the bundle directory")]
    (tmp_path / "sub").mkdir()
    for output, message in cases:
        code, out, err = predict(bundle, source, "--output", output, capsys=capsys)
        assert code == 2 and out == "" and f"--output {output} {message}" in one_error(err)
    assert source.read_bytes() == before and (bundle / "bundle.json").read_bytes() == meta
    assert not (bundle / "predictions.jsonl").exists() and not list(tmp_path.rglob("*.partial"))
    assert Bundle.load(bundle).task == "anomaly_detection"  # still loads


def test_empty_output_is_refused_not_read_as_stdout(run, sensor_rows, tmp_path, capsys):
    header, m1, _ = sensor_rows
    code, out, err = predict(run.bundle, write_csv(tmp_path / "m1.csv", header, m1), "--output", "", capsys=capsys)
    assert code == 2 and out == "" and "--output is empty" in one_error(err)


def test_output_that_is_a_directory_is_named_as_given(run, sensor_rows, tmp_path, capsys):
    header, m1, _ = sensor_rows
    source = write_csv(tmp_path / "m1.csv", header, m1)
    (tmp_path / "adir").mkdir()
    code, _, err = predict(run.bundle, source, "--output", tmp_path / "adir", capsys=capsys)
    assert code == 2 and one_error(err) == f"edgepipe: error: --output {tmp_path / 'adir'} is a directory\n"
    assert list((tmp_path / "adir").iterdir()) == [] and not list(tmp_path.glob("*.partial"))


# ---- F2: time order --------------------------------------------------------------------------------------------
def _modified(sensor_rows, change: str) -> tuple[list[str], list[list[str]]]:
    header, m1, m2 = sensor_rows
    rows = [list(r) for r in m1]
    if change == "reversed":
        rows.reverse()
    elif change == "duplicate":
        rows[-1][1] = rows[0][1]
    elif change == "unparsable":
        rows[48][1] = "notadate"
    elif change == "blank":
        rows[10][1] = ""
    elif change == "reappears":
        rows = rows[:100] + [list(r) for r in m2] + rows[100:]
    return header, rows


@pytest.mark.parametrize("change, message", [
    ("reversed", r"m1\.csv:3: timestamp '2024-01-02T00:40:00' in series 'm1' is earlier than "
                 r"'2024-01-02T00:50:00' at line 2: rows must be in time order"),
    ("unparsable", r"m1\.csv:50: unparsable timestamp in column 'timestamp': 'notadate'"),
    ("blank", r"m1\.csv:12: missing value in column 'timestamp'"),
])
def test_series_rows_out_of_time_order_are_refused_with_file_and_line(run, sensor_rows, tmp_path, capsys, change,
                                                                      message):
    header, rows = _modified(sensor_rows, change)
    source = write_csv(tmp_path / "m1.csv", header, rows)
    code, out, err = predict(run.bundle, source, "--series-column", "machine", capsys=capsys)
    assert code == 3 and out == ""
    assert re.search(message, one_error(err)), err


def test_a_given_timestamp_column_is_checked_and_a_sorted_one_passes(run, sensor_rows, tmp_path, capsys):
    header, rows = _modified(sensor_rows, "reversed")
    header = ["machine", "when", *header[2:]]
    source = write_csv(tmp_path / "m1.csv", header, rows)
    code, _, err = predict(run.bundle, source, "--timestamp-column", "when", capsys=capsys)
    assert code == 3 and "rows must be in time order" in one_error(err)
    code, out, err = predict(run.bundle, source, capsys=capsys)  # no timestamp column: order is the file's
    assert code == 0, err
    header, rows = _modified(sensor_rows, "none")
    rows = rows[:144]
    for step, row in enumerate(rows):  # the same instants written with a UTC offset: read, and still in order
        row[1] = f"2024-01-01T{step // 6:02d}:{step % 6 * 10:02d}:00+00:00"
    code, out, err = predict(run.bundle, write_csv(tmp_path / "z.csv", ["machine", "when", *header[2:]], rows),
                             "--timestamp-column", "when", "--level", "step", capsys=capsys)
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["timestamp"] == "2024-01-01T00:00:00+00:00"


def test_a_repeated_timestamp_is_scored_in_file_order_with_one_warning(run, sensor_rows, tmp_path, capsys):
    header, rows = _modified(sensor_rows, "duplicate")
    source = write_csv(tmp_path / "m1.csv", header, rows)
    code, out, err = predict(run.bundle, source, "--series-column", "machine", "--level", "step", capsys=capsys)
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("edgepipe: warning: ")]
    assert warning == [f"edgepipe: warning: {source}:151: timestamp '2024-01-01T00:00:00' in series 'm1' repeats "
                       "line 2: scored in file order; the pipeline's ingest drops such rows"]
    assert len(out.splitlines()) == len(rows)  # every row scored, the repeated one included


def test_interleaved_series_each_in_time_order_are_read_as_series(run, sensor_rows, tmp_path, capsys):
    header, m1, m2 = sensor_rows
    mixed = [row for pair in zip(m1, m2) for row in pair]  # a long-format log: m1, m2, m1, m2 ...
    code, out, err = predict(run.bundle, write_csv(tmp_path / "mixed.csv", header, mixed), "--series-column",
                             "machine", "--level", "step", capsys=capsys)
    assert code == 0 and "warning" not in err, err
    split, _ = predict(run.bundle, write_csv(tmp_path / "split.csv", header, [*m1, *m2]), "--series-column",
                       "machine", "--level", "step", capsys=capsys), None
    assert split[0] == 0 and sorted(out.splitlines()) == sorted(split[1].splitlines())
    header, rows = _modified(sensor_rows, "reappears")  # m1 continues after m2, its last 50 rows reversed: refused
    rows = rows[:250] + rows[250:][::-1]
    code, _, err = predict(run.bundle, write_csv(tmp_path / "m1.csv", header, rows), "--series-column", "machine",
                           capsys=capsys)
    assert code == 3 and "rows must be in time order" in one_error(err)


def order_warning(path: Path) -> str | None:
    """Every row of ``path`` through SeriesOrder as one series (no series column); the warning it ends with."""
    order = SeriesOrder(path, "timestamp", None)
    with path.open(newline="") as f:
        reader = csv.reader(f)
        column = next(reader).index("timestamp")
        for row in reader:
            order.add(path.stem, row[column], reader.line_num)
    return order.warning()


def test_real_nab_series_with_a_repeated_timestamp_warns_and_a_clean_one_passes():
    if not NAB.is_dir():
        pytest.skip(f"NAB not found at {NAB}")
    check = order_warning

    assert check(NAB / "artificialNoAnomaly" / "art_daily_no_noise.csv") is None
    # the file as published repeats 03:00 at the 2014 DST change; ingest drops that row as a duplicate
    path = NAB / "realAWSCloudwatch" / "ec2_network_in_5abac7.csv"
    assert check(path) == (f"{path}:2120: timestamp '2014-03-09 03:00:00' repeats line 2119 (and 10 more row(s) "
                           "repeat an earlier timestamp): scored in file order; the pipeline's ingest drops such rows")


def test_timestamps_are_read_as_ingest_reads_them():
    base = epoch_seconds("2014-04-01 00:00:00")
    assert base == 1396310400
    assert [epoch_seconds(s) for s in ("2014-04-01T00:00:00", "2014-04-01T02:00:00+02:00", "2014-04-01T00:00:00Z",
                                       "2014-04-01", "2014-04-01T00:00:00.5")] == [base] * 5
    assert [epoch_seconds(s) for s in ("", "now", "today", "2014", "notadate", "2014-13-01 00:00:00")] == [None] * 6


# ---- F10: messages ---------------------------------------------------------------------------------------------
def test_messages_name_what_is_wrong(run, sensor_rows, tmp_path, capsys):
    code, _, err = predict(run.bundle, tmp_path, capsys=capsys)
    assert code == 3 and f"{tmp_path}: is a directory, not an input file" in one_error(err)
    code, _, err = predict(tmp_path / "nobundle", SENSORS, capsys=capsys)
    assert code == 2 and f"{tmp_path / 'nobundle'}: does not exist" in one_error(err)
    code, _, err = predict(SENSORS, SENSORS, capsys=capsys)
    assert code == 2 and "not a bundle directory (a file)" in one_error(err)
    (tmp_path / "g.npz").write_text("machine,timestamp\n")
    code, _, err = predict(run.bundle, tmp_path / "g.npz", capsys=capsys)
    assert code == 3 and "g.npz: not a NumPy .npz archive (no zip header)" in one_error(err)
    np.save(tmp_path / "a.npy", np.zeros((40, 3)))
    shutil.copy(tmp_path / "a.npy", tmp_path / "a.npz")
    code, _, err = predict(run.bundle, tmp_path / "a.npz", capsys=capsys)
    assert code == 3 and "a single .npy array" in one_error(err)


# ---- F10 / F11: a transformed table bundle (taxi columns; a stub model, the runtime's own transform) -----------------
TABLE_FEATURES = ["fare", "trip_miles", "payment_type=Cash", "payment_type=Credit Card", "payment_type#oov"]
TABLE = {"kind": "table", "features": TABLE_FEATURES, "columns": ["fare", "trip_miles", "payment_type"],
         "transform": {"numeric": "zscore", "categorical": "onehot", "impute": "mean", "clip": 5.0,
                       "outputs": TABLE_FEATURES,
                       "features": {"fare": {"kind": "numeric", "center": 12.0, "scale": 10.0, "fill": 12.0},
                                    "trip_miles": {"kind": "numeric", "center": 3.0, "scale": 2.0, "fill": 3.0},
                                    "payment_type": {"kind": "categorical", "encoding": "onehot",
                                                     "vocab": ["Cash", "Credit Card"], "oov_index": 2}}}}


@pytest.fixture
def table_task():
    doc = vector_doc("regression", features=len(TABLE_FEATURES), outputs=1, preprocessing=TABLE)
    return TASKS["regression"](doc, doc["models"]["main"], StubRunner((len(TABLE_FEATURES),), np.ones((5, 1))))


@pytest.fixture
def taxi_rows():
    return taxi_head()


def test_table_bundle_suggests_only_what_it_takes(table_task, tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "g.png")
    with pytest.raises(UsageError) as info:
        read_input(tmp_path / "g.png", table_task)
    assert "takes rows input, not images" in str(info.value) and "series" not in str(info.value)
    (tmp_path / "s.json").write_text(json.dumps({"series": [[1.0]]}))
    with pytest.raises(InputError, match=rf"^{tmp_path / 's.json'}: unknown key\(s\) series"):
        read_input(tmp_path / "s.json", table_task)


@pytest.mark.parametrize("cell, message", [("1e39", "'1e39' is out of float32 range"),
                                           ("-inf", "non-finite value '-inf'")])
def test_table_value_beyond_float32_is_refused_naming_row_and_column(table_task, taxi_rows, tmp_path, cell, message):
    header, rows = taxi_rows
    rows[5][header.index("fare")] = cell
    with pytest.raises(InputError, match=rf"rows\.csv:7: column 'fare': {message}"):
        read_input(write_csv(tmp_path / "rows.csv", header, rows), table_task)
    body = {"rows": [{"fare": float(cell)} if i == 5 else {"fare": 1.0} for i in range(8)]}
    with pytest.raises(InputError, match=r"rows\[5\]\.fare: (1e\+39 is out|non-finite value -Infinity)"):
        parse_body(body, table_task)
    with pytest.raises(InputError, match=r"rows\[0\]\.trip_miles: an integer of 400 digits is out of float32"):
        parse_body({"rows": [{"trip_miles": 10 ** 399}]}, table_task)


def test_table_nan_is_missing_like_a_blank_in_csv_and_json(table_task, taxi_rows, tmp_path):
    header, rows = taxi_rows
    results = []
    for cell in ("", "NaN", "nan"):
        rows[5][header.index("fare")] = cell
        [(_, kind, columns, _)] = read_input(write_csv(tmp_path / "rows.csv", header, rows), table_task)
        results.append(table_task.predict(columns, kind))
    kind, columns = parse_body({"rows": [{"fare": float("nan")}, {"fare": None}, {"fare": 12.0}]}, table_task)
    x = table_task.predict(columns, kind)
    assert x.skew["columns"]["fare"]["missing"] == 2 and x.values[0] == x.values[1]
    assert all(r.skew["columns"]["fare"]["missing"] == 1 for r in results)
    np.testing.assert_array_equal(results[0].values, results[1].values)
    np.testing.assert_array_equal(results[0].values, results[2].values)


def test_rows_written_counts_rows_not_the_skew_report(table_task, taxi_rows, tmp_path, capsys, monkeypatch):
    bundle = Bundle(tmp_path, vector_doc("regression"), "main", table_task)
    monkeypatch.setattr(Bundle, "load", classmethod(lambda cls, *args, **kwargs: bundle))
    header, rows = taxi_rows
    source = write_csv(tmp_path / "rows.csv", header, rows)
    code, out, err = predict(tmp_path, source, capsys=capsys)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(records) == 41 and "skew" in records[-1]
    assert "1 inputs (stub.tflite); 40 rows written" in err
    code, out, err = predict(tmp_path, source, "--format", "csv", capsys=capsys)
    assert code == 0 and len(out.splitlines()) == 41 and "40 rows written" in err


def test_an_input_error_names_the_file_once(table_task, tmp_path, capsys, monkeypatch):
    """A one-part input (a JSON body) is named by its file only; the part name (here the stem 'rows') was repeated."""
    bundle = Bundle(tmp_path, vector_doc("regression"), "main", table_task)
    monkeypatch.setattr(Bundle, "load", classmethod(lambda cls, *args, **kwargs: bundle))
    source = tmp_path / "rows.json"
    source.write_text(json.dumps({"rows": [{"not_a_column": 1}]}))
    code, _, err = predict(tmp_path, source, capsys=capsys)
    assert code == 3 and one_error(err).startswith(f"edgepipe: error: {source}: rows: none of the bundle's columns")


def test_many_repeated_timestamps_without_a_series_column_hint_at_one():
    """The embedded CSV holds three machines; read as one series, two thirds of its timestamps repeat."""
    assert order_warning(SENSORS).endswith("; several series in one file? name their column with --series-column")

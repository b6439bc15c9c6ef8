"""``edgepipe predict`` / ``python -m edgepipe.runtime``: inputs, outputs, one-line errors and exit codes."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from edgepipe.runtime import Bundle
from edgepipe.runtime.cli import main
from tests.runtime.fixtures import REPO, SENSORS, default_run, raw_series


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return default_run(tmp_path_factory)


@pytest.fixture(scope="module")
def sensors_head(tmp_path_factory):
    """The first 150 rows of each machine of the embedded CSV (its header: machine, timestamp, channels, anomaly)."""
    path = tmp_path_factory.mktemp("inputs") / "head.csv"
    with SENSORS.open(newline="") as src, path.open("w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        header = next(reader)
        writer.writerow(header)
        counts: dict[str, int] = {}
        for row in reader:
            counts[row[0]] = counts.get(row[0], 0) + 1
            if counts[row[0]] <= 150:
                writer.writerow(row)
    return path


def predict(*args, capsys):
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_in_jsonl_out_per_window_per_series(run, sensors_head, capsys):
    code, out, err = predict(run.bundle, sensors_head, "--series-column", "machine", capsys=capsys)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    by_series = {s: [r for r in records if r["series"] == s] for s in ("m1", "m2", "m3")}
    assert [len(v) for v in by_series.values()] == [30, 30, 30]  # (150 - 32) // 4 + 1
    expected = Bundle.load(run.bundle).predict(raw_series("m2")[:150])
    assert [r["score"] for r in by_series["m2"]] == expected.window_score.tolist()
    first = by_series["m1"][0]
    assert first == {"series": "m1", "start_time": "2024-01-01T00:00:00", "start": 0, "end": 32,
                     "score": first["score"], "anomaly": first["anomaly"], "likelihood": first["likelihood"],
                     "alert": first["alert"]}
    assert [r["likelihood"] for r in by_series["m2"]] == expected.window_likelihood.tolist()
    assert "3 series, 90 windows" in err and err.count("\n") == 1


def test_step_level_csv_output_file(run, sensors_head, tmp_path, capsys):
    out_file = tmp_path / "steps.csv"
    mine = tmp_path / "steps.csv.partial"  # a file of the user's that happens to have the obvious temporary name
    mine.write_text("keep me")
    code, out, err = predict(run.bundle, sensors_head, "--series-column", "machine", "--level", "step",
                             "--output", out_file, capsys=capsys)
    assert mine.read_text() == "keep me"
    mine.unlink()
    assert code == 0 and out == "", err
    rows = list(csv.DictReader(out_file.open()))
    assert len(rows) == 450 and list(rows[0]) == ["series", "timestamp", "step", "score", "anomaly", "likelihood",
                                            "alert"]
    m1 = [r for r in rows if r["series"] == "m1"]
    expected = Bundle.load(run.bundle).predict(raw_series("m1")[:150])
    assert [float(r["score"]) if r["score"] else None for r in m1[:148]] == expected.step_score[:148].tolist()
    assert [r["score"] for r in m1[148:]] == ["", ""]  # 150 = 32 + 29*4 + 2: the last two steps are uncovered
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*"))


def test_alert_level_lists_the_alert_events_with_timestamps(run, sensors_head, tmp_path, capsys):
    out_file = tmp_path / "alerts.csv"
    code, out, err = predict(run.bundle, SENSORS, "--series-column", "machine", "--level", "alert",
                             "--alert-threshold", "0.999", "--refractory", "10", "--output", out_file, capsys=capsys)
    assert code == 0, err
    rows = list(csv.DictReader(out_file.open()))
    expected = Bundle.load(run.bundle).predict(raw_series("m1"), threshold=0.999, refractory=10).alerts()
    m1 = [r for r in rows if r["series"] == "m1"]
    assert [int(r["step"]) for r in m1] == [a["step"] for a in expected] and expected
    assert list(rows[0]) == ["series", "timestamp", "step", "start", "end", "likelihood", "score"]
    assert f"{len(rows)} alerts" in err
    with pytest.raises(SystemExit):
        main(["predict", str(run.bundle), str(sensors_head), "--alert-threshold", "2"])
    assert "must be in (0, 1], got 2.0" in capsys.readouterr().err


def test_npz_windows_and_series(run, tmp_path, capsys):
    series = raw_series("m3")[:64]
    np.savez(tmp_path / "in.npz", a=series, b=series[:40])
    code, out, _ = predict(run.bundle, tmp_path / "in.npz", capsys=capsys)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["series"] for r in records] == ["a"] * 9 + ["b"] * 3
    np.savez(tmp_path / "w.npz", windows=np.stack([series[:32], series[4:36]]))
    code, out, _ = predict(run.bundle, tmp_path / "w.npz", "--format", "csv", capsys=capsys)
    rows = list(csv.DictReader(out.splitlines()))
    assert code == 0 and [float(r["score"]) for r in rows] == [records[0]["score"], records[1]["score"]]
    assert [r["window"] for r in rows] == ["0", "1"] and "start" not in rows[0]


def test_object_arrays_in_npz_are_refused_without_unpickling(run, tmp_path, capsys):
    np.savez(tmp_path / "evil.npz", series=np.array([{"a": 1}], dtype=object))
    code, _, err = predict(run.bundle, tmp_path / "evil.npz", capsys=capsys)
    assert code == 3 and "unreadable NPZ" in err


@pytest.mark.parametrize("content, code, message", [
    ("machine,vibration,temperature\nm1,1,2\n", 3, r"missing column\(s\) current"),
    ("vibration,temperature,current\n1,2,3\n1,x,3\n", 3, r"bad\.csv:3: column 'temperature': not a number: 'x'"),
    ("vibration,temperature,current\n1,,3\n", 3, r"bad\.csv:2: column 'temperature': missing value"),
    ("vibration,temperature,current\n" + "1,2,3\n" * 10, 3, r"bad\.csv: series: 10 steps, fewer than one window"),
    ("vibration,temperature,current\n", 3, r"no data rows"),
])
def test_bad_csv_is_one_line_with_exit_3(run, tmp_path, capsys, content, code, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    got, out, err = predict(run.bundle, path, capsys=capsys)
    assert got == code and out == ""
    assert err.startswith("edgepipe: error: ") and err.count("\n") == 1
    assert re.search(message, err), err


def test_wrong_bundle_image_input_and_missing_file(run, tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    code, _, err = predict(run.bundle, tmp_path / "photo.png", capsys=capsys)
    assert code == 2 and "task 'anomaly_detection' takes series or windows input, not images" in err
    code, _, err = predict(tmp_path, tmp_path / "photo.png", capsys=capsys)
    assert code == 2 and "no bundle.json" in err
    code, _, err = predict(run.bundle, tmp_path / "absent.csv", capsys=capsys)
    assert code == 3 and "no such input file" in err


def test_edgepipe_predict_is_registered_and_runs_without_tensorflow(run, sensors_head):
    script = ("import sys; from edgepipe.pipeline.cli import main; code = main(sys.argv[1:]); "
              "bad = [m for m in sys.modules if m.startswith(('tensorflow', 'apache_beam', 'tf_keras'))]; "
              "print('LOADED', bad, file=sys.stderr); sys.exit(code or (9 if bad else 0))")
    result = subprocess.run([sys.executable, "-c", script, "predict", str(run.bundle), str(sensors_head),
                             "--series-column", "machine", "--format", "csv"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "series,start_time,start,end,score,anomaly,likelihood,alert"
    assert "LOADED []" in result.stderr


def test_runtime_module_entry_point_usage_and_info(run):
    usage = subprocess.run([sys.executable, "-m", "edgepipe.runtime"], cwd=REPO, capture_output=True, text=True,
                           timeout=60)
    assert usage.returncode == 2 and "predict" in usage.stderr and "serve" in usage.stderr
    info = subprocess.run([sys.executable, "-m", "edgepipe.runtime", "info", str(run.bundle)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    meta = json.loads(info.stdout)
    assert meta["task"] == "anomaly_detection" and meta["window_size"] == 32 and meta["model"] == "model.tflite"

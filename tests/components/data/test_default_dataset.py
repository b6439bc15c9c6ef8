"""The committed default dataset is exactly what the generator produces, and its labels match anomalies.json."""
import csv
import json

import numpy as np

from edgepipe.data import default_anomalies_path, default_dataset_path
from edgepipe.data.generate import STEPS, main


def _table():
    with open(default_dataset_path(), newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, list(reader)


def test_regenerating_with_default_seed_is_byte_identical(tmp_path):
    assert main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / "sensors.csv").read_bytes() == default_dataset_path().read_bytes()
    assert (tmp_path / "anomalies.json").read_bytes() == default_anomalies_path().read_bytes()
    assert default_dataset_path().stat().st_size < 1.5e6


def test_other_seed_gives_other_data(tmp_path):
    main(["--out", str(tmp_path), "--seed", "8"])
    assert (tmp_path / "sensors.csv").read_bytes() != default_dataset_path().read_bytes()


def test_shape_and_sampling():
    header, body = _table()
    assert header == ["machine", "timestamp", "vibration", "temperature", "current", "anomaly"]
    assert len(body) == 3 * STEPS
    for machine in ("m1", "m2", "m3"):
        stamps = np.array([r[1] for r in body if r[0] == machine], dtype="datetime64[s]")
        assert len(stamps) == 4032 and str(stamps[0]) == "2024-01-01T00:00:00"
        assert set(np.diff(stamps).astype(int)) == {600}
    values = np.array([r[2:5] for r in body], dtype=float)
    assert np.isfinite(values).all() and (values >= 0).all()


def test_anomaly_column_matches_anomalies_json():
    _, body = _table()
    anomalies = json.loads(default_anomalies_path().read_text())
    for machine in ("m1", "m2", "m3"):
        rows = [r for r in body if r[0] == machine]
        stamps = np.array([r[1] for r in rows], dtype="datetime64[s]")
        column = np.array([int(r[5]) for r in rows])
        expected = np.zeros(len(rows), int)
        mine = [a for a in anomalies if a["machine"] == machine]
        assert 4 <= len(mine) <= 6
        early = 0
        for a in mine:
            start, end = np.datetime64(a["start"]), np.datetime64(a["end"])
            inside = (stamps >= start) & (stamps <= end)
            hours = (inside.sum()) / 6
            assert 1 <= hours <= 12, a
            expected[inside] = 1
            early += stamps[inside][0] < stamps[int(0.6 * len(stamps))]
        assert early <= 2
        np.testing.assert_array_equal(column, expected)
    assert {a["kind"] for a in anomalies} == {"vibration_spikes", "bearing_fault", "overheat", "current_shift",
                                              "stuck_sensor"}


def test_anomalies_stand_out_from_normal_rows():
    """Each anomaly moves some channel far from normal rows of the same machine at the same hour of day and day
    type (weekday/weekend): a crude, model-free stand-in for "an autoencoder can find it"."""
    _, body = _table()
    anomalies = json.loads(default_anomalies_path().read_text())
    for a in anomalies:
        rows = [r for r in body if r[0] == a["machine"]]
        values = np.array([r[2:5] for r in rows], dtype=float)
        labels = np.array([int(r[5]) for r in rows])
        stamps = np.array([r[1] for r in rows], dtype="datetime64[s]")
        step = np.arange(len(rows))
        context = (step % 144) // 6 * 2 + ((step // 144) % 7 >= 5)  # hour of day x weekend
        inside = np.flatnonzero((stamps >= np.datetime64(a["start"])) & (stamps <= np.datetime64(a["end"])))
        z = [np.abs(values[i] - np.median(values[(context == context[i]) & (labels == 0)], axis=0))
             / values[(context == context[i]) & (labels == 0)].std(axis=0) for i in inside]
        assert np.max(z) > 4.0, a

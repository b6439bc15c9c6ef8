"""A series far from what its anomaly model was trained on is reported beside the prediction (never refused): the
QA pass uploaded NYC taxi counts (10,000-30,000) to a bundle trained on temperatures (57-86) and got "2557 windows,
2557 anomalous" with no word that the input was thousands of train standard deviations away.

On the real default pipeline's bundle (embedded sensors) and on real NAB series: its own data reports nothing, a
spike outside the range (what a detector is for) reports nothing, a shifted or rescaled sensor is named with its
share out of range and its drift, in ``predict`` (stderr line and JSON record), ``serve``'s body and ``to_dict``.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edgepipe.runtime import Bundle
from edgepipe.runtime.cli import main
from edgepipe.runtime.skew import SERIES_MEAN_DRIFT, SERIES_OUT_OF_RANGE, series_skew
from tests.runtime.fixtures import CHANNELS, default_run, raw_series

NAB = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "nab"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return default_run(tmp_path_factory)


def test_its_own_data_and_a_spike_report_nothing(run):
    bundle = Bundle.load(run.bundle)
    series = raw_series("m2")[:400]
    assert bundle.predict(series).skew is None
    spiked = series.copy()
    spiked[200, 1] += 50 * bundle.doc["normalization"]["scale"][1]  # one sample far out: an anomaly, not skew
    result = bundle.predict(spiked)
    assert result.skew is None and "skew" not in result.to_dict()


def test_a_rescaled_sensor_is_named_with_its_share_and_drift(run):
    bundle = Bundle.load(run.bundle)
    series = raw_series("m2")[:400]
    broken = series.copy()
    broken[:, 1] = broken[:, 1] * 1.8 + 5  # temperature read in the wrong unit
    result = bundle.predict(broken)
    skew = result.skew
    assert skew["rows"] == 400 and set(skew["counts"]) == {"out_of_range", "mean_drift"}
    assert {a["feature"] for a in skew["anomalies"]} == {"temperature"}
    assert skew["columns"]["temperature"]["out_of_range"] > SERIES_OUT_OF_RANGE * 400
    assert skew["columns"]["temperature"]["drift"] > SERIES_MEAN_DRIFT > skew["columns"]["vibration"]["drift"]
    assert result.to_dict()["skew"] == skew
    np.testing.assert_array_equal(result.window_score, bundle.predict(broken).window_score)  # still predicted


def test_predict_prints_the_skew_line_and_record(run, tmp_path, capsys):
    broken = raw_series("m2")[:400]
    broken[:, 1] = broken[:, 1] * 1.8 + 5
    path = tmp_path / "broken.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CHANNELS)
        writer.writerows(broken.tolist())
    assert main(["predict", str(run.bundle), str(path)]) == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert records[-1]["input"] == "broken" and records[-1]["skew"]["counts"] == {"out_of_range": 1, "mean_drift": 1}
    assert "edgepipe: skew of broken vs training (400 rows): mean_drift 1, out_of_range 1" in err


@pytest.mark.skipif(not NAB.is_dir(), reason="NAB corpus not in ../shared/datasets")
def test_real_nab_series_against_another_series_normalization():
    """Normalization fitted on ambient_temperature's first 15% (as the pipeline does), its train range as the input
    domain: its own series is 8.8% out of range over the whole stream (the failure it records), NYC taxi is all of it."""
    def values(name):
        with (NAB / "realKnownCause" / name).open(newline="") as handle:
            return np.array([[float(r["value"])] for r in csv.DictReader(handle)])

    ambient, taxi = values("ambient_temperature_system_failure.csv"), values("nyc_taxi.csv")
    train = ambient[:int(0.15 * len(ambient))]
    center, scale = train.mean(axis=0), train.std(axis=0)
    z = (train - center) / scale
    clip = (float(z.min()), float(z.max()))
    args = (["value"], center, scale, clip, "zscore")
    assert series_skew(train, *args) is None
    own = series_skew(ambient, *args)
    assert own["counts"] == {"out_of_range": 1} and 0.05 < own["columns"]["value"]["out_of_range"] / len(ambient) < 0.2
    other = series_skew(taxi, *args)
    assert other["counts"] == {"out_of_range": 1, "mean_drift": 1}
    assert other["columns"]["value"]["out_of_range"] >= len(taxi) - 1 and other["columns"]["value"]["drift"] > 1000
    assert series_skew(taxi, ["value"], center, scale, clip, "minmax")["counts"] == {"out_of_range": 1}


@pytest.mark.skipif(not NAB.is_dir(), reason="NAB corpus not in ../shared/datasets")
def test_a_float32_input_clip_keeps_the_train_floor_inside():
    """art_daily_no_noise sits at its floor (20.0) for 42% of its steps; bundle.json stores input_clip in float32, and
    mapped back that floor fell just outside the train range: 42% "out of range" on the series' own data. The
    normalization and clip are those the pipeline exported for this series (first 15%, corpus config)."""
    with (NAB / "artificialNoAnomaly" / "art_daily_no_noise.csv").open(newline="") as handle:
        series = np.array([[float(r["value"])] for r in csv.DictReader(handle)])
    center, scale, clip = np.array([41.42144924195345]), np.array([27.693079121161517]), (-0.7735307812690735,
                                                                                           1.3930743932724)
    assert series_skew(series, ["value"], center, scale, clip, "zscore") is None
    assert series_skew(series * 1.01, ["value"], center, scale, clip, "zscore")["counts"] == {"out_of_range": 1}

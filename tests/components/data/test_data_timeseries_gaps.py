"""ingest_timeseries resampling and gap handling; windows never bridge a break."""
import numpy as np
import pytest

from edgepipe.components.data import ingest_timeseries, make_windows
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.pipeline.errors import ConfigError

T0 = np.datetime64("2024-01-01T00:00", "s")


def _series(path, minutes, values):
    stamps = T0 + np.asarray(minutes) * np.timedelta64(60, "s")
    path.write_text("timestamp,v\n" + "".join(f"{t},{v}\n" for t, v in zip(stamps, values)))


@pytest.fixture()
def gappy(tmp_path):
    # 1-minute readings 0..19, then a 10-minute hole, then 30..49; two readings inside minute 5 (5:00 and 5:30)
    minutes = [*range(0, 20), *range(30, 50)]
    values = [float(m) for m in minutes]
    _series(tmp_path / "g.csv", minutes, values)
    with open(tmp_path / "g.csv", "a") as handle:
        handle.write(f"{T0 + np.timedelta64(330, 's')},6.0\n")
    return tmp_path / "g.csv"


def _steps(out, split="train"):
    chunks = sorted(iter_examples(out["examples"], split), key=lambda c: int(c["start"][0]))
    return (np.concatenate([c["timestamp"] for c in chunks]), np.concatenate([c["values"] for c in chunks]),
            [(int(c["start"][0]), int(c["segment"][0])) for c in chunks])


def test_resample_averages_a_slot_and_leaves_the_gap(tmp_path, run, gappy):
    metrics, out = run(ingest_timeseries, tmp_path / "o", source=str(gappy), split={"train": 1.0}, resample="1min")
    stamps, values, _ = _steps(out)
    assert metrics["rows_merged_by_resample"] == 1 and metrics["gaps"] == 1
    assert len(stamps) == 40 and values[5] == pytest.approx(5.5)  # (5 + 6) / 2
    assert out["examples"].properties["resample_seconds"] == 60


def test_interpolate_fills_the_grid(tmp_path, run, gappy):
    metrics, out = run(ingest_timeseries, tmp_path / "o", source=str(gappy), split={"train": 1.0},
                       resample="1min", gaps="interpolate")
    stamps, values, _ = _steps(out)
    assert metrics["steps_interpolated"] == 10 and len(stamps) == 50
    assert set(np.diff(stamps).tolist()) == {60}
    np.testing.assert_allclose(values[20:30], np.arange(20, 30, dtype=float))  # linear between 19 and 30


def test_break_starts_a_segment_and_windows_do_not_span_it(tmp_path, run, gappy):
    metrics, out = run(ingest_timeseries, tmp_path / "o", source=str(gappy), split={"train": 1.0}, gaps="break",
                       chunk_size=8)
    _, _, chunks = _steps(out)
    # 41 steps (5:30 is a step of its own without resampling): the gap is before step 21 (minute 30)
    assert metrics["gaps"] == 1 and {seg for _, seg in chunks} == {0, 21}
    _, win = run(make_windows, tmp_path / "w", examples=out["examples"], size=5, stride=2)
    starts = sorted(int(w["start"][0]) for w in iter_examples(win["windows"], "train"))
    assert starts == [*range(0, 17, 2), *range(21, 37, 2)]  # offsets restart at the segment; none spans the gap


def test_bad_gap_options_are_config_errors(tmp_path, run, gappy):
    with pytest.raises(ConfigError, match="needs resample"):
        run(ingest_timeseries, tmp_path / "a", source=str(gappy), gaps="interpolate")
    with pytest.raises(ConfigError, match="interval"):
        run(ingest_timeseries, tmp_path / "b", source=str(gappy), resample="often")
    with pytest.raises(ConfigError, match="gaps"):
        run(ingest_timeseries, tmp_path / "c", source=str(gappy), gaps="fill")

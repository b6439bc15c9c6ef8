"""make_windows equals an independent NumPy loop over each (series, split) and never crosses a boundary."""
import numpy as np
import pytest

from edgepipe.components.data import compute_statistics, ingest_timeseries, make_windows
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.components.data.series_stages import CHUNK_INDEX
from edgepipe.pipeline.errors import ConfigError

SPLITS = ("train", "eval", "test")


@pytest.fixture(scope="module", params=["indexed", "indexed-small-shards", "grouped"])
def chunks(tmp_path_factory, run, request):
    """Two series (50 and 23 steps, 2 channels, random labels) in chunks of 7: windows must stitch chunks.
    ``indexed``: one shard a (series, split), cut with ingest's shard index; ``indexed-small-shards``: ingest
    buckets of 10 rows, so a window may need steps from two earlier shards; ``grouped``: index removed, steps
    regrouped by window chunk."""
    tmp_path = tmp_path_factory.mktemp("windows")
    rng = np.random.default_rng(4)
    lines = []
    for sid, n in (("p", 50), ("q", 23)):
        stamps = np.datetime64("2024-01-01T00:00") + np.arange(n) * np.timedelta64(1, "m")
        for i, ts in enumerate(stamps):
            lines.append(f"{sid},{ts},{i}.5,{rng.normal():.4f},{int(rng.random() < 0.15)}")
    (tmp_path / "d.csv").write_text("series,timestamp,u,v,flag\n" + "\n".join(lines) + "\n")
    _, out = run(ingest_timeseries, tmp_path / "ing", source=str(tmp_path / "d.csv"), series_column="series",
                 label_column="flag", chunk_size=7,
                 bucket_rows=10 if request.param == "indexed-small-shards" else 10**6)
    index = out["examples"].path / CHUNK_INDEX
    assert index.exists()
    if request.param == "grouped":
        index.unlink()
    return out["examples"]


def _expected(rows, examples, size, stride, mode):
    """Plain loop over re-assembled segments (no sliding_window_view): {(series, split, start): (window, label)}."""
    expected, short = {}, 0
    for split in SPLITS:
        for sid, seg in rows(examples, split).items():
            if len(seg["values"]) < size:
                short += 1
            for i in range(0, len(seg["values"]) - size + 1, stride):
                labels = seg["label"][i:i + size]
                label = int(labels.any()) if mode == "any" else int(labels[-1])
                expected[(sid, split, int(seg["start"][i]))] = (seg["values"][i:i + size], label,
                                                               int(seg["timestamp"][i]))
    return expected, short


@pytest.mark.parametrize("size,stride,mode,chunk_steps", [(5, 2, "any", 1 << 16), (4, 3, "last", 1 << 16),
                                                       (12, 1, "any", 1 << 16), (5, 2, "any", 6),
                                                       (12, 1, "any", 13), (4, 3, "last", 9)])
def test_windows_equal_independent_computation(tmp_path, run, rows, chunks, size, stride, mode, chunk_steps):
    """Small ``chunk_steps``: every series is windowed in overlapping pieces; nothing may change."""
    metrics, out = run(make_windows, tmp_path / "w", examples=chunks, size=size, stride=stride, label_mode=mode,
                       chunk_steps=chunk_steps)
    expected, short = _expected(rows, chunks, size, stride, mode)
    got = {}
    for split in SPLITS:
        for w in iter_examples(out["windows"], split):
            key = (w["series"], split, int(w["start"][0]))
            assert key not in got
            got[key] = (w["window"].reshape(size, 2), int(w["label"][0]), int(w["start_time"][0]))
        assert metrics[f"windows_{split}"] == sum(1 for k in got if k[1] == split)
        assert metrics[f"positives_{split}"] == sum(v[1] for k, v in got.items() if k[1] == split)
    assert got.keys() == expected.keys() and len(got) > 0
    for key, (window, label, start_time) in got.items():
        np.testing.assert_array_equal(window, expected[key][0])
        assert (label, start_time) == expected[key][1:]
    assert metrics["short_segments"] == short
    props = out["windows"].properties
    assert props["kind"] == "windows" and props["window_size"] == size and props["stride"] == stride
    assert props["feature_spec"]["window"] == {"dtype": "float32", "shape": [size, 2]}


def test_no_window_crosses_a_split_or_series_boundary(tmp_path, run, rows, chunks):
    _, out = run(make_windows, tmp_path / "w", examples=chunks, size=6, stride=1)
    ranges = {(sid, split): (seg["start"].min(), seg["start"].max())
              for split in SPLITS for sid, seg in rows(chunks, split).items()}
    seen = 0
    for split in SPLITS:
        for w in iter_examples(out["windows"], split):
            lo, hi = ranges[(w["series"], split)]
            first = int(w["start"][0])
            assert lo <= first and first + 5 <= hi
            # the first column holds "<step>.5", so a window's steps are exactly first..first+5 of its own series
            np.testing.assert_array_equal(w["window"].reshape(6, 2)[:, 0], np.arange(first, first + 6) + 0.5)
            seen += 1
    assert seen == sum(max(0, hi - lo + 1 - 5) for lo, hi in ranges.values())


def test_short_segments_are_reported_not_fatal_and_tf_parses_windows(tmp_path, run, chunks):
    metrics, out = run(make_windows, tmp_path / "w", examples=chunks, size=20, stride=4)
    # q has 23 steps -> 14/4/5 per split; p has 50 -> 30/10/10: only p/train is long enough
    assert metrics["short_segments"] == 5
    assert metrics["windows_train"] == 3 and metrics["windows_eval"] == metrics["windows_test"] == 0
    data = out["windows"].read_numpy("train")
    assert data["window"].shape == (3, 20, 2) and data["label"].shape == (3,)


def test_bad_parameters_are_config_errors(tmp_path, run, chunks):
    with pytest.raises(ConfigError, match="label_mode"):
        run(make_windows, tmp_path / "a", examples=chunks, label_mode="median")
    with pytest.raises(ConfigError, match="stride"):
        run(make_windows, tmp_path / "b", examples=chunks, stride=0)


def test_statistics_also_read_windows(tmp_path, run, chunks):
    metrics, out = run(make_windows, tmp_path / "w", examples=chunks, size=5, stride=5)
    _, st = run(compute_statistics, tmp_path / "st", examples=out["windows"])
    train = st["statistics"].read_json("statistics.json")["splits"]["train"]
    assert train["num_examples"] == train["label_count"] == metrics["windows_train"] > 0
    assert train["num_steps"] == train["channels"]["u"]["count"] == 5 * metrics["windows_train"]
    assert train["label_positive"] == metrics["positives_train"]

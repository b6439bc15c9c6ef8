"""Split order is canonical (train, eval, others, test), never the mapping's key order: a compiled Kubeflow spec
hands ``data.split`` back with sorted keys ({eval, test, train}), which once trained on the future."""
import numpy as np
import pytest

from edgepipe.components.data import ingest_timeseries
from edgepipe.components.data.splits import assign, canonical_order, mix64, parse_split, time_bounds

SORTED = {"eval": 0.2, "test": 0.2, "train": 0.6}
WRITTEN = {"train": 0.6, "eval": 0.2, "test": 0.2}


@pytest.mark.parametrize("allowed", [("time",), ("fraction", "hash")])
def test_key_order_does_not_change_names_fractions_or_bounds(allowed):
    a, b = parse_split(SORTED, WRITTEN, allowed=allowed), parse_split(WRITTEN, WRITTEN, allowed=allowed)
    assert a == b and a.names == ("train", "eval", "test") and a.fractions == (0.6, 0.2, 0.2)
    assert time_bounds(4032, a.fractions).tolist() == [0, 2419, 3226, 4032]
    hashes = mix64(np.arange(1000, dtype=np.uint64))
    np.testing.assert_array_equal(assign(a, hashes), assign(b, hashes))


def test_other_names_sit_between_validation_and_test():
    assert canonical_order(["test", "zeta", "validation", "calibration", "train"]) == \
        ["train", "validation", "calibration", "zeta", "test"]


def test_ingest_trains_on_the_earliest_steps_whatever_the_key_order(tmp_path, run, rows):
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(50) * np.timedelta64(10, "m")
    (tmp_path / "s.csv").write_text("timestamp,v\n" + "".join(f"{t},{i}\n" for i, t in enumerate(stamps)))
    _, out = run(ingest_timeseries, tmp_path / "out", source=str(tmp_path / "s.csv"), split=SORTED)
    got = {s: rows(out["examples"], s)["s"]["start"].tolist() for s in ("train", "eval", "test")}
    assert got == {"train": list(range(30)), "eval": list(range(30, 40)), "test": list(range(40, 50))}

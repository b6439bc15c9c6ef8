"""benchmarks/taxi_table.py's parts that make its README numbers: the big_tipper column written from the real taxi
CSV (the cents rule, tips dropped) and the two trivial baselines. The benchmark itself runs for minutes."""
import csv
import importlib.util
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TAXI = REPO.parent / "shared" / "datasets" / "taxi" / "data.csv"

spec = importlib.util.spec_from_file_location("taxi_table", REPO / "benchmarks" / "taxi_table.py")
taxi_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(taxi_table)


@pytest.mark.skipif(not TAXI.exists(), reason="taxi data not present")
def test_the_big_tipper_copy_labels_every_real_trip_by_the_cents_rule(tmp_path):
    counts = taxi_table.write_big_tipper_csv(TAXI, tmp_path / "big.csv")
    with TAXI.open(newline="") as a, (tmp_path / "big.csv").open(newline="") as b:
        raw, derived = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert "tips" not in derived[0] and len(derived) == len(raw) == counts["rows"] == 10000
    want = [int(bool(r["tips"] and r["fare"]) and Decimal(r["tips"]) > Decimal("0.2") * Decimal(r["fare"]))
            for r in raw]
    assert [int(r["big_tipper"]) for r in derived] == want and counts["big_tippers"] == sum(want)
    assert all(r["fare"] == d["fare"] and r["company"] == d["company"] for r, d in zip(raw, derived))


def test_the_baselines_use_the_train_split_and_score_the_test_split():
    train, test = np.array([0.0, 1.0, 2.0, 10.0]), np.array([1.5, 3.5])
    assert taxi_table.median_mae(train, test) == pytest.approx(1.0)  # train median 1.5, not the test's 2.5
    assert taxi_table.majority_rate(np.array([0, 0, 1]), np.array([1, 1, 0, 1])) == 0.25

"""compute_statistics agrees with NumPy on the same data; its accumulator merges exactly; the sketch degrades gently."""

import numpy as np
import pytest

from edgepipe.components.data import compute_statistics, ingest_timeseries
from edgepipe.components.data.statistics import QUANTILES, QuantileSketch, StatsCombineFn, quantile_key


def _write_csv(path, rng):
    lines = []
    for sid, n in (("a", 90), ("b", 61)):
        stamps = np.datetime64("2024-02-01T00:00") + np.arange(n) * np.timedelta64(1, "m")
        for ts in stamps:
            lines.append(f"{sid},{ts},{rng.normal(5, 2):.5f},{rng.exponential(30):.5f},{int(rng.random() < 0.2)}")
    path.write_text("machine,timestamp,x,y,label\n" + "\n".join(lines) + "\n")


def test_statistics_match_numpy_per_split(tmp_path, run, rows):
    _write_csv(tmp_path / "d.csv", np.random.default_rng(1))
    _, ingested = run(ingest_timeseries, tmp_path / "ing", source=str(tmp_path / "d.csv"), series_column="machine",
                      label_column="label", chunk_size=13)
    metrics, out = run(compute_statistics, tmp_path / "st", examples=ingested["examples"])
    stats = out["statistics"].read_json("statistics.json")
    assert stats["channels"] == ["x", "y"] and list(stats["splits"]) == ["eval", "test", "train"]  # sorted keys
    for split in ("train", "eval", "test"):
        parts = rows(ingested["examples"], split).values()
        values = np.concatenate([p["values"] for p in parts]).astype(np.float64)
        labels = np.concatenate([p["label"] for p in parts])
        got = stats["splits"][split]
        assert got["num_steps"] == len(values) == metrics[f"steps_{split}"]
        assert got["label_positive"] == labels.sum() and got["label_count"] == len(labels)
        for c, name in enumerate(["x", "y"]):
            column, ch = values[:, c], got["channels"][name]
            assert ch["count"] == len(column) and ch["missing"] == 0 and ch["quantiles_exact"] is True
            assert ch["mean"] == pytest.approx(column.mean(), rel=1e-12)
            assert ch["std"] == pytest.approx(column.std(), rel=1e-9)
            assert (ch["min"], ch["max"]) == (column.min(), column.max())
            assert [ch["quantiles"][quantile_key(q)] for q in QUANTILES] == pytest.approx(
                np.quantile(column, QUANTILES).tolist(), rel=1e-12)
            counts, edges = np.histogram(column, bins=20, range=(column.min(), column.max()))
            assert ch["histogram"]["counts"] == counts.tolist()
            assert ch["histogram"]["edges"] == pytest.approx(edges.tolist())
    assert out["statistics"].properties["splits"] == ["train", "eval", "test"]


def _accumulate(fn, batches):
    accs = []
    for batch in batches:
        accs.append(fn.add_input(fn.create_accumulator(), batch))
    return fn.extract_output(fn.merge_accumulators(accs))


def test_merged_partial_accumulators_equal_one_pass_and_nan_counts_as_missing():
    rng = np.random.default_rng(3)
    data = rng.normal(100.0, 0.01, size=(300, 2))  # large mean, tiny spread: naive sum-of-squares would fail
    data[[5, 77, 250], 1] = np.nan
    labels = (rng.random(300) < 0.1).astype(np.int64)
    fn = StatsCombineFn(2, capacity=1 << 20)
    whole = _accumulate(fn, [(data, labels)])
    pieces = _accumulate(fn, [(data[:7], labels[:7]), (data[7:150], labels[7:150]), (data[150:], labels[150:])])
    assert whole["label_positive"] == pieces["label_positive"] == labels.sum()
    for c in range(2):
        finite = data[np.isfinite(data[:, c]), c]
        for got in (whole["channels"][c], pieces["channels"][c]):
            assert got["missing"] == (3 if c else 0) and got["count"] == len(finite)
            assert got["mean"] == pytest.approx(finite.mean(), rel=1e-12)
            assert got["std"] == pytest.approx(finite.std(), rel=1e-6)
            assert got["quantiles"]["0.5"] == np.median(finite)


def test_sketch_beyond_capacity_is_approximate_but_close():
    rng = np.random.default_rng(5)
    data = rng.lognormal(0, 1, 20_000)
    sketch = QuantileSketch(capacity=512)
    for part in np.array_split(data, 40):
        sketch.add(np.sort(part))
    assert not sketch.exact
    ordered = np.sort(data)
    for q, value in zip(QUANTILES, sketch.quantiles(QUANTILES)):
        rank = np.searchsorted(ordered, value) / len(ordered)
        assert abs(rank - q) < 0.02, (q, rank)
    hist = sketch.histogram(data.min(), data.max(), 20)
    assert abs(sum(hist["counts"]) - len(data)) < 0.01 * len(data)
    exact = QuantileSketch(capacity=1 << 20)
    exact.add(ordered)
    assert exact.exact and exact.quantiles((0.5,)) == [np.median(data)]


class _EagerSketch:
    """The sketch before it was made lazy (sort the level on every add): the reference for its results."""

    def __init__(self, capacity):
        self.capacity, self.levels, self.flips = capacity, {}, 0

    def add(self, values, weight=1):
        if len(values) == 0:
            return
        merged = np.concatenate([self.levels.get(weight, np.zeros(0)), values])
        merged.sort(kind="stable")
        if len(merged) > self.capacity:
            self.flips += 1
            self.levels.pop(weight, None)
            self.add(merged[self.flips % 2::2], weight * 2)
        else:
            self.levels[weight] = merged

    def merge(self, other):
        for weight, values in sorted(other.levels.items()):
            self.add(values, weight)


def _levels(sketch):
    return {w: sketch._sorted(w).tobytes() for w in sorted(sketch.sizes)}


def test_sketch_of_many_small_batches_is_exact_numpy_quantiles_and_pickles():
    import pickle

    rng = np.random.default_rng(7)
    batches = [np.round(rng.normal(size=int(rng.integers(0, 50))), 1) for _ in range(400)]  # ties, empty batches
    data = np.concatenate(batches)
    parts = [QuantileSketch(capacity=len(data)) for _ in range(4)]
    for i, batch in enumerate(batches):
        parts[i % 4].add(np.sort(batch) if i % 3 else batch)  # sorted or not, as add() always allowed
    sketch = pickle.loads(pickle.dumps(parts[0]))
    for part in parts[1:]:
        sketch.merge(pickle.loads(pickle.dumps(part)) if part is parts[2] else part)
    assert sketch.exact and sum(sketch.sizes.values()) == len(data)
    assert sketch.quantiles(QUANTILES) == np.quantile(data, QUANTILES).tolist()
    counts, edges = np.histogram(data, bins=20, range=(data.min(), data.max()))
    assert sketch.histogram(data.min(), data.max(), 20) == {"edges": edges.tolist(), "counts": counts.tolist()}
    again = pickle.loads(pickle.dumps(sketch))
    assert not again.pending and again.quantiles(QUANTILES) == sketch.quantiles(QUANTILES)


def test_sketch_compacts_past_capacity_exactly_like_the_eager_sketch():
    rng = np.random.default_rng(8)
    capacity = 1000
    lazy, eager, seen = [QuantileSketch(capacity) for _ in range(3)], [_EagerSketch(capacity) for _ in range(3)], []
    for i in range(120):
        batch = np.sort(np.round(rng.lognormal(0, 1, int(rng.integers(1, 90))), 2))
        seen.append(batch)
        lazy[i % 3].add(batch)
        eager[i % 3].add(batch)
        if i == 20:
            assert lazy[0].exact and sum(lazy[0].sizes.values()) <= capacity
    for sketch, ref in zip(lazy[1:], eager[1:]):
        lazy[0].merge(sketch)
        eager[0].merge(ref)
    sketch, ref = lazy[0], eager[0]
    assert not sketch.exact and max(sketch.sizes) >= 4 and all(n <= capacity for n in sketch.sizes.values())
    assert sketch.flips == ref.flips and _levels(sketch) == {w: v.tobytes() for w, v in sorted(ref.levels.items())}
    data = np.sort(np.concatenate(seen))
    for q, value in zip(QUANTILES, sketch.quantiles(QUANTILES)):
        assert abs(np.searchsorted(data, value) / len(data) - q) < 0.02, q

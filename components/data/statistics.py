"""compute_statistics: one Beam pass -> per split, per feature count/missing/mean/std/min/max/quantiles/histogram
(numeric features and time-series channels) or count/missing/unique/top values (string features).

Time series (``timeseries_chunks``/``windows``) are described per channel (``channels``, also mirrored under
``features``) plus label counts; any other Examples (rows of a table, images, arrays) per feature of its
``feature_spec``: numeric features over all their values (an image's pixels pooled), strings by value counts
(``top``: the ``top_k`` most frequent with counts, ties broken by value). Each shard is summarized by one DoFn call
on NumPy arrays and the partial summaries merge in a ``CombineFn``.

Why one pass with a mergeable accumulator: statistics must scale with the data and be computed the same way on
DirectRunner and a cluster, so every figure is built by a ``CombineFn`` whose partial results merge exactly:
moments with Chan's parallel update over the shards' partial moments in sorted order (numerically stable and
independent of how a runner partitions and merges; ``std`` is the population std, ddof=0), min/max, and
quantiles/histogram from a :class:`QuantileSketch`.

Quantiles are EXACT (NumPy's default linear interpolation over all finite values, merged as sorted arrays) as long
as a split/channel holds at most ``max_exact_values`` values (default 4,194,304, ~32 MB each); past that the sketch
compacts KLL-style (keep every other sorted value at double weight), so quantiles and histogram become
approximate with a rank error of a few ``1/max_exact_values``; ``quantiles_exact`` in the output says which.
Histograms have 20 equal bins over [min, max]. Non-finite values count as ``missing`` and are left out of the rest.
"""
from __future__ import annotations


from collections import Counter

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam.example_decode import decode_columns, parse_example
from edgepipe.components.data.beam.job import Job, value
from edgepipe.components.data.beam.tfrecord import read_records
from edgepipe.pipeline.artifacts import Examples, ExampleStatistics
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import DataError

QUANTILES = (0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0)
HISTOGRAM_BINS = 20
MAX_EXACT_VALUES = 1 << 22


def quantile_key(q: float) -> str:
    """Key of a quantile in ``statistics.json`` ("0", "0.01", "0.5", "1")."""
    return format(q, "g")


class QuantileSketch:
    """Sorted values by weight; exact until a level exceeds ``capacity``, then compacted (halved, weight doubled).

    Why lazy: merging ~100 shard sketches re-sorted the whole level on every ``add`` (quadratic in the split size).
    Added runs now wait in ``pending`` (per weight, arrival order, with the level's total ``sizes``) and are sorted
    into ``levels`` only when a level passes ``capacity`` (then compacted, as before) or when quantiles/histogram are
    read. One stable sort of ``[level, *runs]`` orders values exactly as a stable sort after every ``add`` did, and
    compaction still happens at the same ``add`` with the same ``flips``, so every result is unchanged.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.levels: dict[int, np.ndarray] = {}  # weight -> sorted values (merged so far)
        self.pending: dict[int, list[np.ndarray]] = {}  # weight -> runs added since, not yet merged
        self.sizes: dict[int, int] = {}  # weight -> len(levels[w]) + len of its pending runs; only levels with values
        self.flips = 0  # alternates which half is kept, so compaction is unbiased yet deterministic

    def add(self, values: np.ndarray, weight: int = 1) -> None:
        """Add sorted values. float32 input stays float32 (time-series values are float32: half the memory, sort
        and pickle cost; the order is the same, and results are computed in float64)."""
        dtype = np.float32 if np.asarray(values).dtype == np.float32 else np.float64
        self._queue([np.array(values, dtype)], weight)  # a copy: the caller may reuse its array

    def merge(self, other: "QuantileSketch") -> None:
        for weight in sorted(other.sizes):  # each of other's levels counts as one add, as before
            self._queue(other._runs(weight), weight)

    def _runs(self, weight: int) -> list[np.ndarray]:
        level = self.levels.get(weight)
        return ([] if level is None else [level]) + self.pending.get(weight, [])

    def _queue(self, runs: list[np.ndarray], weight: int) -> None:
        size = sum(len(run) for run in runs)
        if size == 0:
            return
        self.pending.setdefault(weight, []).extend(runs)
        self.sizes[weight] = self.sizes.get(weight, 0) + size
        if self.sizes[weight] > self.capacity:
            merged = self._sorted(weight)
            del self.levels[weight], self.sizes[weight]
            self.flips += 1
            self._queue([merged[self.flips % 2::2].copy()], weight * 2)  # a copy frees the merged level

    def _sorted(self, weight: int) -> np.ndarray:
        """The level's values, sorted: pending runs merged in (timsort merges sorted runs in ~linear time)."""
        runs = self.pending.pop(weight, [])
        if runs:
            level = self.levels.get(weight)
            merged = np.concatenate(runs if level is None else [level, *runs])
            merged.sort(kind="stable")
            self.levels[weight] = merged
        return self.levels[weight]

    def __getstate__(self) -> dict:
        """Pickled between Beam stages: one sorted array per level, no list of small runs."""
        return {"capacity": self.capacity, "flips": self.flips,
                "levels": {w: self._sorted(w) for w in sorted(self.sizes)}}

    def __setstate__(self, state: dict) -> None:
        self.capacity, self.flips, self.levels = state["capacity"], state["flips"], state["levels"]
        self.pending = {}
        self.sizes = {w: len(v) for w, v in self.levels.items()}

    @property
    def exact(self) -> bool:
        return set(self.sizes) <= {1}

    def _weighted(self) -> tuple[np.ndarray, np.ndarray]:
        levels = [(w, self._sorted(w)) for w in sorted(self.sizes)]
        values = np.concatenate([v for _, v in levels]).astype(np.float64, copy=False)
        weights = np.concatenate([np.full(len(v), w, np.float64) for w, v in levels])
        order = np.argsort(values, kind="stable")
        return values[order], weights[order]

    def quantiles(self, points: tuple[float, ...]) -> list[float]:
        if self.exact:
            return np.quantile(self._sorted(1).astype(np.float64, copy=False), points).tolist()
        values, weights = self._weighted()
        rank = np.cumsum(weights) - weights  # first rank each item stands for
        return np.interp(np.asarray(points) * (weights.sum() - 1), rank, values).tolist()

    def histogram(self, lo: float, hi: float, bins: int) -> dict:
        values, weights = ((self._sorted(1).astype(np.float64, copy=False), None) if self.exact
                           else self._weighted())
        counts, edges = np.histogram(values, bins=bins, range=(lo, hi), weights=weights)
        return {"edges": edges.tolist(), "counts": np.rint(counts).astype(np.int64).tolist()}


class SplitStats:
    """Accumulator of one split: moments per channel, label counts, one sketch per channel.

    Moments are kept as the list of the parts added (``count``, ``mean``, ``M2`` per channel of each batch: one
    shard's values, the same shard whatever the runner) and combined only when read, in sorted order. Why: float64
    sums depend on their order, and the order in which Beam merges accumulators depends on how bundles are
    partitioned (in-process vs ``multi_processing`` gave means that differed in the last digit); sorted, the same
    parts always combine to the same bits (docs/data.md: same bytes on every runner)."""

    def __init__(self, channels: int, capacity: int):
        self.examples = self.steps = self.label_count = self.label_positive = 0
        self.parts: list[tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...]]] = []
        self.missing = np.zeros(channels, np.int64)
        self.min = np.full(channels, np.inf)
        self.max = np.full(channels, -np.inf)
        self.sketches = [QuantileSketch(capacity) for _ in range(channels)]

    def add_moments(self, count, mean, m2) -> None:
        """One disjoint part's (count, mean, M2) per channel; combined by :meth:`moments`."""
        self.parts.append((tuple(int(c) for c in count), tuple(float(m) for m in mean), tuple(float(v) for v in m2)))

    def merge_moments(self, other: "SplitStats") -> None:
        self.parts.extend(other.parts)

    def moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(count, mean, M2) per channel: Chan et al.'s exact parallel update over the parts in sorted order."""
        channels = len(self.missing)
        count, mean, m2 = np.zeros(channels, np.int64), np.zeros(channels), np.zeros(channels)
        for part_count, part_mean, part_m2 in sorted(self.parts):
            part_count = np.asarray(part_count, np.int64)
            total = count + part_count
            safe = np.maximum(total, 1)
            delta = np.asarray(part_mean) - mean
            mean = mean + delta * part_count / safe
            m2 = m2 + np.asarray(part_m2) + delta ** 2 * count * part_count / safe
            count = total
        return count, mean, m2


class StatsCombineFn(beam.CombineFn):
    """(values [steps, channels], labels) batches -> :class:`SplitStats`."""

    def __init__(self, channels: int, capacity: int):
        self.channels, self.capacity = channels, capacity

    def create_accumulator(self) -> SplitStats:
        return SplitStats(self.channels, self.capacity)

    def add_input(self, acc: SplitStats, batch) -> SplitStats:
        return add_batch(acc, batch)

    def merge_accumulators(self, accumulators) -> SplitStats:
        return merge_stats(accumulators)

    def extract_output(self, acc: SplitStats) -> dict:
        return summarize(acc)


def add_batch(acc: SplitStats, batch) -> SplitStats:
        values, labels = batch
        raw = values  # the sketch keeps float32 values as float32
        values = values.astype(np.float64)
        finite = np.isfinite(values)
        acc.examples += 1
        acc.steps += len(values)
        acc.label_count += len(labels)
        acc.label_positive += int((labels != 0).sum())
        acc.missing += (~finite).sum(axis=0)
        count = finite.sum(axis=0)
        mean = np.where(finite, values, 0.0).sum(axis=0) / np.maximum(count, 1)
        acc.add_moments(count, mean, (np.where(finite, values - mean, 0.0) ** 2).sum(axis=0))
        acc.min = np.minimum(acc.min, np.where(finite, values, np.inf).min(axis=0, initial=np.inf))
        acc.max = np.maximum(acc.max, np.where(finite, values, -np.inf).max(axis=0, initial=-np.inf))
        for c, sketch in enumerate(acc.sketches):
            sketch.add(np.sort(raw[finite[:, c], c]))
        return acc


def merge_stats(accumulators) -> SplitStats:
        accumulators = iter(accumulators)
        acc = next(accumulators)
        for other in accumulators:
            acc.examples += other.examples
            acc.steps += other.steps
            acc.label_count += other.label_count
            acc.label_positive += other.label_positive
            acc.missing += other.missing
            acc.merge_moments(other)
            acc.min, acc.max = np.minimum(acc.min, other.min), np.maximum(acc.max, other.max)
            for mine, theirs in zip(acc.sketches, other.sketches):
                mine.merge(theirs)
        return acc


def summarize(acc: SplitStats) -> dict:
    """JSON-ready statistics of one split."""
    channels = []
    count, mean, m2 = acc.moments()
    for c, sketch in enumerate(acc.sketches):
        n = int(count[c])
        stats = {"count": n, "missing": int(acc.missing[c]), "mean": None, "std": None, "min": None, "max": None,
                 "quantiles": None, "histogram": None, "quantiles_exact": sketch.exact}
        if n:
            lo, hi = float(acc.min[c]), float(acc.max[c])
            stats.update(mean=float(mean[c]), std=float(np.sqrt(m2[c] / n)), min=lo, max=hi,
                         quantiles=dict(zip(map(quantile_key, QUANTILES), sketch.quantiles(QUANTILES))),
                         histogram=sketch.histogram(lo, hi, HISTOGRAM_BINS))
        channels.append(stats)
    return {"num_examples": acc.examples, "num_steps": acc.steps, "label_count": acc.label_count,
            "label_positive": acc.label_positive, "channels": channels}


# ---- rows: per-feature accumulators ---------------------------------------------------------------------------------
class RowStats:
    """Accumulator of one split of row Examples: a 1-channel :class:`SplitStats` per numeric feature, a Counter
    (plus missing count) per string feature."""

    def __init__(self, spec: dict[str, dict], capacity: int):
        self.examples = 0
        self.numeric = {n: SplitStats(1, capacity) for n, d in spec.items() if d.get("dtype") != "string"}
        self.strings = {n: Counter() for n, d in spec.items() if d.get("dtype") == "string"}
        self.string_missing = {n: 0 for n in self.strings}

    def add(self, columns: dict, n: int) -> None:
        self.examples += n
        for name, acc in self.numeric.items():
            col = columns[name]
            if isinstance(col, list):  # var-length
                col = np.concatenate([np.asarray(v, np.float64) for v in col if v is not None]) if col else np.zeros(0)
            flat = np.asarray(col, np.float64).reshape(-1, 1)
            add_batch(acc, (flat, np.zeros(0, np.int64)))
            acc.examples += n - 1  # add_batch counts one example a batch
        for name, counter in self.strings.items():
            col = columns[name]
            missing = sum(1 for v in col if v is None or v == "")
            self.string_missing[name] += missing
            counter.update(v for v in col if v is not None and v != "")

    def merge(self, other: "RowStats") -> "RowStats":
        self.examples += other.examples
        for name, acc in self.numeric.items():
            self.numeric[name] = merge_stats([acc, other.numeric[name]])
        for name, counter in self.strings.items():
            counter.update(other.strings[name])
            self.string_missing[name] += other.string_missing[name]
        return self


def summarize_rows(acc: RowStats, spec: dict[str, dict], top_k: int) -> dict:
    features = {}
    for name, desc in spec.items():
        if name in acc.numeric:
            stats = summarize(acc.numeric[name])["channels"][0]
            stats["type"] = "int" if desc["dtype"] == "int64" else "float"
        else:
            counter = acc.strings[name]
            top = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
            stats = {"type": "string", "count": int(sum(counter.values())), "missing": acc.string_missing[name],
                     "unique": len(counter), "top": [[k, int(v)] for k, v in top]}
        stats["shape"] = desc.get("shape")
        features[name] = stats
    return {"num_examples": acc.examples, "features": features}


class MergeCombineFn(beam.CombineFn):
    """Partial accumulators (one per shard) -> their merge."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, partial):
        return partial if acc is None else (acc.merge(partial) if isinstance(acc, RowStats)
                                            else merge_stats([acc, partial]))

    def merge_accumulators(self, accumulators):
        out = None
        for acc in accumulators:
            if acc is not None:
                out = self.add_input(out, acc)
        return out

    def extract_output(self, acc):
        return acc


class ShardStats(beam.DoFn):
    """(split, shard) -> (split, partial accumulator of that shard)."""

    def __init__(self, kind: str, spec: dict, channels: int, capacity: int):
        self.kind, self.spec, self.channels, self.capacity = kind, spec, channels, capacity

    def process(self, item):
        split, path = item
        records = read_records(path)
        if self.kind in SERIES_KINDS:
            acc = SplitStats(self.channels, self.capacity)
            if records:  # one batch a shard: the quantile sketch sorts once, not once a chunk
                parts = [chunk_arrays(record, self.channels) for record in records]
                add_batch(acc, (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])))
                acc.examples += len(parts) - 1
        else:
            acc = RowStats(self.spec, self.capacity)
            if records:
                acc.add(decode_columns(records, self.spec), len(records))
        yield split, acc


SERIES_KINDS = ("timeseries_chunks", "windows")


def chunk_arrays(record: bytes, num_channels: int):
    """A serialized chunk or window -> (values [steps, channels], labels)."""
    example = parse_example(record, only=("window", "values", "label"))  # timestamps are not described
    _, values = example.get("window", example.get("values", ("float", None)))
    values = np.zeros(0, np.float32) if values is None else values
    kind, labels = example.get("label", ("int64", np.zeros(1, np.int64)))  # a window without label counts as 0
    labels = np.zeros(0, np.int64) if kind == "none" else labels
    return np.asarray(values).reshape(-1, num_channels), np.atleast_1d(labels)


def _summary(item, kind: str, spec: dict, channels: list[str], top_k: int):
    split, acc = item
    if kind in SERIES_KINDS:
        stats = summarize(acc)
        named = dict(zip(channels, stats["channels"]))
        for c in named.values():
            c["type"] = "float"
        stats = {**stats, "channels": named, "features": named}
    else:
        stats = summarize_rows(acc, spec, top_k)
    return value(f"stats/{split}", stats)[1]


@component(version="2")
def compute_statistics(examples: Input[Examples], statistics: Output[ExampleStatistics],
                       max_exact_values: int = MAX_EXACT_VALUES, top_k: int = 1000,
                       beam_args: list[str] | None = None) -> dict:
    """Per split: per channel (time series) or per feature (rows) count, missing, mean, std, min, max, quantiles
    and a 20-bin histogram, or for strings count/missing/unique/top values; label positives for series; in one
    Beam pass, written to ``statistics.json``."""
    info = examples.info()
    kind = info.kind or ""
    channels = info.channel_names
    spec = examples.feature_spec
    splits = examples.splits
    if not splits or (kind in SERIES_KINDS and not channels) or (kind not in SERIES_KINDS and not spec):
        raise DataError(f"{examples.path}: Examples artifact has no 'splits' and 'channels'/'feature_spec' "
                        f"properties")
    job = Job(beam_args, statistics.path / "_report")
    files = job.shards(examples, splits)
    job.report(job.pipeline | "Files" >> beam.Create(files)
               | "Shard" >> beam.ParDo(ShardStats(kind, spec, len(channels), max_exact_values))
               | "Merge" >> beam.CombinePerKey(MergeCombineFn())
               | "Summary" >> beam.Map(_summary, kind, spec, channels, top_k))
    result = job.run()

    empty = (_summary(("", SplitStats(len(channels), 1)), kind, spec, channels, top_k) if kind in SERIES_KINDS
             else _summary(("", RowStats(spec, 1)), kind, spec, channels, top_k))[2]
    out = {"kind": kind, "channels": channels, "feature_spec": spec, "quantile_points": list(QUANTILES),
           "histogram_bins": HISTOGRAM_BINS,
           "splits": {s: result.values.get(f"stats/{s}", [empty])[0] for s in splits}}
    statistics.write_json("statistics.json", out)
    statistics.properties.update(splits=splits, channels=channels, kind=kind, quantile_points=list(QUANTILES))
    if kind in SERIES_KINDS:
        return {f"steps_{s}": out["splits"][s]["num_steps"] for s in splits}
    return {f"examples_{s}": out["splits"][s]["num_examples"] for s in splits}

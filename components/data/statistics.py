"""compute_statistics: one Beam pass -> per split, per channel count/missing/mean/std/min/max/quantiles/histogram.

Why one pass with a mergeable accumulator: statistics must scale with the data and be computed the same way on
DirectRunner and a cluster, so every figure is built by a ``CombineFn`` whose partial results merge exactly:
moments with Chan's parallel update (numerically stable, ``std`` is the population std, ddof=0), min/max, and
quantiles/histogram from a :class:`QuantileSketch`.

Quantiles are EXACT (NumPy's default linear interpolation over all finite values, merged as sorted arrays) as long
as a split/channel holds at most ``max_exact_values`` values (default 4,194,304, ~32 MB each); past that the sketch
compacts KLL-style (keep every other sorted value at double weight), so quantiles and histogram become
approximate with a rank error of a few ``1/max_exact_values``; ``quantiles_exact`` in the output says which.
Histograms have 20 equal bins over [min, max]. Non-finite values count as ``missing`` and are left out of the rest.
"""
from __future__ import annotations

import json

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam_io import beam_pipeline, decode_example, read_split, run_pipeline
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
    """Sorted values by weight; exact until a level exceeds ``capacity``, then compacted (halved, weight doubled)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.levels: dict[int, np.ndarray] = {}
        self.flips = 0  # alternates which half is kept, so compaction is unbiased yet deterministic

    def add(self, values: np.ndarray, weight: int = 1) -> None:
        if len(values) == 0:
            return
        merged = np.concatenate([self.levels.get(weight, np.zeros(0)), values])
        merged.sort(kind="stable")  # timsort: two sorted runs merge in linear time
        if len(merged) > self.capacity:
            self.flips += 1
            self.levels.pop(weight, None)
            self.add(merged[self.flips % 2::2], weight * 2)
        else:
            self.levels[weight] = merged

    def merge(self, other: "QuantileSketch") -> None:
        for weight, values in sorted(other.levels.items()):
            self.add(values, weight)

    @property
    def exact(self) -> bool:
        return set(self.levels) <= {1}

    def _weighted(self) -> tuple[np.ndarray, np.ndarray]:
        values = np.concatenate([v for _, v in sorted(self.levels.items())])
        weights = np.concatenate([np.full(len(v), w, np.float64) for w, v in sorted(self.levels.items())])
        order = np.argsort(values, kind="stable")
        return values[order], weights[order]

    def quantiles(self, points: tuple[float, ...]) -> list[float]:
        if self.exact:
            return np.quantile(self.levels[1], points).tolist()
        values, weights = self._weighted()
        rank = np.cumsum(weights) - weights  # first rank each item stands for
        return np.interp(np.asarray(points) * (weights.sum() - 1), rank, values).tolist()

    def histogram(self, lo: float, hi: float, bins: int) -> dict:
        values, weights = (self.levels[1], None) if self.exact else self._weighted()
        counts, edges = np.histogram(values, bins=bins, range=(lo, hi), weights=weights)
        return {"edges": edges.tolist(), "counts": np.rint(counts).astype(np.int64).tolist()}


class SplitStats:
    """Accumulator of one split: moments per channel, label counts, one sketch per channel."""

    def __init__(self, channels: int, capacity: int):
        self.examples = self.steps = self.label_count = self.label_positive = 0
        self.count = np.zeros(channels, np.int64)
        self.missing = np.zeros(channels, np.int64)
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)
        self.min = np.full(channels, np.inf)
        self.max = np.full(channels, -np.inf)
        self.sketches = [QuantileSketch(capacity) for _ in range(channels)]

    def add_moments(self, count, mean, m2) -> None:
        """Chan et al.: combine (count, mean, M2) of two disjoint parts exactly."""
        total = self.count + count
        safe = np.maximum(total, 1)
        delta = mean - self.mean
        self.mean = self.mean + delta * count / safe
        self.m2 = self.m2 + m2 + delta ** 2 * self.count * count / safe
        self.count = total


class StatsCombineFn(beam.CombineFn):
    """(values [steps, channels], labels) batches -> :class:`SplitStats`."""

    def __init__(self, channels: int, capacity: int):
        self.channels, self.capacity = channels, capacity

    def create_accumulator(self) -> SplitStats:
        return SplitStats(self.channels, self.capacity)

    def add_input(self, acc: SplitStats, batch) -> SplitStats:
        values, labels = batch
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
            sketch.add(np.sort(values[finite[:, c], c]))
        return acc

    def merge_accumulators(self, accumulators) -> SplitStats:
        accumulators = iter(accumulators)
        acc = next(accumulators)
        for other in accumulators:
            acc.examples += other.examples
            acc.steps += other.steps
            acc.label_count += other.label_count
            acc.label_positive += other.label_positive
            acc.missing += other.missing
            acc.add_moments(other.count, other.mean, other.m2)
            acc.min, acc.max = np.minimum(acc.min, other.min), np.maximum(acc.max, other.max)
            for mine, theirs in zip(acc.sketches, other.sketches):
                mine.merge(theirs)
        return acc

    def extract_output(self, acc: SplitStats) -> dict:
        return summarize(acc)


def summarize(acc: SplitStats) -> dict:
    """JSON-ready statistics of one split."""
    channels = []
    for c, sketch in enumerate(acc.sketches):
        n = int(acc.count[c])
        stats = {"count": n, "missing": int(acc.missing[c]), "mean": None, "std": None, "min": None, "max": None,
                 "quantiles": None, "histogram": None, "quantiles_exact": sketch.exact}
        if n:
            lo, hi = float(acc.min[c]), float(acc.max[c])
            stats.update(mean=float(acc.mean[c]), std=float(np.sqrt(acc.m2[c] / n)), min=lo, max=hi,
                         quantiles=dict(zip(map(quantile_key, QUANTILES), sketch.quantiles(QUANTILES))),
                         histogram=sketch.histogram(lo, hi, HISTOGRAM_BINS))
        channels.append(stats)
    return {"num_examples": acc.examples, "num_steps": acc.steps, "label_count": acc.label_count,
            "label_positive": acc.label_positive, "channels": channels}


def chunk_arrays(item, num_channels: int):
    """(split, serialized chunk or window) -> (split, (values [steps, channels], labels))."""
    split, record = item
    example = decode_example(record)
    values = example["window"] if "window" in example else example.get("values", np.zeros(0, np.float32))
    return split, (np.asarray(values).reshape(-1, num_channels), np.atleast_1d(example.get("label", 0)))


def _assemble(by_split: dict, splits: list[str], channels: list[str], kind: str) -> str:
    empty = summarize(SplitStats(len(channels), 1))
    out = {"kind": kind, "channels": channels, "quantile_points": list(QUANTILES), "histogram_bins": HISTOGRAM_BINS,
           "splits": {}}
    for split in splits:
        stats = by_split.get(split, empty)
        out["splits"][split] = {**stats, "channels": dict(zip(channels, stats["channels"]))}
    return json.dumps(out, indent=2, sort_keys=True)


@component
def compute_statistics(examples: Input[Examples], statistics: Output[ExampleStatistics],
                       max_exact_values: int = MAX_EXACT_VALUES, beam_args: list[str] | None = None) -> dict:
    """Per split and channel: count, missing, mean, std, min, max, quantiles and a 20-bin histogram, plus label
    positives, in one Beam pass over time-series chunks (or windows); written to ``statistics.json``."""
    channels = list(examples.properties.get("channels") or [])
    splits = examples.splits
    if not channels or not splits:
        raise DataError(f"{examples.path}: Examples artifact has no 'channels'/'splits' properties")
    pipeline = beam_pipeline(beam_args)
    keyed = [read_split(pipeline, examples, s) | f"Key[{s}]" >> beam.Map(lambda r, s=s: (s, r)) for s in splits]
    target = statistics.file("statistics.json")
    _ = (keyed | "All" >> beam.Flatten()
         | "Arrays" >> beam.Map(chunk_arrays, len(channels))
         | "Stats" >> beam.CombinePerKey(StatsCombineFn(len(channels), max_exact_values))
         | "ToDict" >> beam.combiners.ToDict()
         | "Json" >> beam.Map(_assemble, splits, channels, examples.properties.get("kind", ""))
         | "Write" >> beam.io.WriteToText(str(target), shard_name_template="", num_shards=1))
    run_pipeline(pipeline)
    result = statistics.read_json("statistics.json")
    statistics.properties.update(splits=splits, channels=channels, quantile_points=list(QUANTILES))
    return {f"steps_{s}": result["splits"][s]["num_steps"] for s in splits}

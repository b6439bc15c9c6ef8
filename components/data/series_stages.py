"""The three Beam jobs of ``ingest_timeseries``, so that no worker ever holds a whole series.

A series can be longer than a worker's memory, and everything ingest does to it (sort, de-duplicate, resample,
fill or break gaps, split by time, number the steps) looks global. Each of those is local once the series is cut
into *time buckets* of at most ~``bucket_rows`` rows and a few facts about the neighbours are known:

1. **Stage rows** (:class:`StageRanges`, one call a byte range of a CSV): parse, then write one column file a
   series the range holds, sorted by time, and report a block record: rows, first/last timestamp and every
   ``sample_every``-th timestamp.
2. **Sort buckets** (:class:`SortBucket`, one call a bucket): the launcher cuts each series' time axis at
   quantiles of the samples (:func:`plan_buckets`; on the resample grid, so a slot never straddles two buckets,
   and equal timestamps always share one). A call reads, from each block overlapping its time range, only those
   rows (the blocks are sorted: two binary searches, one seek a column), merges them, rejects duplicate timestamps
   (first in file/line order wins: the same rule and message as a whole-series sort), applies NAB label windows and
   merges resample slots; it writes the bucket's sorted steps and reports its row count, first and last step, and
   the distinct gaps between its steps (count and last position of each).
3. **Write chunks** (:class:`WriteChunks`, one call a bucket): from those reports the launcher (:func:`plan_series`)
   derives what is global: the series' typical step (median of all gaps), where breaks fall, each bucket's first
   step index, the time split's boundaries and the segment running into each bucket. A call fills interpolated
   slots (also the ones between its predecessor's last step and its first), cuts chunks at split, segment and
   ``chunk_size`` boundaries exactly as a single pass over the whole series would, and writes them.

Memory: a call holds one range (stage 1) or one bucket (stages 2-3); the launcher holds one small record a block
and a bucket. The result, step for step, equals a whole-series pass (tests compare both on shuffled input with
duplicates and gaps); only the cut of chunks can differ at bucket boundaries, which ``make_windows`` ignores.
Intermediate files live under the output's ``_staging/`` and are removed when ingest ends.
"""
from __future__ import annotations

import hashlib
import json

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam.example_encode import encode_example
from edgepipe.components.data.beam.files import CHUNK_GZIP_LEVEL, join_uri, shard_name, write_shard
from edgepipe.components.data.beam.job import Job, count, reject, value
from edgepipe.components.data.beam.tfrecord import frame
from edgepipe.components.data.csv_rows import ParseRange, plan_ranges
from edgepipe.components.data.splits import time_bounds
from edgepipe.components.data.staging import read_columns, write_columns

BUCKET_ROWS = 1 << 20  # rows a stage 2/3 call holds (about 50 MB at 3 channels)
SHARD_STEPS = 1 << 16  # steps per output shard file


def staged_name(kind: str, *parts) -> str:
    return f"{kind}-{hashlib.sha1(repr(parts).encode()).hexdigest()[:20]}.col"


def row_record(stamps, values, labels, i: int) -> dict:
    return {"timestamp": int(stamps[i]), "values": values[i].tolist(), "label": int(labels[i])}


# ---- stage 1 ------------------------------------------------------------------------------------------------------
class StageRanges(ParseRange):
    """A byte range -> its rows, one time-sorted column file a series; report records pass through."""

    def __init__(self, layout, headers, delimiter: str, staging: str, sample_every: int):
        super().__init__(layout, headers, delimiter)
        self.staging, self.sample_every = staging, sample_every

    def process(self, item):
        rank, path, start, _ = item
        blocks: dict[str, list[dict]] = {}
        for out in super().process(item):
            if out[0] == "data":
                sid, block = out[1]
                blocks.setdefault(sid, []).append(block)
            else:
                yield out
        for sid, parts in blocks.items():
            stamps = np.concatenate([p["timestamp"] for p in parts])
            if len(stamps) == 0:  # every row of this series in the range was rejected (the exact path emits it)
                continue
            columns = {"timestamp": stamps, "values": np.concatenate([p["values"] for p in parts]),
                       "label": np.concatenate([p["label"] for p in parts]).astype(np.int8),
                       "line": np.concatenate([p["line"] for p in parts])}
            del parts
            if len(stamps) > 1 and (np.diff(stamps) < 0).any():
                order = np.argsort(stamps, kind="stable")  # stable: equal timestamps stay in line order
                columns = {name: column[order] for name, column in columns.items()}
                stamps = columns["timestamp"]
            uri = join_uri(self.staging, staged_name("rows", sid, rank, start))
            write_columns(uri, columns)
            yield value("block", {"series": sid, "file": path, "rank": rank, "range": start, "uri": uri,
                                  "rows": len(stamps), "first": int(stamps[0]), "last": int(stamps[-1]),
                                  "sample": stamps[::self.sample_every].tolist()})


def plan_buckets(blocks: list[dict], bucket_rows: int, align: int | None) -> list[dict]:
    """Cut each series' time axis into buckets of about ``bucket_rows`` rows (at weighted quantiles of the block
    samples, floored to the ``align`` grid); a bucket ``[lo, hi)`` (None: open) lists the blocks it overlaps."""
    by_series: dict[str, list[dict]] = {}
    for block in blocks:
        by_series.setdefault(block["series"], []).append(block)
    buckets = []
    for sid in sorted(by_series):
        items = sorted(by_series[sid], key=lambda b: (b["rank"], b["range"]))
        total = sum(b["rows"] for b in items)
        cuts = np.zeros(0, np.int64)
        if total > bucket_rows:
            points = np.concatenate([np.asarray(b["sample"], np.int64) for b in items])
            weights = np.concatenate([np.full(len(b["sample"]), b["rows"] / len(b["sample"])) for b in items])
            order = np.argsort(points, kind="stable")
            reach = np.cumsum(weights[order])
            at = np.searchsorted(reach, np.arange(bucket_rows, total, bucket_rows))
            cuts = points[order][np.minimum(at, len(points) - 1)]
            if align:
                cuts = cuts // align * align
            cuts = np.unique(cuts)
        edges = [None, *cuts.tolist(), None]
        for index, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            overlapping = [b for b in items if (hi is None or b["first"] < hi) and (lo is None or b["last"] >= lo)]
            if overlapping:
                buckets.append({"series": sid, "index": index, "lo": lo, "hi": hi, "blocks": overlapping})
    return buckets


# ---- stage 2 ------------------------------------------------------------------------------------------------------
class SortBucket(beam.DoFn):
    """A bucket -> its steps sorted, de-duplicated, labelled and resampled (a column file) plus a bucket record."""

    def __init__(self, staging: str, windows: dict[str, list[tuple[int, int]]], resample: int | None):
        self.staging, self.windows, self.resample = staging, windows, resample

    def process(self, bucket):
        sid, lo, hi = bucket["series"], bucket["lo"], bucket["hi"]
        parts = []
        for block in bucket["blocks"]:
            stamps = read_columns(block["uri"], ["timestamp"])["timestamp"]
            i0 = 0 if lo is None else int(np.searchsorted(stamps, lo, "left"))
            i1 = len(stamps) if hi is None else int(np.searchsorted(stamps, hi, "left"))
            if i1 > i0:
                parts.append((block, stamps[i0:i1], read_columns(block["uri"], ["values", "label", "line"],
                                                                 rows=(i0, i1))))
        if not parts:
            return
        files = [block["file"] for block, _, _ in parts]
        rank = np.concatenate([np.full(len(s), k) for k, (_, s, _) in enumerate(parts)])  # index into parts
        ranges = np.concatenate([np.full(len(s), b["range"], np.int64) for b, s, _ in parts])
        lines = np.concatenate([c["line"] for _, _, c in parts])
        stamps = np.concatenate([s for _, s, _ in parts])
        values = np.concatenate([c["values"] for _, _, c in parts])
        labels = np.concatenate([c["label"] for _, _, c in parts]).astype(np.int64)
        file_rank = np.asarray([b["rank"] for b, _, _ in parts])[rank]
        del parts
        if len(stamps) > 1 and (np.diff(stamps) < 0).any():  # several blocks overlap in time: merge them
            order = np.lexsort((lines, ranges, file_rank, stamps))  # time, then file, then line: first wins
            rank, ranges, lines, stamps = rank[order], ranges[order], lines[order], stamps[order]
            values, labels = values[order], labels[order]

        first = np.ones(len(stamps), dtype=bool)
        first[1:] = stamps[1:] != stamps[:-1]
        origin = np.maximum.accumulate(np.where(first, np.arange(len(stamps)), 0))
        for i in np.flatnonzero(~first):
            when = np.datetime64(int(stamps[i]), "s")
            j = origin[i]
            yield reject(files[rank[i]], int(lines[i]),
                         f"duplicate timestamp {when} in series '{sid}' (first at line {{first}})",
                         range=int(ranges[i]), ref=[files[rank[j]], int(ranges[j]), int(lines[j])])
        stamps, values, labels = stamps[first], values[first], labels[first]

        windows = self.windows.get("*", self.windows.get(sid))
        for w_lo, w_hi in windows or ():
            labels |= ((stamps >= w_lo) & (stamps <= w_hi)).astype(np.int64)
        if self.resample:
            stamps, values, labels, merged = merge_slots(stamps, values, labels, self.resample)
            if merged:
                yield count("rows_merged_by_resample", merged)

        uri = join_uri(self.staging, staged_name("steps", sid, bucket["index"]))
        write_columns(uri, {"timestamp": stamps, "values": values, "label": labels.astype(np.int8)})
        yield value("bucket", {"series": sid, "index": bucket["index"], "uri": uri, "rows": len(stamps),
                               "first": row_record(stamps, values, labels, 0),
                               "last": row_record(stamps, values, labels, -1), "gaps": gap_summary(stamps)})


def merge_slots(stamps, values, labels, step: int):
    """Average the rows of each ``step``-second slot (epoch-aligned), OR their labels; returns the merged count."""
    slots = stamps // step * step
    keys, starts = np.unique(slots, return_index=True)
    merged = len(slots) - len(keys)
    if merged:
        sizes = np.diff(np.append(starts, len(slots)))
        values = np.add.reduceat(values, starts, axis=0) / sizes[:, None]
        labels = np.maximum.reduceat(labels, starts)
    return keys, values, labels, merged


def gap_summary(stamps) -> dict:
    """Distinct differences between consecutive steps: value, count, and the step after the last occurrence."""
    deltas = np.diff(stamps)
    if len(deltas) == 0:
        return {"delta": [], "count": [], "last_step": []}
    delta, first_in_reverse, counts = np.unique(deltas[::-1], return_index=True, return_counts=True)
    return {"delta": delta.tolist(), "count": counts.tolist(),
            "last_step": (len(deltas) - first_in_reverse).tolist()}  # = last index of the delta + 1


# ---- between stage 2 and 3 ----------------------------------------------------------------------------------------
def weighted_median(values: np.ndarray, counts: np.ndarray) -> float:
    """``np.median(np.repeat(values, counts))`` without the repeat."""
    order = np.argsort(values)
    values, counts = values[order], counts[order]
    reach = np.cumsum(counts)
    total = int(reach[-1])
    lower = values[np.searchsorted(reach, (total - 1) // 2 + 1)]
    upper = values[np.searchsorted(reach, total // 2 + 1)]
    return (float(lower) + float(upper)) / 2


def plan_series(reports: list[dict], resample: int | None, gaps: str) -> tuple[list[dict], int, dict]:
    """Bucket records of one series (any order) -> stage 3 tasks (with ``offset``, ``steps``, ``previous``,
    ``segment``, ``threshold``), the series' step count and its counters (``gaps``, ``steps_interpolated``)."""
    reports = sorted((r for r in reports if r["rows"]), key=lambda r: r["index"])
    cross = np.asarray([b["first"]["timestamp"] - a["last"]["timestamp"] for a, b in zip(reports, reports[1:])],
                       np.int64)
    deltas = np.concatenate([np.asarray(r["gaps"]["delta"], np.int64) for r in reports] + [cross])
    counts = np.concatenate([np.asarray(r["gaps"]["count"], np.int64) for r in reports] + [np.ones(len(cross),
                                                                                                   np.int64)])
    rows = sum(r["rows"] for r in reports)
    threshold = None  # a difference above it is a gap
    if resample:
        threshold = resample
    elif gaps == "break" and rows > 2:
        threshold = 1.5 * weighted_median(deltas, counts)
    counters = {"gaps": int(counts[deltas > threshold].sum()) if threshold is not None else 0}
    interpolate = bool(resample) and gaps == "interpolate"
    breaks = gaps == "break" and threshold is not None
    tasks, offset, last_break = [], 0, 0
    for k, report in enumerate(reports):
        gap = int(cross[k - 1]) if k else 0
        inner = np.asarray(report["gaps"]["delta"], np.int64)
        steps = report["rows"]
        if interpolate:  # missing slots inside the bucket and between its predecessor and it
            wide = inner > resample
            steps += int(((inner[wide] // resample - 1) * np.asarray(report["gaps"]["count"])[wide]).sum())
            steps += max(gap // resample - 1, 0) if k else 0
        if breaks and k and gap > threshold:
            last_break = offset
        tasks.append({**{key: report[key] for key in ("series", "index", "uri")}, "offset": offset, "steps": steps,
                      "previous": reports[k - 1]["last"] if k else None, "segment": last_break,
                      "threshold": threshold if breaks else None})
        if breaks:
            after = np.asarray(report["gaps"]["last_step"], np.int64)[inner > threshold]
            if len(after):
                last_break = offset + int(after.max())
        offset += steps
    if interpolate:
        counters["steps_interpolated"] = offset - rows
    return tasks, offset, counters


# ---- stage 3 ------------------------------------------------------------------------------------------------------
class WriteChunks(beam.DoFn):
    """A planned bucket -> its steps [interpolated], cut into chunks at split, segment and chunk_size boundaries,
    written as shards of ``examples``."""

    def __init__(self, examples: str, split_names: list[str], chunk_size: int, interpolate: int | None):
        self.examples, self.names, self.chunk_size, self.interpolate = examples, split_names, chunk_size, interpolate

    def process(self, task):
        cols = read_columns(task["uri"])
        stamps, values, labels = cols["timestamp"], cols["values"], cols["label"].astype(np.int64)
        previous = task["previous"]
        if self.interpolate:
            stamps, values, labels = fill_grid(stamps, values, labels, previous, self.interpolate)
        offset, n, sid = task["offset"], len(stamps), task["series"]
        starts = {task["segment"], *task["bounds"][:-1]}  # positions where a segment begins
        if task["threshold"] is not None:
            starts.update((offset + np.flatnonzero(np.diff(stamps) > task["threshold"]) + 1).tolist())
        cuts = sorted({offset, offset + n, *(s for s in starts if offset < s < offset + n)})
        ordered = np.asarray(sorted(starts))
        records: dict[str, list] = {}
        steps_in = {name: 0 for name in self.names}
        shard = {name: 0 for name in self.names}
        spans: dict[str, list[int]] = {}
        for r_lo, r_hi in zip(cuts[:-1], cuts[1:]):
            split = self.names[int(np.searchsorted(task["bounds"], r_lo, "right")) - 1]
            segment = int(ordered[np.searchsorted(ordered, r_lo, "right") - 1])
            at = r_lo
            while at < r_hi:
                end = min(segment + ((at - segment) // self.chunk_size + 1) * self.chunk_size, r_hi)
                a, b = at - offset, end - offset
                records.setdefault(split, []).append(encode_example({
                    "series": sid, "start": np.int64(at), "segment": np.int64(segment),
                    "timestamp": stamps[a:b], "values": values[a:b].astype(np.float32), "label": labels[a:b]}))
                steps_in[split] += end - at
                spans.setdefault(split, [at, end])[1] = end
                at = end
                if steps_in[split] >= SHARD_STEPS:
                    yield from self._flush(sid, task["index"], split, records, shard, spans)
                    steps_in[split] = 0
        for split in list(records):
            yield from self._flush(sid, task["index"], split, records, shard, spans)

    def _flush(self, sid, index, split, records, shard, spans):
        batch = records.pop(split, [])
        start, end = spans.pop(split)
        if batch:
            name = shard_name("ts", sid, split, index, shard[split])
            write_shard(self.examples, split, name, frame(batch), level=CHUNK_GZIP_LEVEL)
            shard[split] += 1
            yield count(f"chunks_{split}", len(batch))
            yield value("shard", {"series": sid, "split": split, "name": name, "start": start, "end": end})


def fill_grid(stamps, values, labels, previous: dict | None, step: int):
    """Linear fill of the missing ``step`` slots up to the last step, from the predecessor's last step on (that
    step itself is not repeated); a filled slot's label is the OR of its two neighbours."""
    if previous is not None:
        stamps = np.concatenate([[previous["timestamp"]], stamps])
        values = np.concatenate([np.asarray([previous["values"]], values.dtype), values])
        labels = np.concatenate([[previous["label"]], labels])
    grid = stamps[0] + np.arange((stamps[-1] - stamps[0]) // step + 1) * step
    filled = np.empty((len(grid), values.shape[1]))
    for c in range(values.shape[1]):
        filled[:, c] = np.interp(grid, stamps, values[:, c])
    before = np.searchsorted(stamps, grid, side="right") - 1
    after = np.minimum(before + 1, len(stamps) - 1)
    grid_labels = np.where(stamps[before] == grid, labels[before], labels[before] | labels[after])
    skip = 1 if previous is not None else 0
    return grid[skip:], filled[skip:], grid_labels[skip:]


# ---- the jobs, as the launcher runs them --------------------------------------------------------------------------
def stage_rows(beam_args, report_dir, files: list[str], split_bytes: int, layout, headers: dict, delimiter: str,
               staging: str, bucket_rows: int):
    """Job 1 -> (result, block records, line counts per range)."""
    job = Job(beam_args, report_dir)
    job.report(job.pipeline | "Ranges" >> beam.Create(plan_ranges(files, split_bytes))
               | "Stage" >> beam.ParDo(StageRanges(layout, headers, delimiter, staging, max(1, bucket_rows // 64))))
    result = job.run()
    line_counts = {k: v for k, v in result.values.items() if k.startswith("lines/")}
    return result, result.values.get("block", []), line_counts


def sort_buckets(beam_args, report_dir, buckets: list[dict], staging: str, windows: dict, resample: int | None):
    """Job 2 -> its result (bucket records under ``values["bucket"]``, duplicate rejects, counters)."""
    job = Job(beam_args, report_dir)
    job.report(job.pipeline | "Buckets" >> beam.Create(buckets)
               | "Sort" >> beam.ParDo(SortBucket(staging, windows, resample)))
    return job.run()


def write_chunks(beam_args, report_dir, examples: str, reports: list[dict], split: dict[str, float],
                 chunk_size: int, resample: int | None, gaps: str) -> dict:
    """Plan every series (:func:`plan_series`), run job 3; returns totals: ``steps_<split>``, ``chunks_<split>``,
    ``gaps``, ``steps_interpolated``, ``series_ids``."""
    by_series: dict[str, list[dict]] = {}
    for report in reports:
        by_series.setdefault(report["series"], []).append(report)
    totals: dict = {f"steps_{name}": 0 for name in split}
    totals.update(gaps=0, steps_interpolated=0, series_ids=sorted(by_series))
    tasks = []
    for sid in sorted(by_series):
        planned, steps, counters = plan_series(by_series[sid], resample, gaps)
        bounds = time_bounds(steps, split.values()).tolist()
        for name, lo, hi in zip(split, bounds[:-1], bounds[1:]):
            totals[f"steps_{name}"] += hi - lo
        for key, n in counters.items():
            totals[key] += n
        tasks.extend({**task, "bounds": bounds} for task in planned)
    job = Job(beam_args, report_dir)
    interpolate = resample if resample and gaps == "interpolate" else None
    job.report(job.pipeline | "Tasks" >> beam.Create(tasks)
               | "Write" >> beam.ParDo(WriteChunks(examples, list(split), chunk_size, interpolate)))
    result = job.run()
    totals.update({f"chunks_{name}": result.get(f"chunks_{name}") for name in split})
    totals["shards"] = sorted(result.values.get("shard", []), key=lambda s: (s["series"], s["split"], s["start"]))
    return totals


# ---- the shard index -------------------------------------------------------------------------------------------
CHUNK_INDEX = "chunk_index.json"


def write_chunk_index(examples, shards: list[dict]) -> None:
    """Which steps of which (series, split) each chunk shard holds: lets ``make_windows`` cut each shard with just
    the tail of the one before it, without regrouping all steps (kept by ``normalize``, which keeps shard names)."""
    examples.write_json(CHUNK_INDEX, {"shards": shards})


def read_chunk_index(examples) -> list[dict] | None:
    path = examples.path / CHUNK_INDEX
    return json.loads(path.read_text())["shards"] if path.exists() else None

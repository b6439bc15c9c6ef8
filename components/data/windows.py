"""make_windows: time-series chunks -> fixed-size sliding windows, one Example per window, in bounded memory.

Why "window chunks" with an overlap: a series may be longer than a worker's memory, so no step ever needs the
whole series. Steps are keyed by (series, split, k = step // chunk_steps); every step also goes to key k+1 when it
is among the last ``size - 1`` steps of its chunk. A window belongs to the chunk holding its *last* step, so each
key holds at most ``chunk_steps + size - 1`` steps and every window is cut exactly once.

Which windows: a window of ``size`` steps starting at step ``w`` exists iff its steps are contiguous (no missing
step index), lie in one segment (``segment`` of the chunks: split boundaries and ``gaps="break"`` in ingest), and
``(w - segment) % stride == 0`` (offsets restart at each segment's first step). So no window crosses a split,
a series or a gap, and the result does not depend on how chunks were cut.

Two ways to meet the neighbours: chunks from ``ingest_timeseries`` come with a shard index (``chunk_index.json``:
series, split and step range of every shard), so each shard is one task that also reads the last ``size - 1``
steps of the shard(s) before it: no shuffle, and a task holds one shard. Chunks without an index are regrouped
as described above (a GroupByKey on the window chunk). Both give the same windows (tested).

Windows are encoded in bulk (``beam.example_encode.encode_batch``) and each task's windows are written as one shard.
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgepipe.components.data.beam.example_decode import decode_chunk
from edgepipe.components.data.beam.example_encode import encode_batch
from edgepipe.components.data.beam.files import join_uri, shard_name, split_uri, worker_uri, write_shard
from edgepipe.components.data.beam.job import Job, count, data, split_outputs
from edgepipe.components.data.beam.tfrecord import read_records
from edgepipe.components.data.series_stages import read_chunk_index
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.contracts import ExamplesInfo
from edgepipe.pipeline.errors import ConfigError, DataError

LABEL_MODES = ("any", "last")
CHUNK_STEPS = 1 << 16


def window_feature_spec(size: int, channels: int) -> dict:
    return {"window": {"dtype": "float32", "shape": [size, channels]}, "label": {"dtype": "int64", "shape": []},
            "series": {"dtype": "string", "shape": []}, "start_time": {"dtype": "int64", "shape": []},
            "start": {"dtype": "int64", "shape": []}}


def cut_windows(values: np.ndarray, labels: np.ndarray, size: int, stride: int, label_mode: str):
    """Window offsets, windows [n, size, channels] and labels of one contiguous segment (empty if too short)."""
    if len(values) < size:
        return np.zeros(0, np.int64), np.zeros((0, size, values.shape[1]), values.dtype), np.zeros(0, np.int64)
    offsets = np.arange(0, len(values) - size + 1, stride)
    windows = sliding_window_view(values, size, axis=0)[offsets].transpose(0, 2, 1)
    if label_mode == "any":
        window_labels = sliding_window_view(labels, size)[offsets].max(axis=1)
    else:
        window_labels = labels[offsets + size - 1]
    return offsets, windows, (window_labels != 0).astype(np.int64)


class KeyChunks(beam.DoFn):
    """(split, shard file) -> ((series, split, k), piece) for every window chunk k a chunk's steps belong to."""

    def __init__(self, channels: int, size: int, chunk_steps: int):
        self.channels, self.size, self.chunk_steps = channels, size, chunk_steps

    def process(self, item):
        split, path = item
        for record in read_records(path):
            chunk = decode_chunk(record, self.channels)
            n = len(chunk["values"])
            if n == 0:
                continue
            idx = chunk["start"] + np.arange(n)
            home = idx // self.chunk_steps
            targets = [(home, np.ones(n, bool))]
            if self.size > 1:  # the last size-1 steps of a chunk also serve the next one
                tail = idx >= (home + 1) * self.chunk_steps - (self.size - 1)
                targets.append((home + 1, tail))
            for keys, mask in targets:
                for k in np.unique(keys[mask]).tolist():
                    sel = mask & (keys == k)
                    lo, hi = np.flatnonzero(sel)[[0, -1]]
                    yield (chunk["series"], split, int(k)), {
                        "start": int(idx[lo]), "segment": chunk["segment"], "values": chunk["values"][lo:hi + 1],
                        "label": chunk["label"][lo:hi + 1], "timestamp": chunk["timestamp"][lo:hi + 1]}


def assemble(pieces: list[dict]):
    """Pieces of one (series, split) -> step index, segment, values, labels, timestamps in step order (a step
    delivered twice is kept once)."""
    pieces = sorted(pieces, key=lambda p: p["start"])
    idx = np.concatenate([p["start"] + np.arange(len(p["values"])) for p in pieces])
    seg = np.concatenate([np.full(len(p["values"]), p["segment"], np.int64) for p in pieces])
    values = np.concatenate([p["values"] for p in pieces])
    labels = np.concatenate([p["label"] for p in pieces])
    stamps = np.concatenate([p["timestamp"] for p in pieces])
    if len(idx) > 1 and (np.diff(idx) <= 0).any():
        keep = np.concatenate([[True], np.diff(idx) > 0])
        idx, seg, values, labels, stamps = idx[keep], seg[keep], values[keep], labels[keep], stamps[keep]
    return idx, seg, values, labels, stamps


class CutWindows(beam.DoFn):
    """Shared cutting: the windows of a (series, split) whose last step index lies in ``[lo, hi)``, written as one
    shard; emits counts and, per segment seen, (series, split, segment, windows) for the short-segment count."""

    def __init__(self, windows: str, size: int, stride: int, label_mode: str):
        self.windows, self.size, self.stride, self.label_mode = windows, size, stride, label_mode

    def cut(self, series: str, split: str, pieces: list[dict], lo: int, hi: float, name: str):
        idx, seg, values, labels, stamps = assemble(pieces)
        size, n = self.size, len(idx)
        if n < size:
            for s in np.unique(seg).tolist():
                yield data((series, split, int(s), 0))
            return
        first = np.arange(n - size + 1)
        last = first + size - 1
        ok = ((idx[last] - idx[first] == size - 1) & (seg[first] == seg[last])
              & ((idx[first] - seg[first]) % self.stride == 0) & (idx[last] >= lo) & (idx[last] < hi))
        pos = first[ok]
        if len(pos):
            windows = sliding_window_view(values, size, axis=0)[pos].transpose(0, 2, 1)
            if self.label_mode == "any":
                window_labels = sliding_window_view(labels, size)[pos].max(axis=1)
            else:
                window_labels = labels[pos + size - 1]
            blob = encode_batch({"window": windows, "label": (window_labels != 0).astype(np.int64),
                                 "series": np.full(len(pos), series, dtype=object),
                                 "start_time": stamps[pos], "start": idx[pos]})
            write_shard(self.windows, split, name, blob)
            yield count(f"windows_{split}", len(pos))
            yield count(f"positives_{split}", int((window_labels != 0).sum()))
        # segments (series, split, segment) seen here with a window or not: short ones are counted by the launcher
        owned = (idx[last] >= lo) & (idx[last] < hi)
        for s in np.unique(seg[(idx >= lo) & (idx < hi)]).tolist():
            yield data((series, split, int(s), int((ok & owned)[seg[first] == s].sum())))


class CutWindowChunk(CutWindows):
    """((series, split, k), pieces) -> the windows whose last step is in window chunk k (grouped path)."""

    def __init__(self, windows: str, size: int, stride: int, label_mode: str, chunk_steps: int):
        super().__init__(windows, size, stride, label_mode)
        self.chunk_steps = chunk_steps

    def process(self, item):
        (series, split, k), pieces = item
        yield from self.cut(series, split, list(pieces), k * self.chunk_steps, (k + 1) * self.chunk_steps,
                            shard_name("win", series, split, k))


class CutShard(CutWindows):
    """An indexed chunk shard (+ the tail of the shard before it) -> the windows whose last step is in it."""

    def __init__(self, windows: str, size: int, stride: int, label_mode: str, channels: int):
        super().__init__(windows, size, stride, label_mode)
        self.channels = channels

    def process(self, task):
        pieces = [decode_chunk(record, self.channels) for record in read_records(task["uri"])]
        steps = 0
        for uri in task["previous"]:  # nearest first; only the last size - 1 steps before this shard are needed
            for record in reversed(read_records(uri)):
                if steps >= self.size - 1:
                    break
                pieces.append(decode_chunk(record, self.channels))
                steps += len(pieces[-1]["values"])
        yield from self.cut(task["series"], task["split"], pieces, task["start"], float("inf"),
                            shard_name("win", task["series"], task["split"], task["name"]))


def indexed_tasks(examples: Examples, index: list[dict], size: int, beam_args) -> list[dict]:
    """One task a chunk shard, with the shards holding the ``size - 1`` steps just before it (same series and
    split, contiguous steps; nearest first)."""
    root = worker_uri(examples.path, beam_args)
    tasks, earlier = [], {}
    for shard in sorted(index, key=lambda s: (s["series"], s["split"], s["start"])):
        uri = join_uri(split_uri(root, shard["split"]), shard["name"])
        chain = earlier.setdefault((shard["series"], shard["split"]), [])
        previous, expect, steps = [], shard["start"], 0
        for before_uri, start, end in reversed(chain):
            if steps >= size - 1 or end != expect:
                break
            previous.append(before_uri)
            steps, expect = steps + end - start, start
        tasks.append({**shard, "uri": uri, "previous": previous})
        chain.append((uri, shard["start"], shard["end"]))
    return tasks


def check_lengths(index: list[dict], size: int, score_splits: list[str]) -> None:
    """Refuse, before any window is cut, data too short for one window: the train split must hold a series of at
    least ``size`` steps, and so must one of ``score_splits`` (the splits evaluation scores), if given. Without
    this a short series ran on to training and failed there with "no normal windows to train on"."""
    steps: dict[str, dict[str, int]] = {}
    for shard in index:
        per_series = steps.setdefault(shard["split"], {})
        per_series[shard["series"]] = per_series.get(shard["series"], 0) + shard["end"] - shard["start"]
    for group in (["train"], list(score_splits)):
        lengths = [(n, series, split) for split in group for series, n in steps.get(split, {}).items()]
        if not group or max(lengths, default=(0,))[0] >= size:
            continue
        where = " or ".join(f"'{split}'" for split in group)
        if not lengths:
            raise DataError(f"split {where} has no data: no window of window.size {size} steps can be cut")
        n, series, split = max(lengths)
        longest = f" (the longest of {len(lengths)})" if len(lengths) > 1 else ""
        raise DataError(f"series '{series}' has {n} steps in split '{split}'{longest}, fewer than window.size "
                        f"{size}: no window can be cut from split {where}")


@component(version="2")
def make_windows(examples: Input[Examples], windows: Output[Examples], size: int = 32, stride: int = 4,
                 label_mode: str = "any", chunk_steps: int = CHUNK_STEPS, score_splits: list[str] | None = None,
                 beam_args: list[str] | None = None) -> dict:
    """Cut every (series, split, segment) of time-series chunks into windows of ``size`` steps every ``stride``
    steps; label 1 if any step is anomalous (``any``) or if the last one is (``last``). Memory per worker is
    bounded by ``chunk_steps + size - 1`` steps. Data too short for one train window (or for one window in any of
    ``score_splits``) is refused first, naming the longest series and its length."""
    if size < 1 or stride < 1:
        raise ConfigError(f"make_windows: size and stride must be >= 1, got size={size}, stride={stride}")
    if label_mode not in LABEL_MODES:
        raise ConfigError(f"make_windows: unknown label_mode '{label_mode}' (choose from {', '.join(LABEL_MODES)})")
    info = examples.info()
    if info.kind != "timeseries_chunks":
        raise DataError(f"{examples.path}: make_windows needs kind 'timeseries_chunks', got '{info.kind}'")
    channels, splits = info.channel_names, examples.splits
    if not channels:
        raise DataError(f"{examples.path}: timeseries_chunks examples record no 'channels'")
    chunk_steps = max(int(chunk_steps), size)

    job = Job(beam_args, windows.path / "_report")
    index = read_chunk_index(examples)
    if index is not None:  # ingest's shard index: one task a shard, no shuffle
        check_lengths(index, size, [split for split in score_splits or [] if split in splits])
        cut = (job.pipeline | "Shards" >> beam.Create(indexed_tasks(examples, index, size, beam_args))
               | "Cut" >> beam.ParDo(CutShard(job.uri(windows.path), size, stride, label_mode, len(channels))))
    else:
        cut = (job.pipeline | "Files" >> beam.Create(job.shards(examples, splits))
               | "Key" >> beam.ParDo(KeyChunks(len(channels), size, chunk_steps))
               | "ByChunk" >> beam.GroupByKey()
               | "Cut" >> beam.ParDo(CutWindowChunk(job.uri(windows.path), size, stride, label_mode, chunk_steps)))
    segments, report = split_outputs(cut, "Cut")
    job.report(report)
    job.report(segments | "Segments" >> beam.Map(lambda s: ("value", "segment", s)))
    result = job.run()
    for split in splits:
        windows.split_dir(split)

    seen: dict[tuple, int] = {}
    for series, split, segment, n in result.values.get("segment", []):
        seen[(series, split, segment)] = seen.get((series, split, segment), 0) + n
    carried = {k: v for k, v in examples.properties.items() if k not in ("feature_spec", "kind", "chunk_size")}
    windows.properties.update(ExamplesInfo.from_dict({  # typed on write: a fact of the wrong type fails here
        **carried, "splits": splits, "channels": channels, "window_size": size, "stride": stride,
        "label_mode": label_mode, "kind": "windows", "feature_spec": window_feature_spec(size, len(channels)),
        "counts": {s: result.get(f"windows_{s}") for s in splits}}, f"{windows.path} properties").to_dict())
    metrics = {}
    for split in splits:
        metrics[f"windows_{split}"] = result.get(f"windows_{split}")
        metrics[f"positives_{split}"] = result.get(f"positives_{split}")
    metrics["short_segments"] = sum(1 for n in seen.values() if n == 0)
    return metrics

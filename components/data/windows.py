"""make_windows: time-series chunks -> fixed-size sliding windows, one Example per window.

Why group by (series, split) before windowing: a window must never mix two machines or straddle a split boundary
(that would leak eval/test steps into training windows). Chunks of one key are ordered by ``start`` and
concatenated; a gap in ``start`` (not produced by ingest, but possible from other producers) starts a new segment
so windows never bridge it either. Windows come from ``sliding_window_view`` over the whole segment at once.
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgepipe.components.data.beam_io import (beam_pipeline, count, decode_chunk, encode_example, read_split,
                                              run_pipeline, write_split)
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError

LABEL_MODES = ("any", "last")


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


class CutWindows(beam.DoFn):
    """((series, split), chunks) -> (split, serialized window Example) for every window of every segment."""

    def __init__(self, size: int, stride: int, label_mode: str):
        self.size, self.stride, self.label_mode = size, stride, label_mode

    def process(self, item):
        (series, split), chunks = item
        chunks = sorted(chunks, key=lambda c: c["start"])
        segments, current = [], [chunks[0]]
        for chunk in chunks[1:]:
            previous = current[-1]
            if chunk["start"] == previous["start"] + len(previous["values"]):
                current.append(chunk)
            else:
                segments.append(current)
                current = [chunk]
        segments.append(current)
        for segment in segments:
            values = np.concatenate([c["values"] for c in segment])
            labels = np.concatenate([c["label"] for c in segment])
            stamps = np.concatenate([c["timestamp"] for c in segment])
            offsets, windows, window_labels = cut_windows(values, labels, self.size, self.stride, self.label_mode)
            if len(offsets) == 0:
                count(f"short_segments_{split}")
                continue
            count(f"windows_{split}", len(offsets))
            count(f"positives_{split}", int(window_labels.sum()))
            first = segment[0]["start"]
            for offset, window, label in zip(offsets.tolist(), windows, window_labels.tolist()):
                yield split, encode_example({"window": window, "label": np.int64(label), "series": series,
                                             "start_time": stamps[offset], "start": np.int64(first + offset)})


def _keyed_chunk(record: bytes, split: str, channels: int):
    chunk = decode_chunk(record, channels)
    return (chunk["series"], split), chunk


def _split_index(item, num_partitions: int, names: list[str]) -> int:
    return names.index(item[0])


@component
def make_windows(examples: Input[Examples], windows: Output[Examples], size: int = 32, stride: int = 4,
                 label_mode: str = "any", beam_args: list[str] | None = None) -> dict:
    """Cut every (series, split) of time-series chunks into windows of ``size`` steps every ``stride`` steps;
    label 1 if any step is anomalous (``any``) or if the last one is (``last``)."""
    if size < 1 or stride < 1:
        raise ConfigError(f"make_windows: size and stride must be >= 1, got size={size}, stride={stride}")
    if label_mode not in LABEL_MODES:
        raise ConfigError(f"make_windows: unknown label_mode '{label_mode}' (choose from {', '.join(LABEL_MODES)})")
    if examples.properties.get("kind") != "timeseries_chunks":
        raise DataError(f"{examples.path}: make_windows needs kind 'timeseries_chunks', "
                        f"got '{examples.properties.get('kind')}'")
    channels, splits = list(examples.properties["channels"]), examples.splits

    pipeline = beam_pipeline(beam_args)
    keyed = [read_split(pipeline, examples, s) | f"Decode[{s}]" >> beam.Map(_keyed_chunk, s, len(channels))
             for s in splits]
    cut = (keyed | "All" >> beam.Flatten() | "BySeriesSplit" >> beam.GroupByKey()
           | "Cut" >> beam.ParDo(CutWindows(size, stride, label_mode)))
    parts = cut | "BySplit" >> beam.Partition(_split_index, len(splits), splits)
    for i, split in enumerate(splits):
        write_split(parts[i] | f"Payload[{split}]" >> beam.Values(), windows, split)
    counters = run_pipeline(pipeline)

    carried = {k: v for k, v in examples.properties.items() if k not in ("feature_spec", "kind", "chunk_size")}
    windows.properties.update({**carried, "splits": splits, "channels": channels, "window_size": size,
                               "stride": stride, "label_mode": label_mode, "kind": "windows",
                               "feature_spec": window_feature_spec(size, len(channels))})
    metrics = {}
    for split in splits:
        metrics[f"windows_{split}"] = counters.get(f"windows_{split}", 0)
        metrics[f"positives_{split}"] = counters.get(f"positives_{split}", 0)
    metrics["short_segments"] = sum(counters.get(f"short_segments_{s}", 0) for s in splits)
    return metrics

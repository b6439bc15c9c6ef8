"""normalize: per-channel scaling of time series fitted on the TRAIN split's statistics, applied to every split.

Why fit on train only: eval/test must be transformed exactly as unseen data will be at serving time, so their own
mean/range must not leak into the parameters. The fitted ``transform.json`` ({"method", "channels", "center",
"scale"}, ``x_norm = (x - center) / scale``) is what the export bundle embeds for on-device preprocessing. The
fitting rules (:func:`fit`) are shared with ``transform_features`` for numeric columns of tables.

Each shard is rewritten by one DoFn call: the float payload of every record (``values`` of a chunk, ``window`` of a
window) is located in the serialized bytes and overwritten in place, so nothing else is re-encoded.
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam.example_decode import float_spans
from edgepipe.components.data.beam.files import CHUNK_GZIP_LEVEL, GZIP_LEVEL, base_name, write_shard
from edgepipe.components.data.beam.job import Job, count
from edgepipe.components.data.beam.tfrecord import frame, read_records
from edgepipe.components.data.series_stages import read_chunk_index, write_chunk_index
from edgepipe.pipeline.artifacts import Examples, ExampleStatistics, TransformParams
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError

METHODS = ("zscore", "minmax", "robust")


def fit(channel_stats: dict, method: str) -> tuple[float, float]:
    """(center, scale) of one channel from its train statistics; a zero/undefined scale becomes 1."""
    if channel_stats.get("count", 0) == 0:
        return 0.0, 1.0
    if method == "zscore":
        center, scale = channel_stats["mean"], channel_stats["std"]
    elif method == "minmax":
        center, scale = channel_stats["min"], channel_stats["max"] - channel_stats["min"]
    else:  # robust
        q = channel_stats["quantiles"]
        center, scale = q["0.5"], q["0.75"] - q["0.25"]
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return float(center), float(scale)


class NormalizeShard(beam.DoFn):
    """(split, shard) -> the same shard with the float feature normalized, written under ``transformed``."""

    def __init__(self, transformed: str, center: list[float], scale: list[float], level: int = GZIP_LEVEL):
        self.transformed, self.level = transformed, level
        self.center = np.asarray(center, np.float64)
        self.scale = np.asarray(scale, np.float64)

    def process(self, item):
        split, path = item
        out = []
        for record in read_records(path):
            buffer = bytearray(record)
            spans = float_spans(buffer)
            name = "window" if "window" in spans else "values"
            if name in spans:
                lo, hi = spans[name]
                values = np.frombuffer(buffer, "<f4", (hi - lo) // 4, lo).reshape(-1, len(self.center))
                scaled = ((values.astype(np.float64) - self.center) / self.scale).astype("<f4")
                buffer[lo:hi] = scaled.tobytes()
            out.append(bytes(buffer))
        write_shard(self.transformed, split, base_name(path), frame(out), level=self.level)
        yield count("examples_normalized", len(out))


def fit_channels(statistics: ExampleStatistics, channels: list[str], method: str, fit_split: str):
    stats = statistics.read_json("statistics.json")
    fitted = stats.get("splits", {}).get(fit_split)
    if fitted is None:
        raise DataError(f"{statistics.path}: statistics have no '{fit_split}' split to fit normalization on")
    if fitted.get("num_steps", fitted.get("num_examples", 0)) == 0:
        raise DataError(f"{statistics.path}: split '{fit_split}' is empty; cannot fit normalization")
    if list(stats.get("channels", [])) != channels:
        raise DataError(f"{statistics.path}: statistics channels {stats.get('channels')} != examples {channels}")
    center, scale = zip(*(fit(fitted["channels"][c], method) for c in channels))
    return list(center), list(scale)


@component(version="2")
def normalize(examples: Input[Examples], statistics: Input[ExampleStatistics], transformed: Output[Examples],
              params: Output[TransformParams], method: str = "zscore", fit_split: str = "train",
              beam_args: list[str] | None = None) -> dict:
    """Fit zscore (mean/std), minmax (min, max-min) or robust (median, IQR) per channel on the train split's
    statistics, write ``transform.json`` and the normalized Examples (same layout and properties)."""
    if method not in METHODS:
        raise ConfigError(f"normalize: unknown method '{method}' (choose from {', '.join(METHODS)})")
    info = examples.info()
    channels = info.channel_names
    center, scale = fit_channels(statistics, channels, method, fit_split)
    params.write_json("transform.json", {"method": method, "channels": channels, "center": center,
                                         "scale": scale})
    params.properties.update(method=method, channels=channels, fit_split=fit_split)

    level = CHUNK_GZIP_LEVEL if info.kind == "timeseries_chunks" else GZIP_LEVEL
    job = Job(beam_args, transformed.path / "_report")
    files = job.shards(examples, examples.splits)
    job.report(job.pipeline | "Files" >> beam.Create(files)
               | "Normalize" >> beam.ParDo(NormalizeShard(job.uri(transformed.path), center, scale, level)))
    result = job.run()
    for split in examples.splits:
        transformed.split_dir(split)
    transformed.properties.update({**examples.properties, "normalization": method})
    index = read_chunk_index(examples)
    if index is not None:  # same shard names, same steps
        write_chunk_index(transformed, index)
    return {"examples": result.get("examples_normalized")}

"""normalize: per-channel scaling fitted on the TRAIN split's statistics, applied to every split.

Why fit on train only: eval/test must be transformed exactly as unseen data will be at serving time, so their own
mean/range must not leak into the parameters. The fitted ``transform.json`` ({"method", "channels", "center",
"scale"}, ``x_norm = (x - center) / scale``) is what the export bundle embeds for on-device preprocessing.
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam_io import beam_pipeline, count, read_split, run_pipeline, write_split, example_proto
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


class Normalize(beam.DoFn):
    """Rewrites the float feature (``values`` of a chunk, ``window`` of a window) in place; the rest is kept."""

    def __init__(self, center: list[float], scale: list[float]):
        self.center = np.asarray(center, np.float64)
        self.scale = np.asarray(scale, np.float64)

    def process(self, record: bytes):
        example = example_proto().Example.FromString(record)
        fmap = example.features.feature
        name = "window" if "window" in fmap else "values"
        values = np.asarray(fmap[name].float_list.value, np.float64).reshape(-1, len(self.center))
        fmap[name].float_list.value[:] = ((values - self.center) / self.scale).astype(np.float32).ravel().tolist()
        count("examples_normalized")
        yield example.SerializeToString()


@component
def normalize(examples: Input[Examples], statistics: Input[ExampleStatistics], transformed: Output[Examples],
              params: Output[TransformParams], method: str = "zscore", fit_split: str = "train",
              beam_args: list[str] | None = None) -> dict:
    """Fit zscore (mean/std), minmax (min, max-min) or robust (median, IQR) per channel on the train split's
    statistics, write ``transform.json`` and the normalized Examples (same layout and properties)."""
    if method not in METHODS:
        raise ConfigError(f"normalize: unknown method '{method}' (choose from {', '.join(METHODS)})")
    channels = list(examples.properties.get("channels") or [])
    stats = statistics.read_json("statistics.json")
    fitted = stats.get("splits", {}).get(fit_split)
    if fitted is None:
        raise DataError(f"{statistics.path}: statistics have no '{fit_split}' split to fit normalization on")
    if fitted["num_steps"] == 0:
        raise DataError(f"{statistics.path}: split '{fit_split}' is empty; cannot fit normalization")
    if list(stats.get("channels", [])) != channels:
        raise DataError(f"{statistics.path}: statistics channels {stats.get('channels')} != examples {channels}")
    center, scale = zip(*(fit(fitted["channels"][c], method) for c in channels))
    params.write_json("transform.json", {"method": method, "channels": channels, "center": list(center),
                                         "scale": list(scale)})
    params.properties.update(method=method, channels=channels, fit_split=fit_split)

    pipeline = beam_pipeline(beam_args)
    for split in examples.splits:
        normalized = read_split(pipeline, examples, split) | f"Normalize[{split}]" >> beam.ParDo(
            Normalize(list(center), list(scale)))
        write_split(normalized, transformed, split)
    counters = run_pipeline(pipeline)
    transformed.properties.update({**examples.properties, "normalization": method})
    return {"examples": counters.get("examples_normalized", 0)}

"""transform_features: scale numeric columns and encode categorical ones of row Examples, fitted on TRAIN only.

Fitting (from the train split's statistics, never eval/test): numeric scalar features get ``(x - center) / scale``
with the same rules as the time-series ``normalize`` (:func:`normalize.fit`: zscore, minmax, robust; a zero or
undefined scale becomes 1) and a missing value (NaN) becomes ``fill`` = 0 after scaling (the train center);
string features get a vocabulary of the ``vocab_max_size`` most frequent train values (ties by value), encoded as
an index (int64, ``oov_index = len(vocab)`` for anything else, missing included) or one-hot (float32
``[len(vocab) + 1]``, last slot = out of vocabulary). Array features (images, ``x`` of arrays) and ``label`` pass
through unchanged.

``transform.json`` holds exactly what a runtime must apply::

    {"numeric": "zscore", "categorical": "index", "label": "label", "passthrough": [...],
     "features": {"fare": {"kind": "numeric", "center": 12.5, "scale": 10.1, "fill": 0.0},
                  "company": {"kind": "categorical", "encoding": "index", "vocab": [...], "oov_index": 17}}}
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam.example_decode import decode_columns
from edgepipe.components.data.beam.example_encode import encode_batch
from edgepipe.components.data.beam.files import base_name, write_shard
from edgepipe.components.data.beam.job import Job, count
from edgepipe.components.data.beam.tfrecord import read_records
from edgepipe.components.data.normalize import METHODS, fit
from edgepipe.pipeline.artifacts import Examples, ExampleStatistics, TransformParams
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError

ENCODINGS = ("index", "onehot")


def fit_transform(stats: dict, spec: dict, numeric: str, categorical: str, vocab_max_size: int) -> dict:
    features, passthrough = {}, []
    for name, desc in spec.items():
        st = stats["features"].get(name, {})
        if name == "label" or desc.get("shape") not in ([], None) or desc.get("shape") is None:
            passthrough.append(name)
        elif desc["dtype"] == "string":
            vocab = [v for v, _ in st.get("top", [])][:vocab_max_size]
            features[name] = {"kind": "categorical", "encoding": categorical, "vocab": vocab,
                              "oov_index": len(vocab)}
        else:
            center, scale = fit(st, numeric)
            features[name] = {"kind": "numeric", "center": center, "scale": scale, "fill": 0.0}
    return {"numeric": numeric, "categorical": categorical, "label": "label" if "label" in spec else None,
            "passthrough": passthrough, "features": features}


def apply(columns: dict, params: dict) -> dict:
    """The transform on decoded columns (also usable at serving time on NumPy inputs)."""
    out = {}
    for name, rule in params["features"].items():
        col = columns[name]
        if rule["kind"] == "numeric":
            x = (np.asarray(col, np.float64) - rule["center"]) / rule["scale"]
            out[name] = np.where(np.isnan(x), rule["fill"], x).astype(np.float32)
        else:
            lookup = {v: i for i, v in enumerate(rule["vocab"])}
            idx = np.array([lookup.get(v, rule["oov_index"]) for v in col], np.int64)
            out[name] = idx if rule["encoding"] == "index" else np.eye(rule["oov_index"] + 1, dtype=np.float32)[idx]
    for name in params["passthrough"]:
        out[name] = columns[name] if not isinstance(columns[name], list) else np.array(columns[name], dtype=object)
    return out


def output_spec(spec: dict, params: dict) -> dict:
    out = {}
    for name, desc in spec.items():
        rule = params["features"].get(name)
        if rule is None:
            out[name] = desc
        elif rule["kind"] == "numeric":
            out[name] = {"dtype": "float32", "shape": []}
        elif rule["encoding"] == "index":
            out[name] = {"dtype": "int64", "shape": []}
        else:
            out[name] = {"dtype": "float32", "shape": [rule["oov_index"] + 1]}
    return out


class TransformShard(beam.DoFn):
    def __init__(self, transformed: str, spec: dict, params: dict):
        self.transformed, self.spec, self.params = transformed, spec, params

    def process(self, item):
        split, path = item
        records = read_records(path)
        if not records:
            return
        columns = apply(decode_columns(records, self.spec), self.params)
        write_shard(self.transformed, split, base_name(path), encode_batch(columns))
        yield count(f"examples_{split}", len(records))


@component(version="1")
def transform_features(examples: Input[Examples], statistics: Input[ExampleStatistics],
                       transformed: Output[Examples], params: Output[TransformParams], numeric: str = "zscore",
                       categorical: str = "index", vocab_max_size: int = 100, fit_split: str = "train",
                       beam_args: list[str] | None = None) -> dict:
    """Scale numeric features (zscore/minmax/robust) and encode string features (index/onehot, OOV bucket) with
    parameters fitted on the train split's statistics; ``transform.json`` is what the export bundle embeds."""
    if numeric not in METHODS:
        raise ConfigError(f"transform_features: unknown numeric method '{numeric}' (choose from {', '.join(METHODS)})")
    if categorical not in ENCODINGS:
        raise ConfigError(f"transform_features: unknown categorical encoding '{categorical}' "
                          f"(choose from {', '.join(ENCODINGS)})")
    if vocab_max_size < 1:
        raise ConfigError(f"transform_features: vocab_max_size must be >= 1, got {vocab_max_size}")
    spec = examples.feature_spec
    stats = statistics.read_json("statistics.json")
    fitted = stats.get("splits", {}).get(fit_split)
    if fitted is None or "features" not in fitted:
        raise DataError(f"{statistics.path}: no per-feature statistics of split '{fit_split}' to fit on")
    if fitted.get("num_examples", 0) == 0:
        raise DataError(f"{statistics.path}: split '{fit_split}' is empty; cannot fit the transform")
    fitted_params = fit_transform(fitted, spec, numeric, categorical, vocab_max_size)
    params.write_json("transform.json", fitted_params)
    params.properties.update(numeric=numeric, categorical=categorical, fit_split=fit_split,
                             features=sorted(fitted_params["features"]))

    job = Job(beam_args, transformed.path / "_report")
    files = job.shards(examples, examples.splits)
    job.report(job.pipeline | "Files" >> beam.Create(files)
               | "Transform" >> beam.ParDo(TransformShard(job.uri(transformed.path), spec, fitted_params)))
    result = job.run()
    for split in examples.splits:
        transformed.split_dir(split)
    transformed.properties.update({**examples.properties, "feature_spec": output_spec(spec, fitted_params),
                                   "transform": {"numeric": numeric, "categorical": categorical}})
    return {f"examples_{s}": result.get(f"examples_{s}") for s in examples.splits}

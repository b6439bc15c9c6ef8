"""transform_features: impute, scale and encode the columns of row Examples (a table), fitted on TRAIN only.

Why: a real table has blanks and string columns; a model trained on raw NaN learns NaN, and one that ignores string
columns ignores information. The transform is fitted once on the train split's statistics, applied here to every
split, and shipped in the bundle (``transform.json``) so the runtime applies the same arithmetic to raw rows.

Numeric scalar features: a missing value (NaN) becomes ``fill`` in raw units -- the train mean, median or a constant
(``impute``; ``none`` keeps NaN, which training then refuses, naming the column) -- then ``(x - center) / scale``
with the rules of the time-series ``normalize`` (:func:`normalize.fit`: zscore, minmax, robust; ``none`` = identity;
a zero or undefined scale becomes 1), clipped to ``[-clip, clip]`` when ``clip`` is set (an outlier 36 std out,
as the taxi sample's 1,710-mile trip, would otherwise stretch the shared int8 input scale of every column);
``missing_indicator`` adds a 0/1 column ``<name>__missing`` for each column
that had gaps in train. String features get a vocabulary of the ``vocab_max_size`` most frequent train values
(ties by value); anything else, missing included, is the out-of-vocabulary slot. ``index`` encodes it as one int64
column (an embedding's input); ``onehot`` as one float32 0/1 column per slot (``name=value`` ..., ``name#oov``),
so every model input is a scalar column and a table model's input is their concatenation. Array features (images,
``x`` of arrays) and ``label`` pass through unchanged.

``transform.json`` holds exactly what a runtime must apply::

    {"numeric": "zscore", "categorical": "onehot", "impute": "mean", "label": "label", "passthrough": [...],
     "features": {"fare": {"kind": "numeric", "center": 12.5, "scale": 10.1, "fill": 12.5, "train_missing": 0,
                           "train_rows": 7000},
                  "company": {"kind": "categorical", "encoding": "onehot", "vocab": [...], "oov_index": 17,
                              "train_missing": 2380, "train_rows": 7000}},
     "outputs": ["fare", "company=Flash Cab", ..., "company#oov"], "schema": {...schema.json of train...}}
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
from edgepipe.pipeline.artifacts import Examples, ExampleStatistics, Schema, TransformParams, ValidationReport
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError

ENCODINGS = ("index", "onehot")
IMPUTE = ("mean", "median", "constant", "none")
SCALING = (*METHODS, "none")
OOV = "#oov"  # a one-hot column name's suffix for the out-of-vocabulary slot: "company#oov"


def onehot_names(name: str, vocab: list[str]) -> list[str]:
    """The model input columns of a one-hot string feature: ``name=value`` per vocabulary entry, then ``name#oov``."""
    return [f"{name}={v}" for v in vocab] + [name + OOV]


def fit_transform(stats: dict, spec: dict, numeric: str, categorical: str, vocab_max_size: int,
                  impute: str = "mean", fill_value: float = 0.0, missing_indicator: bool = False,
                  clip: float | None = None) -> dict:
    """``transform.json`` from one split's statistics (train): per numeric feature its scaling and the raw value
    a missing one becomes (``fill``: None when ``impute`` is none, so NaN stays NaN), per string feature its
    vocabulary; ``outputs``: the model input columns it writes (a model stacks them in the transformed Examples'
    feature-spec order, which the bundle records as ``preprocessing.features``)."""
    features, passthrough, outputs = {}, [], []
    for name, desc in spec.items():
        st = stats["features"].get(name, {})
        if name == "label" or desc.get("shape") not in ([], None) or desc.get("shape") is None:
            passthrough.append(name)
        elif desc["dtype"] == "string":
            vocab = [v for v, _ in st.get("top", [])][:vocab_max_size]
            features[name] = {"kind": "categorical", "encoding": categorical, "vocab": vocab,
                              "oov_index": len(vocab), **_train_missing(st)}
            outputs += [name] if categorical == "index" else onehot_names(name, vocab)
        else:
            center, scale = fit(st, numeric) if numeric != "none" else (0.0, 1.0)
            rule = {"kind": "numeric", "center": center, "scale": scale, "fill": _fill(st, impute, fill_value),
                    **_train_missing(st)}
            outputs.append(name)
            if missing_indicator and st.get("missing", 0):
                rule["indicator"] = name + "__missing"
                outputs.append(rule["indicator"])
            features[name] = rule
    return {"numeric": numeric, "categorical": categorical, "impute": impute, "clip": clip,
            "missing_indicator": bool(missing_indicator), "label": "label" if "label" in spec else None,
            "passthrough": passthrough, "features": features, "outputs": outputs}


def _train_missing(st: dict) -> dict:
    """The train split's missing count and rows of one column: the runtime's skew report compares a request's
    missing share with training's even in a bundle without the train schema (runtime/skew.py)."""
    missing = int(st.get("missing", 0))
    return {"train_missing": missing, "train_rows": int(st.get("count", 0)) + missing}


def _fill(st: dict, impute: str, fill_value: float) -> float | None:
    """The raw value that replaces a missing one: the train mean or median, a constant, or None (no imputation)."""
    if impute == "none":
        return None
    if impute == "constant" or not st.get("count"):
        return float(fill_value)
    return float(st["mean"] if impute == "mean" else st["quantiles"]["0.5"])


def apply(columns: dict, params: dict) -> dict:
    """The transform on decoded columns (also usable at serving time on NumPy inputs): numeric columns imputed in
    raw units, then scaled in float64 and stored as float32; strings looked up in the vocabulary (anything else,
    missing included, is the OOV slot), as an int64 index or one float32 0/1 column per slot."""
    out = {}
    for name, rule in params["features"].items():
        col = columns[name]
        if rule["kind"] == "numeric":
            raw = np.asarray(col, np.float64).reshape(-1)
            missing = ~np.isfinite(raw)
            filled = np.where(missing, np.nan if rule.get("fill") is None else rule["fill"], raw)
            scaled = (filled - rule["center"]) / rule["scale"]
            if params.get("clip") is not None:
                scaled = np.clip(scaled, -params["clip"], params["clip"])
            out[name] = scaled.astype(np.float32)
            if rule.get("indicator"):
                out[rule["indicator"]] = missing.astype(np.float32)
        else:
            lookup = {v: i for i, v in enumerate(rule["vocab"])}
            idx = np.array([lookup.get(_text(v), rule["oov_index"]) for v in col], np.int64)
            if rule["encoding"] == "index":
                out[name] = idx
            else:
                hot = np.eye(rule["oov_index"] + 1, dtype=np.float32)[idx]
                for k, column in enumerate(onehot_names(name, rule["vocab"])):
                    out[column] = hot[:, k]
    for name in params["passthrough"]:
        out[name] = columns[name] if not isinstance(columns[name], list) else np.array(columns[name], dtype=object)
    return out


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else ("" if value is None else str(value))


def output_spec(spec: dict, params: dict) -> dict:
    """The transformed Examples' feature spec: model input columns in ``params["outputs"]`` order, then the
    passthrough features (the label)."""
    out = {}
    for name, desc in spec.items():
        rule = params["features"].get(name)
        if rule is None:
            continue
        if rule["kind"] == "numeric":
            out[name] = {"dtype": "float32", "shape": []}
            if rule.get("indicator"):
                out[rule["indicator"]] = {"dtype": "float32", "shape": []}
        elif rule["encoding"] == "index":
            out[name] = {"dtype": "int64", "shape": []}
        else:
            out.update({c: {"dtype": "float32", "shape": []} for c in onehot_names(name, rule["vocab"])})
    out.update({name: spec[name] for name in params["passthrough"]})
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
                       transformed: Output[Examples], params: Output[TransformParams],
                       schema: Input[Schema] | None = None, validation: Input[ValidationReport] | None = None,
                       numeric: str = "zscore", categorical: str = "index",
                       vocab_max_size: int = 100, impute: str = "mean", fill_value: float = 0.0,
                       missing_indicator: bool = False, clip: float | None = None, fit_split: str = "train",
                       beam_args: list[str] | None = None) -> dict:
    """Impute and scale numeric features (zscore/minmax/robust/none) and encode string features (index/onehot,
    OOV bucket) with parameters fitted on the train split's statistics; ``transform.json`` (with the train
    ``schema.json`` under ``schema``, for the runtime's skew report) is what the export bundle embeds.
    ``validation`` is read for nothing but order: a split that failed validation stops the run before this."""
    if numeric not in SCALING:
        raise ConfigError(f"transform_features: unknown numeric method '{numeric}' (choose from {', '.join(SCALING)})")
    if impute not in IMPUTE:
        raise ConfigError(f"transform_features: unknown impute '{impute}' (choose from {', '.join(IMPUTE)})")
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
    if clip is not None and clip <= 0:
        raise ConfigError(f"transform_features: clip must be > 0 or None, got {clip}")
    fitted_params = fit_transform(fitted, spec, numeric, categorical, vocab_max_size, impute, fill_value,
                                  missing_indicator, clip)
    if schema is not None:  # shipped with the transform: what the runtime checks raw rows against (skew)
        fitted_params["schema"] = schema.read_json("schema.json")
    params.write_json("transform.json", fitted_params)
    params.properties.update(numeric=numeric, categorical=categorical, impute=impute, fit_split=fit_split,
                             features=sorted(fitted_params["features"]), outputs=fitted_params["outputs"],
                             schema=schema is not None)

    job = Job(beam_args, transformed.path / "_report")
    files = job.shards(examples, examples.splits)
    job.report(job.pipeline | "Files" >> beam.Create(files)
               | "Transform" >> beam.ParDo(TransformShard(job.uri(transformed.path), spec, fitted_params)))
    result = job.run()
    for split in examples.splits:
        transformed.split_dir(split)
    transformed.properties.update({**examples.properties, "feature_spec": output_spec(spec, fitted_params),
                                   "transform": {"numeric": numeric, "categorical": categorical,
                                                 "impute": impute}})
    return {f"examples_{s}": result.get(f"examples_{s}") for s in examples.splits}

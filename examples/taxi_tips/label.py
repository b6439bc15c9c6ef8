"""The project's own component: TFX taxi's label, a big tipper is a trip whose tip is more than 20% of the fare.

Why a component of its own: edgepipe's ingest knows nothing of tips and fares; the question is this project's. It
reads the Examples ``ingest_csv`` wrote (``label`` = the raw ``tips`` column), writes Examples with ``label`` = 1
for a big tip and 0 otherwise (int64, two classes), shard for shard, and keeps the other features unchanged; the
tip itself is the answer, so it never reaches the model as a feature.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgepipe.components.data.beam.example_decode import decode_columns
from edgepipe.components.data.beam.example_encode import encode_batch
from edgepipe.components.data.beam.files import write_shard
from edgepipe.components.data.beam.tfrecord import read_records
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import DataError

BIG_TIP = 0.2  # a tip above this fraction of the fare is a big tip (TFX's taxi example)
CLASS_NAMES = ["small_tip", "big_tip"]


def big_tips(tips, fare, fraction: float = BIG_TIP) -> np.ndarray:
    """1 where tips > fraction x fare, compared in whole cents (see :func:`label_big_tippers`), else 0 (also for a
    missing tip or fare). One rule for the component and ``benchmarks/taxi_table.py``'s ``big_tipper`` column."""
    tips = np.round(np.asarray(tips, np.float64).reshape(-1) * 100)  # cents
    fare = np.round(np.asarray(fare, np.float64).reshape(-1) * 100)
    with np.errstate(invalid="ignore"):
        return (tips - fraction * fare > 1e-6).astype(np.int64)  # NaN compares False


@component(version="1")
def label_big_tippers(examples: Input[Examples], labeled: Output[Examples], fraction: float = BIG_TIP) -> dict:
    """label = tips > fraction x fare (1/0), in whole cents; a missing fare or tip is a small tip.

    Why cents: the CSV holds dollars and cents, ingest stores them as float32, and float32 25.05 is 25.049999...
    while 5.01 is 5.0100002: compared as stored, a tip of exactly 20% (51 of the 10,000 trips) would be a big tip.
    Rounded back to the cents the file means, exactly 20% is not more than 20%; the 1e-6 cent margin absorbs the
    float64 rounding of ``fraction x fare`` (0.2 x 2505 cents)."""
    spec = examples.feature_spec
    if "label" not in spec or "fare" not in spec:
        raise DataError(f"{examples.path}: needs the tips as 'label' (data.label_column: tips) and a 'fare' "
                        f"feature (features: {', '.join(spec)})")
    metrics = {}
    for split in examples.splits:
        rows = big = 0
        for path in examples.split_files(split):
            columns = decode_columns(read_records(path), spec)
            tips = np.asarray(columns["label"], np.float64).reshape(-1)
            columns["label"] = big_tips(tips, columns["fare"], fraction)
            write_shard(labeled, split, Path(path).name, encode_batch(columns))
            rows, big = rows + len(tips), big + int(columns["label"].sum())
        labeled.split_dir(split)
        metrics[f"big_tip_rate_{split}"] = big / rows if rows else None
    labeled.properties.update({**examples.properties, "num_classes": 2, "class_names": CLASS_NAMES,
                               "feature_spec": {**spec, "label": {"dtype": "int64", "shape": []}}})
    return metrics

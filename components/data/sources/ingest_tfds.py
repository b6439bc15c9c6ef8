"""A TensorFlow Datasets dataset -> ``x`` float32 and a class ``label`` per example (``ingest_tfds``).

Why a module of its own: one source a module, registered with :func:`.registry.source` for ``tfds:<name>[:version]``.
Each of our splits is one element (a TFDS split spec); this is the one data worker that imports TensorFlow (through
``tensorflow_datasets``). ``data.split`` fractions apply as they do to every other source: cut at the same percents
across TFDS's own splits, since TFDS has no row-level hash to split by.
"""
from __future__ import annotations

from typing import Any

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam.example_encode import encode_batch
from edgepipe.components.data.beam.files import shard_name, write_shard
from edgepipe.components.data.beam.job import Job, count
from edgepipe.components.data.sources.registry import source
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.component import Output, component
from edgepipe.pipeline.errors import ConfigError, DataError


DEFAULT_TFDS_SPLITS = {"train": "train[:80%]", "eval": "train[80%:]", "test": "test"}


class ReadTfds(beam.DoFn):
    def __init__(self, examples: str, name: str, data_dir: str | None, image_key: str, label_key: str | None,
                 batch_size: int):
        self.examples, self.name, self.data_dir = examples, name, data_dir
        self.image_key, self.label_key, self.batch_size = image_key, label_key, batch_size

    def process(self, item):
        import tensorflow_datasets as tfds

        split, spec = item
        ds = tfds.load(self.name, split=spec, data_dir=self.data_dir, shuffle_files=False)
        for b, batch in enumerate(tfds.as_numpy(ds.batch(self.batch_size))):
            x = np.asarray(batch[self.image_key])
            columns = {"x": x.astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)}
            if self.label_key:
                columns["label"] = np.asarray(batch[self.label_key]).astype(np.int64)
            write_shard(self.examples, split, shard_name("tfds", self.name, spec, b), encode_batch(columns))
            yield count(f"examples_{split}", len(x))


def fraction_splits(split: dict[str, float], tfds_splits: list[str]) -> dict[str, str]:
    """Our split fractions as TFDS split specs: every TFDS split cut at the same whole percents, the pieces of one of
    ours joined (``{"train": 0.8, "test": 0.2}`` over train/test -> ``train[0%:80%]+test[0%:80%]``, ...), so the
    fractions hold whatever TFDS's own train/test proportions are."""
    bounds, total = [], 0.0
    for ours, fraction in split.items():
        lo, total = total, total + float(fraction)
        if abs(total * 100 - round(total * 100)) > 1e-6:
            raise ConfigError(f"ingest_tfds split: TFDS slices whole percents; {split} is not in steps of 0.01")
        bounds.append((ours, round(lo * 100), round(total * 100)))
    return {ours: "+".join(f"{name}[{lo}%:{hi}%]" for name in tfds_splits) for ours, lo, hi in bounds}


@source("tfds", schemes=("tfds:",), param="name")
@component(version="2")
def ingest_tfds(examples: Output[Examples], name: str, splits: dict[str, str] | None = None,
                split: dict[str, float] | None = None, data_dir: str | None = None, batch_size: int = 1024,
                beam_args: list[str] | None = None) -> dict:
    """A TensorFlow Datasets dataset (``mnist``, ``fashion_mnist:3.0.1``, ``cifar10`` ...; prepared in ``data_dir``
    or downloadable) -> ``x`` float32 (images scaled to 0..1) and ``label`` int64 per example. ``splits`` maps our
    split names to TFDS split specs (``{"train": "train[:80%]", "eval": "train[80%:]", "test": "test"}``, the
    default); without it, ``split`` fractions cut every TFDS split at the same percents (:func:`fraction_splits`)."""
    import tensorflow_datasets as tfds

    name = name[len("tfds:"):] if name.startswith("tfds:") else name
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        builder.download_and_prepare()
    except Exception as err:  # DatasetNotFoundError, network errors, ...
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"TFDS dataset '{name}' is not available ({detail}); prepare it in data_dir first") from None
    if splits:
        splits = dict(splits)
    elif split:  # a builder with no split metadata (tfds.testing.mock_data) has one 'train' to cut
        splits = fraction_splits(split, sorted(builder.info.splits) or ["train"])
    else:
        splits = dict(DEFAULT_TFDS_SPLITS)
    features = builder.info.features
    image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    label_keys = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    if not image_keys:
        raise DataError(f"TFDS dataset '{name}': no image feature (features: {', '.join(features)})")
    image_key, label_key = image_keys[0], (label_keys[0] if label_keys else None)
    shape = list(features[image_key].shape)
    job = Job(beam_args, examples.path / "_report")
    job.report(job.pipeline | "Splits" >> beam.Create(sorted(splits.items()))
               | "Read" >> beam.ParDo(ReadTfds(job.uri(examples.path), name, data_dir and job.uri(data_dir), image_key,
                                             label_key, batch_size)))
    result = job.run()
    feature_spec = {"x": {"dtype": "float32", "shape": shape}}
    props: dict[str, Any] = {}
    if label_key:
        feature_spec["label"] = {"dtype": "int64", "shape": []}
        props["class_names"] = list(features[label_key].names)
    counts = {s: result.get(f"examples_{s}") for s in splits}
    if sum(counts.values()) == 0:
        raise DataError(f"TFDS dataset '{name}': no examples in splits {splits}")
    for s in splits:
        examples.split_dir(s)
    examples.properties.update(splits=list(splits), counts=counts, kind="images", source=f"tfds:{name}",
                               tfds_splits=splits, feature_spec=feature_spec, **props)
    return {f"examples_{s}": n for s, n in counts.items()}

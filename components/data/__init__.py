"""Beam data components: ingest (time series, CSV tables, TFRecord, npz, image and segmentation folders, TFDS),
statistics, schema and validation, transform/normalize, windows.

Each is a :func:`edgepipe.pipeline.component.component` whose pipeline comes from
:class:`edgepipe.components.data.beam.job.Job`, so one ``beam_args`` list picks the runner for all (DirectRunner,
``--direct_running_mode=multi_processing``, ``--runner=DaskRunner``, Dataflow/Flink/Spark); see ``docs/data.md``.
"""
from edgepipe.components.data.ingest import ingest_timeseries
from edgepipe.components.data.normalize import normalize
from edgepipe.components.data.statistics import compute_statistics
from edgepipe.components.data.windows import make_windows

__all__ = ["ingest_timeseries", "compute_statistics", "normalize", "make_windows"]
from edgepipe.components.data.sources.ingest_csv import ingest_csv
from edgepipe.components.data.sources.ingest_images import ingest_images
from edgepipe.components.data.sources.ingest_npz import ingest_npz
from edgepipe.components.data.sources.ingest_segmentation import ingest_segmentation
from edgepipe.components.data.sources.ingest_tfds import ingest_tfds
from edgepipe.components.data.sources.ingest_tfrecord import ingest_tfrecord

__all__ += ["ingest_csv", "ingest_tfrecord", "ingest_npz", "ingest_images", "ingest_segmentation", "ingest_tfds"]
from edgepipe.components.data.schema import infer_schema, validate_examples
from edgepipe.components.data.transform import transform_features

__all__ += ["infer_schema", "validate_examples", "transform_features"]

"""Beam data components: ingest CSV time series, compute statistics, normalize, cut windows.

Each is a :func:`edgepipe.pipeline.component.component` whose pipeline comes from
:func:`edgepipe.components.data.beam_io.beam_pipeline`, so one ``beam_args`` list picks the runner for all.
"""
from edgepipe.components.data.ingest import ingest_timeseries
from edgepipe.components.data.normalize import normalize
from edgepipe.components.data.statistics import compute_statistics
from edgepipe.components.data.windows import make_windows

__all__ = ["ingest_timeseries", "compute_statistics", "normalize", "make_windows"]

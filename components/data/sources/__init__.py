"""Ingest sources other than time series, one module a source, all behind one registry.

Each module (:mod:`.ingest_csv`, :mod:`.ingest_tfrecord`, :mod:`.ingest_npz`, :mod:`.ingest_images`,
:mod:`.ingest_segmentation`, :mod:`.ingest_tfds`) holds one ingest component and declares what it reads with
:func:`.registry.source`; what they share (split defaults, writing a batch, the artifact's properties, column typing)
is in :mod:`.shared`.
:func:`ingest_for` answers "which ingest reads this ``data.source``?", and :data:`SOURCES` lists them; adding a
source is a module here plus its import below.

Why: the five sources lived in one 633-line module, and templates chose among them with an if-ladder over suffixes.
"""
from edgepipe.components.data.sources import (ingest_csv, ingest_images, ingest_npz,  # noqa: F401
                                              ingest_segmentation, ingest_tfds, ingest_tfrecord)
from edgepipe.components.data.sources.registry import SOURCES, Source, describe, ingest_for, source

__all__ = ["SOURCES", "Source", "describe", "ingest_for", "source"]

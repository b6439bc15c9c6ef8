"""Where ``data.source`` points: the embedded demo data (``builtin:``) or a user's path, glob or URL, and the
ingest component for it.

``builtin:sensors`` is the default sensor series; ``builtin:<name>`` for other tasks names an offline generated
dataset of :mod:`edgepipe.data.synthetic` (digits, shapes, waveforms, forecast), written once under
``ROOT/datasets``.
"""
from __future__ import annotations

from pathlib import Path

from edgepipe.pipeline.config import Config
from edgepipe.pipeline.errors import ConfigError

BUILTIN_SERIES = {"builtin:sensors": "default_dataset_path"}


def series_source(source: str) -> str:
    """A sensor series source: ``builtin:sensors`` names the embedded default data; anything else is a path or
    glob used as given (a URL such as gs://... unchanged: Path() would fold '//' into '/')."""
    if source.startswith("builtin:"):
        from edgepipe import data

        if source not in BUILTIN_SERIES:
            raise ConfigError(f"config key 'data.source': unknown built-in source '{source}' "
                              f"(allowed: {', '.join(BUILTIN_SERIES)})")
        return str(getattr(data, BUILTIN_SERIES[source])())
    if "://" in source:
        return source
    return str(Path(source).expanduser())


def examples_ingest(cfg: Config, plan):
    """The ingest node for a task fed Examples: the registered source that reads ``data.source``
    (``components/data/sources``: a table, arrays, TFRecords, an image folder, a TFDS name), given the config
    values its component takes. An ``.npz``'s target array becomes the ``label`` feature: ``mask`` when the task's
    label is a mask, else ``y``."""
    from edgepipe.components.data.sources.registry import ingest_for

    source = cfg.data.source
    if source.startswith("builtin:"):
        from edgepipe.data import synthetic

        name = source.split(":", 1)[1]
        if name not in synthetic.DATASETS:
            raise ConfigError(f"config key 'data.source': unknown built-in dataset '{name}' "
                              f"(allowed: {', '.join('builtin:' + n for n in synthetic.DATASETS)})")
        source = str(synthetic.ensure(name, Path(cfg.pipeline.root) / "datasets").resolve())
    elif "://" not in source and ":" not in source.split("/")[0]:
        source = str(Path(source).expanduser())
    found = ingest_for(source)
    offered = {"label_column": cfg.data.label_column, "feature_columns": cfg.data.feature_columns,
               "split": dict(cfg.data.split), "y_key": "mask" if plan.task.label == "mask" else "y",
               "beam_args": list(cfg.pipeline.beam_args)}
    params = found.component.params
    return found.component(**found.arguments(source), **{k: v for k, v in offered.items() if k in params})

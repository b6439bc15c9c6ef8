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


def _local(path: str) -> str:
    """``~`` expanded in a local path; a URL (gs://...) as given."""
    return path if "://" in path else str(Path(path).expanduser())


def _options(cfg: Config) -> dict[str, tuple[dict, bool]]:
    """data.<key> -> (the ingest parameters it sets, whether they are given when the key is not set). Given only when
    set: ``label_column`` (its default, 'anomaly', is the series template's) and the per-source options. A None is
    left out: the component's own default applies."""
    d = cfg.data
    return {"feature_columns": ({"feature_columns": d.feature_columns}, True),
            "split": ({"split": dict(d.split)}, True),
            "label_column": ({"label_column": d.label_column}, False),
            "max_reject_fraction": ({"max_reject_fraction": d.max_reject_fraction}, False),
            "tfds": ({"splits": d.tfds.splits, "data_dir": d.tfds.data_dir and _local(d.tfds.data_dir)}, False),
            "image": ({"image_size": list(d.image.size), "channels": d.image.channels}, False)}


_ALSO_READ = {"feature_columns"}  # read by the trainer too: set with a source that ignores it, it is not refused


def examples_ingest(cfg: Config, plan):
    """The ingest node for a task fed Examples: the registered source that reads ``data.source``
    (``components/data/sources``: a table, arrays, TFRecords, an image or segmentation folder, a TFDS name; or the one
    ``data.format`` names), given the config values its component takes. A ``data`` key set explicitly that the
    chosen source does not take is refused (exit 2), naming the keys it does take. An ``.npz``'s target array becomes
    the ``label`` feature: ``mask`` when the task's label is a mask, else ``y``."""
    from edgepipe.components.data.sources.registry import ingest_for

    source = cfg.data.source
    if source.startswith("builtin:"):
        from edgepipe.data import synthetic

        name = source.split(":", 1)[1]
        if name not in synthetic.DATASETS:
            raise ConfigError(f"config key 'data.source': unknown built-in dataset '{name}' "
                              f"(allowed: {', '.join('builtin:' + n for n in synthetic.DATASETS)})")
        source = str(synthetic.ensure(name, Path(cfg.pipeline.root) / "datasets").resolve())
    elif ":" not in source.split("/")[0]:
        source = _local(source)
    found = ingest_for(source, format=cfg.data.format)
    params, given, options = found.component.params, cfg.data.model_fields_set, _options(cfg)
    takes = [f"data.{key}" for key, (values, _) in options.items() if set(values) & set(params)]
    refused = [f"data.{key}" for key, (values, _) in options.items()
               if key in given and key not in _ALSO_READ and not set(values) & set(params)]
    if refused:
        raise ConfigError(f"config key{'s' if len(refused) > 1 else ''} {', '.join(map(repr, refused))}: not read by "
                          f"the {found.name} source ({found.component.name} for '{cfg.data.source}'; it takes "
                          f"{', '.join(takes) or 'none of the data options'})")
    arguments = {"y_key": "mask" if plan.task.label == "mask" else "y", "beam_args": list(cfg.pipeline.beam_args)}
    for key, (values, always) in options.items():
        if always or key in given:
            arguments.update({k: v for k, v in values.items() if v is not None})
    return found.component(**found.arguments(source), **{k: v for k, v in arguments.items() if k in params})

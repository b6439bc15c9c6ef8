"""The one pipeline builder: stages the plan switches on, each declaring the config keys it reads.

data (series windows | ingested Examples | none for an environment) -> train (the family's trainer) -> judge (a
classifier for generated samples) -> variants (the family's variant policy: the full variant stage, distilled
PTQ/QAT, or none) -> evaluate (the task's evaluation) -> report -> export (gated on the variant rows, or the
verified float32 model with the reason). A stage is chosen by what the task and the family *declare*
(``edgepipe.tasks``, ``edgepipe.models.registry``), so a new task or family plugs in by declaration; a new
kind of data, trainer or evaluation is one entry in the tables below.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgepipe.pipeline.config import Config, explicit_keys, key_origin
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.templates.plan import Plan
from edgepipe.pipeline.templates.sources import examples_ingest, series_source

_TRAINING = {"training.epochs", "training.batch_size", "training.seed", "training.strategy", "training.workers",
             "training.task_index", "training.checkpoints"}


@dataclass
class Context:
    """The outputs stages hand on (upstream references), and the nodes so far."""

    nodes: list = field(default_factory=list)
    examples: Any = None  # Examples the model trains on (windows for the anomaly autoencoder)
    statistics: Any = None
    rejects: Any = None
    validation: Any = None  # validate_examples' report: the run report lists its anomalies
    transform: Any = None
    model: Any = None
    classifier: Any = None
    tflite: Any = None
    primary: str = "auto"
    evaluation: Any = None
    blessing: Any = None  # a retrain's comparison with the last exported bundle (retrain.py)
    search: Any = None  # a budget search's trials (pipeline/search.py), drawn by the report
    report: Any = None


def _beam(cfg: Config) -> list[str]:
    return list(cfg.pipeline.beam_args)


def _checkpoints(cfg: Config) -> str | None:
    return str(Path(cfg.pipeline.root).resolve() / "checkpoints") if cfg.training.checkpoints else None


def _execution(cfg: Config) -> dict:
    t = cfg.training
    return {"strategy": t.strategy, "workers": t.workers, "task_index": t.task_index,
            "checkpoint_root": _checkpoints(cfg)}


# ---- data ------------------------------------------------------------------------------------------------------
# The data keys ingest_timeseries is given (below): named one by one, not ``data.*``, so a data option only another
# source reads (data.image, data.tfds, data.class_names) is refused by check_config instead of silently ignored.
SERIES_DATA_KEYS = {f"data.{key}" for key in (
    "source", "format", "timestamp_column", "series_column", "feature_columns", "label_column", "labels_json",
    "labels_key", "split", "max_reject_fraction", "chunk_size", "resample", "gaps", "bucket_rows")}
SERIES_FORMATS = (None, "csv")  # a series is read from CSV; any other data.format asks for another source


def _series(cfg: Config, plan: Plan, ctx: Context) -> None:
    """ingest -> statistics -> normalize -> windows: a sensor series becomes normalized windows."""
    from edgepipe.components.data import compute_statistics, ingest_timeseries, make_windows, normalize

    d, beam = cfg.data, _beam(cfg)
    if d.format not in SERIES_FORMATS:  # images, tfrecord, npz...: a source this template cannot read
        raise ConfigError(f"{key_origin(cfg, 'data.format')}: config key 'data.format' is '{d.format}': template "
                          f"'{plan.template}' reads a CSV series (data.format: csv, or leave it unset), not the "
                          f"'{d.format}' source (the templates whose tasks read Examples do: supervised, gan)")
    ingest = ingest_timeseries(
        source=series_source(d.source), timestamp_column=d.timestamp_column, series_column=d.series_column,
        feature_columns=d.feature_columns, label_column=d.label_column, labels_json=d.labels_json,
        labels_key=d.labels_key, split=d.split, max_reject_fraction=d.max_reject_fraction, chunk_size=d.chunk_size,
        resample=d.resample, gaps=d.gaps, bucket_rows=d.bucket_rows, beam_args=beam)
    statistics = compute_statistics(examples=ingest.outputs["examples"], beam_args=beam)
    transform = normalize(examples=ingest.outputs["examples"], statistics=statistics.outputs["statistics"],
                          method=cfg.normalize.method, beam_args=beam)
    window = make_windows(examples=transform.outputs["transformed"], size=cfg.window.size, stride=cfg.window.stride,
                          label_mode=cfg.window.label_mode, score_splits=["eval", "test"], beam_args=beam)
    ctx.nodes += [ingest, statistics, transform, window]
    ctx.examples, ctx.statistics = window.outputs["windows"], statistics.outputs["statistics"]
    ctx.rejects, ctx.transform = ingest.outputs["rejects"], transform.outputs["params"]


TABLE_INGESTS = {"ingest_csv"}  # ingests whose Examples are rows of a table: transformed (transform.*)


def _examples(cfg: Config, plan: Plan, ctx: Context) -> None:
    """ingest -> statistics -> schema (inferred on train) -> validation (other splits; ``schema.fail_on`` fails
    the run) -> for a table, transform (impute, scale, encode; fitted on train, shipped in the bundle)."""
    from edgepipe.components.data import compute_statistics, infer_schema, transform_features, validate_examples

    ingest = examples_ingest(cfg, plan)
    ctx.nodes.append(ingest)
    ctx.examples = ingest.outputs["examples"]
    ctx.rejects = ingest.outputs.get("rejects")
    beam, sc, t = _beam(cfg), cfg.schema, cfg.transform
    statistics = compute_statistics(examples=ctx.examples, beam_args=beam)
    schema = infer_schema(statistics=statistics.outputs["statistics"], max_domain_size=sc.max_domain_size)
    validate = validate_examples(statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"],
                                 max_mean_drift=sc.max_mean_drift, range_margin=sc.range_margin,
                                 max_missing_increase=sc.max_missing_increase, fail_on=list(sc.fail_on))
    ctx.nodes += [statistics, schema, validate]
    ctx.validation = validate.outputs["report"]
    if ingest.component.name not in TABLE_INGESTS:
        given = [k for k in explicit_keys(cfg) if k.startswith("transform.")]
        if given:  # declared for the examples stage, but only a table reads them
            raise ConfigError(f"{key_origin(cfg, given[0])}: config key '{given[0]}': the transform applies to tables (a CSV source); "
                              f"data.source '{cfg.data.source}' is read by {ingest.component.name}")
        return
    transform = transform_features(examples=ctx.examples, statistics=statistics.outputs["statistics"],
                                   schema=schema.outputs["schema"], validation=validate.outputs["report"],
                                   numeric=t.numeric, categorical=t.categorical,
                                   vocab_max_size=t.vocab_max_size, impute=t.impute, fill_value=t.fill_value,
                                   missing_indicator=t.missing_indicator, clip=t.clip, beam_args=beam)
    ctx.nodes.append(transform)
    ctx.examples, ctx.transform = transform.outputs["transformed"], transform.outputs["params"]


DATA = {  # task.data -> (stage, keys)
    "windows": (_series, {*SERIES_DATA_KEYS, "normalize.*", "window.*"}),
    "examples": (_examples, {"data.source", "data.format", "data.label_column", "data.feature_columns", "data.split",
                             "data.max_reject_fraction", "data.tfds", "data.image", "data.class_names",  # sources.py
                             "model.x_key", "model.y_key", "transform.*", "schema.*"}),
    "environment": (None, set()),
}


# ---- training --------------------------------------------------------------------------------------------------
def _train_windows(cfg: Config, plan: Plan, ctx: Context):
    from edgepipe.components.training import train_autoencoder

    t = cfg.training
    return train_autoencoder(windows=ctx.examples, filters=list(cfg.model.filters), kernel_size=cfg.model.kernel_size,
                             epochs=t.epochs, batch_size=t.batch_size, learning_rate=t.learning_rate,
                             train_on=t.train_on, seed=t.seed, strategy=t.strategy, checkpoint_root=_checkpoints(cfg))


def _train_supervised(cfg: Config, plan: Plan, ctx: Context):
    from edgepipe.components.training.train_model import train_model

    t = cfg.training
    # a transformed table's model inputs are the transform's output columns (data.feature_columns chose the raw ones)
    columns = ({"feature_columns": list(cfg.data.feature_columns)} if cfg.data.feature_columns
               and ctx.transform is None else {})
    return train_model(examples=ctx.examples, family=plan.family.name, hparams=dict(cfg.model.hparams),
                       task=plan.task.name, x_key=cfg.model.x_key, y_key=cfg.model.y_key, epochs=t.epochs, **columns,
                       batch_size=t.batch_size, patience=t.patience, lr_schedule=t.lr_schedule,
                       fine_tune_epochs=t.fine_tune_epochs, seed=t.seed, mixed_precision=t.mixed_precision,
                       **_execution(cfg))


def _train_gan(cfg: Config, plan: Plan, ctx: Context):
    from edgepipe.components.training.train_gan import train_gan

    t = cfg.training
    return train_gan(examples=ctx.examples, family=plan.family.name, hparams=dict(cfg.model.hparams),
                     x_key=cfg.model.x_key, y_key=cfg.model.y_key, epochs=t.epochs, batch_size=t.batch_size,
                     seed=t.seed, **_execution(cfg))


def _train_rl(cfg: Config, plan: Plan, ctx: Context):
    from edgepipe.components.training.train_dqn import train_dqn

    hparams = dict(cfg.model.hparams)
    return train_dqn(env_name=hparams.pop("env_name", "CartPole-v0"), hparams=hparams, seed=cfg.training.seed,
                     checkpoint_root=_checkpoints(cfg), time_budget_s=cfg.training.time_budget_s)


_MODEL_HPARAMS = {"model.family", "model.task", "model.hparams"}
_SUPERVISED = {*_MODEL_HPARAMS, *_TRAINING, "training.patience", "training.lr_schedule", "training.fine_tune_epochs",
               "training.mixed_precision"}  # train_model's keys
TRAIN = {  # (task.data, family.trainer) -> (stage, keys); "*" matches any trainer; model.hparams are checked
    # against the builder's signature when the stage reads them through the family registry (not the DQN's: its
    # hyperparameters configure the agent, env_name the environment)
    ("windows", "*"): (_train_windows, {"model.family", "model.filters", "model.kernel_size", "training.epochs",
                                        "training.batch_size", "training.learning_rate", "training.train_on",
                                        "training.seed", "training.strategy"}),
    ("examples", "supervised"): (_train_supervised, _SUPERVISED),
    ("examples", "autoencoder"): (_train_supervised, _SUPERVISED),  # train_model fits it on Examples too
    ("examples", "gan"): (_train_gan, {*_MODEL_HPARAMS, *_TRAINING}),
    ("environment", "rl"): (_train_rl, {"model.family", "model.hparams", "training.seed", "training.checkpoints",
                                        "training.time_budget_s"}),
}


def train_stage(plan: Plan) -> tuple[Callable, set[str]]:
    key = (plan.task.data, plan.family.trainer)
    found = TRAIN.get(key) or TRAIN.get((plan.task.data, "*"))
    if found is None:
        raise ConfigError(f"model family '{plan.family.name}' (trainer {plan.family.trainer}) cannot train on "
                          f"{plan.task.data} for task '{plan.task.name}'")
    return found


def _judge(cfg: Config, plan: Plan, ctx: Context) -> None:
    """The classifier that judges generated samples (``evaluate.classifier``), trained on the same labelled
    images as an ordinary ``train_model`` node; none when the section is null."""
    from edgepipe.components.training.train_model import train_model

    judge = cfg.evaluate.classifier
    if judge is None:
        return
    node = train_model(_name="train_judge", examples=ctx.examples, family=judge.family, hparams=dict(judge.hparams),
                       task="classification", x_key=cfg.model.x_key, y_key=cfg.model.y_key, epochs=judge.epochs,
                       batch_size=32, patience=0, seed=cfg.training.seed, **_execution(cfg))
    ctx.nodes.append(node)
    ctx.classifier = node.outputs["model"]

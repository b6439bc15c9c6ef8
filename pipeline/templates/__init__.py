"""Pipeline templates: functions from a validated :class:`Config` to a :class:`Pipeline`.

A template is where configuration meets components: it binds config values to component parameters and wires
outputs to inputs. Add a template by writing such a function and registering it in ``TEMPLATES`` with what it
consumes: the model families it trains, the config keys it reads (``section.*`` for a whole section) and the data
splits its evaluation needs; the ``pipeline.template`` config key selects it.

Why declare the keys: every section is shared by all templates, so pydantic alone accepts ``training.patience``
for the anomaly template, which never reads it. A key given explicitly (in the YAML or by ``--set``) that the
chosen template does not read is refused when the pipeline is built, instead of being silently ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgepipe.pipeline.config import Config, explicit_keys
from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.templates.anomaly import anomaly_detection
from edgepipe.pipeline.templates.families import TEMPLATE_FAMILIES, gan, reinforcement, supervised


@dataclass(frozen=True)
class Template:
    build: Callable[[Config], Pipeline]
    families: tuple[str, ...]  # model.family values it trains
    uses: frozenset[str]  # config keys it reads: "section.key" or "section.*"
    eval_splits: Callable[[Config], tuple[str, ...]] | None = None  # data.split needs one of these (or no data)


_VARIANT_STAGE = {"prune.*", "qat.*", "cluster.*", "convert.*", "export.*"}  # variant_stage.py + gated export
# convert_generator / convert_policy: PTQ and QAT only; the enabled flags are read (cfg.enabled()) to filter variants
_FAMILY_VARIANTS = {"qat.*", "convert.*", "export.*", "prune.enabled", "cluster.enabled"}

ANOMALY_KEYS = frozenset({
    "pipeline.*", "data.*", "normalize.*", "window.*", "model.family", "model.filters", "model.kernel_size",
    "training.epochs", "training.batch_size", "training.learning_rate", "training.train_on", "training.seed",
    "training.strategy", *_VARIANT_STAGE,
    "evaluate.threshold_quantile", "evaluate.threshold_margin", "evaluate.input_clip", "evaluate.latency_runs"})
_FAMILY_DATA = {"data.source", "data.label_column", "data.feature_columns", "data.split"}  # families._ingest
_FAMILY_TRAINING = {"training.epochs", "training.batch_size", "training.seed", "training.strategy",
                    "training.workers", "training.task_index", "training.checkpoints"}  # families._execution
SUPERVISED_KEYS = frozenset({
    "pipeline.*", *_FAMILY_DATA, "model.family", "model.task", "model.x_key", "model.y_key", "model.hparams",
    *_FAMILY_TRAINING, "training.patience", "training.lr_schedule", "training.fine_tune_epochs",
    "training.mixed_precision", *_VARIANT_STAGE, "evaluate.split", "evaluate.tolerance", "evaluate.latency_runs"})
GAN_KEYS = frozenset({
    "pipeline.*", *_FAMILY_DATA, "model.family", "model.task", "model.x_key", "model.y_key", "model.hparams",
    *_FAMILY_TRAINING, *_FAMILY_VARIANTS, "evaluate.split", "evaluate.tolerance", "evaluate.latency_runs",
    "evaluate.classifier"})
REINFORCEMENT_KEYS = frozenset({
    "pipeline.*", "model.family", "model.hparams", "training.seed", "training.checkpoints", "training.time_budget_s",
    *_FAMILY_VARIANTS, "evaluate.episodes", "evaluate.tolerance", "evaluate.latency_runs"})

TEMPLATES: dict[str, Template] = {
    # evaluation and the export gate score the eval+test windows
    "anomaly_detection": Template(anomaly_detection, ("autoencoder",), ANOMALY_KEYS, lambda c: ("eval", "test")),
    "supervised": Template(supervised, TEMPLATE_FAMILIES["supervised"], SUPERVISED_KEYS,
                           lambda c: (c.evaluate.split,)),
    "gan": Template(gan, TEMPLATE_FAMILIES["gan"], GAN_KEYS, lambda c: (c.evaluate.split,)),
    "reinforcement": Template(reinforcement, TEMPLATE_FAMILIES["reinforcement"], REINFORCEMENT_KEYS),
}


def build_pipeline(config: Config) -> Pipeline:
    try:
        template = TEMPLATES[config.pipeline.template]
    except KeyError:
        raise ConfigError(f"config key 'pipeline.template': unknown template '{config.pipeline.template}' "
                          f"(allowed: {', '.join(TEMPLATES)})") from None
    check_config(config, config.pipeline.template, template)
    return template.build(config)


def check_config(config: Config, name: str, template: Template) -> None:
    """What the config alone decides, refused before anything runs (exit 2): a family the template does not
    train, keys it would ignore, splits its evaluation needs but ``data.split`` does not make."""
    source = getattr(config, "_source", "config")
    if config.model.family not in template.families:
        raise ConfigError(f"{source}: config key 'model.family': template '{name}' trains "
                          f"{', '.join(template.families)}, not '{config.model.family}'")
    unused = [key for key in explicit_keys(config)
              if key not in template.uses and f"{key.split('.')[0]}.*" not in template.uses]
    if unused:
        many = len(unused) > 1
        raise ConfigError(f"{source}: config key{'s' if many else ''} {', '.join(map(repr, unused))} "
                          f"{'are' if many else 'is'} not used by template '{name}' (remove {'them' if many else 'it'}"
                          f", or choose the template that reads {'them' if many else 'it'})")
    if template.eval_splits is not None:
        needed = template.eval_splits(config)
        if not any(split in config.data.split for split in needed):
            raise ConfigError(f"{source}: config key 'data.split' is {dict(config.data.split)}: template '{name}' "
                              f"evaluates (and gates the export) on split {' or '.join(map(repr, needed))}, "
                              "which it does not make")

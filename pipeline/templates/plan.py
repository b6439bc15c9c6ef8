"""What a config asks for, resolved against the registries before any node exists: template, task, family and
how the family's variants are made (:class:`Plan`); and what the config alone decides is refused (exit 2).

Why resolve first: every stage of the one builder (``stages.py``) switches on the plan's declared attributes (the
task's data kind and evaluation, the family's trainer and variant policy), never on names; and the config keys
the active stages read are known before building, so a key given explicitly that nothing reads is an error naming
the key and the template instead of being silently ignored (every section is shared by all templates, so
pydantic alone accepts ``training.patience`` for the anomaly template, which never reads it).
"""
from __future__ import annotations

from dataclasses import dataclass

from edgepipe import tasks
from edgepipe.models.registry import Family, families
from edgepipe.pipeline.config import Config, explicit_keys, key_origin, keys_origin
from edgepipe.pipeline.errors import ConfigError
from edgepipe.tasks.base import Task


@dataclass(frozen=True)
class Template:
    """A ``pipeline.template``: the tasks naming it and, derived from the family registry, the families that do
    one of them."""

    name: str
    tasks: tuple[str, ...]
    families: tuple[str, ...]


def templates() -> dict[str, Template]:
    fams = families()
    return {name: Template(name, names, tuple(f for f, fam in fams.items() if set(fam.tasks) & set(names)))
            for name, names in tasks.templates().items()}


@dataclass(frozen=True)
class Plan:
    template: str
    task: Task
    family: Family
    variants: str | None  # the family's variant policy, None when the task or the family ships float32 only
    float_reason: str | None  # why float32 only

    @property
    def name(self) -> str:
        return self.task.name


def resolve(cfg: Config) -> Plan:
    """The plan for ``cfg``: its task is the one task of the template the family does, or ``model.task`` when the
    family does several (an MLP classifies or regresses)."""
    name = cfg.pipeline.template
    template = templates()[name]
    if cfg.model.family not in template.families:
        raise ConfigError(f"{key_origin(cfg, 'model.family')}: config key 'model.family': template '{name}' trains "
                          f"{', '.join(template.families)}, not '{cfg.model.family}'")
    family = families()[cfg.model.family]
    possible = [t for t in family.tasks if t in template.tasks]
    task_name = tasks.chosen(template.tasks, tuple(family.tasks), cfg.model.task)  # as the config's evaluate section
    if task_name not in possible:
        raise ConfigError(f"{key_origin(cfg, 'model.task')}: config key 'model.task': model family '{family.name}' does not do task "
                          f"'{task_name}' (supported: {', '.join(possible)})")
    task = tasks.get(task_name)
    variants, reason = family.variants, family.float_reason
    if not task.quantizable:
        variants, reason = None, task.float_reason
    return Plan(name, task, family, variants, reason)


def check_config(cfg: Config, plan: Plan, uses: frozenset[str], eval_splits: tuple[str, ...] | None) -> None:
    """Keys the active stages would ignore, and splits the evaluation needs but ``data.split`` does not make."""
    name = plan.template
    unused = [key for key in explicit_keys(cfg) if key not in uses and f"{key.split('.')[0]}.*" not in uses]
    if unused:  # named where they came from: their --set, else the file
        source = keys_origin(cfg, unused)
        many = len(unused) > 1
        raise ConfigError(f"{source}: config key{'s' if many else ''} {', '.join(map(repr, unused))} "
                          f"{'are' if many else 'is'} not used by template '{name}' (remove {'them' if many else 'it'}"
                          f", or choose the template that reads {'them' if many else 'it'})")
    if eval_splits is not None and not any(split in cfg.data.split for split in eval_splits):
        raise ConfigError(f"{key_origin(cfg, 'data.split')}: config key 'data.split' is {dict(cfg.data.split)}: template '{name}' "
                          f"evaluates (and gates the export) on split {' or '.join(map(repr, eval_splits))}, "
                          "which it does not make")

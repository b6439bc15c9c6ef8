"""Typed configuration: YAML validated into pydantic models, with dotted ``--set`` overrides.

Every section forbids unknown keys, so a typo fails at once with the key's dotted path and the allowed names,
instead of being silently ignored while a default is used. Errors are one line and map to exit status 2; they
start with where the mistake is: the ``--set KEY=VALUE`` it came from, else the YAML file. The ``evaluate`` section
is the class the config's task declares (``Task.evaluate``), so a key only another task reads is refused here too,
naming the task.
"""
from __future__ import annotations

import re
import typing
import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import (BaseModel, Field, PrivateAttr, SerializeAsAny, ValidationError, ValidationInfo,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.config_sections import (ClusterSection, ConvertSection, DataSection, EvaluateSection,
                                                ExportSection, ModelSection, NormalizeSection, PipelineSection,
                                                PruneSection, QATSection, RetrainSection, SchemaSection, SearchSection,
                                                Section, TargetSection, TrainingSection, TransformSection,
                                                WindowSection)

# The section named ``schema`` shadows pydantic's deprecated ``BaseModel.schema()`` (a warning at class creation);
# the YAML key is what users write, so the name stays and only that one warning is silenced.
warnings.filterwarnings("ignore", message='Field name "schema" in "Config" shadows', category=UserWarning)


class Config(Section):
    _source: str = PrivateAttr("config")  # the YAML file (or --config-json) it came from, for error lines
    _deferred: str | None = PrivateAttr(None)  # the window check's error line, held back for your own pipeline
    _overrides: list[str] = PrivateAttr(default_factory=list)  # the --set items applied, to name them in errors

    pipeline: PipelineSection = Field(default_factory=PipelineSection)
    data: DataSection = Field(default_factory=DataSection)
    normalize: NormalizeSection = Field(default_factory=NormalizeSection)
    window: WindowSection = Field(default_factory=WindowSection)
    transform: TransformSection = Field(default_factory=TransformSection)
    schema: SchemaSection = Field(default_factory=SchemaSection)  # shadows BaseModel.schema(): see above
    model: ModelSection = Field(default_factory=ModelSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    prune: PruneSection = Field(default_factory=PruneSection)
    qat: QATSection = Field(default_factory=QATSection)
    cluster: ClusterSection = Field(default_factory=ClusterSection)
    convert: ConvertSection = Field(default_factory=ConvertSection)
    # the class of the config's task (Task.evaluate), picked by _evaluate_of_task; SerializeAsAny: dumps keep the
    # task's keys (a dump is what --config-json and a compiled pipeline's parameters carry)
    evaluate: SerializeAsAny[EvaluateSection] = Field(default_factory=dict, validate_default=True)
    export: ExportSection = Field(default_factory=ExportSection)
    target: TargetSection = Field(default_factory=TargetSection)
    retrain: RetrainSection = Field(default_factory=RetrainSection)
    search: SearchSection = Field(default_factory=SearchSection)

    @field_validator("evaluate", mode="before")
    @classmethod
    def _evaluate_of_task(cls, value: Any, info: ValidationInfo) -> Any:
        """Validate ``evaluate`` against the section of the task the config resolves to (``pipeline.template``,
        ``model.family`` and ``model.task``: :func:`edgepipe.tasks.chosen`, as the builder resolves it), so a key
        only another task reads is refused here, naming the key and the task. Field order matters: ``pipeline``
        and ``model`` are validated before ``evaluate``; if either failed, its own error is the one reported."""
        from edgepipe import tasks
        from edgepipe.models.registry import families

        pipeline, model = info.data.get("pipeline"), info.data.get("model")
        if pipeline is None or model is None:
            return value
        family = families()[model.family]
        task = tasks.get(tasks.chosen(tasks.templates().get(pipeline.template, ()), tuple(family.tasks), model.task))
        if isinstance(value, task.evaluate):
            return value
        if isinstance(value, BaseModel):  # another task's section assigned: its keys set, checked for this task
            value = value.model_dump(exclude_unset=True)
        if not isinstance(value, dict):
            return value  # not a mapping: the field's own error says so
        try:
            return task.evaluate.model_validate(value)
        except ValidationError as err:
            why, mismatch = f"template '{task.template}'", ""
            if task.template != pipeline.template:  # a pipeline of your own, or a family the template cannot train
                from edgepipe.pipeline.templates.plan import templates

                why = f"model.family '{model.family}''s task"
                mismatch = (f"; for the built-in pipeline, config key 'model.family': template '{pipeline.template}' "
                            f"trains {', '.join(templates()[pipeline.template].families)}, not '{model.family}'")
            first = err.errors()[0]
            line = _evaluate_error(first, task, why, mismatch)
            key = ".".join(["evaluate", *map(str, first["loc"])])
            raise PydanticCustomError("evaluate_section", "{line}", {"line": line, "key": key}) from None

    @model_validator(mode="after")
    def _window_fits_model(self, info: ValidationInfo) -> "Config":
        """The anomaly template's window/model check. For a pipeline of your own (``defer_window_check``), whose
        ``pipeline.template`` is only the default, the problem is held back (``info.context``) and raised after the
        check of the keys the pipeline reads (:func:`raise_deferred`): a key it never reads (``--set
        window.size=3`` for an mlp) is then refused as such, not as a window its model would not have."""
        problem = self._window_problem()
        deferred = (info.context or {}).get("deferred")
        if problem and deferred is not None:
            deferred.append(problem)
        elif problem:
            raise ValueError(problem)
        return self

    def _window_problem(self) -> str | None:
        if self.pipeline.template != "anomaly_detection":
            return None
        factor = 2 ** len(self.model.filters)
        if self.window.size % factor:
            return f"window.size={self.window.size} must be divisible by 2**len(model.filters)={factor}"
        steps = getattr(self.evaluate, "score_steps", None)  # the anomaly section's; refused before any training
        if steps is not None and steps > self.window.size:
            return f"evaluate.score_steps={steps} exceeds window.size={self.window.size}"
        return None

    @model_validator(mode="after")
    def _primary_variant_is_produced(self) -> "Config":
        from edgepipe.tasks.variants import active_variants, dropped_variants, primary_variant  # noqa: I001
        from edgepipe.pipeline.errors import ConfigError as _ConfigError

        try:
            names, enabled = list(self.convert.variants), self.enabled()
            primary_variant(self.convert.primary, active_variants(names, enabled), dropped_variants(names, enabled))
        except _ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def enabled(self) -> dict[str, bool]:
        """Which optimization sections are on (decides which variants can be produced)."""
        return {"prune": self.prune.enabled, "qat": self.qat.enabled, "cluster": self.cluster.enabled,
                "prune_energy": self.prune.enabled and self.prune.policy == "energy"}


def default_config_path() -> Path:
    from edgepipe import configs

    return Path(configs.__file__).parent / "default.yaml"


def resolve_config_path(name: str | None) -> Path:
    """A path to a YAML file, or the name of a bundled template (``default``, ``nab`` ...)."""
    if name is None:
        return default_config_path()
    path = Path(name)
    if path.exists():
        return path
    bundled = default_config_path().parent / f"{name}.yaml"
    if bundled.exists() and path.suffix == "":
        return bundled
    raise ConfigError(f"config file '{name}' does not exist")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: plain YAML keeps the last one silently, so
    ``size: 16`` followed later by ``size: 32`` would ignore the first without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if not isinstance(key, (str, int, float, bool)):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first given on line {seen[key]})", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                defer_window_check: bool = False) -> Config:
    """The YAML named (a bundled template's name, or the default) plus ``--set`` overrides, validated; an error
    names the ``--set`` its key came from, else the file. ``defer_window_check``: see ``Config._window_fits_model``."""
    config_path = resolve_config_path(str(path) if path is not None else None)
    if config_path.is_dir():
        raise ConfigError(f"config {config_path} is a directory, not a YAML file")
    try:
        raw = yaml.load(config_path.read_text(), Loader=_UniqueKeyLoader) or {}  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = str(getattr(err, "problem", err))
        if problem.startswith("duplicate key"):
            raise ConfigError(f"{config_path}{where}: {problem}") from None
        raise ConfigError(f"{config_path}{where}: not valid YAML ({problem})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{config_path}: cannot read ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: the top level must be a mapping of sections")
    for override in overrides or []:
        apply_override(raw, override)
    return validate(raw, source=str(config_path), overrides=overrides, defer_window_check=defer_window_check)


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply ``dotted.key=value``; the value is parsed as YAML (``64`` -> int, ``[a, b]`` -> list)."""
    if "=" not in override:
        raise ConfigError(f"--set '{override}': expected dotted.key=value")
    dotted, text = override.split("=", 1)
    keys = [k for k in dotted.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"--set '{override}': empty key")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    node = raw
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set '{override}': '{key}' is a value, not a section")
        node = child
    node[keys[-1]] = value


def validate(raw: dict[str, Any], source: str = "config", dumped: bool = False, overrides: list[str] | None = None,
             defer_window_check: bool = False) -> Config:
    """``raw`` -> Config. ``dumped``: ``raw`` is a whole ``model_dump`` (``--config-json``, a compiled pipeline's
    parameters), where every key is present, so only values that differ from the defaults count as given.
    ``overrides``: the ``--set`` items applied to ``raw``, so an error in one of them names it, not ``source``."""
    import_plugins(raw, source, overrides or [])
    deferred: list[str] = []
    try:
        config = Config.model_validate(raw, context={"deferred": deferred} if defer_window_check else None)
    except ValidationError as err:
        error = err.errors()[0]
        raise ConfigError(_describe(error, _origin(error, source, overrides or []))) from None
    config._source = source
    config._overrides = list(overrides or [])
    if deferred:
        error = {"type": "value_error", "loc": (), "msg": deferred[0]}
        config._deferred = _describe(error, _origin(error, source, overrides or []))
    if dumped:
        for name in Config.model_fields:
            section = getattr(config, name)
            default = type(section)()  # the section's own defaults (evaluate: its task's class)
            section.__pydantic_fields_set__ = {key for key in section.model_fields_set
                                               if getattr(section, key) != getattr(default, key)}
    return config


def import_plugins(raw: dict[str, Any], source: str, overrides: list[str]) -> None:
    """Import the modules ``pipeline.plugins`` names before the config is validated, so the families and tasks they
    register (``models.registry.register``, ``tasks.register``) are valid ``model.family``/``model.task`` values.

    Why a config key (not a ``--import`` option or an entry-point group): the config that says ``model.family:
    tiny_dense`` then also says where that family comes from, so every command given the config (``run``,
    ``compile``; a compiled task validating its dumped config) imports it, and a plain module beside the project
    works without packaging. Found like ``python -m`` finds one: installed, or in the current folder. One that
    cannot be imported is exit 2 naming it and the key's ``--set`` or file."""
    section = raw.get("pipeline")
    plugins = section.get("plugins") if isinstance(section, dict) else None
    if not isinstance(plugins, list) or not all(isinstance(name, str) for name in plugins):
        return  # absent, or not a list of names: the field's own error says so
    import importlib

    from edgepipe.pipeline.errors import raised_at
    from edgepipe.pipeline.user_pipeline import _ensure_on_path, _first_line

    origin = _origin({"type": "given", "loc": ("pipeline", "plugins"), "msg": ""}, source, overrides)
    _ensure_on_path(Path.cwd())
    for name in plugins:
        where = f"{origin}: config key 'pipeline.plugins'"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and (name == err.name or name.startswith(f"{err.name}.")):
                raise ConfigError(f"{where}: cannot import '{name}' (no module named '{err.name}' installed or in "
                                  f"the current folder {Path.cwd()})") from None
            raise ConfigError(f"{where}: importing '{name}' failed{_at(raised_at(err, within=Path.cwd()))}: no module named "
                              f"'{err.name}'") from None
        except ConfigError:
            raise
        except Exception as err:  # the plugin's own bug (a SyntaxError included): where, in one line
            raise ConfigError(f"{where}: importing '{name}' failed{_at(raised_at(err, within=Path.cwd()))}: "
                              f"{type(err).__name__}: {_first_line(err)}") from None


def _at(where: str | None) -> str:
    return f" at {where}" if where else ""


def raise_deferred(config: Config) -> None:
    """Raise the window check ``validate(defer_window_check=True)`` held back, if it found a problem."""
    if config._deferred:
        raise ConfigError(config._deferred)


def _origin(error: dict[str, Any], source: str, overrides: list[str]) -> str:
    """Where the mistake is, for the error line's prefix: ``--set KEY=VALUE`` when the key in error is that
    override's key or inside its value (``--set window.sizee=64``, ``--set "data.split={...}"``), or the override
    created the unknown section, or a cross-key check names its key; else ``source`` (the YAML file). The last
    ``--set`` of a key wins, as it did when it was applied."""
    loc = tuple(str(part) for part in error["loc"])
    if error["type"] == "evaluate_section":  # the task section's own key (evaluate.<key>), not just "evaluate"
        loc = tuple(error["ctx"]["key"].split("."))
    message = str(error.get("msg", ""))
    for override in reversed(overrides):
        dotted = override.split("=", 1)[0].strip()
        keys = tuple(k for k in dotted.split(".") if k)
        if not keys:
            continue
        inside = loc[:len(keys)] == keys
        above = len(loc) < len(keys) and keys[:len(loc)] == loc and (
            error["type"] == "extra_forbidden" or re.search(rf"(?<![\w.]){re.escape('.'.join(keys))}(?!\w)", message))
        if inside or above:
            return f"--set {override}"
    return source


def key_origin(config: Config, key: str) -> str:
    """Where an explicitly given dotted ``key`` came from: the last ``--set`` that set it, a section holding it or a
    part of its value (``--set data.split.train=1.0`` for ``data.split``), else the YAML file."""
    loc = tuple(key.split("."))
    for override in reversed(config._overrides):
        keys = tuple(k for k in override.split("=", 1)[0].strip().split(".") if k)
        if keys and len(keys) > len(loc) and keys[:len(loc)] == loc:
            return f"--set {override}"
    return _origin({"type": "given", "loc": loc, "msg": ""}, config._source, config._overrides)


def keys_origin(config: Config, keys: list[str]) -> str:
    """Where explicitly given ``keys`` came from, for one error line naming them all: each distinct
    :func:`key_origin`, in the keys' order (``--set a=1, --set b=2``, or ``--set a=1, configs/x.yaml``)."""
    return ", ".join(dict.fromkeys(key_origin(config, key) for key in keys))


def explicit_keys(config: Config) -> list[str]:
    """Dotted keys given explicitly (in the YAML, by --set or assigned later, such as --root), whatever their
    value: the keys whose setting a template must honour or refuse (pydantic's ``model_fields_set``)."""
    keys = []
    for section in sorted(Config.model_fields):  # a section built from its default has an empty fields set
        value = getattr(config, section)
        if isinstance(value, BaseModel):  # every section, evaluate (tasks/sections.py) included
            keys += [f"{section}.{key}" for key in sorted(value.model_fields_set)]
    return keys


def _evaluate_error(error: dict[str, Any], task: Any, why: str, mismatch: str) -> str:
    """A task section's first validation error as the line after ``source: `` (``evaluate.<key>`` named): a key
    another task reads is "not read by task ..." (``why``: how the config chose that task; ``mismatch``: the family
    the template cannot train, said last), any other error is described like every config key's."""
    from edgepipe import tasks

    loc = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden" and len(loc) == 1:
        readers = [n for n, t in tasks.registered().items() if loc[0] in t.evaluate.model_fields]
        if readers:
            return (f"config key 'evaluate.{loc[0]}': not read by task '{task.name}' ({why}; it reads: "
                    f"{', '.join(task.evaluate.model_fields)}; task{'s' if len(readers) > 1 else ''} "
                    f"{', '.join(readers)} read{'' if len(readers) > 1 else 's'} it){mismatch}")
    line = _describe({**error, "loc": ("evaluate", *error["loc"])}, None, models={"evaluate": task.evaluate})
    return line + (mismatch if error["type"] == "extra_forbidden" else "")


def _describe(error: dict[str, Any], source: str | None, models: dict[str, type[BaseModel]] | None = None) -> str:
    """One line for a validation error; ``source`` None: without the ``file: `` prefix (a nested section's error,
    prefixed when it reaches the top); ``models``: section classes that replace Config's annotation (evaluate)."""
    if error["type"] == "evaluate_section":
        return f"{source}: {error['ctx']['line']}"
    prefix = f"{source}: " if source is not None else ""
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc) or "<root>"
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(loc[:-1], models or {}))
        return f"{prefix}unknown config key '{key}' (allowed: {allowed})"
    message = error["msg"].removeprefix("Value error, ")
    if not loc:  # a cross-section check: its message names the keys itself
        return f"{prefix}{message.removeprefix('Value error, ')}"
    if error["type"] == "literal_error":
        message = f"must be one of {error['ctx']['expected']}"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{prefix}config key '{key}': {message}{shown}"


def _allowed_keys(loc: list[str], models: dict[str, type[BaseModel]]) -> list[str]:
    model: type[BaseModel] = Config
    for depth, part in enumerate(loc):
        field = model.model_fields.get(part)
        annotation = models.get(part) if depth == 0 and part in models else field.annotation if field else None
        args = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        annotation = args[0] if len(args) == 1 else annotation  # a section that may be null (evaluate.classifier)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)

"""The "new run" form, generated from the typed config (``pipeline/config.py``), and back to ``--set`` overrides.

The form is built from the pydantic models rather than written by hand so that a key added to the config shows up
here without a UI change: a ``Literal`` becomes a choice, ``bool`` a checkbox, numbers number fields, anything else
(lists, mappings, optional sections) a one-line YAML field. The chosen family's hyperparameters (``edgepipe
models NAME``) get one field each, DIGITS' "model choice with simple modifications". Submitting sends only the
values that differ from the config file, as the ``--set`` overrides a user would type, so the run's recorded
config and its validation are exactly the CLI's. Only configs from the allowed directories can be chosen.
"""
from __future__ import annotations

import inspect
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel

from edgepipe.pipeline.config import Config, load_config

HIDDEN = {"pipeline.root"}  # the UI's --root decides where runs go


def config_choices(directories: list[Path]) -> dict[str, Path]:
    """``{name: path}`` of the YAML files directly in the allowed directories (first directory wins a name)."""
    choices: dict[str, Path] = {}
    for directory in directories:
        for path in sorted(Path(directory).glob("*.y*ml")):
            if path.suffix in (".yaml", ".yml") and path.is_file():
                choices.setdefault(path.stem, path.resolve())
    return choices


def inline(value: Any) -> str:
    """A value as one line of YAML (what ``--set key=...`` parses back to the same value)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text[:-4].strip() if text.endswith("\n...") else text.removesuffix("...").strip()


def _kind(annotation: Any) -> tuple[str, list[Any]]:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return "yaml", []  # optional values: null must stay expressible
    if origin is Literal:
        return "select", list(typing.get_args(annotation))
    if annotation is bool:
        return "checkbox", []
    if annotation is int or (isinstance(annotation, type) and issubclass(annotation, int)):
        return "int", []
    if annotation is float:
        return "float", []
    if annotation is str:
        return "text", []
    metadata_type = getattr(annotation, "__origin__", None)
    if metadata_type is int:  # PositiveInt = Annotated[int, ...]
        return "int", []
    return "yaml", []


def _registered_choices(info: Any) -> list[str] | None:
    """Names a field accepts when it is a string checked against a registry (``config.registered``: families,
    templates, tasks, read when the form is drawn so that plugins registered at start are offered too)."""
    for meta in getattr(info, "metadata", []) or []:
        func = getattr(meta, "func", None)
        if func is None:
            continue
        try:
            names = inspect.getclosurevars(func).nonlocals.get("names")
        except TypeError:
            continue
        if callable(names):
            try:
                return [str(n) for n in names()]
            except Exception:  # a registry that cannot list itself: a free text field still works
                return None
    return None


def _field(key: str, value: Any, annotation: Any, description: str = "", info: Any = None) -> dict[str, Any]:
    kind, options = _kind(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        kind, options = _kind(typing.get_args(annotation)[0])
    choices = _registered_choices(info) if kind == "text" else None
    if choices:
        kind, options = "select", choices if value in choices else [value, *choices]
    shown = inline(value) if kind == "yaml" else value
    return {"key": key, "label": key.split(".")[-1], "kind": kind, "value": shown, "options": options,
            "help": description}


def form_sections(config: Config, family: str | None = None) -> list[dict[str, Any]]:
    """``[{"name": section, "fields": [...]}]`` for every config key, with the family's hyperparameters."""
    from edgepipe.models.registry import available, hyperparameters

    dumped = config.model_dump(mode="json")
    sections = []
    for name in Config.model_fields:
        model = type(getattr(config, name))  # evaluate: the class of the config's task, not the shared base
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        fields = []
        for key, sub in model.model_fields.items():
            dotted = f"{name}.{key}"
            if dotted in HIDDEN or dotted == "model.hparams":
                continue
            value = dumped[name][key]
            if dotted == "model.family" and family:
                value = family
            fields.append(_field(dotted, value, sub.annotation, sub.description or "", sub))
        if name == "model":
            chosen = family or config.model.family
            given = config.model.hparams if chosen == config.model.family else {}
            if chosen in available():
                for key, default in hyperparameters(chosen).items():
                    value = given.get(key, list(default) if isinstance(default, tuple) else default)
                    fields.append({"key": f"model.hparams.{key}", "label": f"hparams.{key}", "kind": "yaml",
                                   "value": inline(value), "options": [], "help": f"{chosen} default {default!r}"})
        sections.append({"name": name, "fields": fields})
    return sections


def with_submitted(sections: list[dict[str, Any]], form: dict[str, list[str]],
                   keep_hparams: bool = True) -> list[dict[str, Any]]:
    """The sections showing what the user submitted rather than the file's values: a refused form, or one redrawn
    for another family, comes back as the user left it. ``keep_hparams=False`` drops the old family's
    hyperparameters (another family has other ones, with its own defaults)."""
    for section in sections:
        for field in section["fields"]:
            values = form.get(field["key"])
            if not values or (not keep_hparams and field["key"].startswith("model.hparams.")):
                continue
            text = values[-1]
            if field["kind"] == "checkbox":
                field["value"] = text.strip().lower() in ("1", "true", "on", "yes")
            elif field["kind"] == "select":
                match = [o for o in field["options"] if str(o) == text]
                field["value"] = match[0] if match else text
                if not match:
                    field["options"] = [text, *field["options"]]
            elif field["key"] != "model.family":
                field["value"] = text
    return sections


def overrides_from_form(config: Config, form: dict[str, list[str]], family: str | None = None) -> list[str]:
    """The ``--set`` overrides for the fields whose submitted value differs from the config file's."""
    overrides = []
    for section in form_sections(config, family):
        for field in section["fields"]:
            values = form.get(field["key"])
            if not values:
                continue
            submitted = _parse(field, values[-1])
            current = _parse(field, str(field["value"])) if field["kind"] == "yaml" else field["value"]
            if field["key"] == "model.family":
                current = config.model.family
            if isinstance(submitted, _Typed):  # not a number: the config's validation words it, as for --set
                overrides.append(f"{field['key']}={submitted}")
            elif submitted != current:
                overrides.append(f"{field['key']}={inline(submitted)}")
    return overrides


def _parse(field: dict[str, Any], text: str) -> Any:
    from edgepipe.pipeline.errors import ConfigError

    kind = field["kind"]
    text = text.strip()
    try:
        if kind == "checkbox":
            return text.lower() in ("1", "true", "on", "yes")
        if kind in ("int", "float"):
            return _number(field, text)
        if kind in ("text", "select"):
            if kind == "select":
                match = [o for o in field["options"] if str(o) == text]
                if not match:
                    raise ValueError(f"must be one of {field['options']}")
                return match[0]
            return text
        return yaml.safe_load(text) if text else None
    except (ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"{field['key']}: {str(err).splitlines()[0]} (got {text[:40]!r})") from None


class _Typed(str):
    """What the user typed in a number field that is no number: sent as typed (``key=TEXT``), so the refusal is
    the pydantic line ``edgepipe run --set`` and ``/api/jobs`` give, naming the field and the text."""


def _number(field: dict[str, Any], text: str) -> Any:
    from edgepipe.pipeline.errors import ConfigError

    if not text:
        needed = "a whole number" if field["kind"] == "int" else "a number"
        raise ConfigError(f"config key '{field['key']}' is empty: {needed} is needed")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    try:
        number = float(text) if field["kind"] == "float" else int(text)
    except ValueError:
        return _Typed(text)
    return number if math.isfinite(number) else _Typed(text)


def check(path: Path, overrides: list[str]) -> Config:
    """Validate exactly as ``edgepipe run`` will (one ``ConfigError`` line when it would refuse)."""
    return load_config(path, overrides)

"""Your own pipeline: a Python file (``my_pipeline.py``) or ``package.module:function`` that builds a Pipeline.

Why: the built-in builder (``pipeline/templates``) is a fixed registry; a project of your own (TFX's
``pipeline.py``, Kedro's ``create_pipeline``) wires edgepipe components and its own ``@component`` functions
without editing edgepipe. The function takes the validated :class:`~edgepipe.pipeline.config.Config` (your
``config.yaml`` plus ``--set``) and returns a :class:`~edgepipe.pipeline.dag.Pipeline`; the local runner then
caches, records lineage and resumes it like a built-in one. Which config keys the function reads is recorded while
it runs, so an explicitly set key it ignores is refused, as the built-in builder refuses one no stage reads.

A file is imported under the module name it would have if installed, found the way pytest's ``prepend`` mode finds
it: the folders above it that hold ``__init__.py`` form its package (``examples/taxi_tips/pipeline.py`` with an
``__init__.py`` beside it is ``taxi_tips.pipeline``), and the folder above the package goes on ``sys.path``. So the
same code has the same module name, the same cache key (:mod:`edgepipe.pipeline.code_version` follows the package
it belongs to) and the same ``module:function`` import path whether it is run from the checkout or installed, which
is what a Kubeflow task needs: :func:`image_problem` refuses, at compile time, a component only a path on this
machine makes importable.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgepipe.pipeline.dag import Pipeline
from edgepipe.pipeline.errors import (ConfigError, EdgepipeError, PipelineDefinitionError, defined_at,
                                     raised_at)

DEFAULT_FUNCTION = "create_pipeline"
_MODULE_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


def is_pipeline_ref(text: str | None) -> bool:
    """``*.py`` (optionally ``:function``) or ``package.module:function``; anything else is a config."""
    if not text:
        return False
    path = text.rsplit(":", 1)[0] if re.search(r"\.py:[A-Za-z_]\w*$", text) else text
    return path.endswith(".py") or bool(_MODULE_REF.match(text))


def split_targets(first: str | None, second: str | None) -> tuple[str | None, str | None]:
    """``edgepipe run [PIPELINE] [CONFIG]`` in either order: (pipeline reference or None, config or None)."""
    given = [t for t in (first, second) if t]
    refs = [t for t in given if is_pipeline_ref(t)]
    configs = [t for t in given if not is_pipeline_ref(t)]
    if len(refs) > 1 or len(configs) > 1:
        raise ConfigError(f"expected at most one pipeline (FILE.py or module:function) and one config, got "
                          f"{' and '.join(given)}")
    return (refs[0] if refs else None), (configs[0] if configs else None)


@dataclass(frozen=True)
class UserPipeline:
    """A loaded pipeline function: ``factory`` is its ``module:function`` import path (what a compiled pipeline's
    resolve task rebuilds it with), ``source`` the file it lives in, ``added_path`` the sys.path entry that loading
    it by path needed (None when it was importable as it is, e.g. installed)."""

    factory: str
    source: Path
    function: Callable[..., Any]
    added_path: Path | None = None

    def build(self, config: Any) -> Pipeline:
        """Call the function with the config; anything but a Pipeline, or an exception, is one line (exit 2) naming
        the function and, for an exception, the line of your file it came from. A key given explicitly (YAML,
        ``--set``) that the function never read is refused as the built-in builder refuses one no stage reads:
        reads are recorded while the function runs (:class:`_RecordedConfig`)."""
        from edgepipe.pipeline.config import raise_deferred

        reads: set[str] = set()
        try:
            pipeline = self.function(_RecordedConfig(config, reads))
        except EdgepipeError:
            raise
        except Exception as err:
            raise_deferred(config)  # the config's held-back problem, which the function may have tripped over
            raise PipelineDefinitionError(f"{self.factory} failed{_where(err, self.source)}: "
                                          f"{type(err).__name__}: {_first_line(err)}") from None
        if not isinstance(pipeline, Pipeline):
            where = defined_at(self.function)  # the return is in there
            raise PipelineDefinitionError(f"{self.factory} failed{f' at {where}' if where else ''}: returned "
                                          f"{type(pipeline).__name__}, not a Pipeline (return Pipeline(name, "
                                          "[nodes...]))")
        self._check_reads(config, reads)
        raise_deferred(config)  # held back by load_config below, so that a key never read is refused first
        return pipeline

    def _check_reads(self, config: Any, reads: set[str]) -> None:
        from edgepipe.pipeline.config import explicit_keys, key_origin

        if "*" in reads:  # the whole config went somewhere (model_dump, a helper of its own): cannot tell
            return
        unused = [key for key in explicit_keys(config) if key.split(".")[0] not in ALWAYS_READ
                  and key not in reads and f"{key.split('.')[0]}.*" not in reads]
        if unused:
            many = len(unused) > 1
            raise ConfigError(f"{key_origin(config, unused[0])}: config key{'s' if many else ''} "
                              f"{', '.join(map(repr, unused))} {'are' if many else 'is'} not read by {self.factory} "
                              f"(remove {'them' if many else 'it'}, or read {'them' if many else 'it'} in "
                              f"{self.factory.split(':')[1]})")


ALWAYS_READ = {"pipeline"}  # name, root, beam_args, max_workers: the CLI and the runner read them


class _RecordedConfig:
    """The config as your function sees it: the same values, every field read recorded as ``section.key`` (a
    section used whole, e.g. iterated or dumped, as ``section.*``; the config itself used whole as ``*``).
    Assignments go to the real config."""

    def __init__(self, config: Any, reads: set[str], prefix: str = ""):
        object.__setattr__(self, "_target", config)
        object.__setattr__(self, "_reads", reads)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str) -> Any:
        target, reads, prefix = self._target, self._reads, self._prefix
        value = getattr(target, name)
        if name not in type(target).model_fields:
            reads.add(f"{prefix}*")  # a method or attribute of the model: it may use every field
            return value
        if not prefix and hasattr(type(value), "model_fields"):  # a section: record its keys one by one
            return _RecordedConfig(value, reads, f"{name}.")
        reads.add(f"{prefix}{name}")
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)

    def __iter__(self):
        self._reads.add(f"{self._prefix}*")
        return iter(self._target)

    def __param_value__(self) -> Any:
        """Passed to a component whole (``settings=config.evaluate``): the real section, every key of it read."""
        self._reads.add(f"{self._prefix}*")
        return self._target

    def __repr__(self) -> str:
        return repr(self._target)


def load_config(name: str | None, overrides: list[str] | None = None):
    """Your pipeline's config: the YAML named (and ``--set``), or without one the defaults plus ``--set`` only
    (not ``configs/default.yaml``, whose anomaly keys your function would not read). The anomaly template's
    window check (``pipeline.template`` is only its default here) is held back until :meth:`UserPipeline.build`
    has checked the keys your function reads; whoever does not build must call ``config.raise_deferred``."""
    from edgepipe.pipeline import config as configuration

    if name is not None:
        return configuration.load_config(name, overrides, defer_window_check=True)
    raw: dict[str, Any] = {}
    for override in overrides or []:
        configuration.apply_override(raw, override)
    return configuration.validate(raw, source="--set", overrides=overrides, defer_window_check=True)


def load(ref: str) -> UserPipeline:
    """Import the pipeline function that ``ref`` names: ``path/to/file.py[:function]`` or ``module:function``."""
    if is_pipeline_ref(ref) and not ref.split(":")[0].endswith(".py"):
        module_name, function_name = ref.split(":")
        added = _ensure_on_path(Path.cwd())  # like `python -m`: a project run from its own folder
        module = _import(module_name, ref)
    else:
        path_text, _, function_name = ref.partition(":") if re.search(r"\.py:\w+$", ref) else (ref, "", "")
        function_name = function_name or DEFAULT_FUNCTION
        path = Path(path_text)
        if not path.is_file():
            raise ConfigError(f"pipeline file '{path_text}' does not exist")
        module_name, root = module_name_for(path)
        _check_name_free(module_name, path)
        added = _ensure_on_path(root)
        module = _import(module_name, str(path))
    function = getattr(module, function_name, None)
    source = Path(inspect.getsourcefile(module) or module.__file__ or ref)
    if function is None:
        raise ConfigError(f"{source}: no function '{function_name}' (define {function_name}(config) -> Pipeline)")
    if not callable(function):
        raise ConfigError(f"{source}: '{function_name}' is a {type(function).__name__}, not a function")
    try:
        inspect.signature(function).bind(None)
    except TypeError:
        raise ConfigError(f"{source}: {function_name}() must take one argument, the config "
                          f"(def {function_name}(config) -> Pipeline)") from None
    except ValueError:  # no signature to inspect (a builtin): let the call decide
        pass
    return UserPipeline(f"{module.__name__}:{function_name}", source.resolve(), function, added)


def module_name_for(path: Path) -> tuple[str, Path]:
    """(dotted module name, the folder that must be on sys.path): the file's package is the run of folders above
    it holding ``__init__.py`` (pytest's ``prepend`` rule)."""
    path = path.resolve()
    parts = [path.stem] if path.name != "__init__.py" else []
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    for part in parts:
        if not _IDENTIFIER.match(part):
            raise ConfigError(f"pipeline file '{path}': '{part}' is not a Python identifier, so the file cannot be "
                              "imported under a module name (rename it, e.g. with underscores)")
    return ".".join(parts), folder


def image_problem(module_name: str) -> str | None:
    """Why a task image built from edgepipe plus your installed packages could not import ``module_name``, or
    None: it must be edgepipe's own, or come from an installed distribution (``pip install`` of your project, as
    the image's Dockerfile would do), not from a folder only this machine puts on ``sys.path``."""
    top = module_name.split(".")[0]
    if top == "edgepipe" or top in sys.stdlib_module_names:
        return None
    if importlib.metadata.packages_distributions().get(top):
        return None
    module = sys.modules.get(module_name)
    where = getattr(module, "__file__", None) or module_name
    return (f"comes from {where}, which no installed package provides, so the task image cannot import it; "
            f"make '{top}' an installable package (pip install your project, and build the image FROM edgepipe "
            "with it)")


def check_image_imports(pipeline: Pipeline, factory: str) -> None:
    """Refuse, in one line, a pipeline function or component the compiled tasks could not import (exit 2)."""
    for node in pipeline.nodes:
        problem = image_problem(node.component.fn.__module__)
        if problem:
            raise PipelineDefinitionError(f"node '{node.name}': component '{node.component.name}' {problem}")
    problem = image_problem(factory.split(":")[0])  # the resolve task rebuilds the DAG with it
    if problem:
        raise PipelineDefinitionError(f"pipeline function '{factory}' {problem}")


# ---- importing ----------------------------------------------------------------------------------------------------
def _ensure_on_path(folder: Path) -> Path | None:
    entry = str(folder.resolve())
    if any(str(Path(p or ".").resolve()) == entry for p in sys.path):
        return None
    sys.path.insert(0, entry)
    return Path(entry)


def _check_name_free(module_name: str, path: Path) -> None:
    """A module of that name already imported from elsewhere would be reused silently instead of your file."""
    for name in _prefixes(module_name):
        module = sys.modules.get(name)
        found = getattr(module, "__file__", None) if module is not None else None
        if name == module_name and found and Path(found).resolve() != path.resolve():
            raise ConfigError(f"pipeline file '{path}' would import as '{module_name}', which is already "
                              f"imported from {found}; rename the file or its folder")


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _import(module_name: str, shown: str):
    try:
        return importlib.import_module(module_name)
    except SyntaxError as err:
        raise ConfigError(f"{err.filename}:{err.lineno}: syntax error in pipeline module ({err.msg})") from None
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise ConfigError(f"cannot import pipeline module '{module_name}' ({shown}): no module named "
                              f"'{err.name}'") from None
        raise ConfigError(f"importing {shown} failed{_where(err, Path(shown))}: no module named "
                          f"'{err.name}'") from None
    except EdgepipeError:
        raise
    except Exception as err:
        origin = Path(sys.modules[module_name].__file__) if module_name in sys.modules else Path(shown)
        raise ConfigError(f"importing {shown} failed{_where(err, origin)}: {type(err).__name__}: "
                          f"{_first_line(err)}") from None


def _where(err: BaseException, source: Path) -> str:
    """`` at FILE:LINE``: the deepest frame in the user's own folder, where the mistake most likely is."""
    where = raised_at(err, within=source.resolve().parent)
    return f" at {where}" if where else ""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "(no message)"

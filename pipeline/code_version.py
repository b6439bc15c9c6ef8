"""What code a component runs, for its cache key: its own module plus every project module it imports, transitively.

Hashing only the component's own folder (the rule before) missed what matters and counted what does not: editing
``components/optimization/tflite.py`` left ``evaluate_*`` and ``export_*`` cached with stale results, while editing
``components/data/csv_rows.py`` invalidated ``make_windows``, which never uses it. Here the imports are read from
the source with :mod:`ast` (every ``import``/``from ... import`` in the file, including the lazy ones inside
functions, which this project uses to keep TensorFlow out of light modules, and the dotted module names a registry
imports by name, such as the built-in tasks and model families: a string constant that resolves to a project module
counts) and followed within the component's own top-level package and ``edgepipe`` (and, for a top-level module of
your own such as ``my_pipeline.py``, the modules beside it it imports); third-party libraries are pinned by
``requirements.lock``, not hashed.

Nothing is imported to find a module's file except the top two levels of a package (``edgepipe.components``: light
``__init__`` files), so scanning never triggers TensorFlow or an import cycle. Parsed imports are cached per process
by path, size and modification time, so a run pays for each file once.
"""
from __future__ import annotations

import ast
import hashlib
import re
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

FOLLOWED = ("edgepipe",)  # besides the component's own top-level package
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")  # a dotted name in a string: maybe a module


def code_digest(source_file: str | Path, module_name: str) -> str:
    """sha256 over the component's module and every followed module it reaches, keyed and ordered by module name:
    the same code gives the same digest in a source checkout and in an installed wheel (a compiled Kubeflow
    pipeline checks that its tasks run the code it was compiled with)."""
    digest = hashlib.sha256()
    for name, path in sorted(_closure(Path(source_file), module_name).items()):
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def module_closure(source_file: Path, module_name: str) -> list[Path]:
    """``source_file`` and the files of the project modules it imports, transitively, sorted."""
    return sorted(_closure(source_file, module_name).values(), key=str)


def _closure(source_file: Path, module_name: str) -> dict[str, Path]:
    """{module name: file} reached from ``source_file``; a file reached under two names keeps the first."""
    roots = {module_name.split(".")[0], *FOLLOWED}
    # a top-level module of your own (``my_pipeline.py``, no package): its sibling modules are your code too
    beside = source_file.resolve().parent if "." not in module_name and source_file.name != "__init__.py" else None
    seen: dict[Path, str] = {}
    pending = [(source_file.resolve(), module_name)]
    while pending:
        path, name = pending.pop(0)
        if path in seen:
            continue
        seen[path] = name
        for imported in _imports(str(path), *_stamp(path), _package_of(path, name)):
            if imported.split(".")[0] in roots:
                found = resolve(imported)
            elif beside is not None and "." not in imported and (beside / f"{imported}.py").is_file():
                found = (beside / f"{imported}.py").resolve()
            else:
                continue
            if found is not None and found not in seen:
                pending.append((found, imported))
    return {name: path for path, name in seen.items()}


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _package_of(path: Path, name: str) -> str:
    """The package relative imports in ``path`` start from."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


@lru_cache(maxsize=None)
def _imports(path: str, mtime_ns: int, size: int, package: str) -> tuple[str, ...]:
    """Module names a file may import: ``import a.b`` gives ``a.b``; ``from a import b`` gives ``a`` and ``a.b``
    (``b`` may be a submodule or just a name in ``a``: :func:`resolve` keeps whichever is a module)."""
    tree = ast.parse(Path(path).read_bytes(), filename=path)
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[:len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, *([base] if base else [])])
            if base:
                names.append(base)
                names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.match(node.value):
            names.append(node.value)  # a registry's built-ins, imported by name (tasks, model families)
    return tuple(dict.fromkeys(names))


@lru_cache(maxsize=None)
def resolve(name: str) -> Path | None:
    """The file of module ``name`` (``pkg/__init__.py`` for a package), or None if it is not a module."""
    parts = name.split(".")
    for depth in range(len(parts), 0, -1):
        base = _location(".".join(parts[:depth]), depth)
        if base is None:
            continue
        path = base
        for part in parts[depth:]:
            directory = path.parent if path.name == "__init__.py" else None
            if directory is None:
                return None  # a name inside a plain module, not a module itself
            package, module = directory / part / "__init__.py", directory / f"{part}.py"
            path = package if package.is_file() else module if module.is_file() else None
            if path is None:
                return None
        return path.resolve()
    return None


def _location(name: str, depth: int) -> Path | None:
    """Where an already imported module lives, or (top two levels only) where the import system would find it."""
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None) if module is not None else None
    if origin is None and depth <= 2:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec is not None and spec.has_location else None
    return Path(origin) if origin and origin.endswith(".py") else None

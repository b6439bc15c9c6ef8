"""User-facing errors and the exit codes the CLI maps them to.

Each error carries one line that names what is wrong and where (file, row, key, node); the CLI prints that line
and exits with the class's code, so scripts can tell a bad config from bad data from a refused export.
"""
import errno
import os
import re
import sys
import sysconfig
import traceback
from pathlib import Path


class EdgepipeError(Exception):
    """Base of every error edgepipe reports to a user as one line."""

    exit_code = 1


class ConfigError(EdgepipeError):
    """A config file, a --set override or a CLI argument is wrong (exit 2)."""

    exit_code = 2


class PipelineDefinitionError(EdgepipeError):
    """The DAG cannot be built: a cycle, a missing input, a type mismatch, an unknown parameter (exit 2)."""

    exit_code = 2


class DataError(EdgepipeError):
    """The input data as a whole is unusable: missing file, empty input, too many rejected rows (exit 3)."""

    exit_code = 3


class VerificationError(EdgepipeError):
    """A converted model disagrees with its Keras model beyond the configured bound; nothing is exported (exit 4)."""

    exit_code = 4


class StorageError(EdgepipeError):
    """The disk refused a write or a read (full, read-only, no permission): not the pipeline's fault, but the run
    cannot go on (exit 1). Built from the OSError so the line names the file, never a traceback."""

    exit_code = 1


# errno values that mean the storage refused a write: named as such even when a framework wrapped the OSError
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES}


def describe_os_error(err: OSError, where: str | os.PathLike | None = None) -> str:
    """``no space left on device writing /path`` rather than ``[Errno 28] No space left on device: '/path'``
    (``where``: the path to name when the error has none, as for a write() on an open file)."""
    if err.errno is None:  # raised by Python code (shutil.Error ...): its own message
        text = str(err).strip()
        return text.splitlines()[0] if text else type(err).__name__
    reason = (err.strerror or os.strerror(err.errno)).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    path = err.filename if err.filename is not None else where
    if path is None:
        return reason
    verb = "writing" if err.errno in STORAGE_ERRNOS - {errno.EACCES} else "at"
    return f"{reason} {verb} {path}"


def storage_failure(error: BaseException) -> OSError | None:
    """The OSError saying the storage refused (disk full, read-only...) that ``error`` is or wraps (Beam turns an
    OSError into a RuntimeError, keeping it as the context), or None."""
    for _ in range(10):
        if error is None:
            return None
        if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
            return error
        error = error.__cause__ or error.__context__
    return None


def describe(cause: BaseException, where: str | os.PathLike | None = None) -> str:
    """One line of an error's message; a storage failure anywhere in its chain is said plainly."""
    storage = storage_failure(cause)
    if storage is not None:
        return describe_os_error(storage, where)
    if isinstance(cause, OSError) and cause.errno is not None:
        return describe_os_error(cause)
    text = str(cause).strip()
    return informative_line(text) if text else type(cause).__name__


_NOISE = re.compile(r"^(File \"|\[\[|Detected at node|Traceback \(most recent call last\))")


def informative_line(text: str) -> str:
    """The first line of a message, unless it is only a heading: TensorFlow's ``Graph execution error:`` is
    followed by a Python stack and, at the end, what went wrong (``Cast string to float is not supported``) and
    the op's ``[[node]]`` lines; the heading alone tells a user nothing, so the first line that is neither stack
    nor node marker joins it, with the node it was detected at."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].endswith(":"):
        return lines[0] if lines else text
    informative = next((line for line in lines[1:] if not _NOISE.match(line)), None)
    if informative is None:
        return lines[0]
    node = re.search(r"Detected at node '?([^'\s]+)'?", text)
    return f"{lines[0]} {informative}" + (f" (node {node.group(1)})" if node else "")


def _library_dirs() -> list[Path]:
    """Where the interpreter's and installed packages' code lives: never the line a user can fix."""
    paths = sysconfig.get_paths()
    return [Path(paths[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]


def _edgepipe_dirs() -> list[Path]:
    """The folders of edgepipe's own packages (``edgepipe`` and its subpackages, wherever setup.py maps them)."""
    return [Path(folder).resolve() for name, module in list(sys.modules.items())
            if name == "edgepipe" or (name.startswith("edgepipe.") and name.count(".") == 1)
            for folder in getattr(module, "__path__", None) or ()]


def raised_at(error: BaseException, within: str | os.PathLike | None = None) -> str | None:
    """``FILE:LINE`` where ``error`` most likely has its cause: the innermost frame of its traceback in the
    user's code (neither edgepipe's own packages nor the standard library or site-packages), else the innermost
    frame in edgepipe; with ``within``, only a frame under that folder, else None. Why: a one-line error must say
    where to look, and the innermost frame of all is usually deep inside a library."""
    frames = [(frame, Path(frame.filename).resolve()) for frame in traceback.extract_tb(error.__traceback__)
              if not frame.filename.startswith("<")]
    libraries, own = _library_dirs(), _edgepipe_dirs()

    def under(path: Path, folders: list[Path]) -> bool:
        return any(path.is_relative_to(folder) for folder in folders)

    def library(path: Path) -> bool:
        return under(path, libraries) or bool({"site-packages", "dist-packages"} & set(path.parts))

    user = [frame for frame, path in frames if not library(path) and not under(path, own)
            and (within is None or path.is_relative_to(Path(within).resolve()))]
    chosen = user or ([frame for frame, path in frames if under(path, own)] if within is None else [])
    return f"{chosen[-1].filename}:{chosen[-1].lineno}" if chosen else None


def defined_at(function: object) -> str | None:
    """``FILE:LINE`` of a function's definition: where to look when what it returned is wrong."""
    code = getattr(function, "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code is not None else None


class ContractError(EdgepipeError):
    """A component broke its contract with the runner: it returned something other than a dict of metrics, or
    left a declared Output empty (exit 1: a bug in the component, not in the data). ``where`` is the component's
    definition, ``FILE:LINE``."""

    def __init__(self, message: str, where: str | None = None):
        super().__init__(message)
        self.where = where


class ComponentError(EdgepipeError):
    """A component raised; wraps the original error with the node's name (exit 1, or the wrapped error's code).

    An edgepipe error (bad data, a refused export ...) is already one line saying what and where: it is kept as it
    is. Any other exception is a mistake in code, so the line says where it was raised and what it is, the way
    a failing ``create_pipeline`` is reported: ``component 'clip' failed at /x/features.py:16: KeyError: 'temp'``.
    A full or read-only disk is said plainly (not the component's fault: neither type nor line)."""

    def __init__(self, node: str, cause: BaseException, writing: str | os.PathLike | None = None):
        self.node = node
        self.cause = cause
        self.exit_code = getattr(cause, "exit_code", 1)
        detail = describe(cause, writing)  # writing: the component's output folder, named if the disk refused
        if isinstance(cause, EdgepipeError) or storage_failure(cause) is not None:
            self.where = getattr(cause, "where", None)
        else:
            self.where = raised_at(cause)
            detail = f"{type(cause).__name__}: {detail}"
        self.detail = detail
        super().__init__(f"component '{node}' failed{f' at {self.where}' if self.where else ''}: {detail}")

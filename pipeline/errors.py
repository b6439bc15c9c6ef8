"""User-facing errors and the exit codes the CLI maps them to.

Each error carries one line that names what is wrong and where (file, row, key, node); the CLI prints that line
and exits with the class's code, so scripts can tell a bad config from bad data from a refused export.
"""
import errno
import os


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
    """The first line of an error's message; a storage failure anywhere in its chain is said plainly."""
    storage = storage_failure(cause)
    if storage is not None:
        return describe_os_error(storage, where)
    if isinstance(cause, OSError) and cause.errno is not None:
        return describe_os_error(cause)
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


class ComponentError(EdgepipeError):
    """A component raised; wraps the original error with the node's name (exit 1, or the wrapped error's code)."""

    def __init__(self, node: str, cause: BaseException, writing: str | os.PathLike | None = None):
        self.node = node
        self.cause = cause
        self.exit_code = getattr(cause, "exit_code", 1)
        detail = describe(cause, writing)  # writing: the component's output folder, named if the disk refused
        super().__init__(f"component '{node}' failed: {detail}")

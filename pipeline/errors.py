"""User-facing errors and the exit codes the CLI maps them to.

Each error carries one line that names what is wrong and where (file, row, key, node); the CLI prints that line
and exits with the class's code, so scripts can tell a bad config from bad data from a refused export.
"""


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


class ComponentError(EdgepipeError):
    """A component raised; wraps the original error with the node's name (exit 1, or the wrapped error's code)."""

    def __init__(self, node: str, cause: BaseException):
        self.node = node
        self.cause = cause
        self.exit_code = getattr(cause, "exit_code", 1)
        detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        super().__init__(f"component '{node}' failed: {detail}")

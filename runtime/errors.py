"""Errors of the on-device runtime, each one line, each with the exit code edgepipe's CLI uses.

The runtime must not import ``edgepipe.pipeline`` (it ships without TensorFlow, Beam and pydantic), so it keeps
its own small hierarchy; the codes follow edgepipe's convention so scripts see the same numbers everywhere:
2 for a bad argument (an unusable bundle is a bad argument), 3 for input data that cannot be used.
"""


class RuntimeBundleError(Exception):
    """Base of every error the runtime reports to a user as one line."""

    exit_code = 1


class BundleError(RuntimeBundleError):
    """The bundle directory, its ``bundle.json`` or its model files are missing, invalid or inconsistent (exit 2)."""

    exit_code = 2


class UsageError(RuntimeBundleError):
    """A request the bundle cannot serve: wrong input kind for its task, unknown model, no streaming (exit 2)."""

    exit_code = 2


class InputError(RuntimeBundleError):
    """Input data that cannot be used: wrong channel count, non-numbers, too short, empty, unreadable (exit 3)."""

    exit_code = 3


class InputWarning(UserWarning):
    """Input the runtime uses, but not as the pipeline's ingest would (e.g. a repeated timestamp, scored in file
    order where ingest drops the row): ``predict`` prints it as one ``edgepipe: warning:`` line, exit 0."""

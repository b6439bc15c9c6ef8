"""The ``edgepipe`` command line (also ``python -m edgepipe``).

Exit status: 0 success, 1 a component failed unexpectedly, 2 bad config/arguments/pipeline definition, 3 unusable
input data, 4 a converted model failed verification (nothing exported), 5 a cloud SDK, credentials or service is
missing or refused (``compile``/``submit``), 130 interrupted (Ctrl-C), 143 stopped by SIGTERM (see display.py).

This module owns the parser, the error boundary (``main``) and ``run``; the read-only ``runs``/``show``/``models``
live in cli_listing.py, the cloud commands in cli_cloud.py.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import sys
import time
import traceback
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from edgepipe.pipeline.errors import EdgepipeError, StorageError, describe, describe_os_error
from edgepipe.pipeline.display import (ProgressPrinter, interrupt_exit_code, interrupt_name, leave_after_interrupt,
                                       print_rejects, print_summary, print_validation,
                                       stop_on_ctrl_c)
from edgepipe.pipeline.cli_cloud import add_cloud_commands, cmd_compile, cmd_execute_node, cmd_submit
from edgepipe.pipeline.cli_listing import check_root, cmd_models, cmd_runs, cmd_show
from edgepipe.pipeline.scaffold import add_command as add_init_command, cmd_init
from edgepipe.runtime import cli as runtime_cli


def _quiet_frameworks(verbose: bool) -> None:
    """Hide TensorFlow/absl/Beam log noise unless -v; must run before TensorFlow is imported.

    Warnings are dropped where they would be shown, not only filtered: Gym resets the filters when imported
    (``simplefilter("once", DeprecationWarning)``), which brought back its own and tfmot's DeprecationWarnings. Gym
    also prints an "unmaintained" notice on import from the ``gym_notices`` table, emptied here (a dict, no import of
    Gym itself)."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    warnings.showwarning = lambda *args, **kwargs: None
    try:
        import gym_notices.notices as gym_notices

        gym_notices.notices.clear()
    except Exception:  # not installed (no dqn), or a layout of its own: the notice is harmless noise
        pass
    # A log handler whose stream fails (file descriptor 2 goes to ROOT/logs, which may be on a full disk) must not
    # print "--- Logging error ---" and a traceback on the terminal.
    logging.raiseExceptions = False
    logging.getLogger().setLevel(logging.ERROR)  # Beam warns about optional GCP clients on the root logger
    for name in ("tensorflow", "absl", "apache_beam", "h5py", "tensorflow_model_optimization"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line like every other edgepipe error (exit 2); sub-parsers inherit it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("edgepipe").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"edgepipe: error: {where}{message} (see '{self.prog} -h')\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgepipe", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow/Beam logs")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a pipeline (default: configs/default.yaml)")
    run.add_argument("config", nargs="?", metavar="[PIPELINE] CONFIG",
                     help="YAML file or bundled template name; or your pipeline (FILE.py[:function] or "
                          "package.module:function) followed by its YAML config")
    run.add_argument("pipeline_config", nargs="?", help=argparse.SUPPRESS)
    run.add_argument("--output", default="bundle", help="where to write the exported bundle (default: ./bundle)")
    run.add_argument("--root", help="pipeline root: metadata and artifacts (default: pipeline.root)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set window.size=64 (repeatable)")
    run.add_argument("--no-cache", action="store_true", help="re-execute every component")

    runs = sub.add_parser("runs", help="list past runs")
    runs.add_argument("--root", default=".edgepipe")
    runs.add_argument("--limit", type=runtime_cli.positive_int, default=20)

    show = sub.add_parser("show", help="components, cache hits, artifacts and metrics of a run")
    show.add_argument("run_id", help="run id or a unique prefix ('latest' for the newest)")
    show.add_argument("--root", default=".edgepipe")
    show.add_argument("--json", action="store_true", help="print the record as JSON")
    show.add_argument("--open", action="store_true", help="print the run's report.html path and open it")
    add_init_command(sub)  # `edgepipe init DIR` (pipeline/scaffold.py)
    models = sub.add_parser("models", help="list the model families with one-line descriptions")
    models.add_argument("name", nargs="?", help="show one family's hyperparameters and defaults")
    add_cloud_commands(sub)
    runtime_cli.add_commands(sub)  # predict / serve: edgepipe.runtime, no TensorFlow
    from edgepipe.ui.server import add_command as add_ui_command  # `edgepipe ui` (ui/server.py)

    add_ui_command(sub, runtime_cli.port_number)
    for command in sub.choices.values():  # `edgepipe run -v` as well as `edgepipe -v run`
        # SUPPRESS: a subcommand without -v leaves the value the top-level flag set
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="show TensorFlow/Beam logs (and the traceback of an unexpected error)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Every failure ends here as one ``edgepipe: error:`` line and an exit status, never a traceback (``-v`` adds
    the traceback of an unexpected error, for a bug report)."""
    args = _parser().parse_args(argv)
    _quiet_frameworks(args.verbose)
    try:
        commands = {"run": cmd_run, "runs": cmd_runs, "show": cmd_show, "compile": cmd_compile, "submit": cmd_submit,
                    "execute-node": cmd_execute_node, "models": cmd_models, "init": cmd_init,
                    "ui": _cmd_ui, **runtime_cli.COMMANDS}
        return commands[args.command](args)
    except EdgepipeError as err:
        return _error(str(err), err.exit_code)
    except KeyboardInterrupt:
        code, by = interrupt_exit_code(), interrupt_name()
        print(f"edgepipe: interrupted{'' if by == 'SIGINT' else f' by {by}'}; completed components stay cached, "
              "the next run resumes", file=sys.stderr, flush=True)
        leave_after_interrupt(code, program=argv is None)
        return code
    except BrokenPipeError:  # `edgepipe runs | head -1`: the reader has all it wanted
        _stdout_to_devnull()
        return 0
    except OSError as err:  # disk full, read-only, no permission: the storage refused, not a bug
        return _error(describe_os_error(err), StorageError.exit_code)
    except sqlite3.DatabaseError as err:  # the metadata store became unwritable mid-run (disk full)
        return _error(f"metadata store: {describe(err)}", StorageError.exit_code)
    except Exception as err:  # a bug: still one line (the traceback with -v)
        if args.verbose:
            traceback.print_exc()
        return _error(f"unexpected {type(err).__name__}: {describe(err)} (rerun with -v for the traceback)", 1)


def _cmd_ui(args: argparse.Namespace) -> int:
    from edgepipe.ui.server import cmd_ui

    return cmd_ui(args)


def _error(message: str, code: int) -> int:
    try:
        print(f"edgepipe: error: {message}", file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):  # stderr closed too: the exit status still says it
        pass
    return code


def _stdout_to_devnull() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


# ---- run ------------------------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from edgepipe.pipeline.config import load_config
    from edgepipe.pipeline import user_pipeline

    pipeline_ref, config_name = user_pipeline.split_targets(args.config, args.pipeline_config)
    # your pipeline's module first: the families and tasks it imports are then valid config values (model.family)
    function = user_pipeline.load(pipeline_ref) if pipeline_ref else None
    config = (user_pipeline.load_config if pipeline_ref else load_config)(config_name, args.overrides)
    if args.root:  # templates place per-root things (checkpoints, generated datasets) under pipeline.root
        config.pipeline.root = args.root
    check_root(Path(args.root or config.pipeline.root))
    _check_output(args.output, Path(args.root or config.pipeline.root))
    if pipeline_ref:  # your pipeline (pipeline/user_pipeline.py): its function builds the DAG from the config
        pipeline = function.build(config)
    elif not config.search.trials:  # a budget search builds one pipeline per trial (pipeline/search.py)
        from edgepipe.pipeline.templates import build_pipeline  # imports components (TF, Beam): after validation

        pipeline = build_pipeline(config)
    from edgepipe.pipeline.beam_options import validate_beam_args  # after the build: a project's Beam options count

    validate_beam_args(config.pipeline.beam_args, launched_here=True)
    root = Path(args.root or config.pipeline.root)
    log_file = None if args.verbose else root / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}.log"
    with _native_stderr_to(log_file):
        if config.search.trials:
            from edgepipe.pipeline.search import cmd_search

            return cmd_search(args, config, pipeline_ref, log_file)
        return _run_pipeline(args, config, pipeline, root, log_file)


def _check_output(output: str, root: Path) -> None:
    """Refuse, before anything runs, an ``--output`` the bundle may not replace: the copy replaces the whole
    directory, so anything but a new/empty directory or an earlier bundle would be the user's files, and an output
    overlapping the pipeline root would delete the metadata store and artifacts (or be deleted with them)."""
    from edgepipe.pipeline.artifacts import Bundle
    from edgepipe.pipeline.errors import ConfigError

    if not output.strip():  # Path("") is the current directory: never what an empty --output meant
        raise ConfigError("--output is empty; give the directory to write the bundle to")
    out, base = Path(output).resolve(), root.resolve()
    if out == base or base in out.parents or out in base.parents:
        raise ConfigError(f"--output {output} and the pipeline root {root} overlap; they must be separate "
                          "directories, neither inside the other")
    reason = Bundle.replace_refusal(output)
    if reason:
        raise ConfigError(f"--output {output} {reason}")
    from edgepipe.pipeline.dir_replace import write_problem

    problem = write_problem(output)
    if problem:  # exit 1 like the copy's own failure (README: unwritable --output), but before anything runs
        raise StorageError(f"could not write the bundle to {output}: {problem}")


def _run_pipeline(args, config, pipeline, root: Path, log_file: Path | None) -> int:
    from edgepipe.pipeline.runner import LocalRunner

    progress = ProgressPrinter(len(pipeline.nodes))
    runner = LocalRunner(root, use_cache=not args.no_cache, max_workers=config.pipeline.max_workers,
                         progress=progress)
    print(f"edgepipe: pipeline '{pipeline.name}' ({len(pipeline.nodes)} components), root {root}", flush=True)
    started = time.perf_counter()
    with stop_on_ctrl_c(runner, progress):
        result = runner.run(pipeline, config.model_dump(mode="json"))
    elapsed = time.perf_counter() - started
    if result.error:
        _log_traceback(result.error)
        where = f"; framework logs and the traceback in {log_file}" if log_file else ""
        print(f"run {result.run_id} failed after {elapsed:.1f}s{where}", flush=True)
        raise result.error
    bundle_node = next((n for n in reversed(pipeline.nodes) if "bundle" in n.component.outputs), None)
    bundle = result.artifact(bundle_node.name, "bundle") if bundle_node is not None else None
    try:  # copied before the run is called complete: a run whose bundle never reached --output is not
        destination = _copy_bundle(bundle, args.output) if bundle is not None else None
    except EdgepipeError as err:
        runner.store.end_run(result.run_id, "failed", str(err))
        print(f"run {result.run_id} failed after {elapsed:.1f}s: its bundle could not be written", flush=True)
        raise
    print(f"run {result.run_id} complete in {elapsed:.1f}s ({result.cache_hits}/{len(result.nodes)} cached)")
    print_rejects(result)
    print_validation(result)
    if bundle is None:
        return 0
    print_summary(bundle.path)
    print(f"bundle written to {destination.resolve()}")
    return 0


def _log_traceback(error: Any) -> None:
    """The traceback of a component's unexpected exception, for whoever fixes it, to file descriptor 2: the run's
    log file (named on the terminal) without -v, the terminal with -v; the error line itself stays one line."""
    cause = getattr(error, "cause", None)
    if cause is None or isinstance(cause, EdgepipeError):
        return
    try:
        os.write(2, "".join(traceback.format_exception(cause)).encode(errors="replace"))
    except OSError:  # the log's disk is full: the one-line error still follows
        pass


def _copy_bundle(bundle: Any, output: str) -> Path:
    """Copy the exported bundle to ``--output``; a full or read-only disk is one line naming the file (the copy
    stages beside the destination and removes its staging folder itself), not a page of shutil.Error."""
    try:
        return bundle.copy_to(output)
    except shutil.Error as err:  # copytree collects (src, dst, reason) per file; the first says enough
        failures = err.args[0] if err.args and isinstance(err.args[0], list) else []
        src, dst, why = failures[0] if failures else ("", output, str(err))
        why = re.sub(r"^\[Errno \d+\] ", "", str(why)).split(":")[0].lower()
        raise StorageError(f"could not write the bundle to {output}: {why} writing {dst}") from None
    except OSError as err:
        raise StorageError(f"could not write the bundle to {output}: {describe_os_error(err)}") from None


@contextmanager
def _native_stderr_to(log_file: Path | None) -> Iterator[None]:
    """Send what native code (TensorFlow's C++ logging, the TFLite converter, XNNPACK) writes to file
    descriptor 2 into ``log_file``, while Python's ``sys.stderr`` (edgepipe's own error lines) still reaches the
    terminal. TF_CPP_MIN_LOG_LEVEL no longer silences all of it, so the descriptor itself is redirected."""
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    terminal_fd = os.dup(2)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(terminal_fd), "w", buffering=1)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(terminal_fd, 2)
        os.close(terminal_fd)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

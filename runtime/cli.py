"""``edgepipe predict`` / ``edgepipe serve`` (also ``python -m edgepipe.runtime predict|serve|info``).

Kept in the runtime so the runtime image's entry point works without the pipeline's dependencies;
``pipeline/cli.py`` only registers these parsers and handlers. Errors are one line on stderr with edgepipe's exit
codes: 2 bad argument or unusable bundle, 3 unusable input data.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import sys
import warnings
from pathlib import Path
from typing import Sequence

from edgepipe.runtime.errors import InputError, InputWarning, RuntimeBundleError, UsageError
from edgepipe.runtime.likelihood import THRESHOLD

DEFAULT_MAX_BODY = 8 * 1024 * 1024


def int_at_least(minimum: int, what: str):
    """argparse type: an integer >= ``minimum`` (a bad --threads is the argument's fault, not a model file's)."""

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    check.__name__ = what  # argparse names the type in its own messages
    return check


positive_int = int_at_least(1, "positive_int")
non_negative_int = int_at_least(0, "non_negative_int")


def likelihood_threshold(text: str) -> float:
    """argparse type: a likelihood in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got '{text}'") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, got {value}")
    return value


def add_commands(sub) -> None:
    """Add the ``predict`` and ``serve`` sub-parsers to an ``add_subparsers()`` object."""
    predict = sub.add_parser("predict", help="run a bundle on a CSV, NPZ, JSON or image file")
    predict.add_argument("bundle", help="bundle directory (with bundle.json)")
    predict.add_argument("input", help="CSV (columns named like the bundle's channels or table columns), NPZ, JSON "
                                       "(one request body), JSON Lines (.jsonl: one row or one body per line) "
                                       "or image")
    predict.add_argument("-o", "--output", help="file to write (default: stdout)")
    predict.add_argument("--format", choices=["jsonl", "csv"],
                         help="output format (default: csv for a .csv --output, else jsonl)")
    predict.add_argument("--level", choices=["window", "step", "alert"], default="window",
                         help="anomaly bundles: one row per window (default), per time step, or per alert event "
                              "(rows carry the causal likelihood and alert flag; see docs/runtime.md)")
    predict.add_argument("--alert-threshold", type=likelihood_threshold, default=None,
                         help="anomaly bundles: alert when the likelihood reaches this (default: bundle.json's "
                              f"likelihood.threshold, else {THRESHOLD:g})")
    predict.add_argument("--refractory", type=non_negative_int, default=None,
                         help="anomaly bundles: steps after an alert in which no new alert is raised (default: "
                              "bundle.json's likelihood.refractory, else 4 x window size)")
    predict.add_argument("--model", help="model key or file in the bundle (default: bundle.json's default_model)")
    predict.add_argument("--series-column", help="CSV column naming the series (default: 'series' if present); "
                                                 "the series' rows may be interleaved")
    predict.add_argument("--timestamp-column", help="CSV timestamp column echoed in the output "
                                                    "(default: 'timestamp' if present); rows must be in time order")
    predict.add_argument("--threads", type=positive_int, default=None, help="LiteRT interpreter threads")

    serve = sub.add_parser("serve", help="serve a bundle over HTTP (POST /predict, GET /healthz, GET /metadata)")
    serve.add_argument("bundle", help="bundle directory (with bundle.json)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=port_number, default=8080, help="port (default: 8080; 0 picks a free one)")
    serve.add_argument("--model", help="model key or file in the bundle (default: bundle.json's default_model)")
    serve.add_argument("--max-body-bytes", type=positive_int, default=DEFAULT_MAX_BODY,
                       help=f"reject larger request bodies with 413 (default: {DEFAULT_MAX_BODY})")
    serve.add_argument("--concurrency", type=positive_int, default=min(4, os.cpu_count() or 1),
                       help="interpreters that may run at once (default: min(4, CPUs))")
    serve.add_argument("--threads", type=positive_int, default=1, help="LiteRT threads per interpreter (default: 1)")
    serve.add_argument("--max-memory", type=positive_int, default=None,
                       help="bytes the request bodies in flight may use (estimated at 7 x body size; default: "
                            "192 MiB); beyond it requests wait briefly, then get 503 with Retry-After")
    serve.add_argument("--log-level", default="warning", help="uvicorn log level (default: warning)")


def _fail(err: RuntimeBundleError) -> int:
    print(f"edgepipe: error: {err}", file=sys.stderr)
    return err.exit_code


def cmd_predict(args: argparse.Namespace) -> int:
    from edgepipe.runtime import outputs
    from edgepipe.runtime.bundle import Bundle
    from edgepipe.runtime.inputs import read_input

    try:
        bundle = Bundle.load(args.bundle, model=args.model, num_threads=args.threads)
        if args.output is not None:
            _check_output(args.output, args.input, args.bundle)
        with warnings.catch_warnings(record=True) as caught:  # input used, but not as ingest would: say so
            warnings.simplefilter("always", InputWarning)
            parts = read_input(args.input, bundle.impl, args.series_column, args.timestamp_column)
        for warning in caught:
            if issubclass(warning.category, InputWarning):
                print(f"edgepipe: warning: {warning.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        results = []
        options = {k: v for k, v in (("threshold", args.alert_threshold), ("refractory", args.refractory))
                   if v is not None and bundle.task == "anomaly_detection"}
        for name, kind, values, stamps in parts:
            try:
                results.append((name, bundle.predict(values, kind, **options), stamps))
            except InputError as err:  # name the part (a series of the CSV) unless it is just the file's name
                part = "" if name == Path(args.input).stem else f"{name}: "
                raise InputError(f"{args.input}: {part}{err}") from None
        fmt = args.format or ("csv" if args.output and args.output.lower().endswith(".csv") else "jsonl")
        records = (row for name, result, stamps in results
                   for row in outputs.rows(name, result, args.level, stamps))
        skews = [(name, result.skew) for name, result, _ in results if getattr(result, "skew", None) is not None]
        if fmt == "jsonl":  # one more record per input: the skew report (runtime/skew.py)
            records = itertools.chain(records, ({"input": name, "skew": skew} for name, skew in skews))
        written = _write(records, args.output, fmt) - (len(skews) if fmt == "jsonl" else 0)  # rows, not reports
    except RuntimeBundleError as err:
        return _fail(err)
    print(f"edgepipe: {_summary(results, written)}", file=sys.stderr)
    for name, skew in skews:
        found = ", ".join(f"{k} {v}" for k, v in sorted(skew["counts"].items())) or "none"
        if skew.get("not_checked"):  # "none" must not read as "all checked" (runtime/skew.py)
            found += f" (not checked: {'; '.join(skew['not_checked'])})"
        print(f"edgepipe: skew of {name} vs training ({skew['rows']} rows): {found}", file=sys.stderr)
        if fmt == "csv":  # a CSV has no room for it: the report as one JSON line
            print(f"edgepipe: skew report: {json.dumps(skew)}", file=sys.stderr)
    return 0


def _check_output(output: str, source: str, bundle: str) -> None:
    """Refuse an ``--output`` that cannot be written or would destroy what the user has: a directory, a missing
    folder, the input file itself, or a path inside the bundle (its bundle.json or a model file would be replaced).
    Checked before anything is read or written, on resolved paths (a symlink or ``..`` does not hide the clash)."""
    if not output.strip():
        raise UsageError("--output is empty: give the file to write (or leave --output out for stdout)")
    target = Path(output)
    if target.is_dir():
        raise UsageError(f"--output {output} is a directory")
    if not target.parent.is_dir():
        raise UsageError(f"--output {output}: folder {target.parent} does not exist")
    given = Path(source)
    try:
        real = target.resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop
        raise UsageError(f"--output {output}: cannot resolve the path ({err})") from None
    home = Path(bundle).resolve()  # loaded already: resolvable
    if real == _resolved(given) or (target.exists() and given.exists() and os.path.samefile(target, given)):
        raise UsageError(f"--output {output} is the input file {source}: it would be overwritten")
    if home == real or home in real.parents:
        raise UsageError(f"--output {output} is inside the bundle directory {bundle}: write it elsewhere")


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # an input that is a symlink loop: read_input names it
        return path.absolute()


def _write(records, output: str | None, fmt: str) -> int:
    """To stdout, or to ``output`` (see _check_output) through a temporary file renamed at the end (never half a
    file)."""
    from edgepipe.runtime import outputs

    if not output:
        return outputs.write(records, sys.stdout, fmt)
    target = Path(output)
    # a fresh name beside the target (same filesystem: the rename is atomic), created exclusively: never a file the
    # user has (``x`` fails on an existing one), and the usual permissions (umask), unlike mkstemp's 0600
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        with partial.open("x", encoding="utf-8", newline="") as handle:
            n = outputs.write(records, handle, fmt)
        partial.replace(target)
    except OSError as err:  # a write() on a full disk names no file: name the one being written
        if err.filename is None and err.errno is not None:
            raise OSError(err.errno, err.strerror, str(target)) from None
        raise
    finally:
        partial.unlink(missing_ok=True)
    return n


def _summary(results, written: int) -> str:
    anomalous = [int(r.window_anomaly.sum()) for _, r, _ in results if hasattr(r, "window_anomaly")]
    windows = [len(r.window_score) for _, r, _ in results if hasattr(r, "window_score")]
    model = results[0][1].model if results else "?"
    if windows:
        alerts = sum(len(r.alerts()) for _, r, _ in results if hasattr(r, "alerts"))
        return (f"{len(results)} series, {sum(windows)} windows, {sum(anomalous)} anomalous, {alerts} alerts "
                f"({model}); {written} rows written")
    return f"{len(results)} inputs ({model}); {written} rows written"


def cmd_serve(args: argparse.Namespace) -> int:
    from edgepipe.runtime.bundle import Bundle

    try:
        try:
            from edgepipe.runtime import server
        except ImportError as err:
            raise UsageError(f"'serve' needs FastAPI and uvicorn ({err.name} is missing): "
                             "pip install 'edgepipe[serve]'") from None
        max_memory = server.DEFAULT_MAX_MEMORY if args.max_memory is None else args.max_memory
        if max_memory < server.EXPANSION * args.max_body_bytes:  # a max-size body alone would never fit
            raise UsageError(f"--max-memory {max_memory} is below one max-size body's estimated working memory "
                             f"({server.EXPANSION} x --max-body-bytes {args.max_body_bytes} = "
                             f"{server.EXPANSION * args.max_body_bytes}); raise it or lower --max-body-bytes")
        bundle = Bundle.load(args.bundle, model=args.model, num_threads=args.threads,
                             concurrency=args.concurrency)
        server.serve(bundle, host=args.host, port=args.port, max_body_bytes=args.max_body_bytes, max_memory=max_memory,
                     log_level=args.log_level)  # binds first: a busy port is an error before "serving"
    except RuntimeBundleError as err:
        return _fail(err)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from edgepipe.runtime.bundle import Bundle

    try:
        bundle = Bundle.load(args.bundle, model=args.model)
    except RuntimeBundleError as err:
        return _fail(err)
    print(json.dumps(bundle.metadata(), indent=2))
    return 0


COMMANDS = {"predict": cmd_predict, "serve": cmd_serve}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m edgepipe.runtime``: the runtime image's entry point (no TensorFlow needed)."""
    parser = argparse.ArgumentParser(prog="python -m edgepipe.runtime",
                                     description="Run an exported edgepipe bundle (NumPy + LiteRT only).")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    info = sub.add_parser("info", help="verify a bundle and print what it expects and returns (JSON)")
    info.add_argument("bundle")
    info.add_argument("--model", help="model key or file in the bundle")
    args = parser.parse_args(argv)
    try:
        return {**COMMANDS, "info": cmd_info}[args.command](args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `... predict B x.csv | head`: the reader has what it wanted; end quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    except OSError as err:  # --output on a full or read-only disk: one line, the partial file is already gone
        reason = (err.strerror or str(err)).lower()
        print(f"edgepipe: error: {reason}" + (f" writing {err.filename}" if err.filename else ""), file=sys.stderr)
        return 1

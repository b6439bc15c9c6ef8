"""Runner options for the data components: one ``beam_args`` list -> a Beam pipeline on the runner it names.

Why a module of its own: every data component takes the same ``beam_args`` (``pipeline.beam_args`` in the config)
and must read it the same way (DirectRunner by default, ``DaskRunner`` as a short name, Dask partitioning sized to
the cluster, "is this runner's worker a local process?"). The launchers (``pipeline/beam_options.py``: Dataflow
arguments and their validation) read the runner from here too, so the data layer imports nothing above the kernel.
"""
from __future__ import annotations

import difflib
import importlib.util
import os

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineRunner

from edgepipe.pipeline.errors import ConfigError

RUNNER_ALIASES = {"DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner"}
# Runners whose workers are this machine's processes: they see the launcher's paths (a FUSE mount too).
LOCAL_RUNNERS = {"DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner", "PrismRunner"}


def pipeline_options(beam_args: list[str] | None = None) -> PipelineOptions:
    """Options from command-line style args; DirectRunner unless ``--runner`` says otherwise; ``DaskRunner`` is
    accepted as a short name (Beam only knows it by its module path)."""
    options = PipelineOptions(_aliased(beam_args))
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    return options


def _aliased(beam_args: list[str] | None) -> list[str]:
    args = []
    for arg in beam_args or []:
        if arg.startswith("--runner="):
            name = arg.split("=", 1)[1]
            arg = f"--runner={RUNNER_ALIASES.get(name, name)}"
        args.append(arg)
    return args


class LocalDirectRunner(PipelineRunner):
    """``DirectRunner`` as this project runs and tests it: Beam's FnApiRunner, which is what Beam's DirectRunner
    picks for a batch pipeline (every data component's is), honouring ``--direct_running_mode`` and
    ``--direct_num_workers``.

    Why not Beam's own ``DirectRunner``: since Beam 2.6x it first tries the Prism runner, a Go binary it *downloads
    from GitHub at run time* when not cached, and falls back to the FnApiRunner when that fails. So the same config
    ran on Prism on a machine with network and on the FnApiRunner without one (where every job still tried the
    download and left an empty ``beam-temp*`` folder in the temp directory: 8,581 of them on the development machine
    after a day of tests), and ``multi_processing`` meant nothing under Prism. Nothing here may be downloaded at run
    time; ``--runner=PrismRunner`` still selects Prism explicitly.
    """

    def run_pipeline(self, pipeline, options):
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.runners.portability.portable_runner import JobServiceHandle

        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        return fn_runner.FnApiRunner(provision_info=info).run_pipeline(pipeline, options)


def beam_args_problem(beam_args: list[str] | None) -> str | None:
    """Why ``beam_args`` cannot mean what was written, in one line, or None: a runner Beam does not know, or a flag
    no options class registers. Beam itself would fail on the first only when a component builds its pipeline (a
    ValueError that reads like a crash of that component) and silently drops the second (``--direct_num_wrokers=2``
    runs with the default), so launchers check this before anything runs and :func:`beam_pipeline` again.

    A flag counts as known when any imported ``PipelineOptions`` subclass registers it: Beam's own (Direct, Dataflow,
    Flink, Spark, Prism, portable: one module), the Dask runner's (imported here when Dask is installed, else
    ``--dask_*`` flags are let through rather than refused for a missing package), and a project's own options
    classes once its modules are imported."""
    options = pipeline_options(beam_args)
    runner = options.view_as(StandardOptions).runner
    problem = _runner_problem(runner) if isinstance(runner, str) else None
    if problem:
        return problem
    try:
        import apache_beam.runners.dask.dask_runner  # noqa: F401 - registers DaskOptions
        dask_known = True
    except ImportError:
        dask_known = False
    found: dict[str, list[str]] = {}

    def parse(parser) -> None:  # Beam's own parser with every registered flag, before it parses anything
        found["known"] = [flag for flag in parser._option_string_actions if flag.startswith("--")]
        found["unknown"] = [arg.split("=", 1)[0] for arg in parser.parse_known_args(_aliased(beam_args))[1]
                            if arg.startswith("-")]

    options.get_all_options(retain_unknown_options=True, add_extra_args_fn=parse)
    unknown = [flag for flag in found["unknown"] if dask_known or not flag.startswith("--dask_")]
    if not unknown:
        return None
    close = difflib.get_close_matches(unknown[0], found["known"], n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown Beam flag {unknown[0]}{hint}"


def _runner_problem(runner: str) -> str | None:
    """None when Beam can create ``runner`` (a known name, with or without 'Runner', or an importable dotted path)."""
    known = {path.rsplit(".", 1)[-1].lower(): path for path in StandardOptions.ALL_KNOWN_RUNNERS}
    if runner.lower() in known or f"{runner.lower()}runner" in known:
        return None
    if "." in runner:
        try:
            if importlib.util.find_spec(runner.rsplit(".", 1)[0]) is not None:
                return None
        except (ImportError, ValueError):
            pass
    names = sorted({*StandardOptions.KNOWN_RUNNER_NAMES, *RUNNER_ALIASES})
    close = difflib.get_close_matches(runner, names, n=1, cutoff=0.75)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown Beam runner '{runner}' ({hint}known: {', '.join(names)}, or a module.Class path)"


def beam_pipeline(beam_args: list[str] | None = None) -> beam.Pipeline:
    """The Beam pipeline ``beam_args`` describe; ``DirectRunner`` (the default) is :class:`LocalDirectRunner`."""
    problem = beam_args_problem(beam_args)
    if problem:
        raise ConfigError(f"beam_args: {problem}")
    options = pipeline_options([*(beam_args or []), *dask_partitioning(beam_args)])
    runner = LocalDirectRunner() if runner_name(beam_args) == "DirectRunner" else None
    return beam.Pipeline(runner=runner, options=options)


def dask_partitioning(beam_args: list[str] | None) -> list[str]:
    """``--dask_npartitions`` = 2 x the cluster's worker threads, unless a partitioning is given.

    Why: Beam's Dask ``Create`` packs 128 elements into one Dask partition by default, and every element here is
    already a coarse unit of work (a byte range, a shard, a time bucket): a component's few hundred elements would
    run on one or two workers. One partition an element is no better (each partition costs a bundle set-up and a
    wider shuffle: 2M samples took 20.5 s that way, 11.6 s with the default, 10.8 s with 2 per thread on 2
    threads). Without ``--dask_client_address`` Beam starts a local cluster: this machine's CPUs are counted."""
    args = list(beam_args or [])
    runner = pipeline_options(args).view_as(StandardOptions).runner or ""
    if not str(runner).endswith("DaskRunner") or any(
            a.startswith(("--dask_partition_size", "--dask_npartitions")) for a in args):
        return []
    address = next((a.split("=", 1)[1] for a in args if a.startswith("--dask_client_address=")), None)
    threads = os.cpu_count() or 1
    if address:
        from distributed import Client

        with Client(address, timeout=30, set_as_default=False) as client:
            threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
    return [f"--dask_npartitions={2 * threads}"]


def runner_name(beam_args: list[str] | None) -> str:
    """The runner's class name (``DirectRunner``, ``DaskRunner``, ``DataflowRunner`` ...; a runner object's class)."""
    runner = pipeline_options(beam_args).view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.rsplit(".", 1)[-1]


def runs_locally(beam_args: list[str] | None) -> bool:
    """True when the runner's workers are this machine's processes (they see the launcher's paths, FUSE too)."""
    return runner_name(beam_args) in LOCAL_RUNNERS


def is_dataflow(beam_args: list[str] | None) -> bool:
    """True for ``--runner=DataflowRunner`` (or ``dataflow``, any case)."""
    return runner_name(beam_args).lower().removesuffix("runner") == "dataflow"

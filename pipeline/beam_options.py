"""Launch conveniences that move the data components' Beam options from DirectRunner to Dataflow.

The data components take one ``beam_args`` list (``pipeline.beam_args`` in the config) and pass it to Beam
unchanged. Getting that list right for Dataflow is fiddly: workers need a project, a region and a ``gs://`` temp
location, and they must be able to ``import edgepipe``, either because the job stages the project as an sdist
(``--setup_file``, which Beam builds by running the project's ``setup.py``) or because the workers run a custom SDK
container (``--sdk_container_image``). :func:`dataflow_args` writes that list, :func:`merge_beam_args` lays it over
a config's list, and :func:`validate_beam_args` refuses an incomplete one before anything runs, instead of a
Dataflow job failing on its workers twenty minutes later.

These are the launchers' concerns (``edgepipe submit --dataflow``, ``compile``, the Dockerfile's source folder).
How a ``beam_args`` list is read (the runner, DirectRunner by default) is the data layer's,
:mod:`edgepipe.components.data.beam.options`, which this module uses: the data layer imports nothing from here.
"""
from __future__ import annotations

import os
from pathlib import Path

from edgepipe.components.data.beam.options import beam_args_problem, is_dataflow, pipeline_options
from edgepipe.pipeline.errors import ConfigError

# Where the Dockerfile keeps setup.py and the sources (owned by the image's user: building the sdist writes there).
IMAGE_SOURCE_DIR = "/opt/edgepipe"
SOURCE_DIR_ENV = "EDGEPIPE_SOURCE_DIR"


def project_setup_file() -> Path | None:
    """The project's setup.py: in the image (``$EDGEPIPE_SOURCE_DIR``) or beside an editable checkout."""
    import edgepipe

    candidates = [Path(os.environ[SOURCE_DIR_ENV]) / "setup.py"] if os.environ.get(SOURCE_DIR_ENV) else []
    candidates.append(Path(edgepipe.__file__).resolve().parents[1] / "setup.py")
    return next((path for path in candidates if path.is_file()), None)


def dataflow_args(project: str, region: str, temp_location: str, *, setup_file: str | None = None,
                  sdk_container_image: str | None = None, staging_location: str | None = None,
                  service_account: str | None = None, max_num_workers: int | None = None,
                  job_name: str | None = None) -> list[str]:
    """Beam arguments for a Dataflow job whose workers can import edgepipe.

    Without ``sdk_container_image``, ``setup_file`` defaults to this installation's setup.py (the image's
    ``/opt/edgepipe/setup.py`` inside the container).
    """
    if not sdk_container_image and not setup_file:
        found = project_setup_file()
        setup_file = str(found) if found else f"{IMAGE_SOURCE_DIR}/setup.py"
    args = ["--runner=DataflowRunner", f"--project={project}", f"--region={region}", f"--temp_location={temp_location}"]
    optional = {"staging_location": staging_location, "setup_file": setup_file, "job_name": job_name,
                "sdk_container_image": sdk_container_image, "service_account_email": service_account,
                "max_num_workers": max_num_workers}
    args += [f"--{flag}={value}" for flag, value in optional.items() if value]
    return args


def _flag(arg: str) -> str | None:
    return arg[2:].split("=", 1)[0] if arg.startswith("--") else None


def merge_beam_args(base: list[str], extra: list[str]) -> list[str]:
    """``base`` with every flag that ``extra`` sets replaced by ``extra``'s value (``--flag=v`` or ``--flag v``)."""
    overridden = {_flag(arg) for arg in extra if _flag(arg)}
    merged, skip_value = [], False
    for arg in base:
        if skip_value and _flag(arg) is None:
            skip_value = False
            continue
        skip_value = False
        flag = _flag(arg)
        if flag in overridden:
            skip_value = "=" not in arg
            continue
        merged.append(arg)
    return merged + list(extra)


def validate_beam_args(beam_args: list[str] | None, *, launched_here: bool = False) -> None:
    """Refuse an unknown runner or flag (``beam_args_problem``) and a Dataflow configuration that cannot work;
    ``launched_here``: also check a local setup_file exists."""
    problem = beam_args_problem(beam_args)
    if problem:
        raise ConfigError(f"config key 'pipeline.beam_args': {problem}")
    if not is_dataflow(beam_args):
        return
    from apache_beam.options.pipeline_options import GoogleCloudOptions, SetupOptions, WorkerOptions

    options = pipeline_options(beam_args)
    cloud, setup = options.view_as(GoogleCloudOptions), options.view_as(SetupOptions)
    image = options.view_as(WorkerOptions).sdk_container_image
    missing = [flag for flag, value in (("--project", cloud.project), ("--region", cloud.region),
                                        ("--temp_location", cloud.temp_location)) if not value]
    if missing:
        raise ConfigError(f"pipeline.beam_args: DataflowRunner needs {', '.join(missing)}")
    if not str(cloud.temp_location).startswith("gs://"):
        raise ConfigError(f"pipeline.beam_args: --temp_location must be a gs:// path for Dataflow "
                          f"(got {cloud.temp_location})")
    if not (setup.setup_file or image):
        raise ConfigError("pipeline.beam_args: Dataflow workers cannot import edgepipe; add --setup_file=<the "
                          f"project's setup.py> (in the image: {IMAGE_SOURCE_DIR}/setup.py) or --sdk_container_image")
    if launched_here and setup.setup_file and not Path(setup.setup_file).is_file():
        raise ConfigError(f"pipeline.beam_args: --setup_file {setup.setup_file} does not exist")

"""Beam options for Dataflow: assembled and parsed by Beam itself, refused when incomplete, package stageable."""
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import (DirectOptions, GoogleCloudOptions, SetupOptions, StandardOptions,
                                                  WorkerOptions)

from edgepipe.components.data.beam.options import pipeline_options
from edgepipe.pipeline import beam_options as bo
from edgepipe.pipeline.cli import main
from edgepipe.pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_dataflow_args_parse_into_beams_option_views():
    args = bo.dataflow_args("proj", "europe-west4", "gs://bucket/tmp", setup_file="/opt/edgepipe/setup.py",
                            max_num_workers=8, service_account="df@proj.iam.gserviceaccount.com")
    options = pipeline_options(args)
    cloud = options.view_as(GoogleCloudOptions)
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    assert (cloud.project, cloud.region, cloud.temp_location) == ("proj", "europe-west4", "gs://bucket/tmp")
    assert cloud.service_account_email == "df@proj.iam.gserviceaccount.com"
    assert options.view_as(SetupOptions).setup_file == "/opt/edgepipe/setup.py"
    assert options.view_as(WorkerOptions).max_num_workers == 8
    bo.validate_beam_args(args)


def test_custom_container_replaces_the_staged_package():
    args = bo.dataflow_args("proj", "us-central1", "gs://b/tmp", sdk_container_image="us-docker.pkg.dev/p/r/beam:1")
    options = pipeline_options(args)
    assert options.view_as(WorkerOptions).sdk_container_image == "us-docker.pkg.dev/p/r/beam:1"
    assert options.view_as(SetupOptions).setup_file is None


def test_default_setup_file_is_this_installations(monkeypatch, tmp_path):
    assert bo.project_setup_file() == REPO / "setup.py"  # editable checkout
    (tmp_path / "setup.py").write_text("")
    monkeypatch.setenv(bo.SOURCE_DIR_ENV, str(tmp_path))  # what the image sets
    assert bo.project_setup_file() == tmp_path / "setup.py"
    assert f"--setup_file={tmp_path / 'setup.py'}" in bo.dataflow_args("p", "r", "gs://b/t")


def test_merge_lets_the_conveniences_replace_flags_in_either_form():
    base = ["--runner=DirectRunner", "--direct_num_workers", "2", "--project", "old", "--save_main_session"]
    merged = bo.merge_beam_args(base, ["--runner=DataflowRunner", "--project=new"])
    assert merged == ["--direct_num_workers", "2", "--save_main_session", "--runner=DataflowRunner", "--project=new"]
    options = pipeline_options(merged)
    assert options.view_as(GoogleCloudOptions).project == "new"
    assert options.view_as(DirectOptions).direct_num_workers == 2


def test_the_direct_runner_needs_no_dataflow_options():
    bo.validate_beam_args(["--runner=DirectRunner"])
    bo.validate_beam_args([])


@pytest.mark.parametrize("args, message", [
    (["--runner=DataflowRunner", "--project=p", "--region=r"], "needs --temp_location"),
    (["--runner=dataflow", "--region=r", "--temp_location=gs://b/t", "--setup_file=s"], "needs --project"),
    (["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=/tmp/x", "--setup_file=s"],
     "must be a gs:// path"),
    (["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=gs://b/t"], "cannot import edgepipe"),
])
def test_incomplete_dataflow_options_are_refused(args, message):
    with pytest.raises(ConfigError, match=message):
        bo.validate_beam_args(args)


def test_missing_local_setup_file_is_refused_when_launching_here():
    args = bo.dataflow_args("p", "r", "gs://b/t", setup_file="/nonexistent/setup.py")
    bo.validate_beam_args(args)  # may exist in the image the job is launched from
    with pytest.raises(ConfigError, match="/nonexistent/setup.py does not exist"):
        bo.validate_beam_args(args, launched_here=True)


def test_compile_refuses_incomplete_dataflow_args(tmp_path, capsys):
    code = main(["compile", "--pipeline-factory", "tests.pipeline.kfp_fixtures:chain", "--output",
                 str(tmp_path / "p.yaml"), "--set", "pipeline.beam_args=[--runner=DataflowRunner]"])
    assert code == 2 and "DataflowRunner needs --project, --region, --temp_location" in capsys.readouterr().err


def test_the_staged_package_builds_and_installs_edgepipe_modules(tmp_path):
    """What Dataflow does with --setup_file: Beam builds an sdist, each worker pip-installs it."""
    from apache_beam.runners.portability.stager import Stager

    sdist = Path(Stager._build_setup_package(str(REPO / "setup.py"), str(tmp_path)))
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"setup.py", "pipeline/dag.py", "pipeline/remote.py", "components/data/ingest.py",
            "data/default/sensors.csv", "configs/default.yaml"} <= names
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(wheel_dir), str(sdist)], check=True, timeout=300)
    (wheel,) = wheel_dir.glob("edgepipe-*.whl")
    installed = set(zipfile.ZipFile(wheel).namelist())
    assert {"edgepipe/__init__.py", "edgepipe/pipeline/dag.py", "edgepipe/pipeline/remote.py",
            "edgepipe/components/data/ingest.py", "edgepipe/models/__init__.py", "edgepipe/data/default/sensors.csv",
            "edgepipe/configs/default.yaml"} <= installed
    assert not any(name.startswith(("pipeline/", "tests/")) for name in installed)  # mapped, nothing stray

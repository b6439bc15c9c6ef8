"""``edgepipe submit``: one clear line and exit 5 without the SDK or credentials, before anything is built."""
import sys
import types

import pytest
import yaml

from edgepipe.pipeline.cli import main

IMAGE = "europe-docker.pkg.dev/proj/repo/edgepipe:0.1.0"
# The exploding factory raises AssertionError if called: these paths must fail before building the pipeline.
NO_BUILD = ["--pipeline-factory", "tests.pipeline.kfp_fixtures:exploding"]
ARGS = ["submit", "--project", "proj", "--region", "europe-west4", "--pipeline-root", "gs://bucket/root",
        "--image", IMAGE]


class FakeAiplatform(types.ModuleType):
    """Records what submit asks of google.cloud.aiplatform."""

    def __init__(self, submit_error=None):
        super().__init__("google.cloud.aiplatform")
        self.calls, self.submit_error = {}, submit_error
        fake = self

        class PipelineJob:
            resource_name = "projects/proj/locations/europe-west4/pipelineJobs/edgepipe-chain-1"

            def __init__(self, **kwargs):
                fake.calls["job"] = kwargs
                fake.calls["template"] = yaml.safe_load(open(kwargs["template_path"]).read())

            def submit(self, **kwargs):
                fake.calls["submit"] = kwargs
                if fake.submit_error:
                    raise fake.submit_error

        self.PipelineJob = PipelineJob

    def init(self, **kwargs):
        self.calls["init"] = kwargs


@pytest.fixture
def fake_sdk(monkeypatch):
    def install(submit_error=None, credentials=True):
        sdk = FakeAiplatform(submit_error)
        monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", sdk)
        if credentials:
            import google.auth

            monkeypatch.setattr(google.auth, "default", lambda scopes=None: ("creds", "adc-project"))
        return sdk
    return install


def one_line(err):
    return err.count("\n") == 1 and "Traceback" not in err


def test_without_the_sdk_exit_5_and_nothing_is_built(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", None)  # import fails as if not installed
    assert main([*ARGS, *NO_BUILD]) == 5
    err = capsys.readouterr().err
    assert one_line(err) and "google-cloud-aiplatform" in err and "pip install 'edgepipe[cloud]'" in err


def test_without_credentials_exit_5_and_nothing_is_built(fake_sdk, monkeypatch, tmp_path, capsys):
    sdk = fake_sdk(credentials=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))  # real google.auth
    assert main([*ARGS, *NO_BUILD]) == 5
    err = capsys.readouterr().err
    assert one_line(err) and "no Google Cloud credentials" in err and "gcloud auth application-default login" in err
    assert sdk.calls == {}


@pytest.mark.parametrize("override, message", [
    (["--pipeline-root", "/tmp/root"], "--pipeline-root must be a gs:// path"),
    (["--image", "edgepipe:latest"], "is a local image name"),
])
def test_arguments_vertex_would_reject_exit_2_before_the_sdk_is_needed(monkeypatch, capsys, override, message):
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", None)
    assert main([*ARGS, *override, *NO_BUILD]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and message in err


def test_submit_compiles_and_creates_a_cached_pipeline_job(fake_sdk, tmp_path, capsys):
    sdk = fake_sdk()
    kept = tmp_path / "submitted.yaml"
    code = main([*ARGS, "--pipeline-factory", "tests.pipeline.kfp_fixtures:chain", "--service-account",
                 "runner@proj.iam.gserviceaccount.com", "--output", str(kept), "--set", "pipeline.name=chain"])
    assert code == 0
    job = sdk.calls["job"]
    assert job["pipeline_root"] == "gs://bucket/root" and job["enable_caching"] is True
    assert (job["project"], job["location"], job["display_name"]) == ("proj", "europe-west4", "edgepipe-chain")
    assert sdk.calls["submit"] == {"service_account": "runner@proj.iam.gserviceaccount.com"}
    template = sdk.calls["template"]
    assert template["defaultPipelineRoot"] == "gs://bucket/root"
    assert {e["container"]["image"] for e in template["deploymentSpec"]["executors"].values()} == {IMAGE}
    assert kept.exists()
    assert "pipelineJobs/edgepipe-chain-1" in capsys.readouterr().out


def test_dataflow_flag_sets_complete_dataflow_beam_args(fake_sdk, tmp_path):
    sdk = fake_sdk()
    assert main([*ARGS, "--pipeline-factory", "tests.pipeline.kfp_fixtures:chain", "--dataflow"]) == 0
    beam_args = sdk.calls["template"]["root"]["inputDefinitions"]["parameters"]["pipeline_beam_args"]["defaultValue"]
    assert "--runner=DirectRunner" not in beam_args
    assert {"--runner=DataflowRunner", "--project=proj", "--region=europe-west4",
            "--temp_location=gs://bucket/root/dataflow-tmp", "--setup_file=/opt/edgepipe/setup.py"} <= set(beam_args)


def test_service_errors_are_one_line_exit_5(fake_sdk, capsys):
    fake_sdk(submit_error=PermissionError("403 Permission 'aiplatform.pipelineJobs.create' denied\ndetails..."))
    assert main([*ARGS, "--pipeline-factory", "tests.pipeline.kfp_fixtures:chain"]) == 5
    err = capsys.readouterr().err
    assert one_line(err) and "Vertex AI refused the pipeline job: PermissionError: 403" in err

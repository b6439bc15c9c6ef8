"""How the data layer reads a ``beam_args`` list (moved from tests/pipeline/test_beam_options.py with the code):
the runner, where workers open paths, and that the data layer imports no launcher module."""
import ast
import os
from pathlib import Path

from apache_beam.options.pipeline_options import StandardOptions

from edgepipe.components.data.beam.files import to_beam_uri, worker_uri
from edgepipe.components.data.beam.options import is_dataflow, pipeline_options, runs_locally

DATA = Path(__file__).resolve().parents[3] / "components" / "data"
KERNEL = {"artifacts", "component", "contracts", "errors", "progress"}  # contracts: typed records, imports only errors


def test_pipeline_options_default_to_the_direct_runner():
    assert pipeline_options([]).view_as(StandardOptions).runner == "DirectRunner"
    assert pipeline_options(None).view_as(StandardOptions).runner == "DirectRunner"
    assert pipeline_options(["--runner=DaskRunner"]).view_as(StandardOptions).runner.endswith("dask_runner.DaskRunner")


def test_runner_kinds():
    assert runs_locally([]) and runs_locally(["--runner=DirectRunner"]) and runs_locally(["--runner=PrismRunner"])
    assert not runs_locally(["--runner=DataflowRunner"]) and not runs_locally(["--runner=DaskRunner"])
    assert is_dataflow(["--runner=DataflowRunner"]) and is_dataflow(["--runner=dataflow"])
    assert not is_dataflow([]) and not is_dataflow(["--runner=DaskRunner"])


def test_fuse_paths_map_to_gcs_uris():
    assert to_beam_uri("/gcs/bucket/root/x/Split-train/data") == "gs://bucket/root/x/Split-train/data"
    assert to_beam_uri("/tmp/x") == "/tmp/x"


def test_workers_of_a_non_local_runner_get_gcs_uris():
    assert worker_uri("/gcs/b/x", ["--runner=DataflowRunner"]) == "gs://b/x"
    assert worker_uri("/gcs/b/x", ["--runner=DirectRunner"]) == "/gcs/b/x"  # reads the FUSE mount itself


def test_the_data_layer_imports_only_the_pipeline_kernel():
    for path in DATA.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("edgepipe.pipeline."):
                    assert name.split(".")[2] in KERNEL, f"{path.relative_to(DATA)} imports {name}"


def test_the_direct_runner_never_tries_prism_nor_leaves_temp_folders(tmp_path, monkeypatch):
    """Beam's own DirectRunner first tries Prism, downloading its binary from GitHub, and leaves an empty
    ``beam-temp*`` folder per job when that fails; edgepipe's DirectRunner is the FnApiRunner it falls back to."""
    import tempfile

    import apache_beam as beam
    from apache_beam.runners.portability import prism_runner

    from edgepipe.components.data.beam.options import LocalDirectRunner, beam_pipeline

    def no_prism(*args, **kwargs):
        raise AssertionError("Prism was started")

    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", no_prism)
    monkeypatch.setattr(prism_runner.PrismJobServer, "start", no_prism)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for args in ([], ["--runner=DirectRunner"], ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]):
        pipeline = beam_pipeline(args)
        assert isinstance(pipeline.runner, LocalDirectRunner)
        out = tmp_path / f"out{len(args)}"
        with pipeline as p:
            (p | beam.Create(range(20)) | beam.Map(lambda x: x * x) | beam.combiners.ToList()
             | beam.Map(lambda xs, path=str(out): open(path, "w").write(str(sorted(xs)))))
        assert out.read_text() == str([x * x for x in range(20)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out0", "out1", "out2"]
    assert not isinstance(beam_pipeline(["--runner=PrismRunner"]).runner, LocalDirectRunner)


def test_a_job_abandoned_before_it_runs_leaves_no_temp_folder(tmp_path):
    import gc

    from edgepipe.components.data.beam.job import Job

    job = Job([], tmp_path / "reports")
    temp = job.pipeline.local_tempdir
    assert os.path.isdir(temp)
    del job
    gc.collect()
    assert not os.path.exists(temp)

"""Compiling to a Kubeflow Pipelines v2 spec, and executing that YAML for real with kfp.local."""
import json
import os
import time
import warnings
from pathlib import Path

import pytest
import yaml

from edgepipe.pipeline.cli import main
from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.errors import PipelineDefinitionError
from edgepipe.pipeline.kfp_compiler import compile_pipeline
from edgepipe.pipeline.remote import encode_spec, pipeline_shape, resolve_node_specs
from edgepipe.pipeline.runner import LocalRunner
from tests.pipeline import kfp_fixtures

REPO = Path(__file__).resolve().parents[2]
FACTORY = "tests.pipeline.kfp_fixtures:chain"
IMAGE = "europe-docker.pkg.dev/proj/repo/edgepipe:0.1.0"
NODE_TASKS = {"source", "increment", "increment-more", "maybe-add", "combine", "consume-model"}


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "chain.yaml"
    path.write_text("pipeline: {name: chain}\ntraining: {epochs: 3}\nwindow: {stride: 2, size: 16}\n")
    return path


@pytest.fixture
def compiled(config_file, tmp_path):
    target = tmp_path / "pipeline.yaml"
    assert main(["compile", str(config_file), "--pipeline-factory", FACTORY, "--image", IMAGE,
                 "--output", str(target)]) == 0
    return target


def spec_of(path):
    return yaml.safe_load(path.read_text())


def test_spec_has_a_cached_task_per_node_on_the_image_wired_like_the_dag(compiled):
    spec = spec_of(compiled)
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == NODE_TASKS | {"edgepipe-resolve"}
    assert {tasks[t]["taskInfo"]["name"] for t in NODE_TASKS} == {"source", "increment", "increment_more",
                                                                  "maybe_add", "combine", "consume_model"}
    assert all(tasks[t]["cachingOptions"] == {"enableCache": True} for t in NODE_TASKS)
    assert tasks["edgepipe-resolve"]["cachingOptions"] == {}  # re-resolved every run: reads the image's code
    executors = spec["deploymentSpec"]["executors"].values()
    assert {e["container"]["image"] for e in executors} == {IMAGE}
    assert all("edgepipe.pipeline.remote" in e["container"]["command"][-1] for e in executors)
    combine = tasks["combine"]["inputs"]
    assert combine["artifacts"]["left"]["taskOutputArtifact"] == {"outputArtifactKey": "out", "producerTask": "source"}
    assert combine["artifacts"]["right"]["taskOutputArtifact"]["producerTask"] == "maybe-add"
    assert set(tasks["maybe-add"]["inputs"]["artifacts"]) == {"base"}  # optional 'extra' unconnected: not an input
    assert combine["parameters"]["edgepipe_node_spec"]["taskOutputParameter"] == {
        "outputParameterKey": "spec_combine", "producerTask": "edgepipe-resolve"}
    assert spec["components"]["comp-combine"]["outputDefinitions"]["artifacts"]["model"]["artifactType"][
        "schemaTitle"] == "system.Model"


def test_config_values_are_typed_pipeline_inputs_with_the_config_as_defaults(compiled):
    inputs = spec_of(compiled)["root"]["inputDefinitions"]["parameters"]
    assert inputs["training_epochs"] == {"defaultValue": 3.0, "isOptional": True, "parameterType": "NUMBER_INTEGER"}
    assert inputs["data_source"]["defaultValue"] == "builtin:sensors"
    assert inputs["data_split"]["parameterType"] == "STRUCT"
    assert inputs["pipeline_beam_args"]["defaultValue"] == ["--runner=DirectRunner"]
    assert inputs["prune_enabled"]["parameterType"] == "BOOLEAN"
    assert "pipeline_root" not in inputs and "pipeline_max_workers" not in inputs
    assert "data_labels_json" not in inputs  # null in the config: KFP has no typed null


def _fingerprint(path):
    from edgepipe.pipeline.artifacts import Artifact

    return Artifact.open(path).content_fingerprint()


def test_kfp_local_executes_the_yaml_to_the_same_artifact_as_the_local_runner(compiled, config_file, tmp_path,
                                                                               monkeypatch, capsys):
    from kfp import components, local

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp-root"))
    pipeline = components.load_component_from_file(str(compiled))  # the YAML itself, not the Python objects
    timings = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "image has no 'python' in its name"
        started = time.perf_counter()
        default_run = pipeline()
        timings["defaults"] = time.perf_counter() - started
        started = time.perf_counter()
        changed_run = pipeline(training_epochs=10, window_stride=5)  # parameters set at run time, no recompile
        timings["changed"] = time.perf_counter() - started
    kfp_default = default_run.outputs["consume_model_out"].path
    kfp_changed = changed_run.outputs["consume_model_out"].path

    runner = LocalRunner(tmp_path / "local-root")
    local_default = runner.run(kfp_fixtures.chain(load_config(config_file))).artifact("consume_model", "out")
    changed_config = load_config(config_file, ["training.epochs=10", "window.stride=5"])
    local_changed = runner.run(kfp_fixtures.chain(changed_config)).artifact("consume_model", "out")

    assert json.loads((Path(kfp_default) / "seen.json").read_text()) == {"total": 3 + 3 + 2 + 16}
    assert _fingerprint(kfp_default) == local_default.content_fingerprint()
    assert json.loads((Path(kfp_changed) / "seen.json").read_text()) == {"total": 10 + 10 + 5 + 16}
    assert _fingerprint(kfp_changed) == local_changed.content_fingerprint()
    with capsys.disabled():
        print(f"\nkfp.local, 7 tasks: {timings['defaults']:.1f}s with defaults, {timings['changed']:.1f}s changed")


def test_resolve_gives_each_node_only_its_own_parameters(config_file):
    config = load_config(config_file)
    pipeline = kfp_fixtures.chain(config)
    base, shape = encode_spec(config.model_dump(mode="json")), encode_spec(pipeline_shape(pipeline))
    before = resolve_node_specs(FACTORY, base, {}, shape, {})
    after = resolve_node_specs(FACTORY, base, {"window.stride": 7}, shape, {})
    changed = sorted(node for node in before if before[node] != after[node])
    assert changed == ["increment"]  # so the orchestrator's cache re-runs increment and what its output feeds
    assert json.loads(after["increment"])["params"] == {"step": 7}


def test_resolve_refuses_a_run_parameter_that_changes_the_dag(config_file, tmp_path):
    config = load_config(config_file)
    base, shape = encode_spec(config.model_dump(mode="json")), encode_spec(pipeline_shape(kfp_fixtures.chain(config)))
    with pytest.raises(PipelineDefinitionError, match="increment_more.*recompile"):
        resolve_node_specs(FACTORY, base, {"prune.enabled": False}, shape, {"source": str(tmp_path / "spec")})
    assert not (tmp_path / "spec").exists()


@pytest.mark.parametrize("source, problem", [("{csv}", "the local path"), ("inputs/data.csv", "a relative path"),
                                             ("file://{csv}", "the local file URL")])
def test_local_file_parameter_is_refused_naming_node_and_parameter(config_file, tmp_path, capsys, source, problem):
    csv = tmp_path / "local.csv"
    csv.write_text("a,b\n1,2\n")
    target = tmp_path / "out.yaml"
    code = main(["compile", str(config_file), "--pipeline-factory", FACTORY, "--output", str(target),
                 "--set", f"data.source={source.format(csv=csv)}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "node 'source': parameter 'path' is " + problem in err
    assert "(e.g. --set data.source=gs://...)" in err  # the key the user sets, not the parameter's name
    assert not target.exists()


def test_local_path_hint_names_the_config_key_the_parameter_comes_from(tmp_path, capsys):
    """nab's labels file is relative in the shipped config: the hint names data.labels_json, not data.source."""
    target = tmp_path / "nab.yaml"
    assert main(["compile", "nab", "--target", "kfp", "--output", str(target), "--image", IMAGE]) == 2
    err = capsys.readouterr().err
    assert "parameter 'labels_json' is a relative path" in err
    assert err.rstrip().endswith("(e.g. --set data.labels_json=gs://...)")
    assert not target.exists()


@pytest.mark.parametrize("source", ["gs://bucket/data/*.csv", "builtin:sensors", "/gcs/bucket/data.csv"])
def test_cloud_and_packaged_sources_compile(config_file, tmp_path, source):
    target = tmp_path / "out.yaml"
    assert main(["compile", str(config_file), "--pipeline-factory", FACTORY, "--output", str(target),
                 "--set", f"data.source={source}"]) == 0
    params = spec_of(target)["root"]["inputDefinitions"]["parameters"]
    assert params["data_source"]["defaultValue"] == source


def test_component_a_task_cannot_import_is_refused(config_file, tmp_path):
    with pytest.raises(PipelineDefinitionError, match="node 'scratch'.*which a task container cannot import"):
        compile_pipeline(load_config(config_file), tmp_path / "x.yaml", factory="tests.pipeline.kfp_fixtures:closure")
    assert not (tmp_path / "x.yaml").exists()


def test_execute_node_runs_one_node_from_the_config(config_file, tmp_path, capsys):
    source_dir, increment_dir = tmp_path / "a", tmp_path / "b"
    common = [str(config_file), "--pipeline-factory", FACTORY]
    assert main(["execute-node", *common, "--node", "source", "--output", f"out={source_dir}"]) == 0
    config_json = json.dumps(load_config(config_file).model_dump(mode="json"))
    assert main(["execute-node", "--config-json", config_json, "--pipeline-factory", FACTORY, "--node", "increment",
                 "--input", f"examples={source_dir}", "--output", f"out={increment_dir}"]) == 0
    assert json.loads((increment_dir / "value.json").read_text())["value"] == 3 + 2
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["metrics"] == {"value": 5}


@pytest.mark.parametrize("args, message", [
    (["--node", "increment", "--output", "out={tmp}/b"], "inputs given [] but component 'increment' declares"),
    (["--node", "nope"], "no node 'nope' in pipeline 'chain' (nodes: source, increment"),
    (["--node", "source", "--output", "out"], "--output 'out': expected NAME=PATH"),
])
def test_execute_node_bad_arguments_exit_2_with_one_line(config_file, tmp_path, capsys, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["execute-node", str(config_file), "--pipeline-factory", FACTORY, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_execute_node_component_failure_names_the_node(config_file, tmp_path, capsys):
    missing = tmp_path / "missing.txt"
    assert main(["execute-node", str(config_file), "--pipeline-factory", FACTORY, "--set",
                 f"data.source={missing}", "--node", "source", "--output", f"out={tmp_path / 'a'}"]) == 1
    assert "component 'source' failed" in capsys.readouterr().err


def test_default_config_compiles_to_one_task_per_template_node(tmp_path):
    from edgepipe.pipeline.templates import build_pipeline

    config = load_config(None)
    compiled = compile_pipeline(config, tmp_path / "default.yaml", image=IMAGE)
    nodes = [node.name for node in build_pipeline(config).nodes]
    spec = spec_of(compiled.path)
    names = {t["taskInfo"]["name"] for t in spec["root"]["dag"]["tasks"].values()}
    assert names == set(nodes) | {"resolve parameters"}
    assert spec["root"]["inputDefinitions"]["parameters"]["data_source"]["defaultValue"] == "builtin:sensors"
    # outputs no node consumes are the pipeline's outputs: the bundle (ingest's rejects feed render_report)
    assert set(spec["root"]["outputDefinitions"]["artifacts"]) == {"export_bundle_bundle"}


@pytest.mark.slow
def test_kfp_local_runs_the_default_pipeline_to_a_bundle(tmp_path, capsys):
    """The whole default pipeline through kfp.local on a tiny config (50-80 s on 2 cores)."""
    from kfp import components, local

    config = load_config(None, ["window.size=16", "training.epochs=1", "prune.epochs=1", "qat.epochs=1"])
    compiled = compile_pipeline(config, tmp_path / "default.yaml")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp-root"))
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        run = components.load_component_from_file(str(compiled.path))()
    elapsed = time.perf_counter() - started
    bundle = Path(run.outputs["export_bundle_bundle"].path)
    assert json.loads((bundle / "_artifact.json").read_text())["type"] == "Bundle"
    assert (bundle / "bundle.json").is_file() and list(bundle.glob("*.tflite"))
    with capsys.disabled():
        print(f"\nkfp.local, default pipeline ({len(compiled.tasks) + 1} tasks): {elapsed:.0f}s")


@pytest.mark.parametrize("task, publishes", [({"type": "chief", "index": 0}, True),
                                             ({"type": "worker", "index": 0}, False),
                                             ({"type": "worker", "index": 1}, False)])
def test_only_the_chief_replica_of_a_multi_worker_job_publishes_outputs(config_file, tmp_path, monkeypatch, task,
                                                                        publishes):
    tf_config = {"cluster": {"chief": ["c:2222"], "worker": ["w0:2222", "w1:2222"]}, "task": task}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    target = tmp_path / "out"
    assert main(["execute-node", str(config_file), "--pipeline-factory", FACTORY, "--node", "source",
                 "--output", f"out={target}"]) == 0
    assert (target / "value.json").exists() is publishes


def test_default_template_keeps_a_bucket_source_as_a_url(tmp_path):
    from edgepipe.pipeline.templates import build_pipeline

    config = load_config(None, ["data.source=gs://bucket/sensors/*.csv"])
    compiled = compile_pipeline(config, tmp_path / "default.yaml", image=IMAGE)
    specs = resolve_node_specs("edgepipe.pipeline.templates:build_pipeline",
                               encode_spec(config.model_dump(mode="json")), {},
                               encode_spec(pipeline_shape(build_pipeline(config))), {})
    assert json.loads(specs["ingest_timeseries"])["params"]["source"] == "gs://bucket/sensors/*.csv"
    assert compiled.parameters["data_source"] == "gs://bucket/sensors/*.csv"


def test_bucket_paths_are_read_through_the_vertex_fuse_mount(config_file, tmp_path, monkeypatch):
    from edgepipe.pipeline import remote

    (tmp_path / "gcs" / "bucket").mkdir(parents=True)
    (tmp_path / "gcs" / "bucket" / "input.txt").write_text("from the bucket")
    monkeypatch.setattr(remote, "GCS_FUSE_ROOT", tmp_path / "gcs")
    assert main(["execute-node", str(config_file), "--pipeline-factory", FACTORY, "--set",
                 "data.source=gs://bucket/input.txt", "--node", "source", "--output", f"out={tmp_path / 'a'}"]) == 0
    assert json.loads((tmp_path / "a" / "value.json").read_text())["extra"] == "from the bucket"

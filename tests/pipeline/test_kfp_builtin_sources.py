"""Shipped configs fed ``builtin:<name>`` data compile for Kubeflow (docs/cloud.md: builtin: sources are resolved in
the container), write nothing into the cwd, and the ingest task generates the dataset where it runs."""
import json

import pytest

from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.kfp_compiler import compile_pipeline
from edgepipe.pipeline.remote import build_from_config, encode_spec, execute_spec, pipeline_shape, resolve_node_specs

FACTORY = "edgepipe.pipeline.templates:build_pipeline"


@pytest.mark.parametrize("name", ["cnn", "cgan", "dcgan", "mobilenet_v2", "rnn", "conv1d", "unet"])
def test_shipped_builtin_config_compiles_and_writes_nothing_into_the_cwd(name, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    config = load_config(name)
    assert config.data.source.startswith("builtin:")
    compiled = compile_pipeline(config, tmp_path / f"{name}.yaml", image="edgepipe:test")
    assert compiled.parameters["data_source"] == config.data.source
    assert list(work.iterdir()) == []


def test_the_ingest_task_generates_the_builtin_dataset_where_it_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "task-tmp"))
    (tmp_path / "task-tmp").mkdir()
    config = load_config("cnn")
    specs = resolve_node_specs(FACTORY, encode_spec(config.model_dump(mode="json")), {},
                               encode_spec(pipeline_shape(build_from_config(config, FACTORY, for_tasks=True))), {})
    ingest = json.loads(specs["ingest_npz"])
    assert ingest["params"]["source"] == "builtin:digits"
    artifacts, metrics = execute_spec(ingest, {}, {"examples": str(tmp_path / "ex")})
    assert (tmp_path / "task-tmp" / "edgepipe-datasets" / "digits.npz").is_file()
    assert artifacts["examples"].path.is_dir() and metrics
    assert list(tmp_path.glob(".edgepipe*")) == []  # nothing generated under the compiled pipeline.root

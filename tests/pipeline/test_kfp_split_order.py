"""The compiled spec's parameter path (YAML struct default, resolve task, sort_keys JSON spec) keeps a time split's
order: train is the earliest part of each series, as with ``edgepipe run``."""
import json

import numpy as np
import yaml

from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.kfp_compiler import compile_pipeline
from edgepipe.pipeline.remote import encode_spec, execute_spec, pipeline_shape, resolve_node_specs
from edgepipe.pipeline.templates import build_pipeline
from tests.components.data.conftest import series_rows

FACTORY = "edgepipe.pipeline.templates:build_pipeline"


def test_compiled_default_split_reaches_ingest_as_train_eval_test_in_time(tmp_path):
    config = load_config(None)
    compiled = compile_pipeline(config, tmp_path / "default.yaml", image="edgepipe:test")
    inputs = yaml.safe_load(compiled.path.read_text())["root"]["inputDefinitions"]["parameters"]
    split = inputs["data_split"]["defaultValue"]
    assert list(split) == ["eval", "test", "train"]  # what the orchestrator hands back: keys sorted
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(50) * np.timedelta64(10, "m")
    source = tmp_path / "s.csv"
    source.write_text("timestamp,machine,vibration,temperature,current,anomaly\n"
                      + "".join(f"{t},m,{i},1.0,2.0,0\n" for i, t in enumerate(stamps)))
    specs = resolve_node_specs(FACTORY, encode_spec(config.model_dump(mode="json")),
                               {"data.split": split, "data.source": str(source)},
                               encode_spec(pipeline_shape(build_pipeline(config))), {})
    spec = json.loads(specs["ingest_timeseries"])
    artifacts, _ = execute_spec(spec, {}, {"examples": str(tmp_path / "ex"), "rejects": str(tmp_path / "rej")})
    got = {s: series_rows(artifacts["examples"], s)["m"]["start"].tolist() for s in ("train", "eval", "test")}
    assert got == {"train": list(range(30)), "eval": list(range(30, 40)), "test": list(range(40, 50))}

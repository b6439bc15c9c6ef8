"""QA D1/D2/D3/D9: a refused key names its ``--set`` (else the file); the series template refuses the data
options it does not read; ``pipeline.plugins`` and a user pipeline's imports register families before the config
is validated; a refused ingest names where its full reject list was kept."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.templates import build_pipeline

PENGUINS = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "penguins" / "penguins_processed.csv"
FAMILY = "tiny_dense_qa_d2"
PLUGIN = f'''
from edgepipe.models.registry import register
from edgepipe.models.spec import DataSpec, compile_for_task, head, optimizer

@register("{FAMILY}", "one hidden Dense layer", tasks=("classification",))
def build(spec: DataSpec, units: int = 8, learning_rate: float = 0.01):
    import tf_keras as keras
    inputs = keras.Input(spec.input_shape)
    model = keras.Model(inputs, head(spec, keras.layers.Dense(units, activation="relu")(inputs)))
    compile_for_task(model, spec, optimizer("adam", learning_rate, "{FAMILY}"))
    return model
'''


# ---- D3: the series template reads a CSV series, and only the data keys it names ----------------------------------
@pytest.mark.parametrize("fmt", ["images", "tfrecord", "npz", "tfds", "segmentation"])
def test_series_template_refuses_a_format_of_another_source(fmt):
    with pytest.raises(ConfigError) as caught:
        build_pipeline(load_config("default", [f"data.format={fmt}"]))
    assert str(caught.value).startswith(f"--set data.format={fmt}: config key 'data.format' is '{fmt}': "
                                        "template 'anomaly_detection' reads a CSV series")
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("setting, key", [("data.image={size: [8, 8], channels: 1}", "data.image"),
                                          ("data.tfds={data_dir: /tmp}", "data.tfds"),
                                          ("data.class_names=[a, b]", "data.class_names")])
def test_series_template_refuses_data_options_only_other_sources_read(setting, key):
    with pytest.raises(ConfigError, match=rf"^--set {setting.split('=')[0]}=.*: config key '{key}' is not used by "
                                          "template 'anomaly_detection'"):
        build_pipeline(load_config("default", [setting]))


def test_series_template_takes_csv_and_its_own_data_keys():
    build_pipeline(load_config("default", ["data.format=csv", "data.gaps=interpolate", "data.chunk_size=512"]))


# ---- D1: where a refused key came from -----------------------------------------------------------------------------
def test_a_data_option_the_csv_source_does_not_read_names_its_set():
    with pytest.raises(ConfigError) as caught:
        build_pipeline(load_config("mlp", ["data.image={size: [8, 8], channels: 1}"]))
    assert str(caught.value).startswith("--set data.image={size: [8, 8], channels: 1}: config key 'data.image': "
                                        "not read by the csv source")


def test_a_split_without_the_evaluated_one_names_the_set_that_changed_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {split: {train: 0.6, eval: 0.2, test: 0.2}}\n")
    with pytest.raises(ConfigError) as caught:
        build_pipeline(load_config(path, ["data.split={train: 0.8, other: 0.2}"]))
    assert str(caught.value).startswith("--set data.split={train: 0.8, other: 0.2}: config key 'data.split' is ")
    path.write_text("data: {split: {train: 0.8, other: 0.2}}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: config key 'data.split' is "):
        build_pipeline(load_config(path))


def test_keys_from_two_places_name_both():
    with pytest.raises(ConfigError) as caught:
        build_pipeline(load_config("default", ["training.patience=3", "model.hparams={units: 3}"]))
    assert str(caught.value).startswith("--set model.hparams={units: 3}, --set training.patience=3: config keys "
                                        "'model.hparams', 'training.patience' are not used")


# ---- D2: a family of the user's is a valid model.family from the command line --------------------------------------
@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A project folder (the cwd) with the family's module, a config using it and a pipeline importing it; the
    family is unregistered afterwards so other tests see the built-in registry."""
    from edgepipe.models import registry

    (tmp_path / "qa_d2_family.py").write_text(PLUGIN)
    (tmp_path / "qa_d2_pipeline.py").write_text("import qa_d2_family  # noqa: F401\n"
                                                "from edgepipe.pipeline.templates import build_pipeline\n\n"
                                                "def create_pipeline(config):\n    return build_pipeline(config)\n")
    (tmp_path / "cfg.yaml").write_text(f"pipeline: {{name: tiny, template: supervised, root: {tmp_path / 'root'}}}\n"
                                       f"data: {{source: {PENGUINS}, label_column: species}}\n"
                                       f"model: {{family: {FAMILY}}}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    registry._REGISTRY.pop(FAMILY, None)
    for name in ("qa_d2_family", "qa_d2_pipeline"):
        sys.modules.pop(name, None)


def test_without_the_plugin_the_family_is_unknown(plugin_dir):
    with pytest.raises(ConfigError, match=rf"cfg.yaml: config key 'model.family': must be one of .*'{FAMILY}'"):
        load_config("cfg.yaml")


@pytest.mark.parametrize("where", ["yaml", "set"])
def test_pipeline_plugins_registers_the_family_before_validation(plugin_dir, where):
    if where == "yaml":
        text = (plugin_dir / "cfg.yaml").read_text()
        (plugin_dir / "cfg.yaml").write_text(text.replace("template: supervised", "template: supervised, "
                                                                                  "plugins: [qa_d2_family]"))
    config = load_config("cfg.yaml", ["pipeline.plugins=[qa_d2_family]"] if where == "set" else [])
    assert config.model.family == FAMILY
    assert any(node.name == "train_model" for node in build_pipeline(config).nodes)


def test_an_unimportable_plugin_is_exit_2_naming_it(plugin_dir):
    with pytest.raises(ConfigError) as caught:
        load_config("cfg.yaml", ["pipeline.plugins=[qa_d2_famly]"])
    assert str(caught.value).startswith("--set pipeline.plugins=[qa_d2_famly]: config key 'pipeline.plugins': "
                                        "cannot import 'qa_d2_famly'")
    assert caught.value.exit_code == 2
    (plugin_dir / "broken.py").write_text("x = 1\nraise RuntimeError('half done')\n")
    with pytest.raises(ConfigError, match=r"importing 'broken' failed at .*broken.py:2: RuntimeError: half done"):
        load_config("cfg.yaml", ["pipeline.plugins=[broken]"])


def test_cli_imports_the_users_pipeline_before_reading_the_config(plugin_dir, monkeypatch):
    from edgepipe.pipeline import cli

    built = {}

    def run_pipeline(args, config, pipeline, root, log_file):  # stop before anything runs
        built["nodes"] = [node.name for node in pipeline.nodes]
        return 0

    monkeypatch.setattr(cli, "_run_pipeline", run_pipeline)
    assert cli.main(["run", "qa_d2_pipeline.py", "cfg.yaml", "--output", str(plugin_dir / "out")]) == 0
    assert "train_model" in built["nodes"]


# ---- D9: a refused ingest names its full reject list, where the runner kept it -------------------------------------
def test_too_many_rejects_name_the_kept_list(tmp_path):
    from edgepipe.components.data import ingest_timeseries
    from edgepipe.pipeline.dag import Pipeline
    from edgepipe.pipeline.runner import LocalRunner

    rows = ["timestamp,machine,x"] + [f"2024-01-01T00:{i // 60:02d}:{i % 60:02d},m,{i}" for i in range(100)]
    rows[5] = "not-a-time,m,1"
    rows[9] = "also-not,m,2"
    source = tmp_path / "s.csv"
    source.write_text("\n".join(rows) + "\n")
    runner = LocalRunner(tmp_path / "root")
    result = runner.run(Pipeline("p", [ingest_timeseries(source=str(source), series_column="machine",
                                                         max_reject_fraction=0.01)]))
    message = str(result.error)
    assert "2 of 100 rows rejected" in message and result.error.exit_code == 3
    listing = Path(message.rsplit("all rejects: ", 1)[1])
    assert listing.parents[2] == tmp_path / "root" / "failed" / "ingest_timeseries"
    assert len(listing.read_text().splitlines()) == 2


def test_compile_imports_the_users_pipeline_before_reading_the_config(plugin_dir):
    import argparse

    from edgepipe.pipeline.cli_cloud import _load

    args = argparse.Namespace(config="qa_d2_pipeline.py", pipeline_config="cfg.yaml", overrides=[],
                              pipeline_factory=None)
    config, factory = _load(args)
    assert (config.model.family, factory) == (FAMILY, "qa_d2_pipeline:create_pipeline")

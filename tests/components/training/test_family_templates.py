"""Every family config builds a valid pipeline through its template; mismatches are one-line ConfigErrors."""
from pathlib import Path

import pytest

import edgepipe  # noqa: F401
from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.templates import build_pipeline

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
# The supervised families share the anomaly template's variant stage (default config: every variant).
VARIANT_STAGE = ["prune_model", "quantize_model", "cluster_model", "pqat_model", "convert_tflite"]
# Every Examples pipeline infers a schema on train and validates the other splits; a table (CSV) is transformed.
SCHEMA = ["compute_statistics", "infer_schema", "validate_examples"]
EXPECTED = {
    "mlp": ["ingest_csv", *SCHEMA, "transform_features", "train_model", *VARIANT_STAGE, "evaluate", "render_report", "export_bundle"],
    "cnn": ["ingest_npz", *SCHEMA, "train_model", *VARIANT_STAGE, "evaluate", "render_report", "export_bundle"],
    "rnn": ["ingest_npz", *SCHEMA, "train_model", "evaluate", "render_report", "export_bundle"],
    "conv1d": ["ingest_npz", *SCHEMA, "train_model", *VARIANT_STAGE, "evaluate", "render_report", "export_bundle"],
    "unet": ["ingest_npz", *SCHEMA, "train_model", *VARIANT_STAGE, "evaluate", "render_report", "export_bundle"],
    "mobilenet_v2": ["ingest_npz", *SCHEMA, "train_model", *VARIANT_STAGE, "evaluate", "render_report", "export_bundle"],
    # generators and Q-networks: float32 / int8 PTQ / int8 QAT (distilled), verified per variant, gated at export;
    # a GAN's samples are judged by a classifier trained on the same images (train_judge)
    "dcgan": ["ingest_npz", *SCHEMA, "train_gan", "train_judge", "convert_tflite", "evaluate", "render_report", "export_bundle"],
    "cgan": ["ingest_npz", *SCHEMA, "train_gan", "train_judge", "convert_tflite", "evaluate", "render_report", "export_bundle"],
    "dqn": ["train_dqn", "convert_tflite", "evaluate", "render_report", "export_bundle"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_family_config_builds_a_valid_pipeline(name, tmp_path):
    cfg = load_config(CONFIGS / f"{name}.yaml", [f"pipeline.root={tmp_path}"])
    assert cfg.model.family == name
    pipeline = build_pipeline(cfg)
    names = [n.name for n in pipeline.nodes]
    assert sorted(names) == sorted(EXPECTED[name])  # a topological order: side branches may interleave
    if "transform_features" in names:  # a table is validated, then transformed, before anything trains
        assert names.index("validate_examples") < names.index("transform_features") < names.index("train_model")
    train = next(n for n in pipeline.nodes if n.component.name.startswith("train_"))
    if name != "dqn":
        assert train.params["checkpoint_root"] == str(tmp_path.resolve() / "checkpoints")
        assert "checkpoint_root" in train.component.execution_params


def test_gan_judge_is_configurable_and_optional(tmp_path):
    cfg = load_config(CONFIGS / "cgan.yaml", [f"pipeline.root={tmp_path}", "evaluate.classifier.epochs=3"])
    judge = build_pipeline(cfg).node("train_judge")
    assert judge.params["family"] == "cnn" and judge.params["epochs"] == 3 and judge.params["task"] == "classification"
    off = build_pipeline(load_config(CONFIGS / "cgan.yaml", [f"pipeline.root={tmp_path}", "evaluate.classifier=null"]))
    assert "train_judge" not in [n.name for n in off.nodes]
    assert "classifier" not in off.node("evaluate").inputs


def test_autoencoder_config_uses_the_anomaly_pipeline(tmp_path):
    cfg = load_config(CONFIGS / "autoencoder.yaml", [f"pipeline.root={tmp_path}"])
    assert cfg.pipeline.template == "anomaly_detection" and cfg.model.family == "autoencoder"


@pytest.mark.parametrize("override,what", [
    ("model.hparams={filters: abc}", "hyperparameter 'filters'"),
    ("model.hparams={nope: 1}", "no hyperparameter 'nope'"),
    ("model.family=dqn", "template 'supervised' trains"),
    ("data.source=builtin:nothing", "unknown built-in dataset 'nothing'"),
])
def test_bad_family_settings_fail_when_the_pipeline_is_built(override, what, tmp_path):
    with pytest.raises(ConfigError, match=what) as info:  # at the latest: dqn's evaluate keys are refused at load
        build_pipeline(load_config(CONFIGS / "cnn.yaml", [f"pipeline.root={tmp_path}", override]))
    assert "\n" not in str(info.value)


def test_unknown_family_is_a_config_error_at_load(tmp_path):
    with pytest.raises(ConfigError, match="model.family"):
        load_config(CONFIGS / "cnn.yaml", ["model.family=transformer"])


def test_transform_keys_are_refused_where_no_table_is_transformed(tmp_path):
    with pytest.raises(ConfigError, match=r"'transform.numeric': the transform applies to tables .* ingest_npz"):
        build_pipeline(load_config(CONFIGS / "cnn.yaml", [f"pipeline.root={tmp_path}", "transform.numeric=minmax"]))
    mlp = build_pipeline(load_config(CONFIGS / "mlp.yaml", [f"pipeline.root={tmp_path}", "transform.numeric=minmax"]))
    assert mlp.node("transform_features").params["numeric"] == "minmax"


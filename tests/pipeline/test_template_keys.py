"""Issue 12, items 5 and 7: what the config alone decides is refused when the pipeline is built (exit 2).

Each stage of the one builder declares the config keys it reads and the evaluation the splits it needs
(``pipeline/templates/``); a key given explicitly in the YAML or by ``--set`` that no active stage of the chosen
template reads is an error naming the key and the template, never silently ignored.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from edgepipe.pipeline.config import explicit_keys, load_config, resolve_config_path, validate
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.templates import build_pipeline, plan_stages, resolve
from edgepipe.pipeline.templates.plan import check_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def check(config) -> None:
    plan = resolve(config)
    _, keys, splits = plan_stages(plan)
    check_config(config, plan, keys, splits(config) if splits else None)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_loads_and_uses_only_its_templates_keys(path):
    config = load_config(path)
    check(config)
    check(validate(config.model_dump(mode="json"), dumped=True))  # as compiled pipelines and --config-json send it


def test_explicit_keys_are_what_the_yaml_and_set_gave(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("window: {size: 16}\ntraining: {epochs: 3}\n")
    config = load_config(path, ["training.seed=0", "model.kernel_size=5"])
    assert explicit_keys(config) == ["model.kernel_size", "training.epochs", "training.seed", "window.size"]
    config.pipeline.root = str(tmp_path)  # --root
    assert "pipeline.root" in explicit_keys(config)


@pytest.mark.parametrize("config, overrides, message", [
    ("default", ["model.family=cnn"], "config key 'model.family': template 'anomaly_detection' trains autoencoder, "
                                      "not 'cnn'"),
    ("default", ["training.patience=5"], "config key 'training.patience' is not used by template "
                                         "'anomaly_detection'"),  # the default value, but given: still refused
    ("default", ["model.hparams={units: 3}", "training.patience=3"],  # (evaluate keys: the config refuses them)
     "config keys 'model.hparams', 'training.patience' are not used by template 'anomaly_detection'"),
    ("cnn", ["window.size=64"], "config key 'window.size' is not used by template 'supervised'"),
    ("dqn", ["data.source=x.csv"], "config key 'data.source' is not used by template 'reinforcement'"),
    ("dcgan", ["prune.target_sparsity=0.8"], "config key 'prune.target_sparsity' is not used by template 'gan'"),
    ("dcgan", ["training.patience=0"], "config key 'training.patience' is not used by template 'gan'"),
    ("default", ["data.split={train: 1.0}"], "template 'anomaly_detection' evaluates (and gates the export) on "
                                             "split 'eval' or 'test'"),
    ("mlp", ["data.split={train: 0.8, eval: 0.2}"], "template 'supervised' evaluates (and gates the export) on "
                                                    "split 'test'"),
])
def test_keys_the_template_would_ignore_are_refused(config, overrides, message):
    with pytest.raises(ConfigError) as caught:
        build_pipeline(load_config(config, overrides))
    assert message in str(caught.value)
    # names the --set each key came from (QA D1), not the file the user never edited; model.family=cnn trips over
    # the file's anomaly evaluate keys first, which the file gave
    given = (f"{resolve_config_path(config)}" if overrides == ["model.family=cnn"]
             else ", ".join(f"--set {o}" for o in overrides))
    assert str(caught.value).startswith(f"{given}: ")


def test_a_key_in_the_yaml_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training: {patience: 3}\n")
    with pytest.raises(ConfigError) as caught:
        build_pipeline(load_config(path, ["training.epochs=2"]))
    assert str(caught.value).startswith(f"{path}: config key 'training.patience' is not used by template ")


def test_a_split_without_eval_passes_when_test_is_there():
    check(load_config(None, ["data.split={train: 0.8, test: 0.2}"]))
    check(load_config("mlp", ["data.split={train: 0.8, test: 0.2}"]))


def test_dumped_config_counts_only_values_that_differ_from_defaults():
    """A compiled pipeline's parameters hold every key; a changed unused one is still refused."""
    raw = load_config(None).model_dump(mode="json")
    check(validate(raw, dumped=True))
    raw["training"]["patience"] = 9
    with pytest.raises(ConfigError, match="'training.patience' is not used"):
        check(validate(raw, source="pipeline parameters", dumped=True))


def test_duplicate_yaml_keys_are_refused_with_file_line_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  epochs: 2\nwindow: {size: 16}\ntraining:\n  seed: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path} line 4: duplicate key 'training' (first given on line 1)"

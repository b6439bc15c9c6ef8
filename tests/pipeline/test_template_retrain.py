"""The retrain stage checks the baseline bundle when the pipeline is built (QA 23: F5, N10, F7): what its
``bundle.json`` says that the config contradicts (another task, window size, channels, table columns, image shape)
is refused with exit 2 before anything trains, in one line naming the key, where it was given and the bundle.
Building only: nothing runs here (runs with real bundles: tests/test_retrain_end_to_end.py). The bundle.json files
are the fields the check reads, as the exporter writes them (an anomaly bundle of configs/nab.yaml, a penguins table
bundle, a 32x32 RGB image bundle)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.templates import build_pipeline

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
NAB = str(CONFIGS / "nab.yaml")
ANOMALY = {"schema_version": 1, "task": "anomaly_detection", "family": "autoencoder",
           "input": {"dtype": "int8", "shape": [None, 96, 1]},
           "normalization": {"method": "zscore", "channels": ["value"], "center": [41.7], "scale": [27.9]},
           "window": {"channel_names": ["value"], "channels": 1, "size": 96, "stride": 4}}
TABLE = {"schema_version": 1, "task": "classification", "family": "mlp", "input": {"shape": [None, 4]},
         "preprocessing": {"kind": "table", "transform": "none",
                           "features": ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]}}
IMAGE = {"schema_version": 1, "task": "classification", "family": "cnn", "input": {"shape": [None, 32, 32, 3]},
         "preprocessing": {"kind": "image", "transform": "none",
                           "image": {"height": 32, "width": 32, "channels": 3, "resize": "bilinear"}}}


def bundle(tmp_path: Path, doc: dict, name: str = "baseline") -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "bundle.json").write_text(json.dumps(doc))
    return path


def build(tmp_path: Path, config: str, *overrides: str):
    return build_pipeline(load_config(config, [f"pipeline.root={tmp_path / 'root'}", *overrides]))


def refused(tmp_path: Path, config: str, *overrides: str) -> str:
    with pytest.raises(ConfigError) as err:
        build(tmp_path, config, *overrides)
    return str(err.value)


def test_a_comparable_baseline_is_blessed_against(tmp_path):
    path = bundle(tmp_path, ANOMALY)
    pipeline = build(tmp_path, NAB, f"retrain.baseline={path}")
    bless = next(n for n in pipeline.nodes if n.component.name == "bless_model")
    assert bless.params["baseline"] == str(path.resolve())


def test_a_bundle_of_another_task_is_refused_naming_both_tasks(tmp_path):  # F5
    path = bundle(tmp_path, TABLE)
    line = refused(tmp_path, NAB, f"retrain.baseline={path}")
    assert line == (f"--set retrain.baseline={path}: config key 'retrain.baseline': the baseline bundle's task is "
                    "classification (mlp), this pipeline's is anomaly_detection (task anomaly): not comparable "
                    f"(baseline bundle {path.resolve()})")
    # the reverse: an anomaly bundle for the digits cnn
    line = refused(tmp_path, "cnn", f"retrain.baseline={bundle(tmp_path, ANOMALY, 'series')}")
    assert "the baseline bundle's task is anomaly_detection (autoencoder), this pipeline's is classification" in line


def test_another_window_size_is_refused_naming_the_set_that_gave_it(tmp_path):  # N10
    path = bundle(tmp_path, ANOMALY)
    line = refused(tmp_path, NAB, "window.size=48", f"retrain.baseline={path}")
    assert line.startswith("--set window.size=48: config key 'window.size': 48 differs from the baseline bundle's "
                           "96: the models cannot be compared on the same windows (baseline bundle ")


def test_a_mismatch_from_the_yaml_names_the_baseline_set(tmp_path):
    """window.size comes from nab.yaml (96); the baseline, given by --set, is a 48 window bundle."""
    path = bundle(tmp_path, {**ANOMALY, "window": {**ANOMALY["window"], "size": 48}})
    line = refused(tmp_path, NAB, f"retrain.baseline={path}")
    assert line.startswith(f"--set retrain.baseline={path}: config key 'window.size': 96 differs from the baseline "
                           "bundle's 48")


def test_channels_the_baseline_reads_must_be_among_the_named_ones(tmp_path):  # N10
    path = bundle(tmp_path, ANOMALY)
    line = refused(tmp_path, NAB, "data.feature_columns=[temperature]", f"retrain.baseline={path}")
    assert line.startswith("--set data.feature_columns=[temperature]: config key 'data.feature_columns': "
                           "['temperature'] lacks channel 'value' that the baseline bundle reads")
    build(tmp_path, NAB, "data.feature_columns=[value, temperature]", f"retrain.baseline={path}")  # a superset: fine


def test_table_columns_must_be_the_baselines_in_order(tmp_path):
    path = bundle(tmp_path, TABLE)
    columns = list(TABLE["preprocessing"]["features"])
    swapped = [columns[1], columns[0], *columns[2:]]
    line = refused(tmp_path, "mlp", f"data.feature_columns=[{', '.join(swapped)}]", f"retrain.baseline={path}")
    assert "config key 'data.feature_columns'" in line and "are not the columns the baseline bundle reads" in line
    build(tmp_path, "mlp", f"data.feature_columns=[{', '.join(columns)}]", f"retrain.baseline={path}")


def test_an_image_folder_must_make_the_baselines_image_shape(tmp_path):
    (tmp_path / "images" / "a").mkdir(parents=True)
    (tmp_path / "images" / "b").mkdir(parents=True)
    path = bundle(tmp_path, IMAGE)
    source = f"data.source={tmp_path / 'images'}"
    build(tmp_path, "cnn", source, f"retrain.baseline={path}")  # the default 32x32 RGB
    line = refused(tmp_path, "cnn", source, "data.image.size=[8, 8]", "data.image.channels=1",
                   f"retrain.baseline={path}")
    assert ("config key 'data.image': 8x8x1 images, but the baseline bundle's model takes 32x32x3 images: not "
            "comparable on the same inputs") in line


def test_a_baseline_set_that_is_not_a_bundle_names_the_set(tmp_path):  # F7
    line = refused(tmp_path, NAB, f"retrain.baseline={tmp_path}")
    assert line.startswith(f"--set retrain.baseline={tmp_path}: config key 'retrain.baseline': '{tmp_path}' is not")
    yaml = tmp_path / "nab.yaml"
    yaml.write_text(Path(NAB).read_text() + f"retrain: {{baseline: {tmp_path}}}\n")
    assert refused(tmp_path, str(yaml)).startswith(f"{yaml}: config key 'retrain.baseline'")

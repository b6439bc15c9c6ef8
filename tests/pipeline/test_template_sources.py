"""Issue 15 (sources): ``data.source`` (and ``data.format`` where the name does not tell) reaches every ingest from
the config alone, each given the ``data`` options it takes; an option set for a source that does not read it is
refused when the pipeline is built (exit 2), never silently dropped. Building only: nothing runs here (the runs are
in tests/test_sources_end_to_end.py)."""
from __future__ import annotations

import pytest

from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.templates import build_pipeline


def ingest(tmp_path, config: str, *overrides: str):
    cfg = load_config(config, [f"pipeline.root={tmp_path / 'root'}", *overrides])
    node = build_pipeline(cfg).nodes[0]
    assert node.component.name.startswith("ingest_")
    return node.component.name, node.params


@pytest.fixture
def folders(tmp_path):
    for sub in ("images/a", "images/b", "seg/images", "seg/masks"):
        (tmp_path / sub).mkdir(parents=True)
    (tmp_path / "shard.tfrecord-00000-of-00002").write_bytes(b"")
    (tmp_path / "t.csv").write_text("a,species\n1,0\n")
    (tmp_path / "cnn.yaml").write_text("pipeline: {template: supervised}\nmodel: {family: cnn}\n")  # no data.split
    return tmp_path


def test_an_image_folder_gets_the_image_options(folders):
    name, params = ingest(folders, "cnn", f"data.source={folders / 'images'}", "data.image.size=[8, 8]",
                          "data.image.channels=1", "data.max_reject_fraction=0.2")
    assert name == "ingest_images"
    assert (params["source"], params["image_size"], params["channels"], params["max_reject_fraction"]) == (
        str(folders / "images"), [8, 8], 1, 0.2)
    assert params["split"] == {"train": 0.7, "eval": 0.1, "test": 0.2}  # cnn.yaml's


def test_a_folder_of_images_and_masks_is_a_segmentation_source(folders):
    name, params = ingest(folders, "unet", f"data.source={folders / 'seg'}")
    assert name == "ingest_segmentation" and "image_size" not in params  # unset: the component's default


def test_tfrecord_shards_by_format_with_their_label_column(folders):
    name, params = ingest(folders, "mlp", f"data.source={folders / 'shard.tfrecord-00000-of-00002'}",
                          "data.format=tfrecord")
    assert name == "ingest_tfrecord" and params["label_column"] == "species"  # mlp.yaml's


def test_tfds_gets_its_splits_and_data_dir(folders):
    splits = "{train: 'train[:50%]', eval: 'train[50%:]', test: test}"
    name, params = ingest(folders, "cnn", "data.source=tfds:mnist:3.0.1", f"data.tfds.splits={splits}",
                          f"data.tfds.data_dir={folders}")
    assert name == "ingest_tfds" and params["name"] == "tfds:mnist:3.0.1"
    assert params["splits"] == {"train": "train[:50%]", "eval": "train[50%:]", "test": "test"}
    assert params["data_dir"] == str(folders) and params["split"] == {"train": 0.7, "eval": 0.1, "test": 0.2}
    _, params = ingest(folders, str(folders / "cnn.yaml"), "data.source=tfds:mnist")
    assert "splits" not in params and "data_dir" not in params  # the component's defaults


@pytest.mark.parametrize("config, overrides, refused", [
    ("mlp", ["data.source={}/t.csv", "data.image.channels=1"], "key 'data.image': not read by the csv source"),
    ("cnn", ["data.source=builtin:digits", "data.label_column=y"], "key 'data.label_column': not read by the npz"),
    ("cnn", ["data.source={}/images", "data.tfds.data_dir=/x", "data.label_column=y"],
     "keys 'data.label_column', 'data.tfds': not read by the images source"),
])
def test_an_option_of_another_source_is_refused(folders, config, overrides, refused):
    with pytest.raises(ConfigError, match=f"config {refused}"):
        ingest(folders, config, *(o.format(folders) for o in overrides))


def test_bad_format_and_tfds_splits_fail_validation(tmp_path):
    with pytest.raises(ConfigError, match=r"config key 'data.format': must be one of 'csv', "):
        load_config("cnn", ["data.format=parquet"])
    with pytest.raises(ConfigError, match=r"config key 'data.tfds.splits': must map a 'train' split"):
        load_config("cnn", ["data.tfds.splits={test: test}"])
    with pytest.raises(ConfigError, match=r"unknown config key 'data.image.width' \(allowed: size, channels\)"):
        load_config("cnn", ["data.image.width=3"])

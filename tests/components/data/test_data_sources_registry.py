"""The ingest source registry: one module a source, and "which ingest reads this path?" answered from it."""
import pytest

import edgepipe.components.data as data
from edgepipe.components.data.sources import SOURCES, describe, ingest_for
from edgepipe.pipeline.errors import ConfigError


def test_every_source_is_registered_once_and_exported():
    assert sorted(SOURCES) == ["csv", "images", "npz", "segmentation", "tfds", "tfrecord"]
    for src in SOURCES.values():
        assert getattr(data, src.component.name) is src.component
        assert src.component.fn.__module__.endswith(f".sources.{src.component.name}")  # one module a source
        assert src.param in src.component.params


@pytest.mark.parametrize("path, name", [
    ("data/t.csv", "csv"), ("gs://b/in/*.csv", "csv"), ("x/T.CSV.gz", "csv"), ("d.npz", "npz"),
    ("r/*.tfrecord", "tfrecord"), ("r/part-0.tfrecords.gz", "tfrecord"), ("tfds:mnist", "tfds"),
])
def test_ingest_for_a_path(path, name):
    assert ingest_for(path).name == name


def test_a_folder_is_an_image_source(tmp_path):
    src = ingest_for(tmp_path)
    assert src.name == "images" and src.arguments(tmp_path) == {"source": str(tmp_path)}
    assert ingest_for("tfds:mnist").arguments("tfds:mnist") == {"name": "tfds:mnist"}


def test_an_unknown_source_is_refused_with_the_derived_list(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(ConfigError, match=r"data.source.*no ingest reads '.*x.parquet'") as err:
        ingest_for(tmp_path / "x.parquet")
    for expected in (".csv", ".npz", ".tfrecord", "tfds:<name>", "a folder (images)", "a folder (segmentation)"):
        assert expected in str(err.value) and expected in describe()
    assert "data.format: csv, " in str(err.value)


def test_a_missing_path_says_so_rather_than_listing_suffixes(tmp_path):
    with pytest.raises(ConfigError, match=r"config key 'data.source': '.*my_images' does not exist"):
        ingest_for(tmp_path / "my_images")
    assert ingest_for(str(tmp_path / "missing" / "*.csv")).name == "csv"  # a glob is resolved by the ingest


def test_data_format_names_the_source_where_the_name_does_not_tell(tmp_path):
    shard = tmp_path / "train.tfrecord-00000-of-00001"
    shard.write_bytes(b"")
    assert ingest_for(shard, format="tfrecord").name == "tfrecord"
    assert ingest_for(tmp_path, format="segmentation").name == "segmentation"  # even without the layout
    with pytest.raises(ConfigError, match=r"config key 'data.format': unknown source 'parquet' \(allowed: csv, "):
        ingest_for(shard, format="parquet")

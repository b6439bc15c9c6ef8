"""ingest_tfds (components/data/sources/ingest_tfds.py): contract, splits, rejects."""
import pytest

from edgepipe.components.data import ingest_tfds
from edgepipe.pipeline.errors import DataError


def test_tfds_through_the_real_loader_with_mock_data(tmp_path, run):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        metrics, out = run(ingest_tfds, tmp_path / "o", name="tfds:mnist",
                           splits={"train": "train[:80%]", "eval": "train[80%:]", "test": "test"})
    ex = out["examples"]
    assert ex.properties["feature_spec"] == {"x": {"dtype": "float32", "shape": [28, 28, 1]},
                                            "label": {"dtype": "int64", "shape": []}}
    assert ex.properties["class_names"] == [str(i) for i in range(10)]
    assert metrics == {"examples_train": 12, "examples_eval": 12, "examples_test": 12}
    data = ex.read_numpy("train")
    assert data["x"].shape == (12, 28, 28, 1) and 0 <= data["x"].min() and data["x"].max() <= 1.0


def test_split_fractions_cut_every_tfds_split_at_the_same_percents(tmp_path, run):
    import tensorflow_datasets as tfds

    from edgepipe.components.data.sources.ingest_tfds import fraction_splits
    from edgepipe.pipeline.errors import ConfigError

    assert fraction_splits({"train": 0.7, "eval": 0.1, "test": 0.2}, ["test", "train"]) == {
        "train": "test[0%:70%]+train[0%:70%]", "eval": "test[70%:80%]+train[70%:80%]",
        "test": "test[80%:100%]+train[80%:100%]"}
    with pytest.raises(ConfigError, match="whole percents"):
        fraction_splits({"train": 0.875, "test": 0.125}, ["train"])
    with tfds.testing.mock_data(num_examples=10):  # the mock knows no splits (one 'train') and ignores slices
        _, out = run(ingest_tfds, tmp_path / "o", name="tfds:mnist:3.0.1", split={"train": 0.5, "test": 0.5})
    ex = out["examples"]
    assert ex.properties["tfds_splits"] == {"train": "train[0%:50%]", "test": "train[50%:100%]"}
    assert ex.splits == ["train", "test"] and ex.properties["source"] == "tfds:mnist:3.0.1"


def test_a_prepared_dataset_in_data_dir_is_read_and_split_by_fractions(tmp_path, run):
    """No mock: TFDS's own test builder (``DummyMnist``, 20 train + 20 test records generated locally) prepared in
    ``data_dir``, then read by name from there; the fractions cut both TFDS splits, so the counts are exact."""
    import tensorflow_datasets as tfds

    tfds.testing.DummyMnist(data_dir=str(tmp_path / "tfds")).download_and_prepare()
    metrics, out = run(ingest_tfds, tmp_path / "o", name="tfds:dummy_mnist:3.0.1", data_dir=str(tmp_path / "tfds"),
                       split={"train": 0.5, "eval": 0.25, "test": 0.25})
    assert metrics == {"examples_train": 20, "examples_eval": 10, "examples_test": 10}
    ex = out["examples"]
    assert ex.properties["tfds_splits"]["eval"] == "test[50%:75%]+train[50%:75%]"
    data = ex.read_numpy("test")
    assert data["x"].shape == (10, 28, 28, 1) and set(data["label"].tolist()) <= set(range(10))
    with pytest.raises(DataError, match="TFDS dataset 'no_such_dataset' is not available"):
        run(ingest_tfds, tmp_path / "o2", name="tfds:no_such_dataset", data_dir=str(tmp_path / "tfds"))

"""ingest_tfds (components/data/sources/ingest_tfds.py): contract, splits, rejects."""
from edgepipe.components.data import ingest_tfds


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

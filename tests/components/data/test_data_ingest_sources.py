"""ingest_tfrecord, ingest_npz, ingest_images, ingest_tfds: contract, splits, rejects."""
import json

import numpy as np
import pytest

from edgepipe.components.data import ingest_images, ingest_npz, ingest_tfds, ingest_tfrecord
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.components.data.beam.example_encode import encode_batch
from edgepipe.pipeline.errors import DataError


def _all(examples):
    return [ex for split in examples.splits for ex in iter_examples(examples, split)]


def _write_tf_records(path, records, compression):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path), options=tf.io.TFRecordOptions(compression_type=compression)) as writer:
        for record in records:
            writer.write(record)


@pytest.mark.parametrize("compression", ["GZIP", ""])
def test_tfrecord_infers_spec_keeps_records_and_rejects_nonconforming(tmp_path, run, compression):
    n = 50
    good = encode_batch({"f": np.arange(n * 2, dtype=np.float32).reshape(n, 2), "k": np.arange(n),
                         "s": np.array([f"r{i}" for i in range(n)], dtype=object)}, framed=False)
    odd = encode_batch({"f": np.zeros((1, 3), np.float32), "k": np.zeros(1, int), "s": np.array(["x"], object)},
                       framed=False)
    _write_tf_records(tmp_path / "a.tfrecord", good + odd + [b"\xff\x00garbage"], compression)
    metrics, out = run(ingest_tfrecord, tmp_path / "o", source=str(tmp_path / "*.tfrecord"),
                       split={"train": 0.7, "eval": 0.3}, max_reject_fraction=0.1)
    ex = out["examples"]
    assert ex.properties["feature_spec"] == {"f": {"dtype": "float32", "shape": [2]},
                                            "k": {"dtype": "int64", "shape": []},
                                            "s": {"dtype": "string", "shape": []}}
    rows = _all(ex)
    assert sorted(int(r["k"][0]) for r in rows) == list(range(n))
    records = [json.loads(x) for x in out["rejects"].file("rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in records] == [(51, "feature 'f' has 3 values, expected 2"),
                                                           (52, "not a tf.train.Example")]
    assert metrics["records_read"] == 52 and metrics["examples_train"] + metrics["examples_eval"] == n
    assert next(iter(ex.dataset("train", batch_size=8)))["f"].shape == (8, 2)


def test_npz_rows_read_in_ranges_with_shape_and_labels(tmp_path, run):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(103, 4, 3)).astype(np.float32)
    y = rng.integers(0, 5, 103)
    x[7, 0, 0] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=y, class_names=np.array(list("abcde")))
    metrics, out = run(ingest_npz, tmp_path / "o", source=str(tmp_path / "d.npz"), rows_per_task=10)
    ex = out["examples"]
    assert ex.properties["feature_spec"] == {"x": {"dtype": "float32", "shape": [4, 3]},
                                            "label": {"dtype": "int64", "shape": []}}
    assert ex.properties["class_names"] == list("abcde") and ex.properties["kind"] == "arrays"
    assert metrics["rows_read"] == 103 and metrics["rows_dropped"] == 1
    got = {s: ex.read_numpy(s) for s in ex.splits}
    xs = np.concatenate([g["x"] for g in got.values()])
    ys = np.concatenate([g["label"] for g in got.values()])
    keep = np.delete(np.arange(103), 7)
    order = np.lexsort(xs.reshape(len(xs), -1).T[::-1])
    want = np.lexsort(x[keep].reshape(len(keep), -1).T[::-1])
    np.testing.assert_array_equal(xs[order], x[keep][want])
    np.testing.assert_array_equal(ys[order], y[keep][want])
    with pytest.raises(DataError, match="no array 'nope'"):
        run(ingest_npz, tmp_path / "o2", source=str(tmp_path / "d.npz"), x_key="nope")


def test_npz_per_example_target_keeps_its_shape(tmp_path, run):
    """A segmentation mask [n, h, w] is a label of shape [h, w]: declared so, and parsed back whole (the spec once
    said [], and training the unet on it failed with 'Values size: 1024 but output shape: []')."""
    rng = np.random.default_rng(1)
    x = rng.random((30, 6, 5, 1)).astype(np.float32)
    mask = rng.integers(0, 3, (30, 6, 5))
    np.savez(tmp_path / "seg.npz", x=x, mask=mask)
    _, out = run(ingest_npz, tmp_path / "o", source=str(tmp_path / "seg.npz"), y_key="mask", rows_per_task=7)
    ex = out["examples"]
    assert ex.properties["feature_spec"]["label"] == {"dtype": "int64", "shape": [6, 5]}
    got = {s: ex.read_numpy(s) for s in ex.splits}
    xs = np.concatenate([g["x"] for g in got.values()])
    masks = np.concatenate([g["label"] for g in got.values()])
    assert masks.shape == (30, 6, 5)
    order = [int(np.flatnonzero((x == row).all(axis=(1, 2, 3)))[0]) for row in xs]
    np.testing.assert_array_equal(masks, mask[order])
    batch = next(iter(ex.dataset("train", batch_size=4)))
    assert tuple(batch["label"].shape) == (4, 6, 5)


def test_images_decode_resize_scale_and_reject_a_corrupt_file(tmp_path, run):
    from PIL import Image

    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for label, fmt in (("cat", "png"), ("dog", "jpeg")):
        (root / label).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.{fmt}")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    metrics, out = run(ingest_images, tmp_path / "o", source=str(root), image_size=[8, 10], channels=3,
                       max_reject_fraction=0.2)
    ex = out["examples"]
    assert ex.properties["class_names"] == ["cat", "dog"]
    assert ex.properties["feature_spec"]["x"] == {"dtype": "float32", "shape": [8, 10, 3]}
    assert metrics["images"] == 13 and metrics["images_rejected"] == 1
    records = [json.loads(x) for x in out["rejects"].file("rejects.jsonl").read_text().splitlines()]
    assert records[0]["file"].endswith("broken.png") and records[0]["reason"].startswith("cannot decode image")
    rows = _all(ex)
    assert len(rows) == 12 and sorted(int(r["label"][0]) for r in rows) == [0] * 6 + [1] * 6
    x = np.stack([r["x"] for r in rows])
    assert x.shape == (12, 240) and 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
    with pytest.raises(DataError, match="no images"):
        (tmp_path / "empty" / "a").mkdir(parents=True)
        run(ingest_images, tmp_path / "o3", source=str(tmp_path / "empty"))


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

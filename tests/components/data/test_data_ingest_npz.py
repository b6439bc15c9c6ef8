"""ingest_npz (components/data/sources/ingest_npz.py): contract, splits, rejects."""
import numpy as np
import pytest

from edgepipe.components.data import ingest_npz
from edgepipe.pipeline.errors import DataError


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


def test_a_target_of_another_length_is_counted_in_examples(tmp_path, run):
    """QA 23 N7: "'y' has (9,) rows, 'x' has 10" printed a tuple and called examples rows."""
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 2), np.float32), y=np.zeros(9, np.int64))
    with pytest.raises(DataError, match=r"d\.npz': 'y' has 9 examples, 'x' has 10$"):
        run(ingest_npz, tmp_path / "o", source=str(tmp_path / "d.npz"))

"""ingest_images (components/data/sources/ingest_images.py): contract, splits, rejects."""
import json

import numpy as np
import pytest

from edgepipe.components.data import ingest_images
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.pipeline.errors import DataError


def _all(examples):
    return [ex for split in examples.splits for ex in iter_examples(examples, split)]


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


def test_hidden_folders_are_not_classes(tmp_path, run):
    from PIL import Image

    root = tmp_path / "imgs"
    for label in ("a", "b", ".ipynb_checkpoints"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((4, 4), 40 * i, np.uint8), "L").save(root / label / f"{i}.png")
    metrics, out = run(ingest_images, tmp_path / "o", source=str(root), image_size=[4, 4], channels=1,
                       split={"train": 1.0})
    assert out["examples"].properties["class_names"] == ["a", "b"] and metrics["images"] == 6


def test_rejected_images_are_counted_as_images_and_named_without_a_line(tmp_path, run):
    """QA 23 N7: '1 of 61 rows rejected ... bad.png:0: cannot decode image' -- images are not rows, a file no line."""
    from PIL import Image

    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((4, 4), 40 * i, np.uint8), "L").save(root / "a" / f"{i}.png")
    (root / "a" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"^1 of 5 images rejected \(20.00% > max_reject_fraction 1.00%\); first: "
                                        r"\S+/a/bad\.png: cannot decode image") as err:
        run(ingest_images, tmp_path / "o", source=str(root), image_size=[4, 4], channels=1)
    assert "bad.png:0" not in str(err.value)
    _, out = run(ingest_images, tmp_path / "o2", source=str(root), image_size=[4, 4], channels=1,
                 max_reject_fraction=0.5)
    assert {k: out["rejects"].properties[k] for k in ("count", "rows_read", "unit")} == {
        "count": 1, "rows_read": 5, "unit": "images"}

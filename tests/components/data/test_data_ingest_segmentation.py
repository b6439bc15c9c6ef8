"""ingest_segmentation (components/data/sources/ingest_segmentation.py): pairs by name, masks stay class indices,
unpaired and colour masks are rejects, and the folder layout is what routes a folder to it."""
import json

import numpy as np
import pytest

from edgepipe.components.data import ingest_segmentation
from edgepipe.components.data.beam.example_decode import iter_examples
from edgepipe.components.data.sources import ingest_for
from edgepipe.pipeline.errors import DataError


def _folder(root, n=8, size=(16, 12)):
    """n images with a filled rectangle whose mask is class (i % 3) + 1 on a 0 background (distinct for n <= 12)."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    h, w = size
    masks = {}
    for i in range(n):
        mask = np.zeros((h, w), np.uint8)
        mask[1 + i % 4:9 + i % 4, 3:9] = i % 3 + 1
        pixels = np.stack([mask * 60] * 3, axis=-1).astype(np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"{i:02d}.{'jpg' if i == 0 else 'png'}")
        if i == 1:  # a palette mask: its values are the palette indices
            image = Image.fromarray(mask, "P")
            image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
            image.save(root / "masks" / f"{i:02d}.png")
        else:
            Image.fromarray(mask, "L").save(root / "masks" / f"{i:02d}.png")
        masks[f"{i:02d}"] = mask
    return masks


def test_pairs_by_name_keeps_class_indices_and_rejects_unpaired_and_colour_masks(tmp_path, run):
    from PIL import Image

    root = tmp_path / "seg"
    masks = _folder(root)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "images" / "lonely.png")  # no mask
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "masks" / "orphan.png")  # no image
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "images" / "colour.png")
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(root / "masks" / "colour.png")  # RGB: not indices
    metrics, out = run(ingest_segmentation, tmp_path / "o", source=str(root), image_size=[16, 12], channels=1,
                       split={"train": 0.5, "eval": 0.5}, max_reject_fraction=0.5)
    ex = out["examples"]
    assert ex.properties["feature_spec"] == {"x": {"dtype": "float32", "shape": [16, 12, 1]},
                                            "label": {"dtype": "int64", "shape": [16, 12]}}
    assert ex.properties["num_classes"] == 4
    assert metrics["pairs"] == 9 and metrics["files_rejected"] == 3
    assert metrics["examples_train"] + metrics["examples_eval"] == 8
    reasons = {json.loads(line)["file"].rsplit("/", 2)[-2] + "/" + json.loads(line)["file"].rsplit("/", 1)[-1]:
               json.loads(line)["reason"] for line in out["rejects"].file("rejects.jsonl").read_text().splitlines()}
    assert reasons["images/lonely.png"] == "no mask named 'lonely.*' in masks/"
    assert reasons["masks/orphan.png"] == "no image named 'orphan.*' in images/"
    assert reasons["masks/colour.png"].startswith("cannot decode mask: ValueError: mask mode RGB")
    seen = []
    for split in ex.splits:
        for row in iter_examples(ex, split):
            mask = row["label"].reshape(16, 12)
            x = row["x"].reshape(16, 12)
            match = [name for name, m in masks.items() if np.array_equal(m, mask)]
            assert len(match) == 1, "a mask changed on the way (values or position)"
            seen += match
            error = np.abs(x - mask * 60 / 255.0)  # the image paired with it (00 is a jpg: lossy)
            assert (error.mean() < 0.03) if match[0] == "00" else (error.max() < 1e-6)
    assert sorted(set(seen)) == sorted(masks) and len(seen) == 8


def test_masks_resize_nearest_so_no_new_class_appears(tmp_path, run):
    _folder(tmp_path / "seg", n=4)
    _, out = run(ingest_segmentation, tmp_path / "o", source=str(tmp_path / "seg"), image_size=[7, 5],
                 split={"train": 1.0})
    values = np.concatenate([r["label"] for r in iter_examples(out["examples"], "train")])
    assert set(np.unique(values).tolist()) <= {0, 1, 2, 3} and len(np.unique(values)) > 1
    assert out["examples"].properties["feature_spec"]["x"]["shape"] == [7, 5, 3]


def test_the_layout_routes_a_folder_and_a_folder_without_pairs_is_refused(tmp_path, run):
    _folder(tmp_path / "seg", n=2)
    (tmp_path / "seg" / ".thumbnails").mkdir()  # hidden: not part of the layout
    assert ingest_for(tmp_path / "seg").name == "segmentation"
    (tmp_path / "seg" / "extra").mkdir()  # a third sub-folder: classes of an image folder, not this layout
    assert ingest_for(tmp_path / "seg").name == "images"
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    with pytest.raises(DataError, match="no image in images/ has a mask of the same name"):
        run(ingest_segmentation, tmp_path / "o", source=str(empty))

"""Issue 15 (sources), end to end through ``edgepipe run``: each kind of ``data.source`` a user has, on small data
written here, to a bundle: an image folder -> cnn and -> mobilenet_v2 (int8, ``edgepipe predict`` on a PNG), a
segmentation folder -> unet, a TFRecord of tf.train.Example -> mlp, and a TFDS dataset (``tfds.testing.mock_data``,
the real tfds loader with generated records) -> cnn.

Each run is 2 epochs with the variants cut to float32 and int8 PTQ (the optimizations have their own tests); the
checks are on what the source decides: the ingest chosen, the input shape and preprocessing in bundle.json, and the
runtime giving a PNG the same prediction as the image the ingest decoded for training.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgepipe.data import synthetic

REPO = Path(__file__).resolve().parents[1]
FAST = ["training.epochs=2", "training.patience=0", "prune.enabled=false", "qat.enabled=false",
        "cluster.enabled=false", "convert.variants=[float32, int8_ptq]", "convert.representative_samples=50",
        "evaluate.latency_runs=5"]
TFDS_RUN = ("import sys, tensorflow_datasets as tfds\nfrom edgepipe.pipeline.cli import main\n"
            "with tfds.testing.mock_data(num_examples=64):\n    sys.exit(main(sys.argv[1:]))\n")


def edgepipe(*args: str, prefix: tuple[str, ...] = ("-m", "edgepipe")) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *prefix, *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def run(tmp_path: Path, config: str, *overrides: str, tfds_mock: bool = False) -> tuple[Path, dict]:
    args = ["run", config, "--root", str(tmp_path / "root"), "--output", str(tmp_path / "bundle")]
    for override in [*FAST, *overrides]:
        args += ["--set", override]
    done = edgepipe(*args, prefix=("-c", TFDS_RUN) if tfds_mock else ("-m", "edgepipe"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return tmp_path / "bundle", json.loads((tmp_path / "bundle" / "bundle.json").read_text())


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    """my_images/<digit>/<n>.png: 30 of scikit-learn's 8x8 digits per class, 8-bit grey PNGs."""
    from PIL import Image

    root = tmp_path_factory.mktemp("sources") / "my_images"
    data = synthetic.digits()
    for label in range(10):
        (root / str(label)).mkdir(parents=True)
        for i in np.flatnonzero(data["y"] == label)[:30]:
            Image.fromarray((data["x"][i, ..., 0] * 255).round().astype(np.uint8), "L").save(root / str(label) /
                                                                                             f"{i:04d}.png")
    return root


def predict_png(bundle: Path, png: Path) -> dict:
    done = edgepipe("predict", str(bundle), str(png))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[0])


def same_as_ingest(bundle: Path, png: Path, size: list[int], channels: int) -> None:
    """The runtime's answer for the PNG file is the model's answer for the array the ingest decoded for training."""
    from edgepipe.components.data.sources.ingest_images import read_image
    from edgepipe.runtime import Bundle

    from_file = predict_png(bundle, png)
    from_ingest = Bundle.load(bundle).predict(read_image(str(png), size, channels)[None])
    probabilities = np.asarray(getattr(from_ingest, "probabilities", None) if not isinstance(from_ingest, dict)
                               else from_ingest["probabilities"]).reshape(-1)
    assert np.allclose(from_file["probabilities"], probabilities, atol=1e-6)
    assert from_file["label"] == bundle_labels(bundle)[int(np.argmax(from_file["probabilities"]))]


def bundle_labels(bundle: Path) -> list[str]:
    return json.loads((bundle / "bundle.json").read_text())["labels"]


def test_an_image_folder_trains_a_cnn_to_an_int8_bundle_that_predicts_a_png(digits_folder, tmp_path):
    bundle, meta = run(tmp_path, "cnn", f"data.source={digits_folder}", "data.image.size=[16, 16]",
                       "data.image.channels=1")
    assert meta["primary_variant"] == "int8_ptq" and meta["input"]["dtype"] == "int8"
    assert meta["input"]["shape"] == [None, 16, 16, 1] and meta["labels"] == [str(i) for i in range(10)]
    assert meta["preprocessing"]["image"] | {"height": 16, "width": 16, "channels": 1} == \
        meta["preprocessing"]["image"]
    same_as_ingest(bundle, next((digits_folder / "7").glob("*.png")), [16, 16], 1)


def test_an_image_folder_trains_mobilenet_v2_to_an_int8_bundle_that_predicts_a_png(digits_folder, tmp_path):
    bundle, meta = run(tmp_path, "mobilenet_v2", f"data.source={digits_folder}", "training.batch_size=64")
    assert meta["primary_variant"] == "int8_ptq" and meta["family"] == "mobilenet_v2"
    assert meta["input"]["shape"] == [None, 32, 32, 3]  # data.image's default: RGB 32x32
    same_as_ingest(bundle, next((digits_folder / "3").glob("*.png")), [32, 32], 3)


def test_a_segmentation_folder_trains_a_unet(tmp_path):
    from PIL import Image

    shapes = synthetic.shapes(n=96, size=32)
    root = tmp_path / "seg"
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(len(shapes["x"])):
        Image.fromarray((shapes["x"][i, ..., 0] * 255).round().astype(np.uint8), "L").save(root / "images" /
                                                                                            f"s{i:03d}.png")
        Image.fromarray(shapes["mask"][i].astype(np.uint8), "L").save(root / "masks" / f"s{i:03d}.png")
    bundle, meta = run(tmp_path, "unet", f"data.source={root}", "data.image.channels=1")
    assert meta["task"] == "segmentation" and meta["input"]["shape"] == [None, 32, 32, 1]
    assert meta["labels"] == ["0", "1", "2", "3"]  # background + the three shapes, counted from the masks
    out = predict_png(bundle, root / "images" / "s000.png")
    mask = np.asarray(out["mask"])
    assert mask.shape == (32, 32) and set(np.unique(mask).tolist()) <= {0, 1, 2, 3}


def test_a_tfrecord_of_examples_trains_an_mlp(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    names = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]  # mlp.yaml's columns
    path = tmp_path / "penguins.tfrecord.gz"
    with tf.io.TFRecordWriter(str(path), tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for i in range(300):
            species = i % 3
            values = rng.normal(species, 0.3, size=4)
            feature = {n: tf.train.Feature(float_list=tf.train.FloatList(value=[v])) for n, v in zip(names, values)}
            feature["species"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[species]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    bundle, meta = run(tmp_path, "mlp", f"data.source={path}", "training.epochs=30")
    assert meta["input"]["shape"] == [None, 4] and meta["task"] == "classification"
    assert meta["metrics"]["evaluation"]["accuracy"] > 0.8  # 3 well-separated classes: the label arrived


def test_a_tfds_dataset_trains_a_cnn(tmp_path):
    splits = "{train: 'train', eval: 'test', test: 'test'}"
    # The mock's images and labels are random: no agreement or metric bound means anything, so none is asked.
    bundle, meta = run(tmp_path, "cnn", "data.source=tfds:mnist:3.0.1", f"data.tfds.splits={splits}",
                       "export.min_agreement=0", "export.max_metric_drop=null", tfds_mock=True)
    assert meta["input"]["shape"] == [None, 28, 28, 1] and meta["labels"] == [str(i) for i in range(10)]
    assert meta["primary_variant"] == "int8_ptq"
    assert meta["preprocessing"]["image"]["scale"] == pytest.approx(1 / 255)  # TFDS's uint8 pixels, as ingested

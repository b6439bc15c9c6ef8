"""Image folders ``root/<label>/*.png|jpg|jpeg`` -> ``x`` [H, W, C] in 0..1 and a class ``label`` (``ingest_images``).

Why a module of its own: one source a module, registered with :func:`.registry.source` for a folder. Batches of
image files are decoded (Pillow) and written by one worker each; undecodable files become rejects.
"""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam.files import open_input
from edgepipe.components.data.beam.job import Job, count, reject
from edgepipe.components.data.ingest import record_rejects, refuse_builtin
from edgepipe.components.data.sources.registry import source
from edgepipe.components.data.sources.shared import DEFAULT_SPLIT, finish, write_batch
from edgepipe.components.data.splits import SplitSpec, hash_values, parse_split
from edgepipe.pipeline.artifacts import Examples, Rejects
from edgepipe.pipeline.component import InputPath, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_image(path: str, size: tuple[int, int] | list[int], channels: int) -> np.ndarray:
    """An image file -> float32 [H, W, channels] in 0..1 (converted to L/RGB/RGBA, resized bilinear)."""
    from PIL import Image

    h, w = size
    with open_input(path) as handle, Image.open(handle) as image:
        image = image.convert("RGB" if channels == 3 else ("RGBA" if channels == 4 else "L"))
        image = image.resize((w, h), Image.BILINEAR)
        return (np.asarray(image, np.float32) / 255.0).reshape(h, w, channels)


def decode_problem(what: str, err: Exception) -> str:
    """A reject reason for a file PIL could not read: the exception's kind and first line."""
    detail = str(err).splitlines()[0] if str(err) else ""
    return f"cannot decode {what}: {type(err).__name__}" + (f": {detail}" if detail else "")


class DecodeImages(beam.DoFn):
    def __init__(self, examples: str, spec: SplitSpec, root: str, size: tuple[int, int], channels: int,
                 classes: list[str]):
        self.examples, self.spec, self.root, self.size = examples, spec, root, size
        self.channels, self.classes = channels, classes

    def process(self, batch):
        index, paths = batch
        xs, labels, names = [], [], []
        for path in paths:
            try:
                array = read_image(path, self.size, self.channels)
            except Exception as err:  # PIL raises many kinds for a bad file
                yield reject(path, 0, decode_problem("image", err))
                continue
            xs.append(array)
            rel = path[len(self.root):].lstrip("/")  # <label>/<file>, as the launcher listed it
            labels.append(self.classes.index(rel.split("/", 1)[0]))
            names.append(rel)
        yield count("images_read", len(paths))
        if xs:
            hashes = hash_values(np.array(names, dtype=object))
            yield from write_batch(self.examples, self.spec, {"x": np.stack(xs), "label": np.array(labels, np.int64)},
                                   hashes, "img", index)


@source("images", folder=True)
@component(version="2")  # 2: the channel count is property image_channels (channels names a series' columns)
def ingest_images(examples: Output[Examples], rejects: Output[Rejects], source: InputPath,
                  image_size: list[int] = [32, 32], channels: int = 3, split: dict | None = None,
                  max_reject_fraction: float = 0.01, batch_size: int = 256,
                  beam_args: list[str] | None = None) -> dict:
    """An image folder ``root/<label>/*.png|jpg|jpeg`` -> ``x`` float32 [H, W, C] in 0..1 and ``label`` int64 (class
    = index of the sorted sub-folder names, hidden ones skipped, in ``class_names``); undecodable images -> rejects."""
    refuse_builtin(source, "ingest_images", "an image folder")
    root = Path(str(source))
    if not root.is_dir():
        raise DataError(f"image folder not found: {source}")
    if channels not in (1, 3, 4) or len(image_size) != 2 or min(image_size) < 1:
        raise ConfigError(f"ingest_images: need channels 1, 3 or 4 and image_size [H, W], got {channels}, "
                          f"{image_size}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))  # not .cache/
    files = sorted(str(p) for c in classes for p in (root / c).iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{source}: no images (expected <root>/<label>/*.png|jpg|jpeg)")
    spec = parse_split(split, DEFAULT_SPLIT, where="ingest_images split")
    if spec.method == "hash":
        raise ConfigError("ingest_images split: only fractions (by file name)")
    job = Job(beam_args, examples.path / "_report")
    files = [job.uri(f) for f in files]
    batches = [(i, files[i:i + batch_size]) for i in range(0, len(files), batch_size)]
    job.report(job.pipeline | "Batches" >> beam.Create(batches)
               | "Decode" >> beam.ParDo(DecodeImages(job.uri(examples.path), spec, job.uri(root), tuple(image_size),
                                                     channels, classes)))
    result = job.run()
    records = sorted(result.rejects, key=lambda r: r["file"])
    record_rejects(rejects, records, len(files), max_reject_fraction, "images")
    feature_spec = {"x": {"dtype": "float32", "shape": [*image_size, channels]},
                    "label": {"dtype": "int64", "shape": []}}
    metrics = finish(examples, spec, result, kind="images", source=str(source), feature_spec=feature_spec,
                     class_names=classes, image_size=list(image_size), image_channels=channels)
    return {"images": len(files), "images_rejected": len(records), **metrics}

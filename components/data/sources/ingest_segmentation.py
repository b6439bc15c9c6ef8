"""Segmentation folders ``root/images/<name>.*`` + ``root/masks/<name>.*`` -> ``x`` [H, W, C] in 0..1 and a per-pixel
class ``label`` [H, W] (``ingest_segmentation``).

Why a module of its own: one source a module, registered with :func:`.registry.source` for a folder that *claims*
the layout (an ``images`` and a ``masks`` sub-folder), so it wins over the classification folder source, which
would read ``images``/``masks`` as two classes. An image and its mask pair by file name without the suffix
(``0001.jpg`` with ``0001.png``); a mask is a single-channel image of class indices (``L``, ``P`` palette indices,
16-bit), resized nearest-neighbour so no new class value appears. Unpaired or undecodable files become rejects.
"""
from __future__ import annotations

import os
from pathlib import Path

import apache_beam as beam
import numpy as np

from edgepipe.components.data.beam.files import open_input
from edgepipe.components.data.beam.job import Job, count, reject, value
from edgepipe.components.data.ingest import record_rejects, refuse_builtin
from edgepipe.components.data.sources.ingest_images import IMAGE_SUFFIXES, decode_problem, read_image
from edgepipe.components.data.sources.registry import source
from edgepipe.components.data.sources.shared import DEFAULT_SPLIT, finish, write_batch
from edgepipe.components.data.splits import SplitSpec, hash_values, parse_split
from edgepipe.pipeline.artifacts import Examples, Rejects
from edgepipe.pipeline.component import InputPath, Output, component
from edgepipe.pipeline.errors import ConfigError, DataError

MASK_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")  # single-channel: the values are class indices


def is_segmentation_folder(path: str) -> bool:
    """A folder with ``images/`` and ``masks/`` sub-folders (and no other but hidden ones): the layout this source
    reads."""
    subdirs = {entry.name for entry in os.scandir(path) if entry.is_dir() and not entry.name.startswith(".")}
    return subdirs == {"images", "masks"}


def read_mask(path: str, size: tuple[int, int] | list[int]) -> np.ndarray:
    """A mask file -> int64 [H, W] class indices, resized nearest-neighbour; a colour mask is refused."""
    from PIL import Image

    h, w = size
    with open_input(path) as handle, Image.open(handle) as mask:
        if mask.mode not in MASK_MODES:
            raise ValueError(f"mask mode {mask.mode} is not single-channel class indices (L, P or 16-bit)")
        mask = mask.resize((w, h), Image.NEAREST)
        return np.asarray(mask).astype(np.int64).reshape(h, w)


class DecodePairs(beam.DoFn):
    def __init__(self, examples: str, spec: SplitSpec, size: tuple[int, int], channels: int):
        self.examples, self.spec, self.size, self.channels = examples, spec, size, channels

    def process(self, batch):
        index, pairs = batch
        xs, masks, names = [], [], []
        for name, image_path, mask_path in pairs:
            try:
                x = read_image(image_path, self.size, self.channels)
            except Exception as err:  # PIL raises many kinds for a bad file
                yield reject(image_path, 0, decode_problem("image", err))
                continue
            try:
                mask = read_mask(mask_path, self.size)
            except Exception as err:
                yield reject(mask_path, 0, decode_problem("mask", err))
                continue
            xs.append(x)
            masks.append(mask)
            names.append(name)
        yield count("pairs_read", len(pairs))
        if masks:
            yield value("mask_max", int(max(m.max() for m in masks)))
            yield from write_batch(self.examples, self.spec, {"x": np.stack(xs), "label": np.stack(masks)},
                                   hash_values(np.array(names, dtype=object)), "seg", index)


def _by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


@source("segmentation", folder=True, claims=is_segmentation_folder)
@component(version="1")
def ingest_segmentation(examples: Output[Examples], rejects: Output[Rejects], source: InputPath,
                        image_size: list[int] = [32, 32], channels: int = 3, split: dict | None = None,
                        max_reject_fraction: float = 0.01, batch_size: int = 256,
                        beam_args: list[str] | None = None) -> dict:
    """``root/images/*`` and ``root/masks/*`` paired by name -> ``x`` float32 [H, W, C] in 0..1 and ``label`` int64
    [H, W] (class per pixel, 0 usually background); unpaired files and undecodable images or masks -> rejects."""
    refuse_builtin(source, "ingest_segmentation", "a segmentation folder")
    root = Path(str(source))
    if not root.is_dir() or not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise DataError(f"segmentation folder {source}: expected <root>/images/ and <root>/masks/ sub-folders")
    if channels not in (1, 3, 4) or len(image_size) != 2 or min(image_size) < 1:
        raise ConfigError(f"ingest_segmentation: need channels 1, 3 or 4 and image_size [H, W], got {channels}, "
                          f"{image_size}")
    images, masks = _by_stem(root / "images"), _by_stem(root / "masks")
    pairs = [(name, str(images[name]), str(masks[name])) for name in sorted(images) if name in masks]
    if not pairs:
        raise DataError(f"{source}: no image in images/ has a mask of the same name in masks/")
    unpaired = [{"file": str(images[n]), "line": 0, "reason": f"no mask named '{n}.*' in masks/"}
                for n in sorted(set(images) - set(masks))]
    unpaired += [{"file": str(masks[n]), "line": 0, "reason": f"no image named '{n}.*' in images/"}
                 for n in sorted(set(masks) - set(images))]
    spec = parse_split(split, DEFAULT_SPLIT, where="ingest_segmentation split")
    if spec.method == "hash":
        raise ConfigError("ingest_segmentation split: only fractions (by file name)")
    job = Job(beam_args, examples.path / "_report")
    pairs = [(name, job.uri(image), job.uri(mask)) for name, image, mask in pairs]
    batches = [(i, pairs[i:i + batch_size]) for i in range(0, len(pairs), batch_size)]
    job.report(job.pipeline | "Batches" >> beam.Create(batches)
               | "Decode" >> beam.ParDo(DecodePairs(job.uri(examples.path), spec, tuple(image_size), channels)))
    result = job.run()
    records = sorted([*unpaired, *result.rejects], key=lambda r: r["file"])
    # an unpaired image or mask counts as one example that could not be made, a pair as one
    record_rejects(rejects, records, len(pairs) + len(unpaired), max_reject_fraction, "examples")
    feature_spec = {"x": {"dtype": "float32", "shape": [*image_size, channels]},
                    "label": {"dtype": "int64", "shape": list(image_size)}}
    top = max(result.values.get("mask_max", [0]))
    metrics = finish(examples, spec, result, kind="images", source=str(source), feature_spec=feature_spec,
                     num_classes=top + 1, image_size=list(image_size), image_channels=channels)
    return {"pairs": len(pairs), "files_rejected": len(records), **metrics}

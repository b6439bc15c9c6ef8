"""Training steps/s fed from the pipeline's TFRecords (components.training.fit.supervised_dataset) vs the same
model fed from in-memory tensors (``from_tensor_slices``, same shuffle/batch/prefetch). Prints one JSON line.

Two workloads: ``cnn`` (the digits CNN config: 8x8x1 images, batch 32) and ``mlp_wide`` (an input-bound case:
60k examples x 64 features, a small MLP, batch 256, 4 shards). The first epoch of each fills the cache and is not
timed. Target: tfrecord_steps_per_s >= 0.9 x in_memory_steps_per_s.

    python benchmarks/input_pipeline.py [--epochs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import edgepipe  # noqa: E402,F401


def _steps_per_s(model, ds, epochs: int) -> float:
    model.fit(ds, epochs=1, verbose=0)  # warm-up: tracing, cache fill
    steps = int(ds.cardinality().numpy()) if int(ds.cardinality().numpy()) > 0 else sum(1 for _ in ds)
    start = time.perf_counter()
    model.fit(ds, epochs=epochs, verbose=0)
    return steps * epochs / (time.perf_counter() - start)


def workload(name: str, x: np.ndarray, y: np.ndarray, family: str, hparams: dict, batch: int, epochs: int,
             shards: int, root: Path) -> dict:
    import tensorflow as tf
    import tf_keras as keras

    from edgepipe.components.training.arrays import write_examples
    from edgepipe.components.training.fit import data_spec, supervised_dataset
    from edgepipe.models import build
    from edgepipe.pipeline.artifacts import Examples

    examples = write_examples(Examples(root / name), {"train": {"x": x, "label": y}}, shards=shards)
    spec = data_spec(examples, "classification")
    results = {}
    for source in ("in_memory", "tfrecord"):
        keras.utils.set_random_seed(0)
        if source == "tfrecord":
            ds = supervised_dataset(examples, "train", spec, batch, shuffle=True, seed=0)
        else:
            ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32))).shuffle(8192, seed=0).batch(batch) \
                .prefetch(tf.data.AUTOTUNE)
        model = build(family, spec, **hparams)
        results[f"{source}_steps_per_s"] = round(_steps_per_s(model, ds, epochs), 2)
    results["ratio"] = round(results["tfrecord_steps_per_s"] / results["in_memory_steps_per_s"], 3)
    results.update({"examples": int(len(x)), "batch_size": batch, "shards": shards, "epochs_timed": epochs})
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    from edgepipe.data.synthetic import digits

    out = {"benchmark": "input_pipeline"}
    with tempfile.TemporaryDirectory() as tmp:
        d = digits()
        out["cnn"] = workload("cnn", d["x"], d["y"], "cnn", {"filters": [32, 64], "convs_per_block": 2}, 32,
                              args.epochs, 1, Path(tmp))
        rng = np.random.default_rng(0)
        x = rng.normal(size=(60_000, 64)).astype(np.float32)
        y = (x[:, :8].sum(axis=1) > 0).astype(np.int64)
        out["mlp_wide"] = workload("mlp_wide", x, y, "mlp", {"units": [64]}, 256, args.epochs, 4, Path(tmp))
    out["tfrecord_steps_per_s"] = out["cnn"]["tfrecord_steps_per_s"]
    out["in_memory_steps_per_s"] = out["cnn"]["in_memory_steps_per_s"]
    out["target_met"] = all(out[w]["ratio"] >= 0.9 for w in ("cnn", "mlp_wide"))
    print(json.dumps(out))


if __name__ == "__main__":
    main()

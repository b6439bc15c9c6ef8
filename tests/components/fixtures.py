"""Tiny synthetic artifacts for the training/optimization/evaluation/export tests.

``make_windows_examples`` writes the ``make_windows`` contract by hand (GZIP TFRecords under ``Split-<name>/``,
properties, ``finalize()``): two-channel sine windows with random phase and a few windows carrying a large bump
(label 1). The upstream chain (trained model -> QAT model -> TFLite variants -> evaluation) is built once per
session and memoized here, because each conftest that re-exports these fixtures would otherwise train its own copy.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

import edgepipe  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from edgepipe import tasks
from edgepipe.pipeline.artifacts import Examples, Model, ModelEvaluation, TFLiteModels, TransformParams

WINDOW, CHANNELS, STRIDE = 16, 2, 4
CHANNEL_NAMES = ["vibration", "temperature"]
SPLITS = {"train": (96, 2), "eval": (48, 6), "test": (48, 6)}  # (windows, anomalous windows)
TINY = {"filters": [8, 4], "kernel_size": 3}


def synthetic_windows(n: int, n_anomalous: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(windows [n, WINDOW, CHANNELS] float32, labels [n] int64)``; anomalies are a +4 bump on 6 steps."""
    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW)[None, :]
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    x = np.stack([np.sin(2 * np.pi * t / 8 + phase), 0.5 * np.cos(2 * np.pi * t / 16 + phase)], axis=-1)
    x = x + rng.normal(0, 0.05, size=x.shape)
    labels = np.zeros(n, dtype=np.int64)
    for i in rng.choice(n, size=n_anomalous, replace=False):
        start = rng.integers(0, WINDOW - 6)
        x[i, start:start + 6, rng.integers(0, CHANNELS)] += 4.0
        labels[i] = 1
    return x.astype(np.float32), labels


def _example(window: np.ndarray, label: int, series: str, start: int):
    import tensorflow as tf

    feature = {
        "window": tf.train.Feature(float_list=tf.train.FloatList(value=window.ravel().tolist())),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "series": tf.train.Feature(bytes_list=tf.train.BytesList(value=[series.encode()])),
        "start_time": tf.train.Feature(int64_list=tf.train.Int64List(value=[1_700_000_000 + 600 * start])),
        "start": tf.train.Feature(int64_list=tf.train.Int64List(value=[start])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def make_windows_examples(root: Path, splits: dict[str, tuple[int, int]] = SPLITS, seed: int = 0) -> Examples:
    """Write a finished windows ``Examples`` artifact at ``root``."""
    import tensorflow as tf

    examples = Examples(root)
    for offset, (split, (n, n_anomalous)) in enumerate(splits.items()):
        x, labels = synthetic_windows(n, n_anomalous, seed + offset)
        path = examples.split_dir(split) / "data-00000-of-00001"
        with tf.io.TFRecordWriter(str(path), options=tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
            for i in range(n):
                writer.write(_example(x[i], labels[i], f"m{i % 2}", STRIDE * i))
    examples.properties.update({
        "kind": "windows", "splits": list(splits), "window_size": WINDOW, "stride": STRIDE,
        "channels": CHANNEL_NAMES, "label_mode": "any",
        "feature_spec": {"window": {"dtype": "float32", "shape": [WINDOW, CHANNELS]},
                         "label": {"dtype": "int64", "shape": []}, "series": {"dtype": "string", "shape": []},
                         "start_time": {"dtype": "int64", "shape": []}, "start": {"dtype": "int64", "shape": []}}})
    examples.finalize()
    return examples


def make_transform_params(root: Path) -> TransformParams:
    params = TransformParams(root)
    # what normalize writes (components/data/normalize.py): the exporter validates it with the runtime's schema
    params.write_json("transform.json", {"method": "zscore", "channels": CHANNEL_NAMES, "center": [2.1, 45.0],
                                         "scale": [0.4, 3.2]})
    params.finalize()
    return params


@functools.cache
def _chain(base: str) -> dict[str, object]:
    """windows -> trained float model -> QAT model -> TFLite variants, built once per session."""
    from edgepipe.components.optimization import convert_tflite, quantize_model
    from edgepipe.components.training import train_autoencoder

    root = Path(base)
    windows = make_windows_examples(root / "windows")
    model = Model(root / "model")
    train_autoencoder.fn(windows=windows, model=model, epochs=25, batch_size=16, learning_rate=3e-3,
                         strategy="default", patience=25, **TINY)
    model.finalize()
    qat = Model(root / "qat")
    quantize_model.fn(windows=windows, model=model, qat_model=qat, epochs=2, batch_size=16, learning_rate=1e-4)
    qat.finalize()
    tflite = TFLiteModels(root / "tflite")
    convert_tflite.fn(examples=windows, model=model, qat_model=qat, tflite=tflite, representative_samples=32,
                      variants=["float32", "int8_ptq", "int8_qat"])
    tflite.finalize()
    return {"windows": windows, "model": Model.open(model.path), "qat": Model.open(qat.path),
            "tflite": TFLiteModels.open(tflite.path), "transform": make_transform_params(root / "transform")}


@functools.cache
def _evaluation(base: str) -> ModelEvaluation:
    from edgepipe.components.evaluation.anomaly import evaluate_anomaly

    chain = _chain(base)
    evaluation = ModelEvaluation(Path(base) / "evaluation")
    evaluate_anomaly(examples=chain["windows"], model=chain["model"], tflite=chain["tflite"], evaluation=evaluation,
                     settings=tasks.get("anomaly").evaluate(latency_runs=5))
    evaluation.finalize()
    return ModelEvaluation.open(evaluation.path)


def _base(tmp_path_factory) -> str:
    return str(tmp_path_factory.getbasetemp() / "edgepipe-chain")


@pytest.fixture(scope="session")
def evaluation(tmp_path_factory) -> ModelEvaluation:
    return _evaluation(_base(tmp_path_factory))


@pytest.fixture(scope="session")
def chain(tmp_path_factory) -> dict[str, object]:
    return _chain(_base(tmp_path_factory))


@pytest.fixture(scope="session")
def windows_examples(chain) -> Examples:
    return chain["windows"]


@pytest.fixture(scope="session")
def trained_model(chain) -> Model:
    return chain["model"]


@pytest.fixture(scope="session")
def qat_model(chain) -> Model:
    return chain["qat"]


@pytest.fixture(scope="session")
def tflite_models(chain) -> TFLiteModels:
    return chain["tflite"]


@pytest.fixture(scope="session")
def transform_params(chain) -> TransformParams:
    return chain["transform"]

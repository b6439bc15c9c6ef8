"""Real, tiny family artifacts for the report tests: Examples -> trained model -> evaluation, per task.

Each builder runs the real components (``train_model``, ``train_gan``, ``train_dqn``, the one ``evaluate``) on a few
dozen synthetic examples and is memoized per session (``functools.cache`` on the base folder), so every test of a
task reads the same artifacts and nothing is trained twice.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

import edgepipe  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from edgepipe import tasks
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.executor import invoke

CLASSES = ["left", "middle", "right"]


def _write(root: Path, splits: dict, **properties) -> Examples:
    from edgepipe.components.training.arrays import write_examples

    return write_examples(Examples(root), splits, **properties)


def stripes(rng, n: int, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Images with a bright vertical band in the left, middle or right third (the class), plus noise."""
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 0.3, size=(n, size, size, 1)).astype("float32")
    third = size // 3
    for i, c in enumerate(y):
        x[i, :, c * third:(c + 1) * third + (1 if c == 2 else 0), 0] += 0.7
    return np.clip(x, 0, 1), y


def _train(examples, out: Path, **params):
    from edgepipe.components.training.train_model import train_model

    params = {"batch_size": 16, "patience": 0, "verbose": 0, "epochs": 3, **params}
    return invoke(train_model, {"examples": examples}, {"model": out}, params)[0]["model"]


def _evaluate(examples, model, out: Path, **params):
    from edgepipe.components.evaluation import evaluate

    from edgepipe.models.card import ModelCard

    section = tasks.get(ModelCard.of(model).task).evaluate(**params)  # the model's task's evaluate section
    return invoke(evaluate, {"examples": examples, "model": model}, {"evaluation": out},
                  {"settings": section})[0]["evaluation"]


def _fit(root: Path, splits: dict, **train) -> dict:
    """Examples from ``splits``, a model trained on them (``train``: train_model's parameters), its evaluation."""
    examples = _write(root / "examples", splits)
    model = _train(examples, root / "model", **train)
    return {"examples": examples, "model": model, "evaluation": _evaluate(examples, model, root / "evaluation")}


@functools.cache
def classification(base: str) -> dict:
    root = Path(base) / "classification"
    rng = np.random.default_rng(0)
    splits = {}
    for split, n in {"train": 60, "eval": 15, "test": 24}.items():
        x, y = stripes(rng, n)
        splits[split] = {"x": x, "label": y}
    examples = _write(root / "examples", splits, class_names=CLASSES)
    model = _train(examples, root / "model", family="cnn", epochs=4,
                   hparams={"filters": [4], "dense_units": 0, "dropout": 0.0, "learning_rate": 0.02})
    from edgepipe.components.optimization import convert_tflite

    tflite = invoke(convert_tflite, {"examples": examples, "model": model}, {"tflite": root / "tflite"},
                    {"variants": ["float32", "int8_ptq"], "representative_samples": 16})[0]["tflite"]
    from edgepipe.components.evaluation import evaluate

    evaluation = invoke(evaluate, {"examples": examples, "model": model, "tflite": tflite},
                        {"evaluation": root / "evaluation"}, {"settings": tasks.get("classification").evaluate(lowest_confidence=6, latency_runs=3)}
                        )[0]["evaluation"]
    return {"examples": examples, "model": model, "evaluation": evaluation, "tflite": tflite}


@functools.cache
def segmentation(base: str) -> dict:
    root = Path(base) / "segmentation"
    rng = np.random.default_rng(1)
    splits = {}
    for split, n in {"train": 32, "eval": 8, "test": 10}.items():
        x = rng.uniform(0, 1, size=(n, 8, 8, 1)).astype("float32")
        splits[split] = {"x": x, "mask": (x[..., 0] > 0.6).astype("int64")}
    return _fit(root, splits, family="unet", task="segmentation", y_key="mask", hparams={"filters": [4, 8]})


@functools.cache
def regression(base: str) -> dict:
    root = Path(base) / "regression"
    rng = np.random.default_rng(2)
    splits = {}
    for split, n in {"train": 64, "eval": 16, "test": 20}.items():
        a, b = rng.normal(size=n).astype("float32"), rng.normal(size=n).astype("float32")
        splits[split] = {"a": a, "b": b, "label": (2 * a - b).astype("float32")}
    return _fit(root, splits, family="mlp", task="regression",
                hparams={"units": [8], "dropout": 0.0, "l2": 0.0, "learning_rate": 0.02})


@functools.cache
def forecasting(base: str) -> dict:
    root = Path(base) / "forecasting"
    from edgepipe.data.synthetic import forecast

    data = forecast(n=120, steps=16)
    x, y = data["x"].astype("float32"), data["y"].astype("float32")
    splits = {"train": {"x": x[:80], "label": y[:80]}, "eval": {"x": x[80:100], "label": y[80:100]},
              "test": {"x": x[100:], "label": y[100:]}}
    return _fit(root, splits, family="rnn", task="forecasting", epochs=2,
                hparams={"cell": "gru", "units": [4]})


@functools.cache
def reconstruction(base: str) -> dict:
    root = Path(base) / "reconstruction"
    rng = np.random.default_rng(3)
    splits = {}
    for split, n in {"train": 48, "eval": 12, "test": 30}.items():
        x, y = stripes(rng, n)
        splits[split] = {"x": x, "label": y}
    return _fit(root, splits, family="autoencoder", task="reconstruction", epochs=3,
                hparams={"variant": "dense", "units": [16], "embedding_dim": 4})


@functools.cache
def generation(base: str) -> dict:
    from edgepipe.components.evaluation import evaluate
    from edgepipe.components.training.train_gan import train_gan

    root = Path(base) / "generation"
    rng = np.random.default_rng(4)
    splits = {}
    for split, n in {"train": 32, "test": 24}.items():
        x, y = stripes(rng, n)
        splits[split] = {"x": x, "label": y}
    examples = _write(root / "examples", splits, class_names=CLASSES)
    out, _ = invoke(train_gan, {"examples": examples}, {"model": root / "model"},
                    {"family": "cgan", "epochs": 1, "batch_size": 8, "verbose": 0,
                     "hparams": {"latent_dim": 4, "generator_filters": [8, 4], "discriminator_filters": [4]}})
    judge = _train(examples, root / "judge", family="cnn", epochs=2,
                   hparams={"filters": [4], "dense_units": 0, "dropout": 0.0, "learning_rate": 0.02})
    ev, _ = invoke(evaluate, {"examples": examples, "model": out["model"], "classifier": judge},
                   {"evaluation": root / "evaluation"}, {"settings": tasks.get("generation").evaluate(samples=60, samples_per_class=4)})
    return {"examples": examples, "model": out["model"], "evaluation": ev["evaluation"]}


@functools.cache
def control(base: str) -> dict:
    from edgepipe.components.evaluation import evaluate
    from edgepipe.components.training.train_dqn import train_dqn

    root = Path(base) / "control"
    hparams = {"units": [8], "num_iterations": 30, "initial_collect_steps": 32, "batch_size": 8,
               "eval_interval": 10, "eval_episodes": 2}
    out, _ = invoke(train_dqn, {}, {"model": root / "model"}, {"hparams": hparams})
    ev, _ = invoke(evaluate, {"model": out["model"]}, {"evaluation": root / "evaluation"},
                   {"settings": tasks.get("control").evaluate(episodes=3)})
    return {"model": out["model"], "evaluation": ev["evaluation"]}

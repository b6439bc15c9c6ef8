"""The generic train_model component: distributed fit from TFRecords, resume after failure, evaluation, export."""
import json
from pathlib import Path

import numpy as np
import pytest

import edgepipe  # noqa: F401
from edgepipe import tasks
from edgepipe.components.training.arrays import write_examples
from edgepipe.components.training.train_model import train_model
from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Examples, Model
from edgepipe.pipeline.component import Input, Output, component
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.executor import invoke

MLP = {"units": [16], "dropout": 0.0, "learning_rate": 0.05}


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> Examples:
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(3, 4))
    splits = {}
    for split, n in {"train": 120, "eval": 30, "test": 30}.items():
        y = rng.integers(0, 3, n)
        splits[split] = {"x": (centers[y] + rng.normal(0, 0.4, (n, 4))).astype("float32"), "label": y}
    return write_examples(Examples(tmp_path_factory.mktemp("blobs") / "ex"), splits, shards=2,
                          class_names=["a", "b", "c"])


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Examples:
    """One feature per column (what ingest_csv writes) and a float label: tabular regression."""
    rng = np.random.default_rng(1)
    splits = {}
    for split, n in {"train": 96, "eval": 24, "test": 24}.items():
        a, b = rng.normal(size=n).astype("float32"), rng.normal(size=n).astype("float32")
        splits[split] = {"a": a, "b": b, "label": (2 * a - b).astype("float32")}
    return write_examples(Examples(tmp_path_factory.mktemp("table") / "ex"), splits)


def _train(examples, out: Path, **params):
    params = {"family": "mlp", "hparams": MLP, "epochs": 4, "batch_size": 16, "patience": 0, "verbose": 0,
              **params}
    return invoke(train_model, {"examples": examples}, {"model": out}, params)


def test_trains_classifier_with_strategy_tensorboard_and_spec(blobs, tmp_path):
    outputs, metrics = _train(blobs, tmp_path / "m", strategy="mirrored", lr_schedule="cosine")
    model = outputs["model"]
    history = model.read_json("history.json")
    assert history["strategy"]["class"] == "MirroredStrategy"
    assert history["global_batch_size"] == 16 * history["strategy"]["replicas"]
    assert history["run"]["op_determinism"] is True
    loss = history["phases"]["phase1"]["loss"]
    assert loss[-1] < loss[0]
    assert metrics["final_val_accuracy"] > 0.8
    assert any((model.path / "tensorboard").rglob("events.out.tfevents*"))
    assert model.properties["data_spec"]["class_names"] == ["a", "b", "c"]
    assert ModelCard.of(Model.open(model.path)).to_properties() == Model.open(model.path).properties
    reloaded = Model.open(model.path).load_keras()
    assert reloaded.output_shape == (None, 3)


def test_same_seed_same_weights_on_cpu(blobs, tmp_path):
    a, _ = _train(blobs, tmp_path / "a", epochs=2)
    b, _ = _train(blobs, tmp_path / "b", epochs=2)
    wa, wb = a["model"].load_keras().get_weights(), b["model"].load_keras().get_weights()
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


def test_tabular_columns_regression(table, tmp_path):
    outputs, metrics = _train(table, tmp_path / "m", task="regression", epochs=6,
                              hparams={"units": [8], "dropout": 0.0, "l2": 0.0, "learning_rate": 0.02})
    spec = outputs["model"].properties["data_spec"]
    assert spec["input_shape"] == [2] and spec["extra"]["features"] == ["a", "b"]
    assert "final_val_mae" in metrics


def test_interrupted_training_resumes_from_its_checkpoint(blobs, tmp_path):
    """A stop after epoch 2 of 4 (the first Ctrl-C), then a retry: epochs 3-4 only, the uninterrupted weights,
    with ReduceLROnPlateau's and early stopping's counters carried over."""
    from edgepipe.pipeline import progress

    params = {"epochs": 4, "patience": 2, "lr_schedule": "plateau", "hparams": {**MLP, "dropout": 0.0}}
    reference, _ = _train(blobs, tmp_path / "ref", **params)
    first = progress.Execution("train_model", "e1", "c" * 64)
    first.sink = lambda e: first.stop.set() if (e.kind, e.step) == ("epoch", 2) else None
    ckpt = tmp_path / "ckpt"
    with pytest.raises(progress.StopRequested):
        invoke(train_model, {"examples": blobs}, {"model": tmp_path / "first"},
               {"family": "mlp", "batch_size": 16, "verbose": 0, "checkpoint_root": str(ckpt), **params},
               execution=first)
    saved = list(ckpt.iterdir())
    assert len(saved) == 1 and any(saved[0].rglob("*"))  # survives outside the (deleted) staging folder
    outputs, _ = invoke(train_model, {"examples": blobs}, {"model": tmp_path / "second"},
                        {"family": "mlp", "batch_size": 16, "verbose": 0, "checkpoint_root": str(ckpt), **params},
                        execution=progress.Execution("train_model", "e2", "c" * 64))
    history = outputs["model"].read_json("history.json")
    assert history["resumed_at_epoch"] == {"phase1": 2} and len(history["phases"]["phase1"]["loss"]) == 4
    assert history["checkpoint_dir"] == str(saved[0])
    assert not saved[0].exists()  # removed once the training succeeded
    want = reference["model"].load_keras().get_weights()
    for got, expected in zip(outputs["model"].load_keras().get_weights(), want):
        np.testing.assert_array_equal(got, expected)


def test_checkpoint_dir_is_keyed_by_the_execution_cache_key(blobs, tmp_path):
    from edgepipe.components.training.fit import checkpoint_dir
    from edgepipe.pipeline import progress

    assert checkpoint_dir(tmp_path, "train_model") is None  # not run by an executor: nothing to key by
    with progress.bound(progress.Execution("train", cache_key=lambda: "ab" * 32)):
        assert checkpoint_dir(tmp_path, "train_model") == tmp_path / f"train_model-{'ab' * 12}"
        assert checkpoint_dir(None, "train_model") is None
    keys = []

    def keyed(examples: Input[Examples], model: Output[Model], epochs: int = 1) -> dict:
        keys.append(progress.cache_key())
        model.properties["epochs"] = epochs  # an Output must be written (the executor refuses an empty one)
        return {}

    probe = component(keyed)
    for epochs in (1, 1, 2):
        invoke(probe, {"examples": blobs}, {"model": tmp_path / f"m{len(keys)}"}, {"epochs": epochs})
    assert keys[0] == keys[1] != keys[2]  # computed by invoke from the inputs' content and the parameters


@pytest.mark.parametrize("params,what", [
    ({"hparams": {"units": "many"}}, "hyperparameter 'units'"),
    ({"family": "cnn", "hparams": {}}, "expects images"),
    ({"family": "dcgan", "hparams": {}}, "trained by its own component"),
    ({"task": "segmentation"}, "does not do task 'segmentation'"),
    ({"strategy": "gpu"}, "unknown distribution strategy"),
    ({"strategy": "multi_worker", "workers": ["localhost:1"], "task_index": 3}, "task_index must be in 0..0"),
])
def test_bad_config_fails_before_training(blobs, tmp_path, params, what):
    with pytest.raises(ConfigError, match=what):
        _train(blobs, tmp_path / "m", **params)
    assert not (tmp_path / "m" / "model.h5").exists()


def test_evaluate_and_export_a_classifier(blobs, tmp_path):
    from edgepipe.components.evaluation import evaluate
    from edgepipe.components.export import export_bundle

    outputs, _ = _train(blobs, tmp_path / "m")
    model = outputs["model"]
    ev, metrics = invoke(evaluate, {"examples": blobs, "model": model}, {"evaluation": tmp_path / "e"},
                         {"settings": tasks.get("classification").evaluate(lowest_confidence=3)})
    report = ev["evaluation"].read_json("evaluation.json")["metrics"]
    assert report["examples"] == 30 and metrics["accuracy"] == report["accuracy"] > 0.8
    assert set(report["per_class"]) == {"a", "b", "c"} and np.array(report["confusion_matrix"]).sum() == 30
    assert len(report["lowest_confidence"]) == 3
    conf = [r["confidence"] for r in report["lowest_confidence"]]
    assert conf == sorted(conf)
    bundle, exported = invoke(export_bundle, {"model": model, "evaluation": ev["evaluation"]}, {"bundle": tmp_path / "b"},
                              {})
    doc = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert doc["family"] == "mlp" and (tmp_path / "b" / "model.tflite").exists()
    assert exported["max_abs_diff_vs_keras"] < 1e-4


def test_dense_autoencoder_exports_its_encoder(blobs, tmp_path):
    outputs, _ = _train(blobs, tmp_path / "m", family="autoencoder",
                        hparams={"variant": "dense", "units": [8], "embedding_dim": 2})
    model = outputs["model"]
    assert model.properties["task"] == "reconstruction" and (model.path / "encoder.h5").exists()
    assert ModelCard.of(model).encoder == "encoder.h5" and ModelCard.of(model).to_properties() == model.properties


def test_a_corrupt_checkpoint_is_refused_naming_its_folder(blobs, tmp_path):
    from edgepipe.pipeline import progress

    params = {"family": "mlp", "batch_size": 16, "verbose": 0, "epochs": 2, "checkpoint_root": str(tmp_path / "c")}
    first = progress.Execution("train_model", "e1", "e" * 64)
    first.sink = lambda e: first.stop.set() if e.kind == "epoch" else None
    with pytest.raises(progress.StopRequested):
        invoke(train_model, {"examples": blobs}, {"model": tmp_path / "a"}, params, execution=first)
    folder = tmp_path / "c" / f"train_model-{'e' * 24}" / "phase1"
    for data in folder.glob("ckpt-*.index"):
        data.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=f"{folder}: unusable training checkpoint .*delete the folder"):
        invoke(train_model, {"examples": blobs}, {"model": tmp_path / "b"}, params,
               execution=progress.Execution("train_model", "e2", "e" * 64))


PENGUINS = Path(__file__).resolve().parents[3] / "../shared/datasets/penguins/penguins_processed.csv"


@pytest.mark.skipif(not PENGUINS.exists(), reason="shared datasets not present")
def test_history_records_the_epoch_whose_weights_the_model_keeps(tmp_path):
    """T10: the report said "best epoch n/a" for every supervised run although EarlyStopping restored one."""
    from edgepipe.components.data import ingest_csv

    ingested, _ = invoke(ingest_csv, {}, {"examples": tmp_path / "ex", "rejects": tmp_path / "rej"},
                         {"source": str(PENGUINS), "label_column": "species"})
    examples = ingested["examples"]
    stopped, _ = _train(examples, tmp_path / "es", epochs=8, patience=3, lr_schedule="constant",
                        hparams={"units": [16], "dropout": 0.0, "learning_rate": 0.3})
    history = stopped["model"].read_json("history.json")
    val_loss = history["phases"]["phase1"]["val_loss"]
    assert history["best_epoch"] == int(np.argmin(val_loss)) + 1  # restore_best_weights keeps the lowest val_loss
    assert history["best_epoch"] < len(val_loss)  # stopped early here: the kept epoch is not the last one
    plain, _ = _train(examples, tmp_path / "plain", epochs=3, patience=0)
    assert plain["model"].read_json("history.json")["best_epoch"] == 3  # no early stopping: the last epoch

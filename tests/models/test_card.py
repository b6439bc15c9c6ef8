"""ModelCard: the typed model card stores exactly the properties the trainers wrote before it existed.

Each ``WRITTEN`` entry is the dict a trainer recorded (the literal ``model.properties.update({...})`` of
train.py, train_model.py, train_gan.py, train_dqn.py before the card) with tiny values; the trainers' own tests
(tests/components/training) also check the card round trip on real trained artifacts.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgepipe.models.card import ModelCard
from edgepipe.models.spec import DataSpec
from edgepipe.pipeline.artifacts import Model
from edgepipe.pipeline.errors import DataError

IMAGES = DataSpec((8, 8, 1), "classification", num_classes=3, class_names=("a", "b", "c"))
GAN_SPEC = DataSpec((8, 8, 1), "generation", num_classes=3, class_names=("a", "b", "c"))
TABLE = DataSpec((2,), "regression", extra={"features": ["a", "b"], "x_key": "x"})

# trainer -> (the dict it wrote before the card, the ModelCard.record keywords it writes now)
WRITTEN = {
    "train_autoencoder": (
        {"family": "autoencoder", "task": "anomaly", "window_size": 32, "channels": 2, "train_on": "normal",
         "hparams": {"filters": [8, 4], "kernel_size": 7, "learning_rate": 1e-3}, "input_feature": "window",
         "score": "reconstruction_mse"},
        dict(family="autoencoder", task="anomaly", window_size=32, channels=2, train_on="normal",
             hparams={"filters": [8, 4], "kernel_size": 7, "learning_rate": 1e-3}, input_feature="window",
             score="reconstruction_mse")),
    "train_model": (
        {"family": "cnn", "task": "classification", "trainer": "supervised", "data_spec": IMAGES.to_json(),
         "hparams": {"filters": [4]}, "input_feature": "x", "label_feature": "label", "encoder": None},
        dict(family="cnn", task="classification", trainer="supervised", data_spec=IMAGES, hparams={"filters": [4]},
             input_feature="x", label_feature="label", encoder=None)),
    "train_model_table": (
        {"family": "mlp", "task": "regression", "trainer": "supervised", "data_spec": TABLE.to_json(),
         "hparams": {}, "input_feature": "x", "label_feature": "y", "encoder": None},
        dict(family="mlp", task="regression", trainer="supervised", data_spec=TABLE, hparams={}, input_feature="x",
             label_feature="y", encoder=None)),
    "train_gan": (
        {"family": "cgan", "task": "generation", "trainer": "gan", "data_spec": GAN_SPEC.to_json(),
         "hparams": {"latent_dim": 4}, "conditional": True, "latent_dim": 4, "num_classes": 3,
         "class_names": ["a", "b", "c"], "exported": "generator", "generator_ema_decay": 0.0},
        dict(family="cgan", task="generation", trainer="gan", data_spec=GAN_SPEC, hparams={"latent_dim": 4},
             conditional=True, latent_dim=4, num_classes=3, class_names=GAN_SPEC.class_names, exported="generator",
             generator_ema_decay=0.0)),
    "train_dqn": (
        {"family": "dqn", "task": "control", "trainer": "rl", "env_name": "CartPole-v1", "frame_stack": 1,
         "hparams": {"num_iterations": 10}, "exported": "q_network",
         "policy": "greedy: argmax over the output Q-values"},
        dict(family="dqn", task="control", trainer="rl", env_name="CartPole-v1", frame_stack=1,
             hparams={"num_iterations": 10}, exported="q_network", policy="greedy: argmax over the output Q-values")),
}


@pytest.mark.parametrize("trainer", sorted(WRITTEN))
def test_writers_store_the_same_properties_as_before(trainer):
    before, keywords = WRITTEN[trainer]
    now = ModelCard.record(**keywords).to_properties()
    assert now == before and list(now) == list(before)  # same keys, values and order
    assert json.dumps(now, sort_keys=True) == json.dumps(before, sort_keys=True)


@pytest.mark.parametrize("trainer", sorted(WRITTEN))
def test_round_trip_through_a_finished_artifact(trainer, tmp_path):
    before, _ = WRITTEN[trainer]
    model = Model(tmp_path / "m", before)
    model.finalize()
    reopened = Model.open(model.path)
    card = ModelCard.of(reopened)
    assert card.to_properties() == reopened.properties == json.loads(json.dumps(before))
    assert ModelCard.of(card.to_properties()) == card


def test_typed_access():
    auto = ModelCard.of(WRITTEN["train_autoencoder"][0])
    assert (auto.window_size, auto.channels, auto.train_on, auto.data_spec, auto.supervised) == (
        32, 2, "normal", None, False)
    cnn = ModelCard.of(WRITTEN["train_model"][0])
    assert cnn.data_spec == IMAGES and cnn.supervised and cnn.labels == ["a", "b", "c"] and cnn.classes == 3
    assert cnn.class_names is None and cnn.frame_stack == 1 and cnn.conditional is False
    gan = ModelCard.of(WRITTEN["train_gan"][0])
    assert gan.conditional and gan.latent_dim == 4 and gan.class_names == ("a", "b", "c")
    dqn = ModelCard.of(WRITTEN["train_dqn"][0])
    assert dqn.required("env_name") == "CartPole-v1" and dqn.classes is None and dqn.labels is None
    with pytest.raises(DataError, match="latent_dim"):
        dqn.required("latent_dim")
    reconstruction = ModelCard.record(data_spec=DataSpec((4,), "reconstruction"))
    assert not reconstruction.supervised


def test_unknown_keys_are_kept_in_extra():
    props = {**WRITTEN["train_model"][0], "calibrated_by": "someone", "nested": {"a": [1, 2]}}
    card = ModelCard.of(props)
    assert card.extra == {"calibrated_by": "someone", "nested": {"a": [1, 2]}}
    assert card.to_properties() == props and list(card.to_properties()) == list(props)


def test_an_old_artifact_without_task_still_loads(tmp_path):
    old = {"family": "autoencoder", "window_size": 16, "channels": 1}  # before tasks: no task, no train_on
    model = Model(tmp_path / "old", old)
    model.finalize()
    card = ModelCard.of(Model.open(model.path))
    assert card.task is None and card.family == "autoencoder" and card.train_on == "normal"
    assert card.to_properties() == old  # defaults are not written back


def test_a_data_spec_this_version_cannot_read_is_kept_as_written():
    raw = {"input_shape": [4], "task": "no_such_task"}
    card = ModelCard.of({"family": "mlp", "data_spec": raw})
    assert card.data_spec is None and card.to_properties() == {"family": "mlp", "data_spec": raw}
    with pytest.raises(DataError, match="data_spec"):
        card.required("data_spec")


def test_fine_tuned_card_replaces_earlier_optimization_records():
    """steps._inherit: the pruned model's record is dropped when it is quantization-aware fine-tuned (PQAT)."""
    base = WRITTEN["train_autoencoder"][0]
    pruned = ModelCard.of(base).fine_tuned(pruning={"target_sparsity": 0.5})
    assert pruned.to_properties() == {**base, "pruning": {"target_sparsity": 0.5}}
    pqat = ModelCard.of(pruned.to_properties()).fine_tuned(quantization={"scheme": "pqat", "not_quantized": []})
    old_inherit = {k: v for k, v in pruned.to_properties().items() if k not in ("pruning", "quantization",
                                                                                  "clustering")}
    old_inherit.update(quantization={"scheme": "pqat", "not_quantized": []})
    assert pqat.to_properties() == old_inherit and list(pqat.to_properties()) == list(old_inherit)
    assert pqat.pruning is None and pqat.quantization["scheme"] == "pqat"


def test_importing_the_card_does_not_import_tensorflow():
    code = "import sys, edgepipe.models.card; print(any(m.split('.')[0] in ('tensorflow', 'tf_keras') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""The distilled variant stage (``pipeline/templates/deploy.py``) fine-tunes QAT with the batch the model was
trained with, read from where the family's trainer declares it (``models.registry.TRAINER_BATCH_SIZE``), not from
a task branch in the builder."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgepipe.models.registry import TRAINER_BATCH_SIZE, TRAINERS
from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.templates import build_pipeline

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _convert_params(name: str, *sets: str) -> dict:
    pipeline = build_pipeline(load_config(CONFIGS / f"{name}.yaml", list(sets)))
    return next(n for n in pipeline.nodes if n.component.name == "convert_tflite").params


def test_every_trainer_declares_where_its_batch_size_lives():
    assert set(TRAINER_BATCH_SIZE) == set(TRAINERS)
    for key, default in TRAINER_BATCH_SIZE.values():
        assert key.count(".") >= 1 and (default is None or default > 0)


@pytest.mark.parametrize("sets, expected", [
    ((), 64),  # configs/dqn.yaml's model.hparams.batch_size
    (("model.hparams.batch_size=32",), 32),
    (("model.hparams={env_name: CartPole-v0}",), 64),  # absent: the agent's default
])
def test_dqn_distils_with_the_agents_batch_size(sets, expected):
    params = _convert_params("dqn", *sets)
    assert params["batch_size"] == expected and params["task"] == "control"


@pytest.mark.parametrize("name", ["cgan", "dcgan"])
def test_gan_distils_with_the_training_batch_size(name):
    assert _convert_params(name, "training.batch_size=16")["batch_size"] == 16
    assert _convert_params(name)["batch_size"] == load_config(CONFIGS / f"{name}.yaml").training.batch_size

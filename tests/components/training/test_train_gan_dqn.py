"""GAN and DQN components end to end on tiny settings: train -> evaluate -> export (the generator / Q-network)."""
import json

import numpy as np
import pytest

import edgepipe  # noqa: F401
from edgepipe import tasks
from edgepipe.components.training.arrays import write_examples
from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Examples
from edgepipe.pipeline.executor import invoke


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Examples:
    rng = np.random.default_rng(0)
    splits = {s: {"x": rng.uniform(size=(n, 8, 8, 1)).astype("float32"), "label": rng.integers(0, 3, n)}
              for s, n in {"train": 32, "test": 16}.items()}
    return write_examples(Examples(tmp_path_factory.mktemp("img") / "ex"), splits, class_names=["a", "b", "c"])


def test_cgan_trains_evaluates_per_class_and_exports_the_generator(images, tmp_path):
    from edgepipe.components.evaluation import evaluate
    from edgepipe.components.export import export_bundle
    from edgepipe.components.training.train_gan import train_gan

    out, metrics = invoke(train_gan, {"examples": images}, {"model": tmp_path / "m"},
                          {"family": "cgan", "epochs": 1, "batch_size": 8, "verbose": 0,
                           "hparams": {"latent_dim": 4, "generator_filters": [8, 4], "discriminator_filters": [4]}})
    model = out["model"]
    assert model.properties["exported"] == "generator" and (model.path / "discriminator.h5").exists()
    assert ModelCard.of(model).to_properties() == model.properties  # the card stores what train_gan always did
    ev, ev_metrics = invoke(evaluate, {"examples": images, "model": model}, {"evaluation": tmp_path / "e"},
                            {"settings": tasks.get("generation").evaluate(samples=16, samples_per_class=4)})
    report = ev["evaluation"].read_json("evaluation.json")["metrics"]
    assert set(report["grids"]) == {"samples_a.png", "samples_b.png", "samples_c.png", "samples_by_class.png"}
    assert 0 <= ev_metrics["discriminator_fake_mean"] <= 1 and 0 <= ev_metrics["discriminator_real_mean"] <= 1
    assert (tmp_path / "e" / "samples_by_class.png").read_bytes()[:4] == b"\x89PNG"
    bundle, _ = invoke(export_bundle, {"model": model, "evaluation": ev["evaluation"]}, {"bundle": tmp_path / "b"}, {})
    doc = json.loads((tmp_path / "b" / "bundle.json").read_text())
    entry = doc["models"]["float32"]
    assert entry["file"] == "model.tflite" and doc["task"] == "generation"
    assert sorted(i["dtype"] for i in entry["inputs"]) == ["float32", "int32"]
    assert doc["generation"]["latent_dim"] == 4 and doc["generation"]["num_classes"] == 3
    assert entry["max_abs_diff_vs_keras"] < 1e-4


def test_dqn_component_trains_evaluates_and_exports_the_q_network(tmp_path):
    pytest.importorskip("tf_agents", reason="the rl extra is not installed (make rl)")
    from edgepipe.components.evaluation import evaluate
    from edgepipe.components.export import export_bundle
    from edgepipe.components.training.train_dqn import train_dqn

    hparams = {"units": [8], "num_iterations": 20, "initial_collect_steps": 32, "batch_size": 8,
               "eval_interval": 10, "eval_episodes": 2}
    out, metrics = invoke(train_dqn, {}, {"model": tmp_path / "m"},
                          {"hparams": hparams, "checkpoint_root": str(tmp_path / "ckpt")})
    assert metrics["iterations"] == 20 and not any((tmp_path / "ckpt").iterdir())
    ev, ev_metrics = invoke(evaluate, {"model": out["model"]}, {"evaluation": tmp_path / "e"},
                            {"settings": tasks.get("control").evaluate(episodes=3)})
    assert ev_metrics["episodes"] == 3 and ev_metrics["average_return"] >= 1
    invoke(export_bundle, {"model": out["model"], "evaluation": ev["evaluation"]}, {"bundle": tmp_path / "b"}, {})
    doc = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert doc["task"] == "policy" and doc["policy"] == {"env_name": "CartPole-v0", "num_actions": 2,
                                                         "frame_stack": 1, "action": "argmax of Q-values"}


def test_unknown_dqn_hyperparameter_is_a_config_error(tmp_path):
    from edgepipe.components.training.train_dqn import train_dqn
    from edgepipe.pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="no hyperparameter 'gama'"):
        invoke(train_dqn, {}, {"model": tmp_path / "m"}, {"hparams": {"gama": 0.9}})


def test_stopped_gan_training_resumes_at_its_epoch(images, tmp_path):
    """A stop after epoch 1 of 2 leaves a checkpoint keyed by the cache key; the retry trains epoch 2 only."""
    from edgepipe.components.training.train_gan import train_gan
    from edgepipe.pipeline import progress

    params = {"family": "dcgan", "epochs": 2, "batch_size": 8, "verbose": 0, "checkpoint_root": str(tmp_path / "c"),
              "hparams": {"latent_dim": 4, "generator_filters": [8, 4], "discriminator_filters": [4]}}
    first = progress.Execution("train_gan", "e1", "d" * 64)
    first.sink = lambda e: first.stop.set() if e.kind == "epoch" else None
    with pytest.raises(progress.StopRequested):
        invoke(train_gan, {"examples": images}, {"model": tmp_path / "a"}, params, execution=first)
    assert (tmp_path / "c" / f"train_gan-{'d' * 24}" / "state.json").exists()
    epochs = []
    second = progress.Execution("train_gan", "e2", "d" * 64, sink=lambda e: epochs.append(e.step)
                                if e.kind == "epoch" else None)
    out, _ = invoke(train_gan, {"examples": images}, {"model": tmp_path / "b"}, params, execution=second)
    history = out["model"].read_json("history.json")
    assert epochs == [2] and history["resumed_at_epoch"] == 1 and len(history["history"]["g_loss"]) == 2
    assert not any((tmp_path / "c").iterdir())

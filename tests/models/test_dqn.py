"""TF-Agents DQN: collects into the replay buffer, trains, evaluates greedily, checkpoints and resumes."""
import numpy as np
import pytest

import edgepipe  # noqa: F401
from edgepipe.pipeline.errors import ConfigError

pytest.importorskip("tf_agents", reason="the rl extra is not installed (make rl)")

TINY = {"units": [8], "num_iterations": 30, "initial_collect_steps": 40, "batch_size": 8, "eval_interval": 15,
        "eval_episodes": 2, "target_update_period": 5, "epsilon_decay_steps": 20, "checkpoint_interval": 10}


def test_dqn_collects_trains_and_exports_a_keras_q_network(tmp_path):
    import tf_keras as keras

    from edgepipe.models.dqn import evaluate_greedy, train_dqn

    q_model, report = train_dqn("CartPole-v0", seed=0, checkpoint_dir=tmp_path / "ckpt", **TINY)
    assert isinstance(q_model, keras.Model) and q_model.output_shape == (None, 2)
    assert report["iterations"] == 30 and report["resumed_at"] == 0
    assert report["replay_frames"] >= 40 + 30  # random warm-up + one collect step per iteration
    assert [e["iteration"] for e in report["evaluations"]] == [15, 30]
    assert report["evaluations"][-1]["epsilon"] < report["evaluations"][0]["epsilon"]  # epsilon decays
    assert np.isfinite(report["loss_every_100"]).all()
    result = evaluate_greedy(q_model, "CartPole-v0", episodes=3, seed=1)
    assert result["episodes"] == 3 and result["average_return"] >= 1

    # A second run with a larger budget resumes from the checkpoint instead of starting over.
    _, resumed = train_dqn("CartPole-v0", seed=0, checkpoint_dir=tmp_path / "ckpt", **{**TINY, "num_iterations": 45})
    assert resumed["resumed_at"] == 30 and resumed["iterations"] == 45


def test_dqn_builder_conv_over_stacked_frames_and_bad_envs():
    from edgepipe.models import build
    from edgepipe.models.dqn import make_env
    from edgepipe.models.spec import DataSpec

    q = build("dqn", DataSpec((4, 16, 16), "control", output_dim=3), conv_filters=[4, 8], units=[8])
    assert q.output_shape == (None, 3)
    assert q.predict(np.zeros((2, 4, 16, 16), "float32"), verbose=0).shape == (2, 3)
    with pytest.raises(ConfigError, match="at least 2 discrete actions"):
        build("dqn", DataSpec((4,), "control", output_dim=1))
    with pytest.raises(ConfigError, match="cannot load Gym environment 'NoSuchEnv-v9'"):
        make_env("NoSuchEnv-v9")
    stacked = make_env("CartPole-v0", frame_stack=3)
    assert tuple(stacked.observation_spec().shape) == (3, 4)

"""Train a DQN agent with TF-Agents on a Gym environment; the Model artifact is the greedy policy's Q-network."""
from __future__ import annotations

from edgepipe.pipeline.artifacts import Model
from edgepipe.pipeline.component import Output, component
from edgepipe.pipeline.errors import ConfigError

EXECUTION_PARAMS = ("checkpoint_root", "time_budget_s")


@component(version="1", execution_params=EXECUTION_PARAMS)
def train_dqn(model: Output[Model], env_name: str = "CartPole-v0", hparams: dict | None = None, seed: int = 0,
              checkpoint_root: str | None = None, time_budget_s: float | None = None) -> dict:
    """``hparams``: the Q-network's (``units``, ``conv_filters``) and the loop's (``num_iterations``,
    ``batch_size``, ``epsilon_*``, ``target_update_period`` ... see :func:`edgepipe.models.dqn.train_dqn`)."""
    import inspect

    from edgepipe.components.training.fit import checkpoint_dir, remove_checkpoints
    from edgepipe.models import dqn

    hparams = dict(hparams or {})
    allowed = set(inspect.signature(dqn.train_dqn).parameters) - {"env_name", "seed", "checkpoint_dir",
                                                                    "time_budget_s", "progress"}
    unknown = sorted(set(hparams) - allowed)
    if unknown:
        raise ConfigError(f"model family 'dqn' has no hyperparameter {', '.join(map(repr, unknown))} "
                          f"(allowed: {', '.join(sorted(allowed))})")
    key = {"env_name": env_name, "hparams": hparams, "seed": seed}
    ckpt = checkpoint_dir(checkpoint_root, "train_dqn", train_dqn.code_version, key, {})
    q_model, report = dqn.train_dqn(env_name=env_name, seed=seed, checkpoint_dir=ckpt, time_budget_s=time_budget_s,
                                    **hparams)
    remove_checkpoints(ckpt)
    model.save_keras(q_model)
    model.write_json("history.json", report)
    model.properties.update({"family": "dqn", "task": "control", "trainer": "rl", "env_name": env_name,
                             "frame_stack": report["frame_stack"], "hparams": hparams, "exported": "q_network",
                             "policy": "greedy: argmax over the output Q-values"})
    return {"iterations": report["iterations"], "best_average_return": report["best"]["average_return"],
            "seconds": report["seconds"]}

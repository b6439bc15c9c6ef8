"""Train a DQN agent with TF-Agents on a Gym environment; the Model artifact is the greedy policy's Q-network."""
from __future__ import annotations

from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Model
from edgepipe.pipeline.component import Output, component
from edgepipe.pipeline.errors import ConfigError

EXECUTION_PARAMS = ("checkpoint_root", "time_budget_s")


@component(version="1", execution_params=EXECUTION_PARAMS)
def train_dqn(model: Output[Model], env_name: str = "CartPole-v0", hparams: dict | None = None, seed: int = 0,
              checkpoint_root: str | None = None, time_budget_s: float | None = None) -> dict:
    """``hparams``: the Q-network's (``units``, ``conv_filters``) and the loop's (``num_iterations``,
    ``batch_size``, ``epsilon_*``, ``target_update_period`` ... see :func:`edgepipe.models.dqn.train_dqn`).

    A retry resumes from the TF-Agents checkpoint (agent, replay buffer, step counter; every
    ``checkpoint_interval`` iterations) under ``checkpoint_root``, keyed by the execution's cache key. Unlike the
    Keras trainers it does not end bitwise where an uninterrupted run would: the Gym environment's state and the
    collect policy's random stream cannot be checkpointed."""
    import inspect

    from edgepipe.components.training.fit import checkpoint_dir, remove_checkpoints
    from edgepipe.models import dqn
    from edgepipe.pipeline import progress

    hparams = dict(hparams or {})
    allowed = set(inspect.signature(dqn.train_dqn).parameters) - {"env_name", "seed", "checkpoint_dir",
                                                                    "time_budget_s", "progress"}
    unknown = sorted(set(hparams) - allowed)
    if unknown:
        raise ConfigError(f"model family 'dqn' has no hyperparameter {', '.join(map(repr, unknown))} "
                          f"(allowed: {', '.join(sorted(allowed))})")
    ckpt = checkpoint_dir(checkpoint_root, "train_dqn")
    total = int(hparams.get("num_iterations") or inspect.signature(dqn.train_dqn).parameters["num_iterations"].default)

    def evaluated(result: dict) -> None:  # every eval_interval iterations: the loop's only cheap stop point
        progress.report("iteration", result["iteration"], total, average_return=result["average_return"],
                        loss=result.get("loss"), epsilon=result.get("epsilon"))
        progress.check_stop()

    q_model, report = dqn.train_dqn(env_name=env_name, seed=seed, checkpoint_dir=ckpt, time_budget_s=time_budget_s,
                                    progress=evaluated, **hparams)
    remove_checkpoints(ckpt)
    model.save_keras(q_model)
    model.write_json("history.json", report)
    model.properties.update(ModelCard.record(
        family="dqn", task="control", trainer="rl", env_name=env_name, frame_stack=report["frame_stack"],
        hparams=hparams, exported="q_network", policy="greedy: argmax over the output Q-values").to_properties())
    return {"iterations": report["iterations"], "best_average_return": report["best"]["average_return"],
            "seconds": report["seconds"]}

"""Control: a DQN's Q-network picks the greedy action for an observation of a Gym environment.

There is no dataset: training and evaluation run episodes, int8 calibration uses observations the trained policy
visits, and a variant's metric is its own average return (agreement: same greedy action as Keras).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import PositiveInt

from edgepipe.tasks.base import Task, register
from edgepipe.tasks.metrics import TaskMetric
from edgepipe.tasks.sections import VerifiedEvaluate

if TYPE_CHECKING:  # models.spec imports edgepipe.tasks: the card is only an annotation here
    from edgepipe.models.card import ModelCard


class ControlEvaluate(VerifiedEvaluate):
    """``evaluate`` of a policy: no dataset split, episodes instead."""

    episodes: PositiveInt = 100  # greedy-policy episodes for the average return (variants: min(episodes, 10))


def _policy_fields(card: ModelCard, io: dict[str, Any]) -> dict[str, Any]:
    return {"policy": {"env_name": card.env_name, "num_actions": int(io["output"]["shape"][-1]),
                       "frame_stack": int(card.frame_stack), "action": "argmax of Q-values"}}


def _observations(ctx) -> dict[str, Any]:
    """The shipped Q-network on 32 observation-shaped inputs drawn with ``seed`` (a device checks its arithmetic,
    not the environment)."""
    import numpy as np

    from edgepipe.runtime.litert import ModelRunner

    io = ctx.io[ctx.chosen]
    shape = (io.get("inputs") or [io["input"]])[0]["shape"][1:]
    obs = np.random.default_rng(ctx.seed).normal(0, 0.5, size=(32, *shape)).astype(np.float32)
    runner = ModelRunner(ctx.content[ctx.chosen], max_batch=1)
    return {"x": obs, "output": runner.run_named(runner.by_name([obs]))}


CONTROL = register(Task(
    name="control", description="greedy actions of a Q-network in a Gym environment", runtime="policy",
    metric=TaskMetric("average_return", True), label="none", data="environment", calibration="observations",
    template="reinforcement", evaluation="control", configurable=False, bundle_fields=_policy_fields,
    preprocessing=lambda ctx: {"kind": "observation", "transform": "none"}, verification=_observations,
    evaluate=ControlEvaluate))

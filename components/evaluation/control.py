"""Evaluation of a DQN policy: the greedy policy's average return, and every converted variant's greedy actions and
own return against the Keras Q-network's."""
from __future__ import annotations

from typing import TYPE_CHECKING

from edgepipe.components.evaluation.registry import evaluator
from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Model, ModelEvaluation, TFLiteModels
from edgepipe.pipeline.contracts import EvaluationReport

if TYPE_CHECKING:  # importing the task module here would register it before the registry's own order
    from edgepipe.tasks.control import ControlEvaluate

EPISODE_SEED = 12345  # fixed, not training.seed: the same episodes judge every trained policy
VARIANT_EPISODES = 10  # at most this many episodes of each variant's own policy
OBSERVATION_EPISODES = 5  # episodes whose observations compare each variant's greedy actions with Keras's


@evaluator("control")
def evaluate_policy(model: Model, evaluation: ModelEvaluation, tflite: TFLiteModels | None = None, *,
                    settings: ControlEvaluate) -> dict:
    """Average return of the exported Q-network's greedy policy over ``settings.episodes`` fresh episodes (the
    task's ``evaluate`` section), seeded with :data:`EPISODE_SEED`.

    With ``tflite`` (convert_policy's variants) each variant's greedy actions are compared with Keras's on the
    observations of ``OBSERVATION_EPISODES`` episodes and its own policy is run for min(episodes, 10) episodes
    (``family_variants.policy_variants``); ``variants.json/.md/.html`` are written for the export gate."""
    from edgepipe.models.dqn import evaluate_greedy

    episodes, latency_runs, seed = settings.episodes, settings.latency_runs, EPISODE_SEED
    variant_episodes, observation_episodes = min(episodes, VARIANT_EPISODES), OBSERVATION_EPISODES
    net = model.load_keras()
    card = ModelCard.of(model)
    frame_stack, env_name = int(card.frame_stack), card.required("env_name")
    result = evaluate_greedy(net, env_name, episodes, frame_stack, seed=seed)
    variants = {}  # the report fields of the variants (family_variants._table)
    if tflite is not None:
        from edgepipe.components.evaluation.family_variants import policy_variants

        variants = policy_variants(tflite, evaluation, net, env_name, frame_stack,
                                   variant_episodes, observation_episodes, seed, latency_runs)
    evaluation.write_report(EvaluationReport.build(schema_version=1, family="dqn", task="control", metrics=result,
                                                   **variants))
    evaluation.properties.update({"task": "control", "average_return": result["average_return"]})
    return {"average_return": result["average_return"], "episodes": episodes,
            **{f"{v}_agreement": a["all"] for v, a in (variants.get("agreement") or {}).items()}}

"""Evaluation of a DQN policy: the greedy policy's average return, and every converted variant's greedy actions and
own return against the Keras Q-network's."""
from __future__ import annotations

from edgepipe.components.evaluation.registry import evaluator
from edgepipe.models.card import ModelCard
from edgepipe.pipeline.artifacts import Model, ModelEvaluation, TFLiteModels


@evaluator("control")
def evaluate_policy(model: Model, evaluation: ModelEvaluation, tflite: TFLiteModels | None = None,
                    episodes: int = 100, seed: int = 12345, variant_episodes: int = 5, observation_episodes: int = 5,
                    latency_runs: int = 50) -> dict:
    """Average return of the exported Q-network's greedy policy over ``episodes`` fresh episodes.

    With ``tflite`` (convert_policy's variants) each variant's greedy actions are compared with Keras's on the
    observations of ``observation_episodes`` episodes and its own policy is run for ``variant_episodes`` episodes
    (``family_variants.policy_variants``); ``variants.json/.md/.html`` are written for the export gate."""
    from edgepipe.models.dqn import evaluate_greedy

    net = model.load_keras()
    card = ModelCard.of(model)
    frame_stack, env_name = int(card.frame_stack), card.required("env_name")
    result = evaluate_greedy(net, env_name, episodes, frame_stack, seed=seed)
    doc = {"schema_version": 1, "family": "dqn", "task": "control", "metrics": result}
    if tflite is not None:
        from edgepipe.components.evaluation.family_variants import policy_variants

        doc.update(policy_variants(tflite, evaluation, net, env_name, frame_stack,
                                   variant_episodes, observation_episodes, seed, latency_runs))
    evaluation.write_json("evaluation.json", doc)
    evaluation.properties.update({"task": "control", "average_return": result["average_return"]})
    return {"average_return": result["average_return"], "episodes": episodes,
            **{f"{v}_agreement": a["all"] for v, a in (doc.get("agreement") or {}).items()}}

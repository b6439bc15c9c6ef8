"""edgepipe.components.evaluation: the one ``evaluate`` component and the evaluators it dispatches to by the task's
declared evaluation kind (anomaly windows, supervised Examples, GAN samples, DQN episodes)."""
from edgepipe.components.evaluation.evaluate import evaluate

__all__ = ["evaluate"]

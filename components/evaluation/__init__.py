"""edgepipe.components.evaluation: anomaly-detection evaluation of the Keras model and its TFLite variants, and
per-family evaluation (classification, regression, segmentation, GANs, RL)."""
from edgepipe.components.evaluation.evaluate import evaluate_anomaly
from edgepipe.components.evaluation.families import evaluate_gan, evaluate_model, evaluate_policy

__all__ = ["evaluate_anomaly", "evaluate_model", "evaluate_gan", "evaluate_policy"]

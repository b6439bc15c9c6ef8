"""edgepipe.components.evaluation: anomaly-detection evaluation of the Keras model and its TFLite variants."""
from edgepipe.components.evaluation.evaluate import evaluate_anomaly

__all__ = ["evaluate_anomaly"]

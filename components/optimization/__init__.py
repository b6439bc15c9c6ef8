"""edgepipe.components.optimization: pruning, clustering, QAT (plain/PQAT/CQAT) and TFLite conversion components.

The libraries behind them (``pruning``, ``clustering``, ``qat``, ``tflite``) import TensorFlow; import them
explicitly. ``variants`` (the catalogue of deployable variants) does not.
"""
from edgepipe.components.optimization.steps import cluster_model, convert_tflite, prune_model, quantize_model

__all__ = ["cluster_model", "convert_tflite", "prune_model", "quantize_model"]

"""edgepipe.components.optimization: pruning, QAT and TFLite conversion components.

The libraries behind them (``pruning``, ``qat``, ``tflite``) import TensorFlow; import them explicitly.
"""
from edgepipe.components.optimization.steps import convert_tflite, prune_model, quantize_model

__all__ = ["convert_tflite", "prune_model", "quantize_model"]

"""edgepipe.components.optimization: pruning, clustering, QAT (plain/PQAT/CQAT) and TFLite conversion components.

The libraries behind them (``pruning``, ``clustering``, ``qat``, ``tflite``) import TensorFlow; import them
explicitly. The catalogue of deployable variants is ``edgepipe.tasks.variants``.
"""
from edgepipe.components.optimization.convert import convert_tflite
from edgepipe.components.optimization.steps import cluster_model, prune_model, quantize_model

__all__ = ["cluster_model", "convert_tflite", "prune_model", "quantize_model"]

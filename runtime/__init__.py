"""edgepipe.runtime: load an exported bundle and run it, with NumPy and LiteRT only.

This is what ships to a device: it never imports TensorFlow, tf_keras, Beam, pydantic or the pipeline packages
(``edgepipe.pipeline``, ``components``, ``models``), so ``pip install edgepipe[runtime]`` (numpy + ai-edge-litert)
is enough. The HTTP server (``edgepipe.runtime.server``) is the optional ``serve`` extra.

    from edgepipe.runtime import Bundle
    bundle = Bundle.load("bundle")
    result = bundle.predict(series)          # series: raw values [T, channels] in channel_names order
    result.window_score, result.step_anomaly
    stream = bundle.stream()
    for sample in sensor:                     # one [channels] sample at a time
        if (window := stream.push(sample)) is not None:
            print(window.start, window.score, window.anomaly)
"""
from edgepipe.runtime.bundle import Bundle
from edgepipe.runtime.errors import BundleError, InputError, RuntimeBundleError, UsageError
from edgepipe.runtime.schema import SUPPORTED_SCHEMA_VERSION
from edgepipe.runtime.tasks import TASKS
from edgepipe.runtime.tasks.anomaly import AnomalyResult, AnomalyStream, WindowScore

__all__ = ["Bundle", "BundleError", "InputError", "RuntimeBundleError", "UsageError", "SUPPORTED_SCHEMA_VERSION",
           "TASKS", "AnomalyResult", "AnomalyStream", "WindowScore"]

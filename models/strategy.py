"""Distribution strategies by name, so the same training component runs on a laptop, a multi-GPU box or a TPU.

The strategy is an *execution* parameter (it changes where the work runs, not what is learned, up to float
non-determinism), so components take it as a string and resolve it here at run time. Names that cannot work in the
current environment fail with a one-line ConfigError instead of a TensorFlow stack trace.
"""
from __future__ import annotations

import json
import os

from edgepipe.pipeline.errors import ConfigError

STRATEGIES = {
    "auto": "MirroredStrategy over all GPUs when there is more than one, else the default strategy",
    "default": "TensorFlow's default (no distribution): one CPU or GPU",
    "one_device": "everything on the first GPU, or the CPU when there is none",
    "mirrored": "synchronous data parallelism over the local GPUs (or the CPU)",
    "multi_worker": "MultiWorkerMirroredStrategy; cluster and task from TF_CONFIG or an explicit worker list",
    "tpu": "TPUStrategy; TPU address from TPU_NAME (or a Cloud TPU VM's local TPU)",
}


def get_strategy(name: str = "auto", workers: list[str] | None = None, task_index: int | None = None):
    """Return a ``tf.distribute.Strategy`` for ``name`` (see :data:`STRATEGIES`).

    ``multi_worker`` reads the cluster from ``TF_CONFIG``, or from ``workers`` (``["host:port", ...]``) and this
    process's ``task_index`` when given (which then set ``TF_CONFIG`` for this process).
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ConfigError(f"unknown distribution strategy '{name}' (allowed: {', '.join(STRATEGIES)})")
    if workers is not None and name != "multi_worker":
        raise ConfigError(f"a worker list only applies to strategy 'multi_worker', not '{name}'")
    if name == "multi_worker":  # before anything that initializes the TF context (listing devices does)
        if workers is not None:
            os.environ["TF_CONFIG"] = tf_config(workers, task_index)
        return _multi_worker(tf)
    if name == "tpu":
        return _tpu(tf)
    if name == "default":
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    return tf.distribute.MirroredStrategy()  # "mirrored"


def tf_config(workers: list[str], task_index: int | None) -> str:
    """The ``TF_CONFIG`` JSON for worker ``task_index`` of ``workers``; one-line ConfigError when inconsistent."""
    if not workers or not all(isinstance(w, str) and ":" in w for w in workers):
        raise ConfigError(f"strategy 'multi_worker': workers must be a non-empty list of 'host:port', got {workers!r}")
    if task_index is None or not 0 <= int(task_index) < len(workers):
        raise ConfigError(f"strategy 'multi_worker': task_index must be in 0..{len(workers) - 1} for "
                          f"{len(workers)} workers, got {task_index!r}")
    return json.dumps({"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": int(task_index)}})


def is_chief(strategy) -> bool:
    """True on the worker that writes shared outputs (worker 0, or the only process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def _multi_worker(tf):
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError("strategy 'multi_worker' needs the TF_CONFIG environment variable "
                          "({\"cluster\": {\"worker\": [...]}, \"task\": {\"type\": \"worker\", \"index\": i}})")
    try:
        config = json.loads(raw)
        config["cluster"]["worker"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"strategy 'multi_worker': TF_CONFIG is not a valid cluster spec ({exc!r})") from None
    try:
        # Must run before any other TF op in the process (collective ops are configured at context startup).
        return tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=tf.distribute.cluster_resolver.TFConfigClusterResolver())
    except RuntimeError as exc:
        raise ConfigError(f"strategy 'multi_worker' could not start: {exc} (create it before any other "
                          "TensorFlow work in the process, i.e. run one training per worker process)") from None


def _tpu(tf):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"strategy 'tpu' is not available here: {detail} "
                          "(set TPU_NAME or run on a Cloud TPU VM)") from None
    return tf.distribute.TPUStrategy(resolver)


def replicas(strategy) -> int:
    """Number of replicas a global batch is split over."""
    return int(strategy.num_replicas_in_sync)

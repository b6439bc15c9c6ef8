"""Distribution strategies by name."""
import json
import os
import socket
import subprocess
import sys

import pytest

import edgepipe  # noqa: F401
from edgepipe.models.strategy import STRATEGIES, get_strategy
from edgepipe.pipeline.errors import ConfigError


@pytest.mark.parametrize("name", ["auto", "default", "one_device", "mirrored"])
def test_local_strategies_build_and_scope_a_model(name):
    import tensorflow as tf

    strategy = get_strategy(name)
    assert isinstance(strategy, tf.distribute.Strategy)
    assert strategy.num_replicas_in_sync >= 1
    with strategy.scope():
        variable = tf.Variable(1.0)
    assert float(variable.numpy()) == 1.0


def test_unknown_strategy_lists_allowed_names():
    with pytest.raises(ConfigError, match="unknown distribution strategy 'gpu'.*" + ", ".join(STRATEGIES)):
        get_strategy("gpu")


def test_multi_worker_without_tf_config_is_a_config_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        get_strategy("multi_worker")


def test_multi_worker_with_malformed_tf_config_is_a_config_error(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(ConfigError, match="not a valid cluster spec"):
        get_strategy("multi_worker")


def test_tpu_unavailable_is_a_config_error(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(ConfigError, match="strategy 'tpu' is not available"):
        get_strategy("tpu")


def test_multi_worker_from_tf_config_in_a_fresh_process():
    """One-worker cluster: the strategy is created before TF initializes its context, as in a worker process."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    tf_config = {"cluster": {"worker": [f"localhost:{port}"]}, "task": {"type": "worker", "index": 0}}
    code = ("import edgepipe, tensorflow as tf; from edgepipe.models.strategy import get_strategy; "
            "s = get_strategy('multi_worker'); "
            "print(isinstance(s, tf.distribute.MultiWorkerMirroredStrategy), s.num_replicas_in_sync)")
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["True", "1"]


def test_explicit_worker_list_sets_tf_config_and_is_validated(monkeypatch):
    from edgepipe.models.strategy import tf_config

    assert json.loads(tf_config(["a:1", "b:2"], 1)) == {"cluster": {"worker": ["a:1", "b:2"]},
                                                         "task": {"type": "worker", "index": 1}}
    with pytest.raises(ConfigError, match="task_index must be in 0..1"):
        get_strategy("multi_worker", workers=["a:1", "b:2"], task_index=2)
    with pytest.raises(ConfigError, match="host:port"):
        get_strategy("multi_worker", workers=["nohost"], task_index=0)
    with pytest.raises(ConfigError, match="only applies to strategy 'multi_worker'"):
        get_strategy("mirrored", workers=["a:1"], task_index=0)


def test_single_process_strategies_are_the_chief():
    from edgepipe.models.strategy import is_chief

    assert is_chief(get_strategy("default"))

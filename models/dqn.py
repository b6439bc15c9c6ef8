"""DQN with TF-Agents: a Q-network of tf_keras layers, a uniform replay buffer, epsilon-greedy collection with a
decaying epsilon, a target network, and a collect/train loop over a Gym environment loaded by name.

The Q-network is a plain tf_keras functional model (observation -> one Q-value per action) wrapped in a
``tf_agents.networks.Sequential`` for the agent, so the exported artifact is that very Keras model: the greedy
policy is ``argmax(q_network(observation))``. Dense layers for vector observations; ``conv_filters`` adds
convolutions over stacked frames (``frame_stack`` > 1 stacks the last observations with TF-Agents'
``HistoryWrapper``; image frames ``[k, H, W]`` are moved to channels ``[H, W, k]`` inside the model).

TF-Agents is an optional extra (``pip install -e .[rl]`` then ``make rl``, see the Makefile): it is imported
only when a DQN is trained or evaluated, and its absence is a one-line ConfigError.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgepipe.models.registry import register
from edgepipe.models.spec import DataSpec, positive_ints, require, require_rank
from edgepipe.pipeline.errors import ConfigError

log = logging.getLogger(__name__)


def require_tf_agents():
    try:
        import tf_agents  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"model family 'dqn' needs TF-Agents, which is not installed ({exc}); "
                          "run 'make rl' (pip install -e '.[rl]' && pip install --no-deps tf-agents==0.19.0)"
                          ) from None
    return tf_agents


@register("dqn", "TF-Agents DQN (replay buffer, epsilon-greedy, target network) on a Gym env; exports the "
                 "greedy policy's Q-network", trainer="rl", tasks=("control",), variants="distilled")
def build_dqn(spec: DataSpec, units: Sequence[int] = (100, 50), conv_filters: Sequence[int] = (),
              kernel_size: int = 3):
    """The Q-network for observations of shape ``spec.input_shape`` and ``spec.output_dim`` discrete actions."""
    import tf_keras as keras

    require_rank("dqn", spec, (1, 2, 3, 4), "observations (a vector, or stacked frames)")
    require(spec.task == "control", "dqn", f"does not do task '{spec.task}' (supported: control)")
    require(spec.output_dim >= 2, "dqn", f"needs at least 2 discrete actions, got {spec.output_dim}")
    units = positive_ints("dqn", "units", units)
    conv = positive_ints("dqn", "conv_filters", conv_filters, allow_empty=True)
    obs = keras.Input(shape=spec.input_shape, name="observation")
    x = obs
    if conv:
        require(spec.rank in (3, 4), "dqn", "conv_filters need image observations [frames, height, width(, c)] "
                                           f"or [height, width, channels], got {list(spec.input_shape)}")
        if spec.rank == 4:  # [k, H, W, C] -> [H, W, k*C]
            k, h, w, c = spec.input_shape
            x = keras.layers.Permute((2, 3, 1, 4), name="frames_last")(x)
            x = keras.layers.Reshape((h, w, k * c), name="stack_channels")(x)
        elif spec.extra.get("frames_first", True):  # [k, H, W] -> [H, W, k]
            x = keras.layers.Permute((2, 3, 1), name="frames_last")(x)
        for i, n in enumerate(conv):
            x = keras.layers.Conv2D(n, kernel_size, strides=2, padding="same", activation="relu", name=f"conv{i}")(x)
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    for i, n in enumerate(units):
        x = keras.layers.Dense(n, activation="relu", name=f"dense{i}")(x)
    q = keras.layers.Dense(spec.output_dim, name="q_values",
                           kernel_initializer=keras.initializers.RandomUniform(-0.03, 0.03),
                           bias_initializer=keras.initializers.Constant(-0.2))(x)
    return keras.Model(obs, q, name="q_network")


# ---- environments ---------------------------------------------------------------------------------------------------
def make_env(env_name: str, frame_stack: int = 1, seed: int | None = None):
    """A TF-Agents py environment for the Gym environment ``env_name`` (frames stacked when ``frame_stack`` > 1)."""
    require_tf_agents()
    from tf_agents.environments import suite_gym, wrappers

    try:
        env = suite_gym.load(env_name)
    except Exception as exc:  # gym raises its own error types for unknown ids
        raise ConfigError(f"model family 'dqn': cannot load Gym environment '{env_name}': "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    if frame_stack > 1:
        env = wrappers.HistoryWrapper(env, history_length=frame_stack, tile_first_step_obs=True)
    if seed is not None:
        try:
            env.seed(seed)
        except (AttributeError, NotImplementedError, TypeError):
            pass
    return env


def env_spec(env_name: str, frame_stack: int = 1) -> DataSpec:
    """Observation shape and number of actions of an environment, as a DataSpec for :func:`build_dqn`."""
    env = make_env(env_name, frame_stack)
    obs, act = env.observation_spec(), env.action_spec()
    env.close()
    if act.dtype.kind not in "iu" or act.shape not in ((), (1,)):
        raise ConfigError(f"model family 'dqn' needs a discrete action space; '{env_name}' has {act}")
    return DataSpec(input_shape=tuple(obs.shape), task="control", output_dim=int(act.maximum - act.minimum + 1),
                    extra={"env_name": env_name, "frame_stack": frame_stack})


def evaluate_greedy(q_model, env_name: str, episodes: int = 100, frame_stack: int = 1, seed: int = 0,
                    max_steps: int = 100_000) -> dict[str, Any]:
    """Average return of ``argmax(q_model(obs))`` over ``episodes`` episodes, stepped as one batch of envs."""
    import tensorflow as tf

    envs = [make_env(env_name, frame_stack, seed=seed + i) for i in range(episodes)]
    predict = tf.function(lambda x: tf.argmax(q_model(x, training=False), axis=-1), reduce_retracing=True)
    steps = [env.reset() for env in envs]
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    alive = np.ones(episodes, dtype=bool)
    for _ in range(max_steps):
        idx = np.flatnonzero(alive)
        if not len(idx):
            break
        obs = np.stack([steps[i].observation for i in idx]).astype(np.float32)
        actions = predict(tf.constant(obs)).numpy()
        for j, i in enumerate(idx):
            steps[i] = envs[i].step(np.asarray(actions[j], dtype=envs[i].action_spec().dtype))
            returns[i] += float(steps[i].reward)
            lengths[i] += 1
            if steps[i].is_last():
                alive[i] = False
    for env in envs:
        env.close()
    return {"episodes": episodes, "average_return": float(returns.mean()), "std_return": float(returns.std()),
            "min_return": float(returns.min()), "max_return": float(returns.max()),
            "average_length": float(lengths.mean()), "returns": [float(r) for r in returns]}  # per episode: the report


# ---- training -------------------------------------------------------------------------------------------------------
def train_dqn(env_name: str = "CartPole-v0", units: Sequence[int] = (100, 50), conv_filters: Sequence[int] = (),
              frame_stack: int = 1, num_iterations: int = 20_000, initial_collect_steps: int = 1000,
              collect_steps_per_iteration: int = 1, replay_capacity: int = 100_000, batch_size: int = 64,
              learning_rate: float = 1e-3, gamma: float = 0.99, epsilon_start: float = 1.0,
              epsilon_end: float = 0.01, epsilon_decay_steps: int = 10_000, target_update_period: int = 100,
              target_update_tau: float = 1.0, eval_interval: int = 1000, eval_episodes: int = 10,
              stop_return: float | None = None, seed: int = 0, checkpoint_dir: str | Path | None = None,
              checkpoint_interval: int = 2000, time_budget_s: float | None = None,
              progress: Callable[[dict[str, Any]], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """Train a DQN; returns ``(q_model, report)`` where ``q_model`` holds the best evaluated weights.

    Every ``eval_interval`` iterations the greedy policy is evaluated on ``eval_episodes`` episodes; the best
    weights are kept, and training stops early once the average reaches ``stop_return``. With ``checkpoint_dir``
    the agent, replay buffer and step counter are checkpointed every ``checkpoint_interval`` iterations and restored
    on start, so an interrupted training resumes where it stopped.
    """
    require_tf_agents()
    import tensorflow as tf
    import tf_keras as keras
    from tf_agents.agents.dqn import dqn_agent
    from tf_agents.drivers import dynamic_step_driver
    from tf_agents.environments import tf_py_environment
    from tf_agents.networks import sequential
    from tf_agents.replay_buffers import tf_uniform_replay_buffer
    from tf_agents.utils import common

    for name, value in (("num_iterations", num_iterations), ("batch_size", batch_size),
                        ("collect_steps_per_iteration", collect_steps_per_iteration),
                        ("replay_capacity", replay_capacity), ("eval_interval", eval_interval),
                        ("eval_episodes", eval_episodes), ("target_update_period", target_update_period)):
        if int(value) <= 0:
            raise ConfigError(f"model family 'dqn': {name} must be positive, got {value}")
    if not 0 <= epsilon_end <= epsilon_start <= 1:
        raise ConfigError(f"model family 'dqn': need 0 <= epsilon_end <= epsilon_start <= 1, got "
                          f"{epsilon_start} -> {epsilon_end}")
    keras.utils.set_random_seed(seed)
    spec = env_spec(env_name, frame_stack)
    q_model = build_dqn(spec, units=units, conv_filters=conv_filters)
    q_net = sequential.Sequential([q_model], input_spec=None)
    train_env = tf_py_environment.TFPyEnvironment(make_env(env_name, frame_stack, seed=seed))
    step = tf.Variable(0, dtype=tf.int64, name="train_step")
    decay = keras.optimizers.schedules.PolynomialDecay(epsilon_start, max(1, epsilon_decay_steps), epsilon_end)
    agent = dqn_agent.DqnAgent(
        train_env.time_step_spec(), train_env.action_spec(), q_network=q_net,
        optimizer=keras.optimizers.Adam(learning_rate), epsilon_greedy=lambda: decay(step),
        target_update_period=target_update_period, target_update_tau=target_update_tau, gamma=gamma,
        td_errors_loss_fn=common.element_wise_huber_loss, train_step_counter=step)
    agent.initialize()
    buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(agent.collect_data_spec, batch_size=train_env.batch_size,
                                                            max_length=replay_capacity)
    checkpointer = None
    if checkpoint_dir is not None:
        checkpointer = common.Checkpointer(ckpt_dir=str(checkpoint_dir), max_to_keep=1, agent=agent,
                                           policy=agent.policy, replay_buffer=buffer, global_step=step)
        checkpointer.initialize_or_restore()
    resumed_at = int(step.numpy())
    collect = dynamic_step_driver.DynamicStepDriver(train_env, agent.collect_policy, observers=[buffer.add_batch],
                                                    num_steps=collect_steps_per_iteration)
    collect_run = common.function(collect.run)
    train_fn = common.function(agent.train)
    if buffer.num_frames().numpy() < initial_collect_steps:
        from tf_agents.policies import random_tf_policy

        warm = dynamic_step_driver.DynamicStepDriver(
            train_env, random_tf_policy.RandomTFPolicy(train_env.time_step_spec(), train_env.action_spec()),
            observers=[buffer.add_batch], num_steps=initial_collect_steps)
        common.function(warm.run)()
    dataset = buffer.as_dataset(num_parallel_calls=2, sample_batch_size=batch_size, num_steps=2).prefetch(3)
    iterator = iter(dataset)

    started = time.perf_counter()
    best = {"average_return": -math.inf, "iteration": None}
    best_weights = q_model.get_weights()
    evaluations, losses = [], []
    time_step, policy_state = None, None
    stopped = "num_iterations"
    while int(step.numpy()) < num_iterations:
        time_step, policy_state = collect_run(time_step=time_step, policy_state=policy_state)
        experience, _ = next(iterator)
        loss = float(train_fn(experience).loss.numpy())
        it = int(step.numpy())
        if it % 100 == 0:
            losses.append(loss)
        if checkpointer is not None and it % checkpoint_interval == 0:
            checkpointer.save(global_step=step)
        if it % eval_interval == 0 or it >= num_iterations:
            result = evaluate_greedy(q_model, env_name, eval_episodes, frame_stack, seed=10_000 + it)
            result.update({"iteration": it, "epsilon": float(decay(step)), "loss": loss,
                           "seconds": round(time.perf_counter() - started, 2)})
            evaluations.append(result)
            if progress:
                progress(result)
            if result["average_return"] >= best["average_return"]:
                best = {"average_return": result["average_return"], "iteration": it}
                best_weights = q_model.get_weights()
            if stop_return is not None and result["average_return"] >= stop_return:
                stopped = "stop_return"
                break
        if time_budget_s is not None and time.perf_counter() - started > time_budget_s:
            stopped = "time_budget"
            break
    q_model.set_weights(best_weights)
    if checkpointer is not None:
        checkpointer.save(global_step=step)
    report = {"env_name": env_name, "frame_stack": frame_stack, "observation_shape": list(spec.input_shape),
              "num_actions": spec.output_dim, "iterations": int(step.numpy()), "resumed_at": resumed_at,
              "stopped": stopped, "seconds": round(time.perf_counter() - started, 2), "best": best,
              "evaluations": evaluations, "loss_every_100": losses, "replay_frames": int(buffer.num_frames().numpy())}
    train_env.close()
    return q_model, report
